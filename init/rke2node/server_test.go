package rke2node

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rke2os/rke2os/init/rke2node/supervisorapi"
	"github.com/rke2os/rke2os/init/shared/nodesteps"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

// fakeTLS serves h over HTTPS with a certificate the node's PKI made, and
// asks clients for a certificate of clientCA.
func fakeTLS(t *testing.T, cert, key, clientCA string, h http.HandlerFunc) string {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	pem, _ := os.ReadFile(clientCA)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.URL
}

// The server side waits for etcd, then writes the apiserver's pod, waits
// for its /readyz, then writes the controller-manager's and the
// scheduler's: each in its turn, with the node's own client certificates.
func TestServer(t *testing.T) {
	env := testEnv(t)
	rel := `{"rke2_version":"v1.34.4+rke2r1","images":[` +
		`{"name":"docker.io/rancher/hardened-etcd:v3.6.7-k3s1","id":"sha256:1","archive":"/a.tar"},` +
		`{"name":"docker.io/rancher/hardened-kubernetes:v1.34.4-rke2r1-build20250101","id":"sha256:2","archive":"/a.tar"}]}`
	os.WriteFile(env.Release, []byte(rel), 0o644)
	os.MkdirAll(env.Paths.EtcDir, 0o700)
	os.WriteFile(filepath.Join(env.Paths.EtcDir, "config.yaml"), []byte("kube-apiserver-arg: [\"v=2\"]\n"+
		"control-plane-probe-configuration: [kube-apiserver-liveness-period-seconds=37, kube-proxy-liveness-failure-threshold=19]\n"), 0o600)
	if code, m := run(t, env, nodesteps.StepEtcd, "--node-name=node1", "--node-ip=10.0.2.15"); code != 0 {
		t.Fatalf("etcd step: %v", m)
	}

	var etcdUp, apiUp, registered, ready atomic.Bool
	var labels atomic.Value
	labels.Store("")
	var claimed atomic.Value
	claimed.Store("")
	var claimedType atomic.Value
	claimedType.Store("")
	env.NodePasswordFile = filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(env.NodePasswordFile, []byte("server-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tlsDir := env.Paths.Server("tls")
	env.EtcdURL = fakeTLS(t, env.Paths.EtcdTLS("server-client.crt"), env.Paths.EtcdTLS("server-client.key"), env.Paths.EtcdTLS("server-ca.crt"),
		func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/health" || !etcdUp.Load() {
				w.Write([]byte(`{"health":"false","reason":"no leader"}`))
				return
			}
			w.Write([]byte(`{"health":"true","reason":""}`))
		})
	env.APIServerURL = fakeTLS(t, filepath.Join(tlsDir, "serving-kube-apiserver.crt"), filepath.Join(tlsDir, "serving-kube-apiserver.key"), filepath.Join(tlsDir, "client-ca.crt"),
		func(w http.ResponseWriter, r *http.Request) {
			// The server's claim of its own name: its password secret.
			if strings.HasPrefix(r.URL.Path, "/api/v1/namespaces/kube-system/secrets") && r.TLS.PeerCertificates[0].Subject.CommonName == "system:rke2-supervisor" {
				w.Header().Set("Content-Type", "application/json")
				switch {
				case r.Method == http.MethodPost:
					b, _ := io.ReadAll(r.Body)
					claimed.Store(string(b))
					claimedType.Store(r.Header.Get("Content-Type"))
					w.Header().Set("Content-Type", r.Header.Get("Content-Type"))
					w.WriteHeader(http.StatusCreated)
					w.Write(b)
				case claimed.Load() != "":
					w.Header().Set("Content-Type", claimedType.Load().(string))
					w.Write([]byte(claimed.Load().(string)))
				default:
					w.WriteHeader(http.StatusNotFound)
					w.Write([]byte(`{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404}`))
				}
				return
			}
			if r.URL.Path == "/api/v1/nodes/node1" && r.TLS.PeerCertificates[0].Subject.CommonName == "system:rke2-supervisor" {
				switch {
				case !registered.Load():
					w.Header().Set("Content-Type", "application/json")
					w.WriteHeader(http.StatusNotFound)
					w.Write([]byte(`{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404}`))
					return
				case r.Method == http.MethodPatch:
					b, _ := io.ReadAll(r.Body)
					labels.Store(string(b))
				}
				status := "False"
				if ready.Load() {
					status = "True"
				}
				w.Header().Set("Content-Type", "application/json")
				fmt.Fprintf(w, `{"kind":"Node","apiVersion":"v1","metadata":{"name":"node1"},"status":{"conditions":[{"type":"Ready","status":%q}]}}`, status)
				return
			}
			if r.URL.Path != "/readyz" || !apiUp.Load() || r.TLS.PeerCertificates[0].Subject.CommonName != "system:admin" {
				http.Error(w, "[-]etcd failed", http.StatusInternalServerError)
				return
			}
			w.Write([]byte("ok"))
		})
	env.MilestoneDir = filepath.Join(t.TempDir(), "milestones")

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- env.Server(ctx, "node1", "10.0.2.15") }()
	manifest := func(name string) string {
		b, _ := os.ReadFile(filepath.Join(env.Paths.PodManifests(), name+".yaml"))
		return string(b)
	}
	waitUntil := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("after 30s: %s", what)
			}
		}
	}

	time.Sleep(3 * pollEvery)
	if manifest("kube-apiserver") != "" {
		t.Fatal("the apiserver's pod was written before etcd answered")
	}
	etcdUp.Store(true)
	waitUntil("the apiserver's pod, once etcd is healthy", func() bool { return manifest("kube-apiserver") != "" })
	if m := manifest("kube-apiserver"); !strings.Contains(m, "--v=2") || !strings.Contains(m, "hardened-kubernetes:v1.34.4-rke2r1-build20250101") {
		t.Errorf("apiserver pod lacks the user's argument or the image:\n%s", m)
	}
	if m := manifest("kube-apiserver"); !strings.Contains(m, "periodSeconds: 37") {
		t.Errorf("apiserver pod lacks the configured liveness period:\n%s", m)
	}
	if _, err := os.Stat(filepath.Join(env.Paths.EtcDir, "rke2-pss.yaml")); err != nil {
		t.Errorf("pod security config: %v", err)
	}
	time.Sleep(3 * pollEvery)
	if manifest("kube-controller-manager") != "" || manifest("kube-scheduler") != "" {
		t.Fatal("the controller-manager or the scheduler came before the apiserver was ready")
	}
	apiUp.Store(true)
	waitUntil("the controller-manager's, scheduler's and kube-proxy's pods", func() bool {
		return manifest("kube-controller-manager") != "" && manifest("kube-scheduler") != "" && manifest("kube-proxy") != ""
	})
	if m := manifest("kube-proxy"); !strings.Contains(m, "failureThreshold: 19") {
		t.Errorf("kube-proxy's pod lacks the configured failure threshold:\n%s", m)
	}
	for _, m := range []string{"etcd-healthy", "apiserver-ready"} {
		if _, err := os.Stat(filepath.Join(env.MilestoneDir, m)); err != nil {
			t.Errorf("milestone %s not recorded: %v", m, err)
		}
	}
	// The Node: labelled once registered, node-ready once Ready.
	time.Sleep(2 * pollEvery)
	if labels.Load() != "" {
		t.Fatal("a Node that is not registered was patched")
	}
	if c := claimed.Load().(string); !strings.Contains(c, "node1.node-password.rke2") {
		t.Errorf("the server did not claim its own node name before serving joins: %q", c)
	}
	registered.Store(true)
	waitUntil("the Node's role labels", func() bool {
		return strings.Contains(labels.Load().(string), `"node-role.kubernetes.io/control-plane":"true"`)
	})
	time.Sleep(2 * pollEvery)
	if _, err := os.Stat(filepath.Join(env.MilestoneDir, "node-ready")); err == nil {
		t.Fatal("node-ready before the Node was Ready")
	}
	ready.Store(true)
	waitUntil("node-ready", func() bool {
		_, err := os.Stat(filepath.Join(env.MilestoneDir, "node-ready"))
		return err == nil
	})
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Server: %v", err)
	}
}

