package supervisorapi

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/scrypt"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// SecretType marks the node password secrets.
const SecretType corev1.SecretType = "rke2.cattle.io/node-password"

// SecretName is the secret in kube-system that keeps the hash of node's
// password, RKE2's name.
func SecretName(node string) string { return node + ".node-password.rke2" }

// UnclaimedAge is how long a claimed name waits for its Node: Adopt
// removes the password secret of a name no Node has registered within it,
// so that names claimed and never used (any token holder may claim new
// ones) neither pile up nor stay taken.
const UnclaimedAge = time.Hour

// annotationServerClaim marks a server's claim of its own name (ClaimOwn),
// which Adopt keeps however long the server's Node takes to register:
// released, the name would go to the first token holder who asks, who
// could then delete the server's Node (see ErrNameRegistered).
const annotationServerClaim = "rke2os.io/server-claim"

// NodePasswords keeps node passwords as RKE2 does: the hash of the first
// password a name is claimed with, in the secret
// kube-system/<node>.node-password.rke2. Once the Node exists the secret
// is owned by it, so that deleting the Node frees the name (the garbage
// collector deletes the secret); the name of a Node that never registers
// is freed after UnclaimedAge (Adopt).
//
// Unlike RKE2, the name of a Node that exists without a secret is given
// to no one who asks: it is a server's (a server issues its own kubelet
// certificates, and claims its name with ClaimOwn) or a node's whose
// secret was deleted, and whoever got its kubelet identity could delete
// that Node.
type NodePasswords struct {
	Kube kubernetes.Interface
}

// Check implements Passwords.
func (n *NodePasswords) Check(ctx context.Context, name, password string) error {
	secrets := n.Kube.CoreV1().Secrets(metav1.NamespaceSystem)
	sec, err := secrets.Get(ctx, SecretName(name), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return ErrUnclaimed
	}
	if err != nil {
		return err
	}
	ok, err := verifyPassword(string(sec.Data["hash"]), password)
	if err != nil {
		return fmt.Errorf("secret %s: %w", sec.Name, err)
	}
	if !ok {
		return ErrPasswordRejected
	}
	if len(sec.OwnerReferences) == 0 && n.own(ctx, sec, name) {
		// Immutable covers data, not metadata.
		if _, err := secrets.Update(ctx, sec, metav1.UpdateOptions{}); err != nil && !apierrors.IsConflict(err) {
			return err
		}
	}
	return nil
}

// Claim implements Passwords.
func (n *NodePasswords) Claim(ctx context.Context, name, password string) error {
	_, err := n.Kube.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err == nil {
		return fmt.Errorf("node %s: %w", name, ErrNameRegistered)
	}
	if !apierrors.IsNotFound(err) {
		return err
	}
	return n.create(ctx, name, password, false)
}

// ClaimOwn claims a server's own name with its password, the Node
// registered or not (the server is that Node's kubelet): the server calls
// it before its supervisor serves kubelet certificates, so that no one who
// asks first gets the name. ErrPasswordRejected if the name is claimed
// with another password.
func (n *NodePasswords) ClaimOwn(ctx context.Context, name, password string) error {
	if err := n.Check(ctx, name, password); !errors.Is(err, ErrUnclaimed) {
		return err
	}
	return n.create(ctx, name, password, true)
}

// create records password's hash for name, owned by its Node if there is
// one, and marked as a server's own claim if server; if another request
// recorded the name first, it checks against that.
func (n *NodePasswords) create(ctx context.Context, name, password string, server bool) error {
	hash, err := hashPassword(password)
	if err != nil {
		return err
	}
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: SecretName(name), Namespace: metav1.NamespaceSystem},
		Type: SecretType, Immutable: ptr(true), Data: map[string][]byte{"hash": []byte(hash)}}
	if server {
		sec.Annotations = map[string]string{annotationServerClaim: "true"}
	}
	n.own(ctx, sec, name)
	_, err = n.Kube.CoreV1().Secrets(metav1.NamespaceSystem).Create(ctx, sec, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		// Another request for the name won the race: check against it.
		err = n.Check(ctx, name, password)
		if errors.Is(err, ErrUnclaimed) {
			return fmt.Errorf("secret %s was created and deleted meanwhile: try again", sec.Name)
		}
	}
	return err
}

