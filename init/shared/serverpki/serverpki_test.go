package serverpki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rke2os/rke2os/init/rke2node/pods"
	"github.com/rke2os/rke2os/init/shared/layout"
)

// testOptions is a server node1 at 10.0.2.15 with two tls-san values,
// under a temporary root.
func testOptions(t *testing.T) Options {
	t.Helper()
	root := t.TempDir()
	return Options{
		Paths: layout.Paths{DataDir: filepath.Join(root, "var/lib/rancher/rke2"), EtcDir: filepath.Join(root, "etc/rancher/rke2"),
			RunDir: filepath.Join(root, "run/k3s/containerd")},
		NodeName: "node1",
		NodeIPs:  []net.IP{net.ParseIP("10.0.2.15")},
		TLSSANs:  []string{"api.example.com", "192.0.2.10"},
	}
}

func ensure(t *testing.T, o Options) *Result {
	t.Helper()
	res, err := Ensure(o)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// wantCert is what a certificate must say.
type wantCert struct {
	path, ca   string // relative to the data dir, without .crt
	cn         string
	org        []string
	usage      []x509.ExtKeyUsage
	dns        []string
	ips        []string
	isCA       bool
	validYears int
}

var (
	client = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	server = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	both   = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
)

// wantCerts is RKE2's server PKI for testOptions.
func wantCerts() []wantCert {
	ca := func(path, cnPrefix string) wantCert {
		return wantCert{path: path, ca: path, cn: cnPrefix, isCA: true, validYears: 10}
	}
	leaf := func(path, caPath, cn string, usage []x509.ExtKeyUsage, org ...string) wantCert {
		return wantCert{path: path, ca: caPath, cn: cn, org: org, usage: usage, validYears: 1}
	}
	const (
		sca, cca, rca = "server/tls/server-ca", "server/tls/client-ca", "server/tls/request-header-ca"
		eca, pca      = "server/tls/etcd/server-ca", "server/tls/etcd/peer-ca"
		kca           = "server/tls/kubelet-serving-ca"
	)
	etcdDNS, etcdIPs := []string{"localhost", "node1"}, []string{"127.0.0.1", "::1", "10.0.2.15"}
	w := []wantCert{
		ca(sca, "rke2-server-ca@"), ca(cca, "rke2-client-ca@"), ca(rca, "rke2-request-header-ca@"),
		ca(eca, "etcd-server-ca@"), ca(pca, "etcd-peer-ca@"), ca(kca, "rke2os-kubelet-serving-ca@"),
		leaf("server/tls/client-admin", cca, "system:admin", client, "system:masters"),
		leaf("server/tls/client-supervisor", cca, "system:rke2-supervisor", client, "system:masters"),
		leaf("server/tls/client-controller", cca, "system:kube-controller-manager", client),
		leaf("server/tls/client-scheduler", cca, "system:kube-scheduler", client),
		leaf("server/tls/client-kube-apiserver", cca, "system:apiserver", client, "system:masters"),
		leaf("server/tls/client-kube-proxy", cca, "system:kube-proxy", client),
		leaf("server/tls/client-rke2-controller", cca, "system:rke2-controller", client),
		leaf("server/tls/client-rke2-cloud-controller", cca, "rke2-cloud-controller-manager", client),
		leaf("server/tls/client-auth-proxy", rca, "system:auth-proxy", client),
		leaf("server/tls/serving-kube-apiserver", sca, "kube-apiserver", server),
		leaf("server/tls/kube-controller-manager/kube-controller-manager", sca, "kube-controller-manager", server),
		leaf("server/tls/kube-scheduler/kube-scheduler", sca, "kube-scheduler", server),
		leaf("server/tls/etcd/client", eca, "etcd-client", client),
		leaf("server/tls/etcd/server-client", eca, "etcd-server", both),
		leaf("server/tls/etcd/peer-server-client", pca, "etcd-peer", both),
		leaf("agent/client-kubelet", cca, "system:node:node1", client, "system:nodes"),
		leaf("agent/serving-kubelet", kca, "node1", server),
		leaf("agent/client-kube-proxy", cca, "system:kube-proxy", client),
		leaf("agent/client-rke2-controller", cca, "system:rke2-controller", client),
	}
	for i := range w {
		switch w[i].path {
		case "server/tls/serving-kube-apiserver":
			w[i].dns = []string{"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local", "api.example.com", "localhost", "node1"}
			w[i].ips = []string{"192.0.2.10", "127.0.0.1", "::1", "10.0.2.15", "10.43.0.1"}
		case "server/tls/etcd/server-client", "server/tls/etcd/peer-server-client":
			w[i].dns, w[i].ips = etcdDNS, etcdIPs
		case "agent/serving-kubelet":
			w[i].dns, w[i].ips = []string{"node1"}, []string{"10.0.2.15"}
		case "server/tls/kube-controller-manager/kube-controller-manager", "server/tls/kube-scheduler/kube-scheduler":
			w[i].dns, w[i].ips = []string{"localhost"}, []string{"127.0.0.1", "::1"}
		}
	}
	return w
}

func loadCert(t *testing.T, p string) *x509.Certificate {
	t.Helper()
	c, err := readCert(p)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func ipStrings(ips []net.IP) []string {
	var out []string
	for _, ip := range ips {
		out = append(out, ip.String())
	}
	return out
}

func mode(t *testing.T, p string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

// TestFresh: an empty data dir gets RKE2's whole server PKI, each
// certificate with its CA, CN, groups, usages, names, validity and key, and
// every secret private.
func TestFresh(t *testing.T) {
	o := testOptions(t)
	start := time.Now()
	res := ensure(t, o)
	data := o.Paths.DataDir
	for _, w := range wantCerts() {
		t.Run(w.path, func(t *testing.T) {
			c := loadCert(t, filepath.Join(data, w.path+".crt"))
			ca := loadCert(t, filepath.Join(data, w.ca+".crt"))
			if w.isCA {
				if !c.IsCA || !strings.HasPrefix(c.Subject.CommonName, w.cn) || c.KeyUsage&x509.KeyUsageCertSign == 0 {
					t.Errorf("CA %s: IsCA=%v CN=%q usage=%v", w.path, c.IsCA, c.Subject.CommonName, c.KeyUsage)
				}
			} else if c.Subject.CommonName != w.cn {
				t.Errorf("CN %q, want %q", c.Subject.CommonName, w.cn)
			}
			if !slices.Equal(c.Subject.Organization, w.org) {
				t.Errorf("O %q, want %q", c.Subject.Organization, w.org)
			}
			if !w.isCA && !slices.Equal(c.ExtKeyUsage, w.usage) {
				t.Errorf("usages %v, want %v", c.ExtKeyUsage, w.usage)
			}
			if !slices.Equal(c.DNSNames, w.dns) || !slices.Equal(ipStrings(c.IPAddresses), w.ips) {
				t.Errorf("SANs %q %q, want %q %q", c.DNSNames, ipStrings(c.IPAddresses), w.dns, w.ips)
			}
			if err := c.CheckSignatureFrom(ca); err != nil {
				t.Errorf("not signed by %s: %v", w.ca, err)
			}
			if c.NotBefore.After(start) || c.NotAfter.Before(start.AddDate(w.validYears, 0, 0).Add(-time.Minute)) || c.NotAfter.After(time.Now().AddDate(w.validYears, 0, 1)) {
				t.Errorf("valid %v to %v, want %d years from now", c.NotBefore, c.NotAfter, w.validYears)
			}
			pub, ok := c.PublicKey.(*ecdsa.PublicKey)
			if !ok || pub.Curve != elliptic.P256() {
				t.Errorf("key %T, want ECDSA P-256", c.PublicKey)
			}
			k, err := readKey(filepath.Join(data, w.path+".key"))
			if err != nil || !publicKeyMatches(k, c) {
				t.Errorf("key does not match: %v", err)
			}
			if m := mode(t, filepath.Join(data, w.path+".key")); m != 0o600 {
				t.Errorf("key mode %v, want 0600", m)
			}
		})
	}
	for _, f := range []string{"server/tls/service.key", "server/tls/service.current.key", "server/tls/client-kubelet.key", "server/tls/serving-kubelet.key",
		"server/cred/admin.kubeconfig", "server/cred/supervisor.kubeconfig", "server/cred/controller.kubeconfig", "server/cred/scheduler.kubeconfig",
		"server/cred/api-server.kubeconfig", "server/cred/cloud-controller.kubeconfig", "agent/kubelet.kubeconfig", "agent/kubeproxy.kubeconfig",
		"agent/rke2controller.kubeconfig", "server/token", "server/agent-token", "server/cred/passwd", "server/cred/encryption-config.json",
		"server/cred/encryption-state.json", "server/cred/ipsec.psk"} {
		if m := mode(t, filepath.Join(data, f)); m != 0o600 {
			t.Errorf("%s mode %v, want 0600", f, m)
		}
	}
	for _, d := range []string{"server/tls", "server/cred", "server/tls/etcd"} {
		if m := mode(t, filepath.Join(data, d)); m != 0o700 {
			t.Errorf("%s mode %v, want 0700", d, m)
		}
	}
	if m := mode(t, filepath.Join(o.Paths.EtcDir, "rke2.yaml")); m != 0o600 {
		t.Errorf("rke2.yaml mode %v, want 0600", m)
	}
	// service.current.key is service.key's (first) key; the nochain files
	// and the agent's CA copies are the CAs.
	sk, _ := os.ReadFile(filepath.Join(data, "server/tls/service.key"))
	if cur, _ := os.ReadFile(filepath.Join(data, "server/tls/service.current.key")); !bytes.Equal(sk, cur) {
		t.Error("service.current.key is not service.key's key")
	}
	for copy, ca := range map[string]string{"server/tls/server-ca.nochain.crt": "server/tls/server-ca.crt", "server/tls/client-ca.nochain.crt": "server/tls/client-ca.crt",
		"server/tls/kubelet-serving-ca.nochain.crt": "server/tls/kubelet-serving-ca.crt",
		"agent/server-ca.crt":                       "server/tls/server-ca.crt", "agent/client-ca.crt": "server/tls/client-ca.crt"} {
		a, _ := os.ReadFile(filepath.Join(data, copy))
		b, _ := os.ReadFile(filepath.Join(data, ca))
		if len(a) == 0 || !bytes.Equal(a, b) {
			t.Errorf("%s is not %s", copy, ca)
		}
	}
	// The tokens pin the CA file's sha256, with a secret each: the
	// agents' is not the servers'. node-token, the file RKE2 gives agents,
	// links to agent-token.
	caFile, _ := os.ReadFile(filepath.Join(data, "server/tls/server-ca.crt"))
	sum := sha256.Sum256(caFile)
	if res.CAHash != hex.EncodeToString(sum[:]) {
		t.Errorf("CA hash %s, want the sha256 of server-ca.crt", res.CAHash)
	}
	tok, _ := os.ReadFile(filepath.Join(data, "server/token"))
	if !regexp.MustCompile(`^K10`+res.CAHash+`::server:[0-9a-f]{32}\n$`).Match(tok) || string(tok) != res.Token+"\n" {
		t.Errorf("server/token %q", tok)
	}
	at, _ := os.ReadFile(filepath.Join(data, "server/agent-token"))
	if !regexp.MustCompile(`^K10`+res.CAHash+`::node:[0-9a-f]{32}\n$`).Match(at) || string(at) != res.AgentToken+"\n" {
		t.Errorf("server/agent-token %q", at)
	}
	if fi, err := os.Lstat(filepath.Join(data, "server/agent-token")); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("server/agent-token is not a regular file: %v", err)
	}
	if target, err := os.Readlink(filepath.Join(data, "server/node-token")); err != nil || target != filepath.Join(data, "server/agent-token") {
		t.Errorf("server/node-token -> %q (%v), want a link to server/agent-token", target, err)
	}
	pw, _ := os.ReadFile(filepath.Join(data, "server/cred/passwd"))
	secret, agentSecret := secretOf(res.Token), secretOf(res.AgentToken)
	if want := agentSecret + ",node,node,rke2:agent\n" + secret + ",server,server,rke2:server\n"; string(pw) != want || secret == agentSecret {
		t.Errorf("passwd %q, want %q with two secrets", pw, want)
	}
	// The encryption key is 32 random bytes; the state names the config.
	enc, _ := os.ReadFile(filepath.Join(data, "server/cred/encryption-config.json"))
	var c encryptionConfig
	if err := json.Unmarshal(enc, &c); err != nil {
		t.Fatal(err)
	}
	if key, err := base64.StdEncoding.DecodeString(c.Resources[0].Providers[0].AESCBC.Keys[0].Secret); err != nil || len(key) != 32 {
		t.Errorf("aescbc key: %d bytes, %v", len(key), err)
	}
	encSum := sha256.Sum256(enc)
	if st, _ := os.ReadFile(filepath.Join(data, "server/cred/encryption-state.json")); string(st) != "start-"+hex.EncodeToString(encSum[:]) {
		t.Errorf("encryption-state.json %q", st)
	}
	if psk, _ := os.ReadFile(filepath.Join(data, "server/cred/ipsec.psk")); !regexp.MustCompile(`^[0-9a-f]{96}\n$`).Match(psk) {
		t.Errorf("ipsec.psk %q", psk)
	}
	if len(res.Warnings) > 0 {
		t.Errorf("warnings %q", res.Warnings)
	}
	if !slices.Contains(res.Written, filepath.Join(data, "server/tls/server-ca.crt")) {
		t.Errorf("Written does not list the new CA: %q", res.Written)
	}
}

// secretOf is a full token's secret.
func secretOf(token string) string { return token[strings.LastIndex(token, ":")+1:] }

// snapshot is every file under root: its bytes (or link target) and mtime.
func snapshot(t *testing.T, roots ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, root := range roots {
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			fi, _ := os.Lstat(p)
			var content []byte
			if fi.Mode()&fs.ModeSymlink != 0 {
				target, _ := os.Readlink(p)
				content = []byte("-> " + target)
			} else {
				content, _ = os.ReadFile(p)
			}
			out[p] = fi.ModTime().String() + " " + fi.Mode().String() + " " + string(content)
			return nil
		})
	}
	return out
}

