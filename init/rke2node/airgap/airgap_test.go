package airgap

import (
	"os"
	"path/filepath"
	"testing"
)

// An archive linked from the boot medium takes its digest from the
// release file; any other archive is hashed.
func TestArchiveDigest(t *testing.T) {
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	medium := filepath.Join(dir, "medium.tar")
	other := filepath.Join(dir, "other.tar")
	os.WriteFile(medium, []byte("medium"), 0o644)
	os.WriteFile(other, []byte("other"), 0o644)
	link := filepath.Join(dir, "images", "medium.tar")
	os.MkdirAll(filepath.Dir(link), 0o755)
	if err := os.Symlink(medium, link); err != nil {
		t.Fatal(err)
	}
	known := map[string]string{medium: "sha256:from-release"}
	for _, tc := range []struct{ path, want string }{
		{link, "sha256:from-release"},
		{medium, "sha256:from-release"},
		// sha256("other")
		{other, "sha256:d9298a10d1b0735837dc4bd85dac641b0f3cef27a47e5d53a54f2f3f5b2fcffa"},
	} {
		got, err := archiveDigest(tc.path, known)
		if err != nil || got != tc.want {
			t.Errorf("archiveDigest(%s) = %q, %v; want %q", tc.path, got, err, tc.want)
		}
	}
	if _, err := archiveDigest(filepath.Join(dir, "missing.tar"), known); err == nil {
		t.Error("a missing archive has a digest")
	}
}
