package supervisor

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rke2os/rke2os/init/node"
	"github.com/rke2os/rke2os/init/serverpki"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
)

// agentSecret is the agent token's secret of the test cluster: what an
// attacker on the node network holds at most.
const agentSecret = "agent-secret"

// testServer is the supervisor of server1 (at 192.0.2.1, tls-san
// api.example.com and 192.0.2.100), with a fake cluster holding objs.
func testServer(t *testing.T, objs ...runtime.Object) (*Server, *fake.Clientset) {
	t.Helper()
	dir := t.TempDir()
	p := node.Paths{DataDir: filepath.Join(dir, "data"), EtcDir: filepath.Join(dir, "etc"), RunDir: filepath.Join(dir, "run")}
	if _, err := serverpki.Ensure(serverpki.Options{Paths: p, NodeName: "server1", NodeIPs: []net.IP{net.ParseIP("192.0.2.1")},
		TLSSANs: []string{"api.example.com", "192.0.2.100"}, Token: "server-secret", AgentToken: agentSecret}); err != nil {
		t.Fatal(err)
	}
	s, err := New(p, AgentConfig{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kc := fake.NewSimpleClientset(objs...)
	s.SetCluster(&Cluster{Passwords: &NodePasswords{Kube: kc}})
	return s, kc
}

// certRequest is a node's request for the certificate at path, sent from
// remote ("ip:port") with the agent token; ips is the rke2-Node-IP header.
type certRequest struct {
	path, remote, name, password, ips string
}

func (c certRequest) send(t *testing.T, s *Server) *httptest.ResponseRecorder {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: c.name}}, key)
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPost, Prefix+c.path, bytes.NewReader(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})))
	req.RemoteAddr = c.remote
	if req.RemoteAddr == "" {
		req.RemoteAddr = "192.0.2.11:40000"
	}
	req.SetBasicAuth("node", agentSecret)
	req.Header.Set(HeaderNodeName, c.name)
	req.Header.Set(HeaderNodePassword, c.password)
	if c.ips != "" {
		req.Header.Set(HeaderNodeIP, c.ips)
	}
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, req)
	return w
}

// leafOf is the first certificate of a PEM answer.
func leafOf(t *testing.T, b []byte) *x509.Certificate {
	t.Helper()
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("no PEM in %q", b)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func nodeObj(name string, addrs ...string) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID("uid-" + name)}}
	for _, a := range addrs {
		n.Status.Addresses = append(n.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: a})
	}
	return n
}

// passwordSecret is name's secret as a claim with password leaves it.
func passwordSecret(t *testing.T, name, password string) *corev1.Secret {
	t.Helper()
	h, err := hashPassword(password)
	if err != nil {
		t.Fatal(err)
	}
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: SecretName(name), Namespace: metav1.NamespaceSystem},
		Type: SecretType, Data: map[string][]byte{"hash": []byte(h)}}
}

// TestServerIdentityNotForTokenHolders: an agent token holder cannot get
// a kubelet certificate for a server's name, whether the server has
// claimed it already or its Node is registered without a password secret
// (servers issue their own kubelet certificates; the name was free for the
// first asker, who could then delete the server's Node and have the other
// servers remove its etcd member).
func TestServerIdentityNotForTokenHolders(t *testing.T) {
	for _, tc := range []struct {
		name string
		objs []runtime.Object
		node string
		want int
	}{
		{"registered, no secret", []runtime.Object{nodeObj("server2", "192.0.2.2")}, "server2", http.StatusForbidden},
		{"this server, registered, no secret", []runtime.Object{nodeObj("server1", "192.0.2.1")}, "server1", http.StatusForbidden},
		{"claimed by the server", []runtime.Object{nodeObj("server2", "192.0.2.2"), passwordSecret(t, "server2", "server2-password")}, "server2", http.StatusForbidden},
		{"claimed, Node not yet registered", []runtime.Object{passwordSecret(t, "server2", "server2-password")}, "server2", http.StatusForbidden},
		{"a new name", nil, "agent1", http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, kc := testServer(t, tc.objs...)
			for _, path := range []string{"/client-kubelet.crt", "/serving-kubelet.crt"} {
				w := certRequest{path: path, name: tc.node, password: "attacker"}.send(t, s)
				if w.Code != tc.want {
					t.Fatalf("%s for %s: %d %s, want %d", path, tc.node, w.Code, w.Body, tc.want)
				}
				if tc.want == http.StatusOK {
					continue
				}
				if w.Body.Len() == 0 {
					t.Errorf("%s: a refusal without a reason", path)
				}
			}
			sec, err := kc.CoreV1().Secrets(metav1.NamespaceSystem).Get(context.Background(), SecretName(tc.node), metav1.GetOptions{})
			switch {
			case tc.want == http.StatusOK && err != nil:
				t.Errorf("the new name was not recorded: %v", err)
			case tc.want != http.StatusOK && err == nil:
				if ok, _ := verifyPassword(string(sec.Data["hash"]), "attacker"); ok {
					t.Errorf("the refused claim was recorded")
				}
			}
		})
	}
}