func diff(before, after map[string]string) (changed []string) {
	for p, v := range after {
		if before[p] != v {
			changed = append(changed, p)
		}
	}
	for p := range before {
		if _, ok := after[p]; !ok {
			changed = append(changed, p+" (removed)")
		}
	}
	slices.Sort(changed)
	return changed
}

// TestSecondRunKeepsEverything: a second run writes nothing, touches no
// mtime, and answers the same token.
func TestSecondRunKeepsEverything(t *testing.T) {
	o := testOptions(t)
	first := ensure(t, o)
	before := snapshot(t, o.Paths.DataDir, o.Paths.EtcDir)
	again := ensure(t, o)
	if len(again.Written) != 0 {
		t.Errorf("second run wrote %q", again.Written)
	}
	if ch := diff(before, snapshot(t, o.Paths.DataDir, o.Paths.EtcDir)); len(ch) > 0 {
		t.Errorf("second run changed %q", ch)
	}
	if again.Token != first.Token || again.AgentToken != first.AgentToken || again.CAHash != first.CAHash {
		t.Error("the tokens changed")
	}
}

// caOf loads the CA whose files are data/rel.crt/.key.
func caOf(t *testing.T, data, rel string) (*x509.Certificate, crypto.Signer) {
	t.Helper()
	k, err := readKey(filepath.Join(data, rel+".key"))
	if err != nil {
		t.Fatal(err)
	}
	return loadCert(t, filepath.Join(data, rel+".crt")), k
}

