package join

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rke2os/rke2os/init/rke2node/supervisorapi"
	"github.com/rke2os/rke2os/init/shared/layout"
	"github.com/rke2os/rke2os/init/shared/serverpki"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

// cluster is a first server's PKI and its supervisor, served over TLS
// with the apiserver's certificate as the node serves it.
type cluster struct {
	paths  layout.Paths
	token  string // the server's node-token
	url    string
	kube   *fake.Clientset
	logs   *bytes.Buffer
	server *supervisorapi.Server
}

func newCluster(t *testing.T, ready bool) *cluster {
	t.Helper()
	return newClusterWrapped(t, ready, nil)
}

// newClusterWrapped is newCluster with the supervisor's handler passed
// through wrap (nil for none), for tests that stand between the node and
// the server.
func newClusterWrapped(t *testing.T, ready bool, wrap func(http.Handler) http.Handler) *cluster {
	t.Helper()
	dir := t.TempDir()
	p := layout.Paths{DataDir: filepath.Join(dir, "data"), EtcDir: filepath.Join(dir, "etc"), RunDir: filepath.Join(dir, "run")}
	res, err := serverpki.Ensure(serverpki.Options{Paths: p, NodeName: "server1", NodeIPs: []net.IP{net.ParseIP("127.0.0.1")}, Token: "sekrit"})
	if err != nil {
		t.Fatal(err)
	}
	s, err := supervisorapi.New(p, supervisorapi.AgentConfig{ClusterCIDR: "10.42.0.0/16", ServiceCIDR: "10.43.0.0/16", ClusterDNS: "10.43.0.10", ClusterDomain: "cluster.local"},
		func(context.Context) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{paths: p, token: res.Token, kube: fake.NewSimpleClientset(), logs: &bytes.Buffer{}, server: s}
	if ready {
		s.SetCluster(&supervisorapi.Cluster{Passwords: &supervisorapi.NodePasswords{Kube: c.kube},
			APIServers: func(context.Context) ([]string, error) { return []string{"127.0.0.1:6443"}, nil },
			Nodes: func(ctx context.Context) ([]corev1.Node, error) {
				l, err := c.kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
				if err != nil {
					return nil, err
				}
				return l.Items, nil
			}})
	}
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(io.MultiWriter(c.logs, os.Stderr), nil)))
	t.Cleanup(func() { slog.SetDefault(prev) })

	pair, err := tls.LoadX509KeyPair(p.Server("tls", "serving-kube-apiserver.crt"), p.Server("tls", "serving-kube-apiserver.key"))
	if err != nil {
		t.Fatal(err)
	}
	h := s.Handler()
	if wrap != nil {
		h = wrap(h)
	}
	ts := httptest.NewUnstartedServer(h)
	ts.TLS = &tls.Config{Certificates: []tls.Certificate{pair}}
	ts.StartTLS()
	t.Cleanup(ts.Close)
	c.url = ts.URL
	return c
}

func (c *cluster) agent(t *testing.T, name, password, token string) Options {
	dir := t.TempDir()
	return Options{Server: c.url, Token: token, NodeName: name, Password: password, NodeIPs: []net.IP{net.ParseIP("192.168.76.11")},
		Paths: layout.Paths{DataDir: filepath.Join(dir, "data"), EtcDir: filepath.Join(dir, "etc")}, APIServer: "https://127.0.0.1:6443"}
}

