package serverpki

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/rke2os/rke2os/internal/artifact"
	"github.com/rke2os/rke2os/internal/durable"
)

// The upgrade signing key pair sits at the top of a secrets directory,
// beside the CAs: upgrade.key signs the upgrade artifacts rke2-build image
// writes; upgrade.pub, baked into every image built with the secrets,
// verifies them on the node. Neither is a node's file, as the CAs are:
// they are never baked below layout.BakedSecrets, and upgrade.key never
// goes into an image.
const (
	UpgradeKeyFile       = "upgrade.key"
	UpgradePublicKeyFile = "upgrade.pub"
)

// UpgradeKeyFiles are the key pair's files, relative to a secrets
// directory.
func UpgradeKeyFiles() []string { return []string{UpgradeKeyFile, UpgradePublicKeyFile} }

// upgradeKeyFix tells how to give a secrets directory made before upgrade
// signing its key pair.
func upgradeKeyFix(dir string) string {
	return fmt.Sprintf("add one with rke2-build secrets --upgrade-key-only %s, which touches nothing else there", dir)
}

// generateUpgradeKey writes a new upgrade key pair into dir, a new secrets
// directory: upgrade.key 0600, upgrade.pub 0644.
func generateUpgradeKey(dir string) error {
	pub, key, err := artifact.GenerateKey(nil)
	if err != nil {
		return err
	}
	keyPEM, pubPEM, err := marshalUpgradeKey(pub, key)
	if err != nil {
		return err
	}
	if err := durable.WriteFile(filepath.Join(dir, UpgradeKeyFile), keyPEM, 0o600); err != nil {
		return err
	}
	return durable.WriteFile(filepath.Join(dir, UpgradePublicKeyFile), pubPEM, 0o644)
}

func marshalUpgradeKey(pub ed25519.PublicKey, key ed25519.PrivateKey) (keyPEM, pubPEM []byte, err error) {
	if keyPEM, err = artifact.MarshalPrivateKey(key); err != nil {
		return nil, nil, err
	}
	if pubPEM, err = artifact.MarshalPublicKey(pub); err != nil {
		return nil, nil, err
	}
	return keyPEM, pubPEM, nil
}

// AddUpgradeKey gives dir, a secrets directory made before upgrade
// signing, a new upgrade key pair, and changes nothing else there. A
// directory that has upgrade.key keeps it: it is refused (an fs.ErrExist),
// unless upgrade.pub alone is missing, which is written again from the
// key. An upgrade.pub without its key is refused too: images that carry
// it take only artifacts signed by that lost key.
func AddUpgradeKey(dir string) error {
	if err := CheckSecrets(dir); err != nil {
		return err
	}
	keyPath, pubPath := filepath.Join(dir, UpgradeKeyFile), filepath.Join(dir, UpgradePublicKeyFile)
	hasKey, err := exists(keyPath)
	if err != nil {
		return fmt.Errorf("secrets %s: %w", dir, err)
	}
	hasPub, err := exists(pubPath)
	if err != nil {
		return fmt.Errorf("secrets %s: %w", dir, err)
	}
	switch {
	case hasKey && hasPub:
		return upgradeKeyExists{dir, fmt.Sprintf("%s already has an upgrade key pair (%s, %s); it is kept, never replaced: images that carry its upgrade.pub take only artifacts it signs", dir, UpgradeKeyFile, UpgradePublicKeyFile)}
	case hasPub:
		return upgradeKeyExists{dir, fmt.Sprintf("%s has %s but not %s: images that carry this upgrade.pub take only artifacts signed by its lost key. Find %s, or remove %s to make a new pair (then rebuild every image, since images with the old upgrade.pub refuse the new key's artifacts)",
			dir, UpgradePublicKeyFile, UpgradeKeyFile, UpgradeKeyFile, UpgradePublicKeyFile)}
	case hasKey:
		// Only the public half is missing: write it again from the key.
		data, err := os.ReadFile(keyPath)
		if err != nil {
			return fmt.Errorf("secrets %s: %w", dir, err)
		}
		key, err := artifact.ParsePrivateKey(data)
		if err != nil {
			return fmt.Errorf("secrets %s: %s: %w", dir, UpgradeKeyFile, err)
		}
		_, pubPEM, err := marshalUpgradeKey(key.Public().(ed25519.PublicKey), key)
		if err == nil {
			err = durable.CreateFile(pubPath, pubPEM, 0o644)
		}
		if err != nil {
			return fmt.Errorf("secrets %s: %w", dir, err)
		}
		return nil
	}
	pub, key, err := artifact.GenerateKey(nil)
	if err != nil {
		return fmt.Errorf("secrets %s: %w", dir, err)
	}
	keyPEM, pubPEM, err := marshalUpgradeKey(pub, key)
	if err != nil {
		return fmt.Errorf("secrets %s: %w", dir, err)
	}
	if err := durable.CreateFile(keyPath, keyPEM, 0o600); err != nil {
		return fmt.Errorf("secrets %s: %w", dir, err)
	}
	if err := durable.CreateFile(pubPath, pubPEM, 0o644); err != nil {
		// The key is new, used by nothing yet: leave dir as it was.
		os.Remove(keyPath)
		durable.SyncDir(dir)
		return fmt.Errorf("secrets %s: %w", dir, err)
	}
	return nil
}

// upgradeKeyExists refuses to replace an upgrade key: an fs.ErrExist.
type upgradeKeyExists struct{ dir, msg string }

func (e upgradeKeyExists) Error() string        { return "secrets: " + e.msg }
func (e upgradeKeyExists) Is(target error) bool { return target == fs.ErrExist }

// CheckUpgradeKey reads the upgrade key pair of the secrets directory dir
// and checks that upgrade.pub is upgrade.key's public key; it returns the
// public key. A directory made before upgrade signing has none: the error
// tells how to add one.
func CheckUpgradeKey(dir string) (ed25519.PublicKey, error) {
	fail := func(format string, a ...any) error {
		return fmt.Errorf("secrets %s: %s", dir, fmt.Sprintf(format, a...))
	}
	keyData, err := os.ReadFile(filepath.Join(dir, UpgradeKeyFile))
	if errors.Is(err, fs.ErrNotExist) {
		if absent(filepath.Join(dir, UpgradePublicKeyFile)) {
			return nil, fail("no %s, the key that signs upgrade artifacts (the directory was made before rke2os signed upgrades): %s", UpgradeKeyFile, upgradeKeyFix(dir))
		}
		return nil, fail("%s is missing, but %s is there: find the key, or see rke2-build secrets --upgrade-key-only %s", UpgradeKeyFile, UpgradePublicKeyFile, dir)
	}
	if err != nil {
		return nil, fail("%v", err)
	}
	key, err := artifact.ParsePrivateKey(keyData)
	if err != nil {
		return nil, fail("%s: %v", UpgradeKeyFile, err)
	}
	pubData, err := os.ReadFile(filepath.Join(dir, UpgradePublicKeyFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fail("%s is missing: write it again from %s with rke2-build secrets --upgrade-key-only %s", UpgradePublicKeyFile, UpgradeKeyFile, dir)
	}
	if err != nil {
		return nil, fail("%v", err)
	}
	pub, err := artifact.ParsePublicKey(pubData)
	if err != nil {
		return nil, fail("%s: %v", UpgradePublicKeyFile, err)
	}
	if !pub.Equal(key.Public()) {
		return nil, fail("%s is not the public key of %s: images would carry a key that refuses the artifacts signed beside them", UpgradePublicKeyFile, UpgradeKeyFile)
	}
	return pub, nil
}