// reissueAs rewrites the certificate at data/rel.crt from its current one,
// changed by edit, signed by the CA at data/caRel, with a new key unless
// keepKey.
func reissueAs(t *testing.T, data, rel, caRel string, edit func(*x509.Certificate)) {
	t.Helper()
	cur := loadCert(t, filepath.Join(data, rel+".crt"))
	caCert, caKey := caOf(t, data, caRel)
	k, _ := readKey(filepath.Join(data, rel+".key"))
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(42), Subject: cur.Subject, NotBefore: cur.NotBefore, NotAfter: cur.NotAfter,
		KeyUsage: cur.KeyUsage, ExtKeyUsage: cur.ExtKeyUsage, DNSNames: cur.DNSNames, IPAddresses: cur.IPAddresses}
	edit(tmpl)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, k.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, rel+".crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestReissue: a leaf that expires soon, starts in the future, names other
// hosts, has another group or key is issued again; the rest is kept.
func TestReissue(t *testing.T) {
	day := 24 * time.Hour
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, o *Options)
		want   []string // certificates re-issued (relative, without .crt)
	}{
		{"leaf expiring in 30 days", func(t *testing.T, o *Options) {
			reissueAs(t, o.Paths.DataDir, "server/tls/client-admin", "server/tls/client-ca", func(c *x509.Certificate) {
				c.NotBefore, c.NotAfter = time.Now().Add(-300*day), time.Now().Add(30*day)
			})
		}, []string{"server/tls/client-admin"}},
		{"leaf made before the clock was set back", func(t *testing.T, o *Options) {
			reissueAs(t, o.Paths.DataDir, "server/tls/serving-kube-apiserver", "server/tls/server-ca", func(c *x509.Certificate) {
				c.NotBefore, c.NotAfter = time.Now().AddDate(2, 0, 0), time.Now().AddDate(3, 0, 0)
			})
		}, []string{"server/tls/serving-kube-apiserver"}},
		{"leaf without its group", func(t *testing.T, o *Options) {
			reissueAs(t, o.Paths.DataDir, "server/tls/client-kube-apiserver", "server/tls/client-ca", func(c *x509.Certificate) {
				c.Subject.Organization = nil
			})
		}, []string{"server/tls/client-kube-apiserver"}},
		{"leaf with the wrong usage", func(t *testing.T, o *Options) {
			reissueAs(t, o.Paths.DataDir, "agent/client-kubelet", "server/tls/client-ca", func(c *x509.Certificate) {
				c.ExtKeyUsage = server
			})
		}, []string{"agent/client-kubelet"}},
		{"key that is not the certificate's (power cut between the two)", func(t *testing.T, o *Options) {
			k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			der, _ := x509.MarshalECPrivateKey(k)
			os.WriteFile(filepath.Join(o.Paths.DataDir, "server/tls/client-scheduler.key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600)
		}, []string{"server/tls/client-scheduler"}},
		{"node IP changed", func(t *testing.T, o *Options) {
			o.NodeIPs = []net.IP{net.ParseIP("10.0.2.16")}
		}, []string{"server/tls/serving-kube-apiserver", "server/tls/etcd/server-client", "server/tls/etcd/peer-server-client", "agent/serving-kubelet"}},
		{"tls-san added", func(t *testing.T, o *Options) {
			o.TLSSANs = append(o.TLSSANs, "k8s.example.com")
		}, []string{"server/tls/serving-kube-apiserver"}},
		{"tls-san removed", func(t *testing.T, o *Options) {
			o.TLSSANs = o.TLSSANs[:1]
		}, []string{"server/tls/serving-kube-apiserver"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := testOptions(t)
			ensure(t, o)
			tc.change(t, &o)
			before := map[string][]byte{}
			for _, w := range wantCerts() {
				before[w.path], _ = os.ReadFile(filepath.Join(o.Paths.DataDir, w.path+".crt"))
			}
			res := ensure(t, o)
			var got []string
			for _, w := range wantCerts() {
				now, _ := os.ReadFile(filepath.Join(o.Paths.DataDir, w.path+".crt"))
				if !bytes.Equal(now, before[w.path]) {
					got = append(got, w.path)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("re-issued %q, want %q", got, tc.want)
			}
			for _, w := range wantCerts() {
				if slices.Contains(tc.want, w.path) {
					c := loadCert(t, filepath.Join(o.Paths.DataDir, w.path+".crt"))
					if time.Now().Before(c.NotBefore) || c.NotAfter.Before(time.Now().AddDate(0, 11, 0)) {
						t.Errorf("%s re-issued valid %v to %v", w.path, c.NotBefore, c.NotAfter)
					}
					if k, _ := readKey(filepath.Join(o.Paths.DataDir, w.path+".key")); !publicKeyMatches(k, c) {
						t.Errorf("%s re-issued without its key", w.path)
					}
				}
			}
			if len(tc.want) > 0 && len(res.Written) == 0 {
				t.Error("Written is empty")
			}
		})
	}
	t.Run("node IP changed: the admin kubeconfig is kept", func(t *testing.T) {
		o := testOptions(t)
		ensure(t, o)
		kc := filepath.Join(o.Paths.EtcDir, "rke2.yaml")
		before, _ := os.ReadFile(kc)
		o.NodeIPs = []net.IP{net.ParseIP("10.0.2.16")}
		ensure(t, o)
		if after, _ := os.ReadFile(kc); !bytes.Equal(before, after) {
			t.Error("rke2.yaml rewritten though client-admin was kept")
		}
	})
}

// newCA makes a CA certificate and key, signed by parent (self-signed if
// nil).
func newCA(t *testing.T, cn string, parent *x509.Certificate, parentKey crypto.Signer) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().AddDate(20, 0, 0),
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature, BasicConstraintsValid: true, IsCA: true}
	if parent == nil {
		parent, parentKey = tmpl, k
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, k.Public(), parentKey)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c, k
}

