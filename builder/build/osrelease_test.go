package build

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// The image's os-release, as the kubelet, people and the upgrader read it
// (golden: testdata/os-release.golden; UPDATE_GOLDEN=1 writes it).
func TestOSRelease(t *testing.T) {
	got, err := osRelease(Options{Role: "server", Version: "v1.34.4+rke2r1", OSVersion: "1.2.3", Epoch: time.Unix(1735689600, 0)})
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "os-release.golden")
	if os.Getenv("UPDATE_GOLDEN") != "" {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("os-release:\n%s\nwant:\n%s", got, want)
	}
	if _, err := osRelease(Options{Role: "server", OSVersion: "1.2 $(x)"}); err == nil {
		t.Error("an --os-version with a shell expansion was taken")
	}
}