func readCert(t *testing.T, p string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestJoin(t *testing.T) {
	c := newCluster(t, true)
	o := c.agent(t, "agent1", "pw1", c.token)
	st, err := Join(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if st.Config.ClusterCIDR != "10.42.0.0/16" || len(st.APIServers) != 1 || st.APIServers[0] != "127.0.0.1:6443" {
		t.Errorf("state %+v", st)
	}
	p := o.Paths
	clientCA, serverCA, kubeletCA := x509.NewCertPool(), x509.NewCertPool(), x509.NewCertPool()
	for pool, f := range map[*x509.CertPool]string{clientCA: "client-ca.crt", serverCA: "server-ca.crt"} {
		want, _ := os.ReadFile(c.paths.Server("tls", f))
		got, err := os.ReadFile(p.Agent(f))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("agent/%s is not the server's: %v", f, err)
		}
		pool.AppendCertsFromPEM(got)
	}
	// The apiserver's --kubelet-certificate-authority.
	kcaPEM, _ := os.ReadFile(c.paths.Server("tls", "kubelet-serving-ca.crt"))
	kubeletCA.AppendCertsFromPEM(kcaPEM)
	for _, tc := range []struct {
		file, cn string
		org      []string
		pool     *x509.CertPool
		usage    x509.ExtKeyUsage
	}{
		{"client-kubelet.crt", "system:node:agent1", []string{"system:nodes"}, clientCA, x509.ExtKeyUsageClientAuth},
		{"serving-kubelet.crt", "agent1", nil, kubeletCA, x509.ExtKeyUsageServerAuth},
		{"client-kube-proxy.crt", "system:kube-proxy", nil, clientCA, x509.ExtKeyUsageClientAuth},
	} {
		crt := readCert(t, p.Agent(tc.file))
		if crt.Subject.CommonName != tc.cn || strings.Join(crt.Subject.Organization, ",") != strings.Join(tc.org, ",") {
			t.Errorf("%s: subject %v", tc.file, crt.Subject)
		}
		if _, err := crt.Verify(x509.VerifyOptions{Roots: tc.pool, KeyUsages: []x509.ExtKeyUsage{tc.usage}}); err != nil {
			t.Errorf("%s: %v", tc.file, err)
		}
		if _, err := tls.LoadX509KeyPair(p.Agent(tc.file), strings.TrimSuffix(p.Agent(tc.file), ".crt")+".key"); err != nil {
			t.Errorf("%s: %v", tc.file, err)
		}
	}
	// The join came from the loopback, which no kubelet certificate
	// names, and its node IP is not proven yet: the certificate names the
	// node alone until its Node registers the address.
	serving := readCert(t, p.Agent("serving-kubelet.crt"))
	if len(serving.IPAddresses) != 0 || strings.Join(serving.DNSNames, ",") != "agent1" {
		t.Errorf("serving-kubelet.crt names %q %v, want agent1 alone", serving.DNSNames, serving.IPAddresses)
	}
	if _, err := serving.Verify(x509.VerifyOptions{Roots: serverCA, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
		t.Error("serving-kubelet.crt passes with the server CA, which agents trust for the apiserver")
	}
	for _, f := range []string{"client-kubelet.key", "serving-kubelet.key", "client-kube-proxy.key", "kubelet.kubeconfig", "kubeproxy.kubeconfig", "join.json"} {
		fi, err := os.Stat(p.Agent(f))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v, want mode 0600", f, fi.Mode(), err)
		}
	}
	kc, _ := os.ReadFile(p.Agent("kubelet.kubeconfig"))
	if !strings.Contains(string(kc), "server: https://127.0.0.1:6443") || !strings.Contains(string(kc), p.Agent("client-kubelet.crt")) {
		t.Errorf("kubelet.kubeconfig:\n%s", kc)
	}
	// The server recorded the name's password, and a second join with it
	// keeps the node's keys.
	sec, err := c.kube.CoreV1().Secrets("kube-system").Get(context.Background(), "agent1.node-password.rke2", metav1.GetOptions{})
	if err != nil || sec.Type != supervisorapi.SecretType || len(sec.Data["hash"]) == 0 || bytes.Contains(sec.Data["hash"], []byte("pw1")) {
		t.Fatalf("node password secret %v: %v", sec, err)
	}
	key1, _ := os.ReadFile(p.Agent("client-kubelet.key"))
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "agent1"}, Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "192.168.76.11"}}}}
	if _, err := c.kube.CoreV1().Nodes().Create(context.Background(), n, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := Join(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	if key2, _ := os.ReadFile(p.Agent("client-kubelet.key")); !bytes.Equal(key1, key2) {
		t.Error("a second join made a new key")
	}
	// Once the Node has registered its address, a join's certificate names
	// it, and the apiserver (kubectl logs, exec) verifies the kubelet at
	// that address with the kubelet serving CA.
	serving = readCert(t, p.Agent("serving-kubelet.crt"))
	if _, err := serving.Verify(x509.VerifyOptions{Roots: kubeletCA, DNSName: "192.168.76.11", KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		t.Errorf("the apiserver cannot verify the kubelet at its InternalIP: %v", err)
	}
}

// TestJoinRefused: each refusal is permanent and says why in plain words.
func TestJoinRefused(t *testing.T) {
	c := newCluster(t, true)
	tok, _ := serverpki.ParseToken(c.token)
	wrongSecret := tok
	wrongSecret.Password = "nope"
	wrongCA := tok
	wrongCA.CAHash = strings.Repeat("ab", 32)
	if _, err := Join(context.Background(), c.agent(t, "taken", "first", c.token)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, node, password, token, want, log string
	}{
		{"wrong secret", "a", "pw", wrongSecret.String(), "refused the token (401", "supervisor: refused"},
		{"wrong bare secret", "a", "pw", "nope", "refused the token (401", "supervisor: refused"},
		{"wrong CA hash", "a", "pw", wrongCA.String(), "presents a cluster CA whose sha256 is " + tok.CAHash + ", but the token pins " + wrongCA.CAHash, ""},
		{"name taken", "taken", "second", c.token, `refused the node name "taken" (403`, "node password rejected"},
		{"not a URL", "a", "pw", c.token, "is not a URL", ""},
		{"bootstrap token", "a", "pw", "abcdef.0123456789abcdef", "bootstrap tokens", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c.logs.Reset()
			o := c.agent(t, tc.node, tc.password, tc.token)
			if tc.name == "not a URL" {
				o.Server = "10.0.0.1:9345"
			}
			_, err := Join(context.Background(), o)
			var pe *PermanentError
			if !errors.As(err, &pe) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want a permanent error with %q", err, tc.want)
			}
			if tc.log != "" && (!strings.Contains(c.logs.String(), tc.log) || !strings.Contains(c.logs.String(), "remote=127.0.0.1:")) {
				t.Errorf("server log %q lacks %q with the caller's address", c.logs.String(), tc.log)
			}
			if _, err := os.Stat(o.Paths.Agent("client-kubelet.crt")); err == nil {
				t.Error("a refused join wrote a certificate")
			}
		})
	}
}

