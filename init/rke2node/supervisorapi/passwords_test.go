package supervisorapi

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

func TestPasswordHash(t *testing.T) {
	h, err := hashPassword("s3cret")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(h, "s3cret") || !strings.HasPrefix(h, "$1:") {
		t.Fatalf("hash %q", h)
	}
	h2, _ := hashPassword("s3cret")
	if h == h2 {
		t.Error("two hashes of one password are equal: no salt")
	}
	for _, tc := range []struct {
		hash, password string
		ok             bool
		err            string
	}{
		{h, "s3cret", true, ""},
		{h, "s3cret ", false, ""},
		{h, "", false, ""},
		{"plain", "s3cret", false, "not in the form"},
		{"$1:zz:12:8:1:00", "s3cret", false, "hash:"},
		{"$1:00:40:8:1:00", "s3cret", false, "out of range"},
		{"$2:00:12:8:1:00", "s3cret", false, "not in the form"},
	} {
		ok, err := verifyPassword(tc.hash, tc.password)
		if ok != tc.ok || (tc.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("verify(%q, %q) = %v, %v; want %v, %q", tc.hash, tc.password, ok, err, tc.ok, tc.err)
		}
	}
}

// FuzzVerifyPassword: a secret's hash is read from the cluster, where
// anyone who may write secrets in kube-system can put anything; no input
// panics or runs away (the cost parameters are bounded).
func FuzzVerifyPassword(f *testing.F) {
	h, _ := hashPassword("pw")
	f.Add(h, "pw")
	f.Add("$1:00:12:8:1:00", "x")
	f.Add("$1::1:1:1:", "")
	f.Fuzz(func(t *testing.T, hash, password string) {
		ok, err := verifyPassword(hash, password)
		if ok && err != nil {
			t.Fatal("accepted with an error")
		}
	})
}

// TestAdoptReleasesUnclaimedNames: the adoption pass deletes the password
// secret of a name no Node registered within UnclaimedAge of its claim,
// so that a token holder's claims of made-up names do not pile up; it
// keeps younger ones, owned ones, a server's own claim, others' secrets,
// and any whose Node it cannot read, and adopts one whose Node is there.
func TestAdoptReleasesUnclaimedNames(t *testing.T) {
	old := metav1.NewTime(time.Now().Add(-UnclaimedAge - time.Minute))
	young := metav1.NewTime(time.Now().Add(-UnclaimedAge + 5*time.Minute))
	secret := func(name string, created metav1.Time, edit func(*corev1.Secret)) *corev1.Secret {
		s := passwordSecret(t, name, "pw")
		s.CreationTimestamp = created
		if edit != nil {
			edit(s)
		}
		return s
	}
	kc := fake.NewSimpleClientset(
		secret("gone", old, nil),
		secret("young", young, nil),
		secret("owned", old, func(s *corev1.Secret) {
			s.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: "owned", UID: "uid-owned"}}
		}),
		secret("registered", old, nil), nodeObj("registered"),
		secret("server2", old, func(s *corev1.Secret) { s.Annotations = map[string]string{annotationServerClaim: "true"} }),
		secret("other", old, func(s *corev1.Secret) { s.Type = corev1.SecretTypeOpaque }),
		secret("unreadable", old, nil),
	)
	kc.PrependReactor("get", "nodes", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.(k8stesting.GetAction).GetName() == "unreadable" {
			return true, nil, errors.New("the apiserver is away")
		}
		return false, nil, nil
	})
	n := &NodePasswords{Kube: kc}
	if err := n.Adopt(context.Background()); err == nil || !strings.Contains(err.Error(), "unreadable") {
		t.Errorf("Adopt: %v, want the unreadable Node's error", err)
	}
	secrets := kc.CoreV1().Secrets(metav1.NamespaceSystem)
	for name, kept := range map[string]bool{"gone": false, "young": true, "owned": true, "registered": true, "server2": true, "other": true, "unreadable": true} {
		sec, err := secrets.Get(context.Background(), SecretName(name), metav1.GetOptions{})
		switch {
		case kept && err != nil:
			t.Errorf("%s: deleted (%v), want it kept", name, err)
		case !kept && err == nil:
			t.Errorf("%s: kept, want it deleted", name)
		case name == "registered" && (len(sec.OwnerReferences) != 1 || sec.OwnerReferences[0].UID != "uid-registered"):
			t.Errorf("registered: owners %v, want its Node", sec.OwnerReferences)
		}
	}
}

// TestServerClaimIsMarked: a server's own claim carries the mark Adopt
// spares; a node's claim through the supervisor does not.
func TestServerClaimIsMarked(t *testing.T) {
	kc := fake.NewSimpleClientset()
	n := &NodePasswords{Kube: kc}
	if err := n.ClaimOwn(context.Background(), "server1", "pw"); err != nil {
		t.Fatal(err)
	}
	if err := n.Claim(context.Background(), "agent1", "pw"); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"server1": "true", "agent1": ""} {
		sec, err := kc.CoreV1().Secrets(metav1.NamespaceSystem).Get(context.Background(), SecretName(name), metav1.GetOptions{})
		if err != nil || sec.Annotations[annotationServerClaim] != want {
			t.Errorf("%s: %v, mark %q, want %q", name, err, sec.Annotations[annotationServerClaim], want)
		}
	}
}
