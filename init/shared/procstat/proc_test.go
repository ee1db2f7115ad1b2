package procstat

import (
	"os"
	"path/filepath"
	"testing"
)

func TestProcKiB(t *testing.T) {
	p := filepath.Join(t.TempDir(), "status")
	os.WriteFile(p, []byte("Name:\trke2-init\nVmPeak:\t   20000 kB\nVmRSS:\t    9876 kB\nThreads:\t7\n"), 0o644)
	for key, want := range map[string]int64{"VmRSS": 9876, "VmPeak": 20000, "VmSwap": 0} {
		if got := ProcKiB(p, key); got != want {
			t.Errorf("%s = %d, want %d", key, got, want)
		}
	}
	if ProcKiB("/proc/self/status", "VmRSS") <= 0 {
		t.Error("no VmRSS for this process")
	}
	if ProcKiB(filepath.Join(t.TempDir(), "missing"), "VmRSS") != 0 {
		t.Error("a missing file has a size")
	}
}
