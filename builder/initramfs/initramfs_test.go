package initramfs

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

func archive(t *testing.T, mtime time.Time) []byte {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "init")
	if err := os.WriteFile(src, []byte("#!init"), 0o700); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(src, mtime, mtime)
	a := New(1735689600)
	for _, err := range []error{
		a.File("init", src, 0o755),
		a.CharDev("dev/console", 0o600, 5, 1),
		a.Bytes("lib/modules/6.1/rke2-modules.load", []byte("kernel/a.ko\n"), 0o644),
		a.Symlink("bin", "usr/bin"),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	var b bytes.Buffer
	if _, err := a.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestDeterministic(t *testing.T) {
	a := archive(t, time.Unix(1e9, 0))
	b := archive(t, time.Unix(2e9, 0))
	if !bytes.Equal(a, b) {
		t.Fatal("same inputs with other file dates gave other bytes")
	}
	names, err := List(a)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"bin", "dev", "dev/console", "init", "lib", "lib/modules", "lib/modules/6.1", "lib/modules/6.1/rke2-modules.load"}
	if !reflect.DeepEqual(names, want) {
		t.Fatalf("names = %v, want %v (sorted, with parents)", names, want)
	}
}

func TestTreeRefusesDevices(t *testing.T) {
	a := New(0)
	if err := a.File("x", "/dev/null", 0o644); err == nil {
		t.Fatal("a device was accepted as a regular file")
	}
}
