package pki

import (
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"testing"
)

func TestCAAndLeaf(t *testing.T) {
	dir := t.TempDir()
	caCrt, caKey := filepath.Join(dir, "server-ca.crt"), filepath.Join(dir, "server-ca.key")
	ca, err := EnsureCA(caCrt, caKey, "etcd-server-ca")
	if err != nil {
		t.Fatal(err)
	}
	// A second call loads the same CA (a user's own CA is kept the same way).
	again, err := EnsureCA(caCrt, caKey, "etcd-server-ca")
	if err != nil || !again.Cert.Equal(ca.Cert) {
		t.Fatalf("CA not reused: %v", err)
	}
	leaf := Leaf{CN: "etcd-server", DNS: []string{"localhost", "node1"}, IPs: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("10.0.2.15")}, Server: true, Client: true}
	crt, key := filepath.Join(dir, "server-client.crt"), filepath.Join(dir, "server-client.key")
	if wrote, err := ca.Issue(crt, key, leaf); err != nil || !wrote {
		t.Fatalf("first issue: wrote=%v err=%v", wrote, err)
	}
	b, _ := os.ReadFile(crt)
	c, err := parseCert(b)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	if _, err := c.Verify(x509.VerifyOptions{Roots: pool, DNSName: "node1", KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		t.Fatalf("leaf does not verify: %v", err)
	}
	if fi, _ := os.Stat(key); fi.Mode().Perm() != 0o600 {
		t.Errorf("key mode %v, want 0600", fi.Mode().Perm())
	}
	if wrote, err := ca.Issue(crt, key, leaf); err != nil || wrote {
		t.Fatalf("unchanged leaf rewritten: wrote=%v err=%v", wrote, err)
	}
	leaf.IPs = append(leaf.IPs, net.ParseIP("10.0.2.16"))
	if wrote, err := ca.Issue(crt, key, leaf); err != nil || !wrote {
		t.Fatalf("leaf with a new address not reissued: wrote=%v err=%v", wrote, err)
	}
}
