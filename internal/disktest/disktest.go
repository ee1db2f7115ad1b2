// Package disktest makes disk images for tests: sparse files standing in
// for block devices, bytes written at offsets, and the Debian tools
// (mkfs.*, blkid, losetup) run over them. Only tests import it.
package disktest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// ZeroFile is a sparse file of size bytes of zeros, standing in for a
// blank device.
func ZeroFile(t testing.TB, size int64) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "dev.img")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, size); err != nil {
		t.Fatal(err)
	}
	return p
}

// WriteAt writes b into the file p at off.
func WriteAt(t testing.TB, p string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// FileSize is the size of the file p.
func FileSize(t testing.TB, p string) int64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// Tool runs a command that writes an image onto its last argument.
func Tool(name string, args ...string) func(*testing.T, string) {
	return func(t *testing.T, p string) { Run(t, nil, name, append(args, p)...) }
}

// Run runs a Debian tool, failing the test if it fails.
func Run(t testing.TB, env []string, name string, args ...string) {
	t.Helper()
	Output(t, env, name, args...)
}

// Output runs a Debian tool and returns its output. A missing tool fails
// the test: CI installs them (make deps), and a skipped test proves nothing.
func Output(t testing.TB, env []string, name string, args ...string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		for _, dir := range []string{"/usr/sbin", "/sbin"} { // not on a user's PATH on Debian
			if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
				path = filepath.Join(dir, name)
			}
		}
	}
	if path == "" {
		t.Fatalf("%s is not installed: make deps installs the Debian packages the tests need (DEB_PKGS in the Makefile)", name)
	}
	cmd := exec.Command(path, args...)
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out, stderr.Bytes())
	}
	return string(out)
}

// Loop attaches p to a free loop device until the test ends.
func Loop(t testing.TB, p string) string {
	t.Helper()
	dev := strings.TrimSpace(Output(t, nil, "losetup", "--find", "--show", p))
	t.Cleanup(func() {
		if out, err := exec.Command("losetup", "--detach", dev).CombinedOutput(); err != nil {
			t.Errorf("losetup --detach %s: %v\n%s", dev, err, out)
		}
	})
	return dev
}
