package serverpki

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"
)

var hash64 = strings.Repeat("0123456789abcdef", 4)

func TestParseToken(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Token
		err  string
	}{
		{in: "secret", want: Token{Password: "secret"}},
		{in: "  secret\n", want: Token{Password: "secret"}},
		{in: "server:secret", want: Token{Password: "server:secret"}}, // bare: k3s keeps it whole
		{in: "K10" + hash64 + "::server:secret", want: Token{CAHash: hash64, Username: "server", Password: "secret"}},
		{in: "K10" + strings.ToUpper(hash64) + "::server:secret", want: Token{CAHash: hash64, Username: "server", Password: "secret"}},
		{in: "K10::node:s:e:c", want: Token{Username: "node", Password: "s:e:c"}},
		{in: "K10:::secret", want: Token{Password: "secret"}},
		{in: "K10server:secret", want: Token{Username: "server", Password: "secret"}}, // no "::": all credentials
		{in: "abcdef.0123456789abcdef", want: Token{Password: "abcdef.0123456789abcdef", Bootstrap: true}},
		{in: "K10" + hash64 + "::abcdef.0123456789abcdef", want: Token{CAHash: hash64, Password: "abcdef.0123456789abcdef", Bootstrap: true}},
		{in: "", err: "empty"},
		{in: "  \n", err: "empty"},
		{in: "sec\x00ret", err: "control character"},
		{in: "K10abc::server:secret", err: "not 64 hex digits"},
		{in: "K10" + strings.Repeat("zz", 32) + "::server:secret", err: "not 64 hex digits"},
		{in: "K10" + hash64 + "::server:", err: "no \"<user>:<secret>\""},
		{in: "K10" + hash64 + "::server", err: "no \"<user>:<secret>\""},
		{in: "K10" + hash64, err: "no \"<user>:<secret>\""},
	} {
		got, err := ParseToken(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseToken(%q) = %+v, %v; want error %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseToken(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

// FuzzParseToken: tokens are untrusted (a config, a file someone copied):
// ParseToken never panics, what it accepts has a secret and a well-formed
// hash, and its K10 form parses back to the same token.
func FuzzParseToken(f *testing.F) {
	for _, s := range []string{"secret", "K10" + hash64 + "::server:secret", "K10::node:a:b", "K10:::x", "K10x", "K10::",
		"abcdef.0123456789abcdef", "K10" + hash64 + "::abcdef.0123456789abcdef", "K10server:pw", "::::", "K10" + hash64 + "::::::"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := ParseToken(s)
		if err != nil {
			return
		}
		if tok.Password == "" {
			t.Fatalf("ParseToken(%q) = %+v: no secret", s, tok)
		}
		if tok.CAHash != "" && (len(tok.CAHash) != 64 || !isHex(tok.CAHash) || strings.ToLower(tok.CAHash) != tok.CAHash) {
			t.Fatalf("ParseToken(%q): hash %q", s, tok.CAHash)
		}
		if strings.ContainsAny(tok.String(), "\n\r\x00") {
			t.Fatalf("ParseToken(%q): %q does not fit on a line", s, tok.String())
		}
		again, err := ParseToken(tok.String())
		if err != nil || again != tok {
			t.Fatalf("ParseToken(%q) = %+v, but its form %q parses to %+v, %v", s, tok, tok.String(), again, err)
		}
	})
}

// caFixture is a cluster CA (an intermediate of a root, as a custom CA
// ships) and what an attacker between a node and its server can make.
type caFixture struct {
	root, inter *x509.Certificate
	pinned      string // the token's hash: the root's
	// The attacker's own root and an intermediate of it, and a
	// certificate that names the cluster's root as issuer (subject and
	// key id) but is signed by the attacker.
	evil, evilInter, forged *x509.Certificate
	// Serving certificates: of the cluster's CA, and of each of the
	// attacker's.
	good    *x509.Certificate
	hostile []*x509.Certificate
}

func newCAFixture(t testing.TB) *caFixture {
	root, rootKey := testCA(t, "cluster root", nil, nil)
	inter, interKey := testCA(t, "rke2 server CA", root, rootKey)
	evil, evilKey := testCA(t, "attacker root", nil, nil)
	evilInter, evilInterKey := testCA(t, "attacker intermediate", evil, evilKey)
	forged, forgedKey := testCA(t, "forged server CA", &x509.Certificate{Subject: root.Subject, SubjectKeyId: root.SubjectKeyId}, evilKey)
	sum := sha256.Sum256(root.Raw)
	f := &caFixture{root: root, inter: inter, pinned: hex.EncodeToString(sum[:]), evil: evil, evilInter: evilInter, forged: forged,
		good: newServing(t, inter, interKey)}
	for _, ca := range []struct {
		c *x509.Certificate
		k *ecdsa.PrivateKey
	}{{evil, evilKey}, {evilInter, evilInterKey}, {forged, forgedKey}} {
		f.hostile = append(f.hostile, newServing(t, ca.c, ca.k))
	}
	return f
}

// testCA is newCA for fuzz tests too: a CA certificate and key, signed by
// parent (self-signed if nil).
func testCA(t testing.TB, cn string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature, BasicConstraintsValid: true, IsCA: true}
	if parent == nil {
		parent, parentKey = tmpl, k
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, k.Public(), parentKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c, k
}

// newServing makes a serving certificate signed by ca.
func newServing(t testing.TB, ca *x509.Certificate, key *ecdsa.PrivateKey) *x509.Certificate {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "server"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{"server"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, k.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c
}

func pemCerts(certs ...*x509.Certificate) []byte {
	var b []byte
	for _, c := range certs {
		b = append(b, pemCert(c)...)
	}
	return b
}

// checkPinned checks what PinCA made of bundle: its hash is CAHash's, it
// trusts only certificates of the bundle, and, when the hash is the
// cluster root's, nothing the attacker signed.
func (f *caFixture) checkPinned(t *testing.T, bundle []byte) *PinnedCA {
	t.Helper()
	ca, err := PinCA(bundle)
	hash, herr := CAHash(bundle)
	if (err == nil) != (herr == nil) || (err == nil && hash != ca.Hash) {
		t.Fatalf("PinCA = %v, %v but CAHash = %q, %v", ca, err, hash, herr)
	}
	if err != nil {
		return nil
	}
	if len(ca.Certs) == 0 {
		t.Fatal("PinCA trusts no certificate")
	}
	var inBundle [][]byte
	for rest := bundle; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		inBundle = append(inBundle, b.Bytes)
	}
	for _, c := range ca.Certs {
		if !slices.ContainsFunc(inBundle, func(b []byte) bool { return bytes.Equal(b, c.Raw) }) {
			t.Fatalf("PinCA trusts %q, which is not in the bundle", c.Subject)
		}
	}
	if ca.Hash != f.pinned {
		return ca
	}
	pool := ca.Pool()
	for _, c := range ca.Certs {
		if _, err := c.Verify(x509.VerifyOptions{Roots: rootPool(f.root), Intermediates: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			t.Errorf("the hash pins the cluster root, but %q, which the pool trusts, does not chain to it: %v", c.Subject, err)
		}
	}
	for _, leaf := range f.hostile {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "server"}); err == nil {
			t.Errorf("the hash pins the cluster root, but the pool trusts a certificate of %q", leaf.Issuer)
		}
	}
	return ca
}

func rootPool(c *x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(c)
	return p
}

// TestPinCA: the certificates a pinned hash vouches for are the chain to
// the pinned root, never what else a hostile /cacerts answer carries.
func TestPinCA(t *testing.T) {
	f := newCAFixture(t)
	chain := pemCerts(f.inter, f.root)
	junk := []byte("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n\x00\xff junk\n")
	key := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("not a key")})
	broken := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("not DER")})
	var huge []byte
	huge = append(huge, chain...)
	for len(huge) < 1<<20 {
		huge = append(huge, pemCerts(f.evil, f.evilInter, f.forged)...)
	}
	for _, tc := range []struct {
		name   string
		bundle []byte
		pinned bool // hashes to the cluster root
		trusts []*x509.Certificate
		err    string
	}{
		{"the chain", chain, true, []*x509.Certificate{f.inter, f.root}, ""},
		{"one self-signed CA", pemCerts(f.root), false, []*x509.Certificate{f.root}, ""},
		{"an attacker's root appended", append(pemCerts(f.inter, f.root), pemCerts(f.evil)...), true, []*x509.Certificate{f.inter, f.root}, ""},
		{"an attacker's chain appended", append(pemCerts(f.inter, f.root), pemCerts(f.evilInter, f.evil)...), true, []*x509.Certificate{f.inter, f.root}, ""},
		{"a forged intermediate of the root", append(pemCerts(f.inter, f.root), pemCerts(f.forged)...), true, []*x509.Certificate{f.inter, f.root}, ""},
		{"the attacker's root before the root", pemCerts(f.inter, f.evil, f.root), true, []*x509.Certificate{f.inter, f.root}, ""},
		{"other PEM blocks and junk between", slices.Concat(pemCerts(f.inter), key, junk, pemCerts(f.root), junk), true, []*x509.Certificate{f.inter, f.root}, ""},
		{"a megabyte of the attacker's certificates", huge, true, []*x509.Certificate{f.inter, f.root}, ""},
		// No chain: the hash is of the bytes, which pin every certificate.
		{"the attacker's first", pemCerts(f.evil, f.inter, f.root), false, []*x509.Certificate{f.evil, f.inter, f.root}, ""},
		{"two roots (CA rotation)", pemCerts(f.root, f.evil), false, []*x509.Certificate{f.root, f.evil}, ""},
		{"no certificate", key, false, nil, "no PEM certificate"},
		{"a broken certificate", append(pemCerts(f.inter, f.root), broken...), false, nil, "x509"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			ca, err := PinCA(tc.bundle)
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("PinCA took %v", d)
			}
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (ca.Hash == f.pinned) != tc.pinned {
				t.Errorf("hash %s, pinned root %s: want pinned %v", ca.Hash, f.pinned, tc.pinned)
			}
			if !tc.pinned {
				if sum := sha256.Sum256(tc.bundle); ca.Hash != hex.EncodeToString(sum[:]) {
					t.Errorf("hash %s, want the sha256 of the bytes", ca.Hash)
				}
			}
			var got, want []string
			for _, c := range ca.Certs {
				got = append(got, c.Subject.CommonName)
			}
			for _, c := range tc.trusts {
				want = append(want, c.Subject.CommonName)
			}
			if !slices.Equal(got, want) {
				t.Errorf("trusts %q, want %q", got, want)
			}
			f.checkPinned(t, tc.bundle)
			if _, err := f.good.Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: "server"}); err != nil && slices.Contains(tc.trusts, f.inter) {
				t.Errorf("the cluster's serving certificate: %v", err)
			}
		})
	}
}

// FuzzPinCA: a /cacerts answer is the server's word before the node
// trusts it. PinCA never panics, agrees with CAHash, trusts only what the
// bundle holds, and when the bundle hashes to the pinned root it trusts
// nothing the attacker signed, whatever else it carries.
func FuzzPinCA(f *testing.F) {
	fx := newCAFixture(f)
	chain := pemCerts(fx.inter, fx.root)
	for _, seed := range [][]byte{
		chain,
		append(pemCerts(fx.inter, fx.root), pemCerts(fx.evil)...),
		append(pemCerts(fx.inter, fx.root), pemCerts(fx.evilInter, fx.evil)...),
		append(pemCerts(fx.inter, fx.root), pemCerts(fx.forged)...),
		pemCerts(fx.inter, fx.evil, fx.root),
		pemCerts(fx.evil, fx.inter, fx.root),
		append(pemCerts(fx.inter), append([]byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), pemCerts(fx.root)...)...),
		append(pemCerts(fx.inter, fx.root), "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"...),
		pemCerts(fx.root),
		[]byte("junk"),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, bundle []byte) {
		fx.checkPinned(t, bundle)
		// What an attacker appends to the real chain.
		fx.checkPinned(t, append(slices.Clip(chain), bundle...))
	})
}