// TestJoinBareSecret: a bare secret trusts the CA on first use.
func TestJoinBareSecret(t *testing.T) {
	c := newCluster(t, true)
	if _, err := Join(context.Background(), c.agent(t, "a", "pw", "sekrit")); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(c.logs.String(), "trusting the CA the server presents on first use") {
		t.Errorf("no trust-on-first-use warning in %q", c.logs.String())
	}
}

// TestJoinNotReady: before the apiserver answers, a join fails in a way
// worth retrying.
func TestJoinNotReady(t *testing.T) {
	c := newCluster(t, false)
	_, err := Join(context.Background(), c.agent(t, "a", "pw", c.token))
	var pe *PermanentError
	if err == nil || errors.As(err, &pe) || !strings.Contains(err.Error(), "503") {
		t.Fatalf("err = %v, want a temporary 503", err)
	}
}

// TestNodeFreedByDelete: once the Node exists it owns its password
// secret, so the garbage collector frees the name with the Node.
func TestNodeOwnsPassword(t *testing.T) {
	c := newCluster(t, true)
	o := c.agent(t, "agent1", "pw", c.token)
	if _, err := Join(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := c.kube.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "agent1", UID: "u1"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	np := &supervisorapi.NodePasswords{Kube: c.kube}
	if err := np.Adopt(ctx); err != nil {
		t.Fatal(err)
	}
	sec, _ := c.kube.CoreV1().Secrets("kube-system").Get(ctx, "agent1.node-password.rke2", metav1.GetOptions{})
	if len(sec.OwnerReferences) != 1 || sec.OwnerReferences[0].Kind != "Node" || sec.OwnerReferences[0].UID != "u1" {
		t.Fatalf("owners %+v", sec.OwnerReferences)
	}
	// The name freed (the Node deleted, and the secret with it by the
	// garbage collector, which the fake has not): another password may
	// take it.
	c.kube.CoreV1().Nodes().Delete(ctx, "agent1", metav1.DeleteOptions{})
	c.kube.CoreV1().Secrets("kube-system").Delete(ctx, sec.Name, metav1.DeleteOptions{})
	if _, err := Join(ctx, c.agent(t, "agent1", "other", c.token)); err != nil {
		t.Fatal(err)
	}
}

// TestSupervisorEndpoints: the open endpoints answer anyone; the others
// want the token, the servers' ones a server's.
func TestSupervisorEndpoints(t *testing.T) {
	c := newCluster(t, true)
	tok, _ := serverpki.ParseToken(c.token)
	pool := x509.NewCertPool()
	ca, _ := os.ReadFile(c.paths.Server("tls", "server-ca.crt"))
	pool.AppendCertsFromPEM(ca)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	for _, tc := range []struct {
		method, path, user, pass string
		body                     io.Reader
		want                     int
	}{
		{"GET", "/ping", "", "", nil, 200},
		{"GET", "/cacerts", "", "", nil, 200},
		{"GET", "/v1-rke2/config", "", "", nil, 401},
		{"GET", "/v1-rke2/nothing-here", "", "", nil, 401},
		{"GET", "/v1-rke2/config", "node", "wrong", nil, 401},
		{"GET", "/v1-rke2/config", "node", tok.Password, nil, 200},
		{"GET", "/v1-rke2/server-bootstrap", "node", tok.Password, nil, 401},
		{"GET", "/v1-rke2/server-bootstrap", "server", tok.Password, nil, 200},
		{"GET", "/db/info", "server", tok.Password, nil, 503},
		{"POST", "/v1-rke2/client-kube-proxy.crt", "node", tok.Password, strings.NewReader("not a csr"), 400},
		{"POST", "/v1-rke2/client-kube-proxy.crt", "node", tok.Password, bytes.NewReader(make([]byte, 1<<20)), 413},
		{"POST", "/v1-rke2/client-kubelet.crt", "node", tok.Password, strings.NewReader(""), 400}, // no name
	} {
		req, _ := http.NewRequest(tc.method, c.url+tc.path, tc.body)
		if tc.user != "" {
			req.SetBasicAuth(tc.user, tc.pass)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s %s as %q: %d %s, want %d", tc.method, tc.path, tc.user, resp.StatusCode, body, tc.want)
		}
		if tc.path == "/v1-rke2/server-bootstrap" && tc.want == 200 {
			var files map[string]supervisorapi.BootstrapFile
			if err := json.Unmarshal(body, &files); err != nil || len(files["tls/server-ca.key"].Content) == 0 || len(files["cred/passwd"].Content) == 0 {
				t.Errorf("server-bootstrap: %v, %d files", err, len(files))
			}
		}
		if resp.StatusCode == 401 && strings.Contains(string(body), "{") {
			t.Errorf("a 401 says more than its status: %s", body)
		}
	}
}

// TestBootstrap: a further server takes the cluster's CAs and keys with
// the server token only, writes them 0600, and refuses to replace
// another cluster's.
func TestBootstrap(t *testing.T) {
	c := newCluster(t, true)
	o := c.agent(t, "server2", "pw", c.token)
	got, err := Bootstrap(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(serverpki.BootstrapFiles()) {
		t.Errorf("wrote %v", got)
	}
	for _, rel := range serverpki.BootstrapFiles() {
		want, _ := os.ReadFile(c.paths.Server(rel))
		have, err := os.ReadFile(o.Paths.Server(rel))
		fi, _ := os.Stat(o.Paths.Server(rel))
		if err != nil || !bytes.Equal(have, want) || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, mode %v", rel, err, fi.Mode())
		}
	}
	// Again: nothing to write.
	if got, err := Bootstrap(context.Background(), o); err != nil || len(got) != 0 {
		t.Errorf("second bootstrap: %v %v", got, err)
	}
	// The cluster's agent secret changed (its first server made one):
	// passwd is taken again. Another server secret is refused.
	pw, _ := os.ReadFile(c.paths.Server("cred", "passwd"))
	tok, _ := serverpki.ParseToken(c.token)
	os.WriteFile(o.Paths.Server("cred", "passwd"), []byte(tok.Password+",node,node,rke2:agent\n"+tok.Password+",server,server,rke2:server\n"), 0o600)
	if got, err := Bootstrap(context.Background(), o); err != nil || len(got) != 1 {
		t.Errorf("bootstrap with the cluster's old passwd: %v %v", got, err)
	}
	if b, _ := os.ReadFile(o.Paths.Server("cred", "passwd")); !bytes.Equal(b, pw) {
		t.Errorf("passwd %q, want the cluster's %q", b, pw)
	}
	other := []byte("agent,node,node,rke2:agent\nanother-cluster,server,server,rke2:server\n")
	os.WriteFile(o.Paths.Server("cred", "passwd"), other, 0o600)
	var pe *PermanentError
	if _, err := Bootstrap(context.Background(), o); !errors.As(err, &pe) || !strings.Contains(err.Error(), "another cluster's secrets") {
		t.Errorf("another server secret: %v", err)
	}
	if b, _ := os.ReadFile(o.Paths.Server("cred", "passwd")); !bytes.Equal(b, other) {
		t.Error("another cluster's passwd was replaced")
	}
	os.WriteFile(o.Paths.Server("cred", "passwd"), pw, 0o600)
	// Another cluster's CA on the node: refused, nothing replaced.
	os.WriteFile(o.Paths.Server("tls", "client-ca.key"), []byte("another cluster's"), 0o600)
	if _, err := Bootstrap(context.Background(), o); !errors.As(err, &pe) || !strings.Contains(err.Error(), "another cluster's secrets") {
		t.Errorf("err = %v", err)
	}
	if b, _ := os.ReadFile(o.Paths.Server("tls", "client-ca.key")); string(b) != "another cluster's" {
		t.Error("the node's file was replaced")
	}
	// An agent's token gets no server secrets.
	tok.Username = "node"
	if _, err := Bootstrap(context.Background(), c.agent(t, "x", "pw", tok.String())); !errors.As(err, &pe) || !strings.Contains(err.Error(), "server token") {
		t.Errorf("node token: %v", err)
	}
}

// TestBootstrapKubeletServingCA: a further server whose data predates the
// kubelet serving CA takes it from the cluster at its next start, keeping
// the rest; a server of an older release, whose answer lacks it, is waited
// for (upgrade the first server first), not refused.
func TestBootstrapKubeletServingCA(t *testing.T) {
	old := false
	c := newClusterWrapped(t, true, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !old || r.URL.Path != "/v1-rke2/server-bootstrap" {
				h.ServeHTTP(w, r)
				return
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			var files map[string]supervisorapi.BootstrapFile
			json.Unmarshal(rec.Body.Bytes(), &files)
			delete(files, "tls/kubelet-serving-ca.crt")
			delete(files, "tls/kubelet-serving-ca.key")
			json.NewEncoder(w).Encode(files)
		})
	})
	o := c.agent(t, "server2", "pw", c.token)
	if _, err := Bootstrap(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"kubelet-serving-ca.crt", "kubelet-serving-ca.key"} {
		os.Remove(o.Paths.Server("tls", f))
	}
	got, err := Bootstrap(context.Background(), o)
	if err != nil || len(got) != 2 {
		t.Fatalf("wrote %q, %v; want the two files of the kubelet serving CA", got, err)
	}
	for _, f := range []string{"kubelet-serving-ca.crt", "kubelet-serving-ca.key"} {
		want, _ := os.ReadFile(c.paths.Server("tls", f))
		if have, _ := os.ReadFile(o.Paths.Server("tls", f)); !bytes.Equal(have, want) {
			t.Errorf("%s is not the cluster's", f)
		}
	}

	old = true
	o = c.agent(t, "server3", "pw", c.token)
	_, err = Bootstrap(context.Background(), o)
	var pe *PermanentError
	if err == nil || errors.As(err, &pe) || !strings.Contains(err.Error(), "upgrade the first server first") {
		t.Errorf("err = %v, want a wait that says to upgrade the first server first", err)
	}
	if _, err := os.Stat(o.Paths.Server("tls", "server-ca.key")); err == nil {
		t.Error("a partial bootstrap was written")
	}
}
