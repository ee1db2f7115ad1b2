package serverpki

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
)

// encryptionConfig is the apiserver's EncryptionConfiguration
// (apiserver.config.k8s.io/v1), the fields k3s writes, in its field order:
// json.Marshal of it gives the bytes k3s's does.
type encryptionConfig struct {
	Kind       string             `json:"kind"`
	APIVersion string             `json:"apiVersion"`
	Resources  []encryptResources `json:"resources"`
}

type encryptResources struct {
	Resources []string          `json:"resources"`
	Providers []encryptProvider `json:"providers"`
}

type encryptProvider struct {
	AESCBC   *aesConfig `json:"aescbc,omitempty"`
	Identity *struct{}  `json:"identity,omitempty"`
}

type aesConfig struct {
	Keys []aesKey `json:"keys"`
}

type aesKey struct {
	Name   string `json:"name"`
	Secret string `json:"secret"`
}

// newEncryptionConfig encrypts secrets with AES-CBC under key, and still
// reads those stored before encryption was on (identity), as k3s's does.
func newEncryptionConfig(key []byte) ([]byte, error) {
	return json.Marshal(encryptionConfig{
		Kind:       "EncryptionConfiguration",
		APIVersion: "apiserver.config.k8s.io/v1",
		Resources: []encryptResources{{
			Resources: []string{"secrets"},
			Providers: []encryptProvider{
				{AESCBC: &aesConfig{Keys: []aesKey{{Name: "aescbckey", Secret: base64.StdEncoding.EncodeToString(key)}}}},
				{Identity: &struct{}{}},
			},
		}},
	})
}

// encryptionConfigs makes server/cred/encryption-config.json once (RKE2
// always encrypts secrets) and encryption-state.json, where k3s's
// secrets-encrypt controller records the stage of a key rotation: "start-"
// and the sha256 of the config. An existing config holds the only key to
// the cluster's secrets in etcd: it is never rewritten, and one that is not
// an EncryptionConfiguration is an error.
func (b *builder) encryptionConfigs() error {
	p := b.paths.Server("cred", "encryption-config.json")
	if _, err := exists(p); err != nil {
		return fmt.Errorf("encryption-config.json: %w", err)
	}
	data, err := os.ReadFile(p)
	switch {
	case err == nil && len(data) > 0:
		var c encryptionConfig
		if err := json.Unmarshal(data, &c); err != nil || c.Kind != "EncryptionConfiguration" {
			return fmt.Errorf("%s is not an EncryptionConfiguration: it holds the key of the cluster's secrets, restore it", p)
		}
	case err == nil || errors.Is(err, os.ErrNotExist): // empty or absent: a first start
		key := make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return err
		}
		if data, err = newEncryptionConfig(key); err != nil {
			return err
		}
		if err := b.writeFile(p, data, 0o600); err != nil {
			return fmt.Errorf("encryption-config.json: %w", err)
		}
	default:
		return fmt.Errorf("encryption-config.json: %w", err)
	}
	state := b.paths.Server("cred", "encryption-state.json")
	if ok, err := exists(state); err != nil || ok {
		return err
	}
	sum := sha256.Sum256(data)
	if err := b.writeFile(state, []byte("start-"+hex.EncodeToString(sum[:])), 0o600); err != nil {
		return fmt.Errorf("encryption-state.json: %w", err)
	}
	return nil
}

// ipsecPSK makes server/cred/ipsec.psk once: the pre-shared key of
// flannel's IPsec backend, 48 random bytes in hex, as k3s does.
func (b *builder) ipsecPSK() error {
	p := b.paths.Server("cred", "ipsec.psk")
	if fi, err := os.Stat(p); err == nil && fi.Size() > 0 {
		return nil
	}
	psk, err := randomSecret(48)
	if err == nil {
		err = b.writeFile(p, []byte(psk+"\n"), 0o600)
	}
	if err != nil {
		return fmt.Errorf("ipsec.psk: %w", err)
	}
	return nil
}
