package supervisorapi

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
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rke2os/rke2os/init/shared/layout"
	"github.com/rke2os/rke2os/init/shared/serverpki"
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
// api.example.com and 192.0.2.100; the apiservers' endpoints are it and
// 192.0.2.3), with a fake cluster holding objs.
func testServer(t *testing.T, objs ...runtime.Object) (*Server, *fake.Clientset) {
	t.Helper()
	dir := t.TempDir()
	p := layout.Paths{DataDir: filepath.Join(dir, "data"), EtcDir: filepath.Join(dir, "etc"), RunDir: filepath.Join(dir, "run")}
	if _, err := serverpki.Ensure(serverpki.Options{Paths: p, NodeName: "server1", NodeIPs: []net.IP{net.ParseIP("192.0.2.1")},
		TLSSANs: []string{"api.example.com", "192.0.2.100"}, Token: "server-secret", AgentToken: agentSecret}); err != nil {
		t.Fatal(err)
	}
	s, err := New(p, AgentConfig{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kc := fake.NewSimpleClientset(objs...)
	s.SetCluster(&Cluster{Passwords: &NodePasswords{Kube: kc},
		APIServers: func(context.Context) ([]string, error) { return []string{"192.0.2.1:6443", "192.0.2.3:6443"}, nil },
		Nodes: func(ctx context.Context) ([]corev1.Node, error) {
			l, err := kc.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
			if err != nil {
				return nil, err
			}
			return l.Items, nil
		}})
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

// TestKubeletServingCert: a kubelet's serving certificate is the kubelet
// serving CA's, never the server CA's (agents trust that one for the
// apiserver at 127.0.0.1), and names only what the node may claim: its
// name, its source address and its registered addresses, never the
// loopback. Asking for an address or name of the apiserver or of another
// Node is refused with the reason, before the name is recorded; an
// address the caller cannot show to be its own is left out.
func TestKubeletServingCert(t *testing.T) {
	agent1 := nodeObj("agent1", "10.1.0.5")
	agent1.Status.Addresses = append(agent1.Status.Addresses,
		corev1.NodeAddress{Type: corev1.NodeExternalIP, Address: "203.0.113.5"},
		corev1.NodeAddress{Type: corev1.NodeHostName, Address: "agent1.lan"},
		corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: "127.0.0.1"})
	registered := []runtime.Object{agent1, passwordSecret(t, "agent1", "pw1")}
	agent2 := nodeObj("agent2", "192.0.2.12")
	for _, tc := range []struct {
		name         string
		objs         []runtime.Object
		node, remote string
		ips          string
		want         int
		dns          []string
		wantIPs      []string
		reason       string
		afterClaim   bool // refused once the name is claimed: what the cluster says
	}{
		{name: "a new node, its source address", node: "agent1", ips: "192.0.2.11", want: 200, dns: []string{"agent1"}, wantIPs: []string{"192.0.2.11"}},
		{name: "no addresses asked: the source", node: "agent1", want: 200, dns: []string{"agent1"}, wantIPs: []string{"192.0.2.11"}},
		{name: "a foreign address is left out", node: "agent1", ips: "192.0.2.11,198.51.100.7", want: 200, dns: []string{"agent1"}, wantIPs: []string{"192.0.2.11"}},
		{name: "from the loopback: no address", node: "agent1", remote: "127.0.0.1:40000", want: 200, dns: []string{"agent1"}},
		{name: "registered addresses, never the loopback", objs: registered, node: "agent1", ips: "10.1.0.5", want: 200,
			dns: []string{"agent1", "agent1.lan"}, wantIPs: []string{"10.1.0.5", "192.0.2.11", "203.0.113.5"}},
		{name: "loopback asked", node: "agent1", ips: "192.0.2.11,127.0.0.1", want: 403, reason: "loopback"},
		{name: "IPv6 loopback asked", node: "agent1", ips: "::1", want: 403, reason: "loopback"},
		{name: "tls-san address", node: "agent1", ips: "192.0.2.100", want: 403, reason: "apiserver"},
		{name: "the server's address", node: "agent1", ips: "192.0.2.1", want: 403, reason: "apiserver"},
		{name: "another apiserver's endpoint", node: "agent1", ips: "192.0.2.3", want: 403, reason: "apiserver", afterClaim: true},
		{name: "the kubernetes service's cluster IP", node: "agent1", ips: "10.43.0.1", want: 403, reason: "apiserver"},
		{name: "another Node's address", objs: []runtime.Object{agent2}, node: "agent1", ips: "192.0.2.12", want: 403, reason: "another Node", afterClaim: true},
		{name: "from another Node's address: left out", objs: []runtime.Object{agent2}, node: "agent1", remote: "192.0.2.12:40000", want: 200, dns: []string{"agent1"}},
		{name: "named as the tls-san", node: "api.example.com", want: 403, reason: "apiserver"},
		{name: "named as the kubernetes service", node: "kubernetes.default.svc", want: 403, reason: "apiserver"},
		{name: "named localhost", node: "localhost", want: 403, reason: "apiserver"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, kc := testServer(t, tc.objs...)
			w := certRequest{path: "/serving-kubelet.crt", remote: tc.remote, name: tc.node, password: "pw1", ips: tc.ips}.send(t, s)
			if w.Code != tc.want {
				t.Fatalf("%d %s, want %d", w.Code, w.Body, tc.want)
			}
			if tc.want != http.StatusOK {
				if !strings.Contains(w.Body.String(), tc.reason) {
					t.Errorf("reason %q, want one about %q", w.Body, tc.reason)
				}
				if _, err := kc.CoreV1().Secrets(metav1.NamespaceSystem).Get(context.Background(), SecretName(tc.node), metav1.GetOptions{}); err == nil && !tc.afterClaim {
					t.Error("the refused name was recorded")
				}
				return
			}
			c := leafOf(t, w.Body.Bytes())
			if !slices.Equal(c.DNSNames, tc.dns) || !slices.Equal(ipStrings(c.IPAddresses), tc.wantIPs) {
				t.Errorf("SANs %q %q, want %q %q", c.DNSNames, ipStrings(c.IPAddresses), tc.dns, tc.wantIPs)
			}
			for _, name := range []string{"127.0.0.1", "::1", "localhost"} {
				if c.VerifyHostname(name) == nil {
					t.Errorf("the certificate names %s", name)
				}
			}
			kubeletCA, serverCA := x509.NewCertPool(), x509.NewCertPool()
			kubeletCA.AddCert(readCertFile(t, s.Paths.Server("tls", "kubelet-serving-ca.crt")))
			serverCA.AddCert(readCertFile(t, s.Paths.Server("tls", "server-ca.crt")))
			usage := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
			if _, err := c.Verify(x509.VerifyOptions{Roots: kubeletCA, KeyUsages: usage}); err != nil {
				t.Errorf("not the kubelet serving CA's: %v", err)
			}
			if _, err := c.Verify(x509.VerifyOptions{Roots: serverCA, KeyUsages: usage}); err == nil {
				t.Error("the server CA vouches for a kubelet's certificate")
			}
			// The answer's chain is the kubelet serving CA.
			caPEM, _ := os.ReadFile(s.Paths.Server("tls", "kubelet-serving-ca.crt"))
			if !bytes.HasSuffix(w.Body.Bytes(), caPEM) {
				t.Error("the answer does not end with the kubelet serving CA")
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

// TestAPINames: the apiserver's names, its wildcards and the loopback's
// are no kubelet's.
func TestAPINames(t *testing.T) {
	a := apiNames{dns: []string{"kubernetes", "*.example.com", "api.example.org"}}
	for name, want := range map[string]bool{
		"kubernetes": true, "API.example.org": true, "node.example.com": true, "localhost": true, "x.localhost": true,
		"a.b.example.com": false, "example.com": false, "agent1": false, "api.example.org.evil": false,
	} {
		if got := a.hasName(name); got != want {
			t.Errorf("hasName(%q) = %v, want %v", name, got, want)
		}
	}
}

func readCertFile(t *testing.T, p string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return leafOf(t, b)
}

func ipStrings(ips []net.IP) []string {
	var out []string
	for _, ip := range ips {
		out = append(out, ip.String())
	}
	return out
}

// TestClaimRateLimit: one source claims claimBurst new names at once, then
// waits (429 with Retry-After) while another source still gets through
// and the source's names already claimed still answer; the bucket refills
// with time.
func TestClaimRateLimit(t *testing.T) {
	s, _ := testServer(t)
	now := time.Now()
	s.claims.now = func() time.Time { return now }
	claim := func(name, remote string) *httptest.ResponseRecorder {
		return certRequest{path: "/client-kubelet.crt", remote: remote, name: name, password: "pw"}.send(t, s)
	}
	for i := range claimBurst {
		if w := claim(fmt.Sprintf("node-%d", i), "192.0.2.50:1000"); w.Code != http.StatusOK {
			t.Fatalf("claim %d: %d %s", i+1, w.Code, w.Body)
		}
	}
	w := claim("node-eleven", "192.0.2.50:2000")
	if w.Code != http.StatusTooManyRequests {
		t.Fatalf("claim %d from one address: %d %s, want 429", claimBurst+1, w.Code, w.Body)
	}
	if ra, err := strconv.Atoi(w.Header().Get("Retry-After")); err != nil || ra < 1 || ra > int(claimEvery/time.Second) {
		t.Errorf("Retry-After %q, want 1 to %d seconds", w.Header().Get("Retry-After"), int(claimEvery/time.Second))
	}
	if !strings.Contains(w.Body.String(), "too many new node names") {
		t.Errorf("reason %q", w.Body)
	}
	if w := claim("node-0", "192.0.2.50:3000"); w.Code != http.StatusOK {
		t.Errorf("a name claimed already: %d %s, want 200", w.Code, w.Body)
	}
	if w := claim("elsewhere", "192.0.2.51:1000"); w.Code != http.StatusOK {
		t.Errorf("another address: %d %s, want 200", w.Code, w.Body)
	}
	now = now.Add(claimEvery)
	if w := claim("node-eleven", "192.0.2.50:4000"); w.Code != http.StatusOK {
		t.Errorf("after %s: %d %s, want 200", claimEvery, w.Code, w.Body)
	}
}

// TestClaimLimiterBounded: the sources remembered are bounded; a source
// whose bucket is full again is forgotten to make room, and while none
// is, a new source waits rather than memory growing or a busy source's
// count being dropped. An IPv6 /64 is one source.
func TestClaimLimiterBounded(t *testing.T) {
	now := time.Now()
	l := newClaimLimiter()
	l.max, l.now = 3, func() time.Time { return now }
	for _, a := range []string{"192.0.2.1:1", "192.0.2.2:1", "192.0.2.3:1"} {
		if ok, _ := l.allow(a); !ok {
			t.Fatalf("%s refused", a)
		}
	}
	ok, wait := l.allow("192.0.2.4:1")
	if ok || wait <= 0 || wait > l.refill() {
		t.Errorf("a fourth source with three busy: %v, wait %s", ok, wait)
	}
	now = now.Add(l.refill())
	if ok, _ := l.allow("192.0.2.4:1"); !ok || len(l.sources) > l.max {
		t.Errorf("once the others are full again: %v, %d sources remembered", ok, len(l.sources))
	}
	for i := range claimBurst {
		if ok, _ := l.allow(fmt.Sprintf("[2001:db8::%x]:1", i+1)); !ok {
			t.Fatalf("IPv6 claim %d refused", i+1)
		}
	}
	if ok, _ := l.allow("[2001:db8::ffff]:1"); ok {
		t.Error("one more from the same /64 passed")
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
