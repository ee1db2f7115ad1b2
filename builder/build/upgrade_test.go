package build

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rke2os/rke2os/internal/artifact"
)

// upgradeInputs writes a small fake slot image (mode perm) and an upgrade
// key file, and says where they are.
func upgradeInputs(t *testing.T, perm os.FileMode) (slot, keyFile string, pub ed25519.PublicKey, content []byte) {
	t.Helper()
	dir := t.TempDir()
	content = bytes.Repeat([]byte("FAT32 slot image "), 4000)
	slot = filepath.Join(dir, "slot.img")
	must(t, os.WriteFile(slot, content, perm))
	must(t, os.Chmod(slot, perm))
	pub, key, err := artifact.GenerateKey(nil)
	must(t, err)
	b, err := artifact.MarshalPrivateKey(key)
	must(t, err)
	keyFile = filepath.Join(dir, "upgrade.key")
	must(t, os.WriteFile(keyFile, b, 0o600))
	return slot, keyFile, pub, content
}

func upgradeManifest() artifact.Manifest {
	return artifact.Manifest{Role: "agent", Version: "v1.34.4+rke2r1", Build: "test", Created: time.Unix(1735689600, 0)}
}

// noTemporaries fails if a temporary file is left in dir.
func noTemporaries(t *testing.T, dir string) {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("left behind: %s", e.Name())
		}
	}
}

// writeUpgrade writes an artifact a node takes, replacing the old one,
// as private as the slot image it carries.
func TestWriteUpgrade(t *testing.T) {
	for _, c := range []struct {
		name       string
		slot, want os.FileMode
	}{
		{"public slot image", 0o644, 0o644},
		{"private slot image", 0o600, 0o600},
	} {
		t.Run(c.name, func(t *testing.T) {
			slot, keyFile, pub, content := upgradeInputs(t, c.slot)
			outDir := t.TempDir()
			out := filepath.Join(outDir, "rke2-agent.upgrade")
			must(t, os.WriteFile(out, []byte("the previous build's"), 0o644))
			must(t, writeUpgrade(out, slot, upgradeManifest(), keyFile))

			m, err := artifact.VerifyFile(out, pub)
			if err != nil {
				t.Fatal(err)
			}
			if m.Role != "agent" || m.Version != "v1.34.4+rke2r1" || m.SlotSize != int64(len(content)) || !m.Created.Equal(time.Unix(1735689600, 0)) {
				t.Errorf("manifest %+v", m)
			}
			f, err := os.Open(out)
			must(t, err)
			defer f.Close()
			a, err := artifact.Open(f, pub)
			must(t, err)
			if got, err := io.ReadAll(a.Slot()); err != nil || !bytes.Equal(got, content) {
				t.Errorf("slot image: %v, same %v", err, bytes.Equal(got, content))
			}
			if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != c.want {
				t.Errorf("mode %v (%v), want %v", fi.Mode().Perm(), err, c.want)
			}
			noTemporaries(t, outDir)

			// The same inputs, the same bytes.
			first, _ := os.ReadFile(out)
			must(t, writeUpgrade(out, slot, upgradeManifest(), keyFile))
			if again, _ := os.ReadFile(out); !bytes.Equal(first, again) {
				t.Error("two writes of the same inputs differ")
			}
		})
	}
}

// A failed write leaves the old artifact as it was, and no temporary
// file.
func TestWriteUpgradeFails(t *testing.T) {
	slot, keyFile, _, _ := upgradeInputs(t, 0o644)
	pubFile := filepath.Join(t.TempDir(), "upgrade.pub")
	_, key, _ := artifact.GenerateKey(nil)
	b, _ := artifact.MarshalPublicKey(key.Public().(ed25519.PublicKey))
	must(t, os.WriteFile(pubFile, b, 0o644))
	for _, c := range []struct {
		name                string
		slot, keyFile, want string
		change              func(m *artifact.Manifest)
		input               bool // an InputError
	}{
		{"no key file", slot, filepath.Join(t.TempDir(), "upgrade.key"), "upgrade signing key", nil, true},
		{"the public key for the private", slot, pubFile, "this is the public key", nil, true},
		{"no slot image", filepath.Join(t.TempDir(), "slot.img"), keyFile, "no such file", nil, false},
		{"no version", slot, keyFile, "version", func(m *artifact.Manifest) { m.Version = "" }, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			outDir := t.TempDir()
			out := filepath.Join(outDir, "rke2-agent.upgrade")
			must(t, os.WriteFile(out, []byte("the previous build's"), 0o644))
			m := upgradeManifest()
			if c.change != nil {
				c.change(&m)
			}
			err := writeUpgrade(out, c.slot, m, c.keyFile)
			var ie *InputError
			if err == nil || !strings.Contains(err.Error(), c.want) || errors.As(err, &ie) != c.input {
				t.Fatalf("err = %v, want %q (an InputError: %v)", err, c.want, c.input)
			}
			if b, _ := os.ReadFile(out); string(b) != "the previous build's" {
				t.Error("the old artifact was changed")
			}
			noTemporaries(t, outDir)
		})
	}
}