// Adopt gives every node password secret whose Node exists that Node as
// its owner, and deletes the secrets of names whose Node has not
// registered UnclaimedAge after the claim (but a server's own claim); the
// server runs it now and then, for the names claimed before their Node
// registered. A Node that cannot be read is left for the next pass.
func (n *NodePasswords) Adopt(ctx context.Context) error {
	secrets := n.Kube.CoreV1().Secrets(metav1.NamespaceSystem)
	list, err := secrets.List(ctx, metav1.ListOptions{FieldSelector: "type=" + string(SecretType)})
	if err != nil {
		return err
	}
	var errs []error
	for i := range list.Items {
		sec := &list.Items[i]
		name, ok := strings.CutSuffix(sec.Name, ".node-password.rke2")
		if !ok || sec.Type != SecretType || len(sec.OwnerReferences) > 0 {
			continue
		}
		node, err := n.Kube.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		switch {
		case err == nil:
			sec.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: node.Name, UID: node.UID}}
			if _, err := secrets.Update(ctx, sec, metav1.UpdateOptions{}); err != nil && !apierrors.IsConflict(err) {
				errs = append(errs, err)
			}
		case !apierrors.IsNotFound(err):
			errs = append(errs, fmt.Errorf("node %s: %w", name, err))
		case sec.Annotations[annotationServerClaim] == "" && time.Since(sec.CreationTimestamp.Time) >= UnclaimedAge:
			// The preconditions spare a secret made anew meanwhile.
			err := secrets.Delete(ctx, sec.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &sec.UID, ResourceVersion: &sec.ResourceVersion}})
			if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
				errs = append(errs, err)
				continue
			}
			slog.Info("node passwords: a claimed name no Node registered is free again", "node", name, "claimed", sec.CreationTimestamp.UTC().Format(time.RFC3339))
		}
	}
	return errors.Join(errs...)
}

// own sets the Node as sec's owner if the Node exists, and says whether
// it did.
func (n *NodePasswords) own(ctx context.Context, sec *corev1.Secret, name string) bool {
	node, err := n.Kube.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return false
	}
	sec.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: node.Name, UID: node.UID}}
	return true
}

func ptr[T any](v T) *T { return &v }

// The hash is scrypt's, in the form "$1:<salt>:<log2 N>:<r>:<p>:<key>"
// (hex). The password is 128 random bits: a small N is plenty, and keeps
// a check cheap on a slow node.
const (
	scryptLogN = 12
	scryptR    = 8
	scryptP    = 1
	scryptLen  = 32
)

func hashPassword(password string) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key, err := scrypt.Key([]byte(password), salt, 1<<scryptLogN, scryptR, scryptP, scryptLen)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("$1:%x:%d:%d:%d:%x", salt, scryptLogN, scryptR, scryptP, key), nil
}

func verifyPassword(hash, password string) (bool, error) {
	f := strings.Split(strings.TrimPrefix(hash, "$"), ":")
	if len(f) != 6 || f[0] != "1" {
		return false, fmt.Errorf("hash is not in the form $1:salt:N:r:p:key")
	}
	salt, err1 := hex.DecodeString(f[1])
	logN, err2 := strconv.Atoi(f[2])
	r, err3 := strconv.Atoi(f[3])
	p, err4 := strconv.Atoi(f[4])
	want, err5 := hex.DecodeString(f[5])
	for _, err := range []error{err1, err2, err3, err4, err5} {
		if err != nil {
			return false, fmt.Errorf("hash: %w", err)
		}
	}
	if logN < 1 || logN > 16 || r < 1 || r > 16 || p < 1 || p > 4 || len(want) == 0 || len(want) > 64 {
		return false, fmt.Errorf("hash parameters out of range")
	}
	got, err := scrypt.Key([]byte(password), salt, 1<<logN, r, p, len(want))
	if err != nil {
		return false, fmt.Errorf("hash: %w", err)
	}
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}
