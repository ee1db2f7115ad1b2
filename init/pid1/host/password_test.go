package host

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/rke2os/rke2os/init/shared/layout"
)

func TestEnsureNodePassword(t *testing.T) {
	root := t.TempDir()
	p := filepath.Join(root, layout.NodePassword)
	created, err := EnsureNodePassword(root)
	if err != nil || !created {
		t.Fatalf("first call: created=%v err=%v", created, err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^[0-9a-f]{32}\n$`).Match(b) {
		t.Errorf("password %q, want 32 hex characters", b)
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	// Kept as it is on the next boot.
	created, err = EnsureNodePassword(root)
	if err != nil || created {
		t.Fatalf("second call: created=%v err=%v", created, err)
	}
	if again, _ := os.ReadFile(p); string(again) != string(b) {
		t.Errorf("password changed: %q -> %q", b, again)
	}
	// An empty file is refused, not replaced.
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := EnsureNodePassword(root); err == nil || !strings.Contains(err.Error(), "is empty") {
		t.Errorf("empty file: %v", err)
	}
	if b, _ := os.ReadFile(p); len(b) != 0 {
		t.Errorf("an empty password file was written over: %q", b)
	}
	// An unreadable one (a directory in its place) too.
	os.Remove(p)
	os.Mkdir(p, 0o700)
	if _, err := EnsureNodePassword(root); err == nil {
		t.Errorf("unreadable file: no error")
	}
}
