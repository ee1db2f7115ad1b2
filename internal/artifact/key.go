package artifact

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
)

// The upgrade signing key's files are PEM blocks of these types, with no
// headers: the private key's holds its 32-byte seed, the public key's its
// 32 bytes. Neither is PKCS#8 nor PKIX: reading them takes no
// crypto/x509.
const (
	PrivateKeyPEMType = "RKE2OS UPGRADE PRIVATE KEY"
	PublicKeyPEMType  = "RKE2OS UPGRADE PUBLIC KEY"
)

// GenerateKey makes an upgrade signing key pair from random (nil:
// crypto/rand).
func GenerateKey(random io.Reader) (ed25519.PublicKey, ed25519.PrivateKey, error) {
	pub, key, err := ed25519.GenerateKey(random)
	if err != nil {
		return nil, nil, fmt.Errorf("upgrade key: %w", err)
	}
	return pub, key, nil
}

// MarshalPrivateKey encodes key as the private key's PEM file.
func MarshalPrivateKey(key ed25519.PrivateKey) ([]byte, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("upgrade key: %d bytes, not an ed25519 private key", len(key))
	}
	if !bytes.Equal(ed25519.NewKeyFromSeed(key.Seed()), key) {
		return nil, errors.New("upgrade key: its public half is not its seed's")
	}
	return pem.EncodeToMemory(&pem.Block{Type: PrivateKeyPEMType, Bytes: key.Seed()}), nil
}

// MarshalPublicKey encodes pub as the public key's PEM file.
func MarshalPublicKey(pub ed25519.PublicKey) ([]byte, error) {
	if len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("upgrade public key: %d bytes, not an ed25519 public key", len(pub))
	}
	return pem.EncodeToMemory(&pem.Block{Type: PublicKeyPEMType, Bytes: pub}), nil
}

// ParsePrivateKey reads the private key's PEM file.
func ParsePrivateKey(data []byte) (ed25519.PrivateKey, error) {
	seed, err := parsePEM(data, PrivateKeyPEMType, ed25519.SeedSize)
	if err != nil {
		return nil, fmt.Errorf("upgrade key: %w", err)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// ParsePublicKey reads the public key's PEM file.
func ParsePublicKey(data []byte) (ed25519.PublicKey, error) {
	b, err := parsePEM(data, PublicKeyPEMType, ed25519.PublicKeySize)
	if err != nil {
		return nil, fmt.Errorf("upgrade public key: %w", err)
	}
	return ed25519.PublicKey(b), nil
}

// parsePEM reads the one PEM block of data: of type want, with no
// headers, size bytes, and nothing but blank space around it.
func parsePEM(data []byte, want string, size int) ([]byte, error) {
	block, rest := pem.Decode(data)
	switch {
	case block == nil:
		return nil, fmt.Errorf("no PEM block; want a %q block", want)
	case block.Type == PublicKeyPEMType && want == PrivateKeyPEMType:
		return nil, errors.New("this is the public key (upgrade.pub), not the private key (upgrade.key)")
	case block.Type == PrivateKeyPEMType && want == PublicKeyPEMType:
		return nil, errors.New("this is the private key (upgrade.key), not the public key (upgrade.pub)")
	case block.Type != want:
		return nil, fmt.Errorf("a %q PEM block; want a %q block", block.Type, want)
	case len(block.Headers) > 0:
		return nil, errors.New("the PEM block has headers; it has none")
	case len(bytes.TrimSpace(rest)) > 0:
		return nil, errors.New("more follows the PEM block; the file holds one key")
	case len(block.Bytes) != size:
		return nil, fmt.Errorf("%d bytes in the PEM block, want %d", len(block.Bytes), size)
	}
	return block.Bytes, nil
}

// Fingerprint names pub in messages and records: sha256:<hex> of its 32
// bytes.
func Fingerprint(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return "sha256:" + hex.EncodeToString(sum[:])
}