func pemCert(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

func pemKey(t *testing.T, k *ecdsa.PrivateKey) []byte {
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
}

// TestCustomCA: a server CA that is there (RKE2's custom CA, baked into the
// image) is used as it is, and the server certificates chain to it; one
// signed by the user's root, shipped with its chain, too, and the token
// then pins the root.
func TestCustomCA(t *testing.T) {
	root, rootKey := newCA(t, "my root", nil, nil)
	inter, interKey := newCA(t, "my rke2 server CA", root, rootKey)
	for _, tc := range []struct {
		name       string
		crt        []byte
		key        []byte
		roots      *x509.Certificate
		hashOfRoot bool
	}{
		{"self-signed", pemCert(root), pemKey(t, rootKey), root, false},
		{"intermediate with its chain", append(pemCert(inter), pemCert(root)...), pemKey(t, interKey), root, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := testOptions(t)
			tls := filepath.Join(o.Paths.DataDir, "server/tls")
			os.MkdirAll(tls, 0o700)
			os.WriteFile(filepath.Join(tls, "server-ca.crt"), tc.crt, 0o644)
			os.WriteFile(filepath.Join(tls, "server-ca.key"), tc.key, 0o600)
			res := ensure(t, o)
			if got, _ := os.ReadFile(filepath.Join(tls, "server-ca.crt")); !bytes.Equal(got, tc.crt) {
				t.Fatal("the custom CA was rewritten")
			}
			pool, inters := x509.NewCertPool(), x509.NewCertPool()
			pool.AddCert(tc.roots)
			inters.AddCert(inter)
			c := loadCert(t, filepath.Join(o.Paths.DataDir, "server/tls/serving-kube-apiserver.crt"))
			if _, err := c.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inters, DNSName: "kubernetes.default.svc"}); err != nil {
				t.Errorf("serving-kube-apiserver.crt does not chain to the custom CA: %v", err)
			}
			// The kubelet's serving certificate is the kubelet serving CA's,
			// custom server CA or not.
			c = loadCert(t, filepath.Join(o.Paths.DataDir, "agent/serving-kubelet.crt"))
			if _, err := c.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inters, DNSName: "node1"}); err == nil {
				t.Error("agent/serving-kubelet.crt chains to the server CA")
			}
			want := sha256.Sum256(tc.crt)
			if tc.hashOfRoot {
				want = sha256.Sum256(root.Raw)
			}
			if res.CAHash != hex.EncodeToString(want[:]) {
				t.Errorf("CA hash %s, want %x", res.CAHash, want)
			}
			first, _ := pem.Decode(tc.crt)
			if nochain, _ := os.ReadFile(filepath.Join(tls, "server-ca.nochain.crt")); !bytes.Equal(nochain, pem.EncodeToMemory(first)) {
				t.Error("server-ca.nochain.crt is not the CA's own certificate alone")
			}
			// The other CAs are made, as k3s does when only one is given.
			if c := loadCert(t, filepath.Join(tls, "client-ca.crt")); !strings.HasPrefix(c.Subject.CommonName, "rke2-client-ca@") {
				t.Errorf("client-ca %q", c.Subject.CommonName)
			}
			if again := ensure(t, o); len(again.Written) != 0 {
				t.Errorf("second run wrote %q", again.Written)
			}
		})
	}
}