// TestTokenRoles: the agent token ("node" with the agent secret) is
// answered on the agents' endpoints and refused, 401, on the servers'
// (server-bootstrap hands out the cluster's CA keys); the server token
// is answered on both, and, as in RKE2, serves agents too ("node" with
// the server secret, what an agent given the server token sends).
func TestTokenRoles(t *testing.T) {
	s, kc := testServer(t)
	s.Ready = func(context.Context) error { return nil }
	s.SetCluster(&Cluster{Passwords: &NodePasswords{Kube: kc},
		APIServers: func(context.Context) ([]string, error) { return []string{"192.0.2.1:6443"}, nil },
		Members:    func(context.Context) (json.RawMessage, error) { return json.RawMessage(`{"members":[]}`), nil }})
	const serverSecret = "server-secret"
	agentEndpoints := []string{"GET " + Prefix + "/client-ca.crt", "GET " + Prefix + "/server-ca.crt", "GET " + Prefix + "/config",
		"GET " + Prefix + "/readyz", "GET " + Prefix + "/apiservers", "POST " + Prefix + "/client-kube-proxy.crt"}
	serverEndpoints := []string{"GET " + Prefix + "/server-bootstrap", "GET /db/info"}
	for _, tc := range []struct {
		name            string
		user, pass      string
		agents, servers int
	}{
		{"agent token", "node", agentSecret, http.StatusOK, http.StatusUnauthorized},
		{"agent secret as the server", "server", agentSecret, http.StatusUnauthorized, http.StatusUnauthorized},
		{"server token", "server", serverSecret, http.StatusOK, http.StatusOK},
		{"server secret as a node", "node", serverSecret, http.StatusOK, http.StatusUnauthorized},
		{"wrong secret", "node", "wrong", http.StatusUnauthorized, http.StatusUnauthorized},
		{"no user", "", agentSecret, http.StatusUnauthorized, http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, ep := range append(agentEndpoints, serverEndpoints...) {
				want := tc.agents
				if slices.Contains(serverEndpoints, ep) {
					want = tc.servers
				}
				method, path, _ := strings.Cut(ep, " ")
				req := httptest.NewRequest(method, path, csrBody(t, method))
				req.SetBasicAuth(tc.user, tc.pass)
				w := httptest.NewRecorder()
				s.Handler().ServeHTTP(w, req)
				if w.Code != want {
					t.Errorf("%s: %d %s, want %d", ep, w.Code, w.Body, want)
				}
				if w.Code == http.StatusUnauthorized && strings.Contains(w.Body.String(), "BEGIN") {
					t.Errorf("%s: a refusal with content: %s", ep, w.Body)
				}
			}
		})
	}
}

// csrBody is a certificate request for a POST, nothing for a GET.
func csrBody(t *testing.T, method string) io.Reader {
	t.Helper()
	if method != http.MethodPost {
		return nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "system:kube-proxy"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.NewReader(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}
