package serverpki

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rke2os/rke2os/internal/artifact"
)

// filesBelow reads every file below dir, by relative path.
func filesBelow(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	must(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		fi, _ := d.Info()
		files[rel] = fi.Mode().String() + " " + string(b)
		return err
	}))
	return files
}

// The key pair GenerateSecrets makes signs what its upgrade.pub verifies.
func TestGeneratedUpgradeKey(t *testing.T) {
	dir := generate(t)
	pub, err := CheckUpgradeKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(filepath.Join(dir, UpgradeKeyFile))
	key, err := artifact.ParsePrivateKey(data)
	if err != nil {
		t.Fatal(err)
	}
	if !ed25519.Verify(pub, []byte("m"), ed25519.Sign(key, []byte("m"))) {
		t.Error("upgrade.pub does not verify what upgrade.key signs")
	}
	if other, _ := CheckUpgradeKey(generate(t)); other.Equal(pub) {
		t.Error("two secrets directories have the same upgrade key")
	}
}

// A secrets directory made before upgrade signing gets a key pair from
// AddUpgradeKey, and nothing else changes; a key already there is never
// replaced.
func TestAddUpgradeKey(t *testing.T) {
	dir := generate(t)
	for _, f := range UpgradeKeyFiles() {
		must(t, os.Remove(filepath.Join(dir, f)))
	}
	before := filesBelow(t, dir)
	_, err := CheckUpgradeKey(dir)
	if err == nil || !strings.Contains(err.Error(), "no upgrade.key") || !strings.Contains(err.Error(), "rke2-build secrets --upgrade-key-only "+dir) {
		t.Fatalf("CheckUpgradeKey of an old directory: %v, want the fix", err)
	}
	must(t, AddUpgradeKey(dir))
	pub, err := CheckUpgradeKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	after := filesBelow(t, dir)
	for rel, v := range before {
		if after[rel] != v {
			t.Errorf("%s changed", rel)
		}
	}
	if len(after) != len(before)+2 {
		t.Errorf("%d files after, %d before: want the key pair added", len(after), len(before))
	}
	checkSecretsDir(t, dir)

	// Again: refused, nothing changed.
	err = AddUpgradeKey(dir)
	if !errors.Is(err, fs.ErrExist) || !strings.Contains(err.Error(), "never replaced") {
		t.Fatalf("again: %v, want fs.ErrExist", err)
	}
	if again, _ := CheckUpgradeKey(dir); !again.Equal(pub) {
		t.Fatal("the key pair was replaced")
	}

	// upgrade.pub alone lost: written again from the key.
	must(t, os.Remove(filepath.Join(dir, UpgradePublicKeyFile)))
	if _, err := CheckUpgradeKey(dir); err == nil || !strings.Contains(err.Error(), "upgrade.pub is missing") {
		t.Errorf("without upgrade.pub: %v", err)
	}
	must(t, AddUpgradeKey(dir))
	if again, err := CheckUpgradeKey(dir); err != nil || !again.Equal(pub) {
		t.Fatalf("upgrade.pub written again: %v, same key %v", err, again.Equal(pub))
	}
	checkSecretsDir(t, dir)

	// upgrade.key alone lost: refused, upgrade.pub kept.
	must(t, os.Remove(filepath.Join(dir, UpgradeKeyFile)))
	pubFile, _ := os.ReadFile(filepath.Join(dir, UpgradePublicKeyFile))
	if err := AddUpgradeKey(dir); !errors.Is(err, fs.ErrExist) || !strings.Contains(err.Error(), "lost key") {
		t.Errorf("without upgrade.key: %v, want a refusal", err)
	}
	if now, _ := os.ReadFile(filepath.Join(dir, UpgradePublicKeyFile)); !bytes.Equal(now, pubFile) {
		t.Error("upgrade.pub changed")
	}
	if _, err := CheckUpgradeKey(dir); err == nil || !strings.Contains(err.Error(), "upgrade.key is missing") {
		t.Errorf("CheckUpgradeKey without upgrade.key: %v", err)
	}
}

func TestAddUpgradeKeyRefused(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "secrets")
	if err := AddUpgradeKey(missing); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("a directory that is not there: %v", err)
	}
	if _, err := os.Stat(missing); !errors.Is(err, fs.ErrNotExist) {
		t.Error("AddUpgradeKey made the directory")
	}
	other := t.TempDir()
	if err := AddUpgradeKey(other); err == nil || !strings.Contains(err.Error(), "is missing") {
		t.Errorf("a directory that holds no secrets: %v", err)
	}
	if ents, _ := os.ReadDir(other); len(ents) > 0 {
		t.Errorf("AddUpgradeKey wrote %d files into a directory that holds no secrets", len(ents))
	}
}

func TestCheckUpgradeKeyRefused(t *testing.T) {
	for _, c := range []struct {
		name   string
		change func(t *testing.T, dir string)
		want   string
	}{
		{"another directory's upgrade.pub", func(t *testing.T, dir string) {
			b, _ := os.ReadFile(filepath.Join(generate(t), UpgradePublicKeyFile))
			must(t, os.WriteFile(filepath.Join(dir, UpgradePublicKeyFile), b, 0o644))
		}, "upgrade.pub is not the public key of upgrade.key"},
		{"upgrade.key not a key", func(t *testing.T, dir string) {
			must(t, os.WriteFile(filepath.Join(dir, UpgradeKeyFile), []byte("nope\n"), 0o600))
		}, "upgrade.key: upgrade key: no PEM block"},
		{"the keys swapped", func(t *testing.T, dir string) {
			k, _ := os.ReadFile(filepath.Join(dir, UpgradeKeyFile))
			p, _ := os.ReadFile(filepath.Join(dir, UpgradePublicKeyFile))
			must(t, os.WriteFile(filepath.Join(dir, UpgradeKeyFile), p, 0o600))
			must(t, os.WriteFile(filepath.Join(dir, UpgradePublicKeyFile), k, 0o644))
		}, "this is the public key"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := generate(t)
			c.change(t, dir)
			if _, err := CheckUpgradeKey(dir); err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), dir) {
				t.Fatalf("err = %v, want %q naming the directory", err, c.want)
			}
		})
	}
}