// TestCAFromTheFuture: a CA made while the clock was ahead is kept (it is
// the cluster's identity) and reported.
func TestCAFromTheFuture(t *testing.T) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "rke2-server-ca@4102444800"},
		NotBefore: time.Now().AddDate(3, 0, 0), NotAfter: time.Now().AddDate(13, 0, 0),
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature, BasicConstraintsValid: true, IsCA: true}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	o := testOptions(t)
	tls := filepath.Join(o.Paths.DataDir, "server/tls")
	os.MkdirAll(tls, 0o700)
	crt := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	os.WriteFile(filepath.Join(tls, "server-ca.crt"), crt, 0o644)
	os.WriteFile(filepath.Join(tls, "server-ca.key"), pemKey(t, k), 0o600)
	res := ensure(t, o)
	if len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "server-ca.crt is valid only from") {
		t.Errorf("warnings %q", res.Warnings)
	}
	if b, _ := os.ReadFile(filepath.Join(tls, "server-ca.crt")); !bytes.Equal(b, crt) {
		t.Error("the CA was replaced")
	}
}

// TestBadCA: a CA file that is corrupt, half there or does not match its
// key is an error naming it, and is left as it is.
func TestBadCA(t *testing.T) {
	other, otherKey := newCA(t, "another CA", nil, nil)
	for _, tc := range []struct {
		name     string
		crt, key []byte // nil: absent
		want     string
	}{
		{"corrupt certificate", []byte("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"), pemKey(t, otherKey), "server-ca"},
		{"truncated certificate", pemCert(other)[:100], pemKey(t, otherKey), "server-ca.crt"},
		{"corrupt key", pemCert(other), []byte("garbage"), "server-ca.key"},
		{"certificate without key", pemCert(other), nil, "restore the key"},
		{"key without certificate", nil, pemKey(t, otherKey), "restore the certificate"},
		{"key of another CA", pemCert(other), func() []byte { _, k := newCA(t, "x", nil, nil); return pemKey(t, k) }(), "is not the key of"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := testOptions(t)
			tls := filepath.Join(o.Paths.DataDir, "server/tls")
			os.MkdirAll(tls, 0o700)
			if tc.crt != nil {
				os.WriteFile(filepath.Join(tls, "server-ca.crt"), tc.crt, 0o644)
			}
			if tc.key != nil {
				os.WriteFile(filepath.Join(tls, "server-ca.key"), tc.key, 0o600)
			}
			before := snapshot(t, o.Paths.DataDir)
			_, err := Ensure(o)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "server-ca") {
				t.Fatalf("err = %v, want one naming server-ca and %q", err, tc.want)
			}
			if ch := diff(before, snapshot(t, o.Paths.DataDir)); len(ch) > 0 {
				t.Errorf("a failed run changed %q", ch)
			}
		})
	}
}

// TestDanglingCALink: a CA that is a symlink to nothing (a custom CA
// linked to a medium that is not mounted) is an error, not a new CA.
func TestDanglingCALink(t *testing.T) {
	o := testOptions(t)
	tls := filepath.Join(o.Paths.DataDir, "server/tls")
	os.MkdirAll(tls, 0o700)
	for _, f := range []string{"server-ca.crt", "server-ca.key"} {
		os.Symlink(filepath.Join("/nonexistent/medium", f), filepath.Join(tls, f))
	}
	if _, err := Ensure(o); err == nil || !strings.Contains(err.Error(), "symlink to nothing") {
		t.Fatalf("err = %v", err)
	}
	if target, err := os.Readlink(filepath.Join(tls, "server-ca.crt")); err != nil || target != "/nonexistent/medium/server-ca.crt" {
		t.Errorf("the link was replaced: %q %v", target, err)
	}
}

// TestBadServiceAccountKey: a service.key that holds no key is an error,
// not a new key (the cluster's service account tokens are signed by it).
func TestBadServiceAccountKey(t *testing.T) {
	o := testOptions(t)
	ensure(t, o)
	p := filepath.Join(o.Paths.DataDir, "server/tls/service.key")
	os.WriteFile(p, []byte("garbage"), 0o600)
	if _, err := Ensure(o); err == nil || !strings.Contains(err.Error(), "service.key") {
		t.Fatalf("err = %v", err)
	}
	if b, _ := os.ReadFile(p); string(b) != "garbage" {
		t.Error("service.key replaced")
	}
}

