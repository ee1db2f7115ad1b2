package artifact

import (
	"bytes"
	"crypto/ed25519"
	"encoding/pem"
	"strings"
	"testing"
)

// A key pair survives its files, which are PEM blocks of our own types
// holding the seed and the public key's 32 bytes.
func TestKeyFiles(t *testing.T) {
	pub, key, err := GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := MarshalPrivateKey(key)
	must(t, err)
	pubPEM, err := MarshalPublicKey(pub)
	must(t, err)
	if b, _ := pem.Decode(keyPEM); b == nil || b.Type != "RKE2OS UPGRADE PRIVATE KEY" || !bytes.Equal(b.Bytes, key.Seed()) {
		t.Errorf("private key file %q", keyPEM)
	}
	if b, _ := pem.Decode(pubPEM); b == nil || b.Type != "RKE2OS UPGRADE PUBLIC KEY" || !bytes.Equal(b.Bytes, pub) {
		t.Errorf("public key file %q", pubPEM)
	}
	key2, err := ParsePrivateKey(keyPEM)
	if err != nil || !key2.Equal(key) {
		t.Fatalf("ParsePrivateKey: %v", err)
	}
	pub2, err := ParsePublicKey(pubPEM)
	if err != nil || !pub2.Equal(pub) {
		t.Fatalf("ParsePublicKey: %v", err)
	}
	if Fingerprint(pub) != Fingerprint(pub2) || !strings.HasPrefix(Fingerprint(pub), "sha256:") || len(Fingerprint(pub)) != 71 {
		t.Errorf("fingerprint %s", Fingerprint(pub))
	}
	// Another key pair is another.
	other, _, _ := GenerateKey(nil)
	if other.Equal(pub) {
		t.Error("two generated keys are the same")
	}
}

func TestKeyFilesRefused(t *testing.T) {
	key := testKey(1)
	keyPEM, _ := MarshalPrivateKey(key)
	pubPEM, _ := MarshalPublicKey(pubOf(key))
	block := func(typ string, b []byte, headers map[string]string) []byte {
		return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b, Headers: headers})
	}
	for _, c := range []struct {
		name    string
		data    []byte
		private bool
		want    string
	}{
		{"empty", nil, true, "no PEM block"},
		{"public as private", pubPEM, true, "this is the public key (upgrade.pub)"},
		{"private as public", keyPEM, false, "this is the private key (upgrade.key)"},
		{"PKCS#8", block("PRIVATE KEY", make([]byte, 48), nil), true, `a "PRIVATE KEY" PEM block`},
		{"short seed", block(PrivateKeyPEMType, make([]byte, 31), nil), true, "31 bytes"},
		{"whole private key", block(PrivateKeyPEMType, key, nil), true, "64 bytes"},
		{"long public key", block(PublicKeyPEMType, make([]byte, 33), nil), false, "33 bytes"},
		{"headers", block(PublicKeyPEMType, pubOf(key), map[string]string{"Proc-Type": "4,ENCRYPTED"}), false, "headers"},
		{"two keys", append(bytes.Clone(pubPEM), pubPEM...), false, "more follows"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var err error
			if c.private {
				_, err = ParsePrivateKey(c.data)
			} else {
				_, err = ParsePublicKey(c.data)
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
		})
	}
	// Blank space around the block is fine.
	if _, err := ParsePublicKey(append(append([]byte("\n"), pubPEM...), "\n\n"...)); err != nil {
		t.Errorf("blank lines around the key: %v", err)
	}
	if _, err := MarshalPrivateKey(key[:40]); err == nil {
		t.Error("marshalled a 40-byte private key")
	}
	bad := bytes.Clone(key)
	bad[63] ^= 1
	if _, err := MarshalPrivateKey(bad); err == nil {
		t.Error("marshalled a private key whose public half is not its seed's")
	}
	if _, err := MarshalPublicKey(ed25519.PublicKey{1}); err == nil {
		t.Error("marshalled a 1-byte public key")
	}
}