func TestFailedChecks(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{"[+]ping ok\n[+]log ok\n[-]poststarthook/rbac/bootstrap-roles failed: not finished\n[+]etcd ok\n[-]etcd-readiness failed: reason withheld\nreadyz check failed\n",
			"[-]poststarthook/rbac/bootstrap-roles failed: not finished; [-]etcd-readiness failed: reason withheld"},
		{"Internal Server Error", "Internal Server Error"},
		{"", ""},
	} {
		if got := failedChecks([]byte(tc.body)); got != tc.want {
			t.Errorf("%q: %q, want %q", tc.body, got, tc.want)
		}
	}
}

// TestClaimOwnName: a server claims its own node name with its node
// password, even where its Node is registered without a password secret
// (a server made before servers claimed their names); from then on an
// agent token holder's claim of the name is refused. A name claimed with
// another password stops the server with the fix.
func TestClaimOwnName(t *testing.T) {
	ctx := context.Background()
	env := testEnv(t)
	env.NodePasswordFile = filepath.Join(t.TempDir(), "password")
	os.WriteFile(env.NodePasswordFile, []byte("server-password\n"), 0o600)
	kc := fake.NewSimpleClientset(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node1", UID: "u1"}})
	np := &supervisorapi.NodePasswords{Kube: kc}
	if err := env.claimOwnName(ctx, np, "node1"); err != nil {
		t.Fatal(err)
	}
	sec, err := kc.CoreV1().Secrets(metav1.NamespaceSystem).Get(ctx, supervisorapi.SecretName("node1"), metav1.GetOptions{})
	if err != nil || len(sec.OwnerReferences) != 1 || sec.OwnerReferences[0].UID != "u1" {
		t.Fatalf("the server's password secret %v, owned by its Node: %v", sec, err)
	}
	if err := np.Check(ctx, "node1", "attacker"); !errors.Is(err, supervisorapi.ErrPasswordRejected) {
		t.Errorf("another password for the server's name: %v, want it rejected", err)
	}
	if err := env.claimOwnName(ctx, np, "node1"); err != nil {
		t.Errorf("a second claim (every start): %v", err)
	}

	os.WriteFile(env.NodePasswordFile, []byte("another-password\n"), 0o600)
	err = env.claimOwnName(ctx, np, "node1")
	var p interface{ Permanent() bool }
	if !errors.As(err, &p) || !p.Permanent() || !strings.Contains(err.Error(), "delete secret node1.node-password.rke2") {
		t.Errorf("claim with another password: %v, want a permanent error that says how to free the name", err)
	}
	os.Remove(env.NodePasswordFile)
	if err := env.claimOwnName(ctx, np, "node1"); err == nil || !strings.Contains(err.Error(), env.NodePasswordFile) {
		t.Errorf("no password file: %v", err)
	}
}