// TestTokens: the server's secret comes from the config (bare or as a full
// token of this cluster), else is the cluster's, else is made once.
func TestTokens(t *testing.T) {
	t.Run("generated once and kept", func(t *testing.T) {
		o := testOptions(t)
		first := ensure(t, o)
		if again := ensure(t, o); again.Token != first.Token {
			t.Errorf("token changed: %s then %s", first.Token, again.Token)
		}
		// The cluster's own token, given back in the config, is accepted.
		o.Token = first.Token
		if again := ensure(t, o); again.Token != first.Token {
			t.Errorf("token changed: %s", again.Token)
		}
		// Another one is refused, and the token is left alone.
		o.Token = "something-else"
		if _, err := Ensure(o); err == nil || !strings.Contains(err.Error(), "not this cluster's") {
			t.Errorf("err = %v", err)
		}
		if tok, _ := os.ReadFile(filepath.Join(o.Paths.DataDir, "server/token")); string(tok) != first.Token+"\n" {
			t.Errorf("server/token is now %q", tok)
		}
	})
	t.Run("passwd lost, server/token kept", func(t *testing.T) {
		o := testOptions(t)
		first := ensure(t, o)
		os.Remove(filepath.Join(o.Paths.DataDir, "server/cred/passwd"))
		if again := ensure(t, o); again.Token != first.Token {
			t.Errorf("token changed: %s then %s", first.Token, again.Token)
		}
	})
	t.Run("bare secret from the config", func(t *testing.T) {
		o := testOptions(t)
		o.Token = "my-secret"
		res := ensure(t, o)
		if res.Token != "K10"+res.CAHash+"::server:my-secret" || !strings.HasPrefix(res.AgentToken, "K10"+res.CAHash+"::node:") || secretOf(res.AgentToken) == "my-secret" {
			t.Errorf("token %s agent %s", res.Token, res.AgentToken)
		}
	})
	t.Run("full token of this cluster from the config", func(t *testing.T) {
		// A restored CA and the cluster's token (as on a rebuilt server).
		o := testOptions(t)
		ca, key := newCA(t, "rke2-server-ca@1", nil, nil)
		tls := filepath.Join(o.Paths.DataDir, "server/tls")
		os.MkdirAll(tls, 0o700)
		os.WriteFile(filepath.Join(tls, "server-ca.crt"), pemCert(ca), 0o644)
		os.WriteFile(filepath.Join(tls, "server-ca.key"), pemKey(t, key), 0o600)
		sum := sha256.Sum256(pemCert(ca))
		o.Token = "K10" + hex.EncodeToString(sum[:]) + "::server:abc123"
		if res := ensure(t, o); res.Token != o.Token {
			t.Errorf("token %s, want %s", res.Token, o.Token)
		}
	})
	t.Run("full token of another cluster", func(t *testing.T) {
		o := testOptions(t)
		o.Token = "K10" + strings.Repeat("ab", 32) + "::server:abc123"
		if _, err := Ensure(o); err == nil || !strings.Contains(err.Error(), "pins CA sha256 abab") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("agent-token", func(t *testing.T) {
		o := testOptions(t)
		o.Token, o.AgentToken = "server-secret", "K10::node:agent-secret"
		res := ensure(t, o)
		p := filepath.Join(o.Paths.DataDir, "server/agent-token")
		if b, _ := os.ReadFile(p); string(b) != "K10"+res.CAHash+"::node:agent-secret\n" || res.AgentToken+"\n" != string(b) {
			t.Errorf("agent-token %q", b)
		}
		if fi, _ := os.Lstat(p); !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 {
			t.Errorf("agent-token is %v", fi.Mode())
		}
		pw, _ := os.ReadFile(filepath.Join(o.Paths.DataDir, "server/cred/passwd"))
		if string(pw) != "agent-secret,node,node,rke2:agent\nserver-secret,server,server,rke2:server\n" {
			t.Errorf("passwd %q", pw)
		}
		// Without agent-token in the config the agents keep theirs.
		o.AgentToken = ""
		if again := ensure(t, o); again.AgentToken != res.AgentToken {
			t.Errorf("agent token %s, want %s kept", again.AgentToken, res.AgentToken)
		}
	})
	for _, tc := range []struct{ name, token, agent, want string }{
		{"node token as the server's", "K10::node:abc", "", `for "node", not "server"`},
		{"bootstrap token", "abcdef.0123456789abcdef", "", "bootstrap token"},
		{"server token as the agent's", "", "K10::server:abc", `for "server", not "node"`},
		{"bad hash", "K10abc::server:x", "", "not 64 hex digits"},
		{"newline", "abc\ndef", "", "control character"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := testOptions(t)
			o.Token, o.AgentToken = tc.token, tc.agent
			if _, err := Ensure(o); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
			if _, err := os.Stat(o.Paths.DataDir); err == nil {
				t.Error("a refused token still wrote files")
			}
		})
	}
}

// TestAgentToken: agents get a secret of their own, made once (RKE2 gives
// them the server's, with which they can take the cluster's CA keys from
// server-bootstrap). A data dir from before, whose agent-token linked to
// token and whose passwd gave agents the server's secret, gets one at its
// next start; an agent-token file of its own is the agents' and is kept;
// one that cannot be read stops the start and is left alone. A further
// server makes none: the cluster's comes with server-bootstrap.
func TestAgentToken(t *testing.T) {
	// before is the layout of a data dir from before agent secrets.
	before := func(t *testing.T, o Options) *Result {
		t.Helper()
		res := ensure(t, o)
		s := secretOf(res.Token)
		must(t, os.WriteFile(o.Paths.Server("cred", "passwd"), []byte(s+",node,node,rke2:agent\n"+s+",server,server,rke2:server\n"), 0o600))
		for _, l := range []string{"agent-token", "node-token"} {
			must(t, os.Remove(o.Paths.Server(l)))
			must(t, os.Symlink(o.Paths.Server("token"), o.Paths.Server(l)))
		}
		return res
	}
	passwdOf := func(t *testing.T, o Options) string {
		b, _ := os.ReadFile(o.Paths.Server("cred", "passwd"))
		return string(b)
	}
	t.Run("data dir from before", func(t *testing.T) {
		o := testOptions(t)
		old := before(t, o)
		res := ensure(t, o)
		if res.Token != old.Token {
			t.Errorf("the server token changed: %s then %s", old.Token, res.Token)
		}
		if !strings.HasPrefix(res.AgentToken, "K10"+res.CAHash+"::node:") || secretOf(res.AgentToken) == secretOf(res.Token) {
			t.Fatalf("agent token %s: want one of its own", res.AgentToken)
		}
		if b, _ := os.ReadFile(o.Paths.Server("agent-token")); string(b) != res.AgentToken+"\n" {
			t.Errorf("agent-token %q", b)
		}
		if fi, err := os.Lstat(o.Paths.Server("agent-token")); err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 {
			t.Errorf("agent-token: %v %v, want a 0600 file", fi.Mode(), err)
		}
		if target, _ := os.Readlink(o.Paths.Server("node-token")); target != o.Paths.Server("agent-token") {
			t.Errorf("node-token -> %q", target)
		}
		if want := secretOf(res.AgentToken) + ",node,node,rke2:agent\n" + secretOf(res.Token) + ",server,server,rke2:server\n"; passwdOf(t, o) != want {
			t.Errorf("passwd %q, want %q", passwdOf(t, o), want)
		}
		if again := ensure(t, o); again.AgentToken != res.AgentToken {
			t.Errorf("made again: %s then %s", res.AgentToken, again.AgentToken)
		}
	})
	t.Run("agent-token file of its own kept", func(t *testing.T) {
		o := testOptions(t)
		old := before(t, o)
		own := "K10" + old.CAHash + "::node:kept-secret\n"
		must(t, os.Remove(o.Paths.Server("agent-token")))
		must(t, os.WriteFile(o.Paths.Server("agent-token"), []byte(own), 0o600))
		if res := ensure(t, o); res.AgentToken+"\n" != own {
			t.Errorf("agent token %s, want the file's %s", res.AgentToken, own)
		}
		if b, _ := os.ReadFile(o.Paths.Server("agent-token")); string(b) != own {
			t.Errorf("agent-token overwritten: %q", b)
		}
	})
	t.Run("agent-token file with the server's secret kept, with a warning", func(t *testing.T) {
		o := testOptions(t)
		old := before(t, o)
		own := "K10" + old.CAHash + "::node:" + secretOf(old.Token) + "\n"
		must(t, os.Remove(o.Paths.Server("agent-token")))
		must(t, os.WriteFile(o.Paths.Server("agent-token"), []byte(own), 0o600))
		res := ensure(t, o)
		if res.AgentToken+"\n" != own || !strings.Contains(strings.Join(res.Warnings, " "), "holds the server's secret") {
			t.Errorf("agent token %s, warnings %q", res.AgentToken, res.Warnings)
		}
	})
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, p string)
		want  string
	}{
		{"unreadable", func(t *testing.T, p string) { must(t, os.Mkdir(p, 0o700)) }, "is a directory"},
		{"not a token", func(t *testing.T, p string) { must(t, os.WriteFile(p, []byte("K10abc::node:x\n"), 0o600)) }, "not 64 hex digits"},
		{"another CA's", func(t *testing.T, p string) {
			must(t, os.WriteFile(p, []byte("K10"+strings.Repeat("ab", 32)+"::node:x\n"), 0o600))
		}, "pins CA sha256 abab"},
	} {
		t.Run("agent-token "+tc.name+" stops the start", func(t *testing.T) {
			o := testOptions(t)
			before(t, o)
			p := o.Paths.Server("agent-token")
			must(t, os.Remove(p))
			tc.setup(t, p)
			pw := passwdOf(t, o)
			_, err := Ensure(o)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "restore the file") {
				t.Fatalf("err = %v, want %q and the fix", err, tc.want)
			}
			if passwdOf(t, o) != pw {
				t.Error("passwd changed")
			}
			if fi, err := os.Lstat(p); err != nil || fi.Mode().Type() == fs.ModeSymlink {
				t.Errorf("agent-token replaced: %v", err)
			}
		})
	}
	t.Run("further server of a cluster without an agent secret", func(t *testing.T) {
		o := testOptions(t)
		old := before(t, o)
		o.FurtherServer = true
		res := ensure(t, o)
		if res.AgentToken != old.Token || !strings.Contains(strings.Join(res.Warnings, " "), "no token of their own yet") {
			t.Errorf("agent token %s, warnings %q: want the server's, and a warning", res.AgentToken, res.Warnings)
		}
		if target, _ := os.Readlink(o.Paths.Server("agent-token")); target != o.Paths.Server("token") {
			t.Errorf("agent-token -> %q, want the link to token", target)
		}
	})
	t.Run("further server takes the cluster's", func(t *testing.T) {
		o := testOptions(t)
		old := before(t, o)
		s := secretOf(old.Token)
		must(t, os.WriteFile(o.Paths.Server("cred", "passwd"), []byte("cluster-agent-secret,node,node,rke2:agent\n"+s+",server,server,rke2:server\n"), 0o600))
		o.FurtherServer = true
		if res := ensure(t, o); secretOf(res.AgentToken) != "cluster-agent-secret" {
			t.Errorf("agent token %s, want the cluster's", res.AgentToken)
		}
	})
	t.Run("baked default", func(t *testing.T) {
		o := testOptions(t)
		o.DefaultAgentToken = "K10::node:baked-agent-secret"
		if res := ensure(t, o); secretOf(res.AgentToken) != "baked-agent-secret" {
			t.Errorf("agent token %s, want the baked one", res.AgentToken)
		}
		// The node's own wins over the image's.
		o.DefaultAgentToken = "K10::node:another-image"
		if res := ensure(t, o); secretOf(res.AgentToken) != "baked-agent-secret" {
			t.Errorf("agent token %s, want the node's own", res.AgentToken)
		}
	})
}

