package fsutil

import (
	"os"
	"path/filepath"
	"testing"
)

func TestCopyFile(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
	os.WriteFile(src, []byte("payload"), 0o644)
	os.WriteFile(dst, []byte("older and longer content"), 0o644)
	if err := CopyFile(src, dst); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(dst); string(b) != "payload" {
		t.Fatalf("dst = %q", b)
	}
	if err := CopyFile(filepath.Join(dir, "missing"), dst); err == nil {
		t.Fatal("copied a missing file")
	}
	if err := CopyFile(src, filepath.Join(dir, "no", "dir")); err == nil {
		t.Fatal("copied into a missing directory")
	}
}
