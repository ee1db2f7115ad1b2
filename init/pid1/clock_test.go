package pid1

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func selfSigned(t testing.TB, notBefore time.Time) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "ca"},
		NotBefore: notBefore, NotAfter: notBefore.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestCertNotBefore(t *testing.T) {
	dir := t.TempDir()
	for _, nb := range []time.Time{
		time.Date(2026, 12, 4, 17, 0, 0, 0, time.UTC), // UTCTime
		time.Date(2051, 1, 2, 3, 4, 5, 0, time.UTC),   // GeneralizedTime (from 2050)
	} {
		der := selfSigned(t, nb)
		p := filepath.Join(dir, "ca.crt")
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		if got := certNotBefore(p); !got.Equal(nb) {
			t.Errorf("certNotBefore = %v, want %v", got, nb)
		}
	}
	for name, content := range map[string]string{"empty": "", "not pem": "hello", "bad der": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(content), 0o600)
		if got := certNotBefore(p); !got.IsZero() {
			t.Errorf("%s: certNotBefore = %v, want zero", name, got)
		}
	}
	if got := certNotBefore(filepath.Join(dir, "missing")); !got.IsZero() {
		t.Errorf("missing file: %v", got)
	}
}

// FuzzDERNotBefore: whatever the bytes, no panic, and where crypto/x509
// reads a certificate the two agree on notBefore.
func FuzzDERNotBefore(f *testing.F) {
	f.Add(selfSigned(f, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)))
	f.Add([]byte{0x30, 0x03, 0x30, 0x01, 0x00})
	f.Fuzz(func(t *testing.T, der []byte) {
		got := derNotBefore(der)
		if c, err := x509.ParseCertificate(der); err == nil && !got.Equal(c.NotBefore) {
			t.Fatalf("derNotBefore = %v, x509 says %v", got, c.NotBefore)
		}
	})
}