// TestBadOptions: bad input is refused before anything is written.
func TestBadOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Options)
		want string
	}{
		{"no node name", func(o *Options) { o.NodeName = "" }, "no node name"},
		{"bad node name", func(o *Options) { o.NodeName = "node 1" }, `node name "node 1"`},
		{"relative data dir", func(o *Options) { o.Paths.DataDir = "var/lib/rancher/rke2" }, "absolute"},
		{"bad tls-san", func(o *Options) { o.TLSSANs = []string{"api example.com"} }, `tls-san "api example.com"`},
		{"bad service-cidr", func(o *Options) { o.ServiceCIDR = "10.43.0.0" }, "service-cidr"},
		{"bad kubeconfig mode", func(o *Options) { o.KubeconfigMode = "644x" }, "write-kubeconfig-mode"},
		{"kubeconfig mode too wide", func(o *Options) { o.KubeconfigMode = "1777" }, "write-kubeconfig-mode"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := testOptions(t)
			tc.edit(&o)
			if _, err := Ensure(o); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
			if _, err := os.Stat(o.Paths.DataDir); err == nil {
				t.Error("refused options still wrote files")
			}
		})
	}
}

// TestOptions: service-cidr, cluster-domain and write-kubeconfig(-mode)
// reach the certificate and the files.
func TestOptions(t *testing.T) {
	o := testOptions(t)
	o.ServiceCIDR, o.ClusterDomain = "10.96.0.0/12,fd00:43::/112", "example.internal"
	o.Kubeconfig, o.KubeconfigMode = filepath.Join(o.Paths.EtcDir, "admin.yaml"), "0644"
	ensure(t, o)
	c := loadCert(t, filepath.Join(o.Paths.DataDir, "server/tls/serving-kube-apiserver.crt"))
	if !slices.Contains(c.DNSNames, "kubernetes.default.svc.example.internal") || !slices.Contains(ipStrings(c.IPAddresses), "10.96.0.1") {
		t.Errorf("SANs %q %q", c.DNSNames, ipStrings(c.IPAddresses))
	}
	if m := mode(t, o.Kubeconfig); m != 0o644 {
		t.Errorf("kubeconfig mode %v", m)
	}
	// A changed mode is applied to the kept file.
	o.KubeconfigMode = ""
	ensure(t, o)
	if m := mode(t, o.Kubeconfig); m != 0o600 {
		t.Errorf("kubeconfig mode %v after going back to the default", m)
	}
	// An IPv6 service range: the kubeconfigs reach the apiserver on ::1.
	o6 := testOptions(t)
	o6.ServiceCIDR = "fd00:43::/112"
	ensure(t, o6)
	kc, _ := os.ReadFile(filepath.Join(o6.Paths.DataDir, "server/cred/admin.kubeconfig"))
	if !strings.Contains(string(kc), "server: https://[::1]:6443") {
		t.Errorf("admin.kubeconfig:\n%s", kc)
	}
}

