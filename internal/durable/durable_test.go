package durable

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "etc", "resolv.conf")
	for _, content := range []string{"nameserver 10.0.0.1\n", "nameserver 10.0.0.2\n"} {
		if err := WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != content {
			t.Fatalf("read %q, %v; want %q", got, err, content)
		}
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, %v; want 0644", fi.Mode(), err)
	}
	// No temporary files are left behind.
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("files in %s: %v, want resolv.conf alone", filepath.Dir(path), entries)
	}
	// A directory in the way is an error that names the path, and
	// leaves no temporary file.
	err = WriteFile(filepath.Dir(path), []byte("x"), 0o644)
	if err == nil || !strings.Contains(err.Error(), filepath.Dir(path)) {
		t.Errorf("replacing a directory: %v, want an error naming it", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("files in %s: %v, want etc alone", dir, entries)
	}
}

func TestWriteFileStaged(t *testing.T) {
	root := t.TempDir()
	pods := filepath.Join(root, "manifests")
	if err := os.Mkdir(pods, 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(pods, "etcd.yaml")
	if err := WriteFileStaged(p, root, []byte("pod"), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(p); err != nil || string(b) != "pod" {
		t.Errorf("read %q, %v", b, err)
	}
	if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, %v; want 0600", fi.Mode(), err)
	}
	if entries, _ := os.ReadDir(root); len(entries) != 1 {
		t.Errorf("files in %s: %v, want manifests alone", root, entries)
	}
	// Parents are not made: the staged directory's layout is the caller's.
	if err := WriteFileStaged(filepath.Join(root, "none", "x"), root, nil, 0o600); err == nil {
		t.Error("a missing parent: no error")
	}
}

func TestSymlink(t *testing.T) {
	dir := t.TempDir()
	link := filepath.Join(dir, "bin")
	for _, target := range []string{"data/a/bin", "data/b/bin", "data/b/bin"} {
		if err := Symlink(target, link); err != nil {
			t.Fatal(err)
		}
		if got, err := os.Readlink(link); err != nil || got != target {
			t.Fatalf("link -> %q, %v; want %q", got, err, target)
		}
	}
	// A plain file in the way is replaced too.
	os.Remove(link)
	os.WriteFile(link, []byte("x"), 0o644)
	if err := Symlink("t", link); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.Readlink(link); got != "t" {
		t.Errorf("link -> %q, want t", got)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("files in %s: %v, want bin alone", dir, entries)
	}
}

func TestCreateFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "key")
	if err := CreateFile(p, []byte("one"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := CreateFile(p, []byte("two"), 0o600); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("a second create: %v, want fs.ErrExist", err)
	}
	b, _ := os.ReadFile(p)
	fi, _ := os.Stat(p)
	if string(b) != "one" || fi.Mode().Perm() != 0o600 {
		t.Errorf("content %q mode %v", b, fi.Mode())
	}
	ents, _ := os.ReadDir(filepath.Dir(p))
	if len(ents) != 1 {
		t.Errorf("left behind: %v", ents)
	}
}
