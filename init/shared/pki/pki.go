// Package pki makes the certificates of the control plane where RKE2 keeps
// them (server/tls/...). A CA that is already there is used as it is, so
// that a user can bring their own (RKE2's custom CA support); a leaf that is
// valid, signed by the current CA and names the right hosts is kept.
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/rke2os/rke2os/internal/durable"
)

// CA is a certificate authority: its certificate and key.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// EnsureCA loads the CA at certPath/keyPath, or creates one named cn.
func EnsureCA(certPath, keyPath, cn string) (*CA, error) {
	if ca, err := loadCA(certPath, keyPath); err == nil {
		return ca, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: fmt.Sprintf("%s@%d", cn, now.Unix())},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	cert, _ := x509.ParseCertificate(der)
	if err := writePair(certPath, keyPath, der, key); err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: key}, nil
}

// LoadCA loads the CA at certPath/keyPath; it makes none.
func LoadCA(certPath, keyPath string) (*CA, error) { return loadCA(certPath, keyPath) }

func loadCA(certPath, keyPath string) (*CA, error) {
	cb, err := os.ReadFile(certPath)
	if err != nil {
		return nil, err
	}
	kb, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, err
	}
	cert, err := parseCert(cb)
	if err != nil {
		return nil, fmt.Errorf("CA %s: %w", certPath, err)
	}
	block, _ := pem.Decode(kb)
	if block == nil {
		return nil, fmt.Errorf("CA key %s: no PEM block", keyPath)
	}
	key, err := parseKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("CA key %s: %w", keyPath, err)
	}
	if !cert.IsCA {
		return nil, fmt.Errorf("CA %s: not a CA certificate", certPath)
	}
	return &CA{Cert: cert, Key: key}, nil
}

func parseKey(der []byte) (crypto.Signer, error) {
	if k, err := x509.ParsePKCS8PrivateKey(der); err == nil {
		if s, ok := k.(crypto.Signer); ok {
			return s, nil
		}
	}
	if k, err := x509.ParseECPrivateKey(der); err == nil {
		return k, nil
	}
	if k, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		return k, nil
	}
	return nil, errors.New("not an EC, RSA or PKCS#8 private key")
}

// ReadCert reads the first certificate of the PEM file at p.
func ReadCert(p string) (*x509.Certificate, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	c, err := parseCert(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return c, nil
}

func parseCert(b []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM certificate")
	}
	return x509.ParseCertificate(block.Bytes)
}

// Leaf describes a certificate to issue.
type Leaf struct {
	CN     string
	Org    []string
	DNS    []string
	IPs    []net.IP
	Server bool // server auth
	Client bool // client auth
}

// Issue writes a certificate signed by ca to certPath/keyPath, unless one
// there is still good: signed by ca, names the same hosts, valid now and for
// more than 90 days. It reports whether it wrote a new one.
func (ca *CA) Issue(certPath, keyPath string, l Leaf) (bool, error) {
	now := time.Now()
	if cb, err := os.ReadFile(certPath); err == nil {
		if cur, err := parseCert(cb); err == nil && ca.stillGood(cur, l, now) && keyMatches(keyPath, cur) {
			return false, nil
		}
	}
	certPEM, keyPEM, err := ca.Sign(l)
	if err != nil {
		return false, err
	}
	if err := write(keyPath, keyPEM, 0o600); err != nil {
		return false, err
	}
	return true, write(certPath, certPEM, 0o644)
}

// Sign makes a new key and a certificate for l signed by ca, valid for a
// year, both PEM-encoded; nothing is written. It is for a certificate
// that leaves the machine (an admin's kubeconfig), whose key must not sit
// in a file on the way.
func (ca *CA) Sign(l Leaf) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	certPEM, err = ca.sign(l, key.Public())
	if err != nil {
		return nil, nil, err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return certPEM, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), nil
}

// SignCSR issues l's certificate for the key of csr, a PEM certificate
// request whose signature proves its sender holds that key: the key never
// leaves the machine that asks. The names come from l, never from the
// request, which is the caller's word only.
func (ca *CA) SignCSR(csrPEM []byte, l Leaf) ([]byte, error) {
	block, _ := pem.Decode(csrPEM)
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return nil, errors.New("no PEM CERTIFICATE REQUEST")
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("certificate request: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("certificate request: %w", err)
	}
	return ca.sign(l, csr.PublicKey)
}

// sign is l's certificate for pub, valid for a year, PEM-encoded.
func (ca *CA) sign(l Leaf, pub crypto.PublicKey) ([]byte, error) {
	now := time.Now()
	var usage []x509.ExtKeyUsage
	if l.Server {
		usage = append(usage, x509.ExtKeyUsageServerAuth)
	}
	if l.Client {
		usage = append(usage, x509.ExtKeyUsageClientAuth)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: l.CN, Organization: l.Org},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.AddDate(1, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  usage,
		DNSNames:     l.DNS,
		IPAddresses:  l.IPs,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, pub, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("issue %s: %w", l.CN, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

// stillGood reports whether c can be kept for l at now. A certificate made
// while the clock was ahead (before NTP set it back) starts in the future,
// and peers refuse it until then: it is made again.
func (ca *CA) stillGood(c *x509.Certificate, l Leaf, now time.Time) bool {
	if c.CheckSignatureFrom(ca.Cert) != nil || now.Before(c.NotBefore) || c.NotAfter.Sub(now) < 90*24*time.Hour {
		return false
	}
	if !slices.Equal(c.DNSNames, l.DNS) || len(c.IPAddresses) != len(l.IPs) {
		return false
	}
	for i := range l.IPs {
		if !c.IPAddresses[i].Equal(l.IPs[i]) {
			return false
		}
	}
	return c.Subject.CommonName == l.CN
}

// keyMatches reports whether the key at keyPath is c's: the key is written
// before the certificate, and a power cut between the two leaves a new key
// beside the old certificate, a pair no peer accepts.
func keyMatches(keyPath string, c *x509.Certificate) bool {
	kb, err := os.ReadFile(keyPath)
	if err != nil {
		return false
	}
	blk, _ := pem.Decode(kb)
	if blk == nil {
		return false
	}
	key, err := parseKey(blk.Bytes)
	if err != nil {
		return false
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	return ok && pub.Equal(c.PublicKey)
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}

func writePair(certPath, keyPath string, der []byte, key *ecdsa.PrivateKey) error {
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	if err := write(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		return err
	}
	return write(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

// write writes a certificate or key durably (see durable.WriteFile):
// a power cut right after the first boot must not leave an empty CA.
func write(p string, b []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	return durable.WriteFile(p, b, mode)
}