// TestEtcdCertsAgree: the etcd step (pods.EtcdCerts) and Ensure make the
// same certificates, so that running both, in either order, re-issues none
// (and the etcd pod, whose FILE_HASH covers them, is not restarted).
func TestEtcdCertsAgree(t *testing.T) {
	for _, etcdFirst := range []bool{true, false} {
		o := testOptions(t)
		step := pods.EtcdOptions{Paths: o.Paths, NodeName: o.NodeName, NodeIP: o.NodeIPs[0].String()}
		etcd := filepath.Join(o.Paths.DataDir, "server/tls/etcd")
		if etcdFirst {
			if err := pods.EtcdCerts(step); err != nil {
				t.Fatal(err)
			}
		} else {
			ensure(t, o)
		}
		before := snapshot(t, etcd)
		if err := pods.EtcdCerts(step); err != nil {
			t.Fatal(err)
		}
		ensure(t, o)
		if ch := diff(before, snapshot(t, etcd)); len(ch) > 0 {
			t.Errorf("etcd step first=%v: re-issued %q", etcdFirst, ch)
		}
	}
}

// TestKubeletServingCA: kubelets' serving certificates have a CA of their
// own, in the bootstrap data further servers take, and not the server CA
// agents trust for the apiserver at 127.0.0.1; the server's own kubelet
// certificate names no loopback. A data dir made before the CA existed
// gets it at the next start, its other CAs kept, and the kubelet's
// certificate re-issued by it; a CA there is never replaced, and one that
// cannot be read stops the start.
func TestKubeletServingCA(t *testing.T) {
	o := testOptions(t)
	ensure(t, o)
	data := o.Paths.DataDir
	if !slices.Contains(BootstrapFiles(), "tls/kubelet-serving-ca.crt") || !slices.Contains(BootstrapFiles(), "tls/kubelet-serving-ca.key") {
		t.Errorf("the kubelet serving CA is not in the bootstrap data: %q", BootstrapFiles())
	}
	if !slices.Contains(SecretFiles(), "tls/kubelet-serving-ca.key") {
		t.Errorf("rke2-build secrets does not make the kubelet serving CA: %q", SecretFiles())
	}
	check := func(t *testing.T) {
		t.Helper()
		c := loadCert(t, filepath.Join(data, "agent/serving-kubelet.crt"))
		kubelet, server := x509.NewCertPool(), x509.NewCertPool()
		kubelet.AddCert(loadCert(t, filepath.Join(data, "server/tls/kubelet-serving-ca.crt")))
		server.AddCert(loadCert(t, filepath.Join(data, "server/tls/server-ca.crt")))
		if _, err := c.Verify(x509.VerifyOptions{Roots: kubelet, DNSName: "10.0.2.15"}); err != nil {
			t.Errorf("serving-kubelet.crt: %v", err)
		}
		for _, name := range []string{"127.0.0.1", "::1", "localhost", "node1"} {
			if _, err := c.Verify(x509.VerifyOptions{Roots: server, DNSName: name}); err == nil {
				t.Errorf("serving-kubelet.crt passes for %s with the server CA", name)
			}
			if name != "node1" && c.VerifyHostname(name) == nil {
				t.Errorf("serving-kubelet.crt names %s", name)
			}
		}
	}
	check(t)

	cas := []string{"server-ca.crt", "client-ca.crt", "request-header-ca.crt", "etcd/server-ca.crt", "etcd/peer-ca.crt"}
	before := map[string][]byte{}
	for _, f := range cas {
		before[f], _ = os.ReadFile(filepath.Join(data, "server/tls", f))
	}
	// A data dir from before the kubelet serving CA: its kubelet's
	// certificate is the server CA's, with the loopback.
	for _, f := range []string{"kubelet-serving-ca.crt", "kubelet-serving-ca.key", "kubelet-serving-ca.nochain.crt"} {
		if err := os.Remove(filepath.Join(data, "server/tls", f)); err != nil {
			t.Fatal(err)
		}
	}
	reissueAs(t, data, "agent/serving-kubelet", "server/tls/server-ca", func(c *x509.Certificate) {
		c.DNSNames, c.IPAddresses = []string{"node1", "localhost"}, []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("10.0.2.15")}
	})
	res := ensure(t, o)
	if !slices.Contains(res.Written, filepath.Join(data, "server/tls/kubelet-serving-ca.crt")) {
		t.Errorf("the missing CA was not made: wrote %q", res.Written)
	}
	for _, f := range cas {
		if now, _ := os.ReadFile(filepath.Join(data, "server/tls", f)); !bytes.Equal(now, before[f]) {
			t.Errorf("%s changed", f)
		}
	}
	check(t)

	// Kept as it is once there.
	ca, _ := os.ReadFile(filepath.Join(data, "server/tls/kubelet-serving-ca.crt"))
	ensure(t, o)
	if again, _ := os.ReadFile(filepath.Join(data, "server/tls/kubelet-serving-ca.crt")); !bytes.Equal(again, ca) {
		t.Error("the kubelet serving CA was replaced")
	}
	// Unreadable or half there: an error, nothing made.
	for name, breakIt := range map[string]func(tls string){
		"key missing": func(tls string) { os.Remove(filepath.Join(tls, "kubelet-serving-ca.key")) },
		"link to none": func(tls string) {
			os.Remove(filepath.Join(tls, "kubelet-serving-ca.crt"))
			os.Symlink("/nonexistent/ca.crt", filepath.Join(tls, "kubelet-serving-ca.crt"))
		},
		"unreadable": func(tls string) {
			os.WriteFile(filepath.Join(tls, "kubelet-serving-ca.crt"), []byte("not PEM\n"), 0o644)
		},
	} {
		t.Run(name, func(t *testing.T) {
			o := testOptions(t)
			ensure(t, o)
			tls := filepath.Join(o.Paths.DataDir, "server/tls")
			breakIt(tls)
			if _, err := Ensure(o); err == nil || !strings.Contains(err.Error(), "kubelet-serving-ca") {
				t.Errorf("err = %v, want one about kubelet-serving-ca", err)
			}
		})
	}
}
