package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
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

// TestIssueValidity re-issues a leaf whose validity does not cover now: one
// made while the clock was ahead (NTP has stepped it back since) or behind,
// and one about to expire.
func TestIssueValidity(t *testing.T) {
	dir := t.TempDir()
	ca, err := EnsureCA(filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key"), "etcd-server-ca")
	if err != nil {
		t.Fatal(err)
	}
	leaf := Leaf{CN: "etcd-server", DNS: []string{"node1"}, IPs: []net.IP{net.ParseIP("10.0.2.15")}, Server: true}
	now := time.Now()
	day := 24 * time.Hour
	for _, tc := range []struct {
		name                string
		notBefore, notAfter time.Time
		reissue             bool
	}{
		{"valid for a year", now.Add(-time.Hour), now.AddDate(1, 0, 0), false},
		{"made three years ahead", now.AddDate(3, 0, 0).Add(-time.Hour), now.AddDate(4, 0, 0), true},
		{"starts in a minute", now.Add(time.Minute), now.AddDate(1, 0, 0), true},
		{"expired, made years behind", now.AddDate(-5, 0, 0), now.AddDate(-4, 0, 0), true},
		{"expires in 30 days", now.Add(-300 * day), now.Add(30 * day), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			crt, key := filepath.Join(dir, "leaf.crt"), filepath.Join(dir, "leaf.key")
			writeLeaf(t, ca, crt, key, leaf, tc.notBefore, tc.notAfter)
			wrote, err := ca.Issue(crt, key, leaf)
			if err != nil || wrote != tc.reissue {
				t.Fatalf("Issue: wrote=%v err=%v; want wrote=%v", wrote, err, tc.reissue)
			}
			b, _ := os.ReadFile(crt)
			c, err := parseCert(b)
			if err != nil {
				t.Fatal(err)
			}
			if now := time.Now(); now.Before(c.NotBefore) || now.After(c.NotAfter) {
				t.Errorf("the certificate kept is valid %v to %v, not now", c.NotBefore, c.NotAfter)
			}
		})
	}
}

// writeLeaf writes a certificate for l signed by ca, valid from notBefore to
// notAfter, as Issue would have made it with the clock at another time.
func writeLeaf(t *testing.T, ca *CA, crt, key string, l Leaf, notBefore, notAfter time.Time) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: l.CN},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     l.DNS,
		IPAddresses:  l.IPs,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, k.Public(), ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	if err := writePair(crt, key, der, k); err != nil {
		t.Fatal(err)
	}
}

// A power cut between the key's write and the certificate's leaves a new
// key beside the old certificate: the pair is made again, not kept.
func TestIssueMismatchedKey(t *testing.T) {
	dir := t.TempDir()
	ca, err := EnsureCA(filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key"), "ca")
	if err != nil {
		t.Fatal(err)
	}
	leaf := Leaf{CN: "x", DNS: []string{"localhost"}, Server: true}
	crt, key := filepath.Join(dir, "x.crt"), filepath.Join(dir, "x.key")
	if _, err := ca.Issue(crt, key, leaf); err != nil {
		t.Fatal(err)
	}
	// Another key in the key's place, the certificate as it was.
	other := filepath.Join(dir, "other")
	if _, err := ca.Issue(other+".crt", other+".key", leaf); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(other + ".key")
	os.WriteFile(key, b, 0o600)
	if wrote, err := ca.Issue(crt, key, leaf); err != nil || !wrote {
		t.Fatalf("mismatched pair kept: wrote=%v err=%v", wrote, err)
	}
	cb, _ := os.ReadFile(crt)
	c, _ := parseCert(cb)
	if !keyMatches(key, c) {
		t.Errorf("the new pair does not match")
	}
	// A missing key is made again too.
	os.Remove(key)
	if wrote, err := ca.Issue(crt, key, leaf); err != nil || !wrote {
		t.Fatalf("missing key: wrote=%v err=%v", wrote, err)
	}
}

// Sign writes nothing: the pair it returns chains to the CA and the key is
// the certificate's.
func TestSign(t *testing.T) {
	dir := t.TempDir()
	ca, err := EnsureCA(filepath.Join(dir, "client-ca.crt"), filepath.Join(dir, "client-ca.key"), "rke2-client-ca")
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := ca.Sign(Leaf{CN: "system:admin", Org: []string{"system:masters"}, Client: true})
	if err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 2 {
		t.Errorf("Sign wrote files: %d entries beside the CA", len(ents)-2)
	}
	c, err := parseCert(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.CheckSignatureFrom(ca.Cert); err != nil || c.Subject.CommonName != "system:admin" || c.Subject.Organization[0] != "system:masters" {
		t.Fatalf("certificate %v: %v", c.Subject, err)
	}
	kp := filepath.Join(t.TempDir(), "k")
	os.WriteFile(kp, keyPEM, 0o600)
	if !keyMatches(kp, c) {
		t.Error("the key is not the certificate's")
	}
}
