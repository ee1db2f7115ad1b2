package boot

import (
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rke2os/rke2os/internal/syncbuf"
)

func TestHardwareRNG(t *testing.T) {
	for _, c := range []struct {
		name, current, flags, want string
	}{
		{"virtio-rng", "virtio_rng.0\n", "fpu vme sse2", "virtio_rng.0"},
		{"rdrand", "none\n", "fpu sse2 rdrand hypervisor", "cpu rdrand"},
		{"rdseed only", "", "fpu rdseed", "cpu rdseed"},
		{"none (QEMU TCG without virtio-rng)", "none\n", "fpu de pse tsc msr pae sse sse2 hypervisor", ""},
		{"no hw_random at all", "-", "fpu", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			sys := filepath.Join(dir, "sys")
			if c.current != "-" {
				p := filepath.Join(sys, "class/misc/hw_random/rng_current")
				os.MkdirAll(filepath.Dir(p), 0o755)
				os.WriteFile(p, []byte(c.current), 0o644)
			}
			cpuinfo := filepath.Join(dir, "cpuinfo")
			os.WriteFile(cpuinfo, []byte("processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: "+c.flags+"\n\nprocessor\t: 1\nflags\t\t: rdrand\n"), 0o644)
			if got := HardwareRNG(sys, cpuinfo); got != c.want {
				t.Errorf("HardwareRNG = %q, want %q", got, c.want)
			}
		})
	}
}

// The test machine's kernel has initialised its generator.
func TestRNGReady(t *testing.T) {
	if !RNGReady() {
		t.Error("the kernel's random number generator is not ready on the test machine")
	}
}

// A panic in the entropy watch is logged with its stack, and the process
// (PID 1 on a node) stays up.
func TestWatchEntropyPanic(t *testing.T) {
	buf := syncbuf.CaptureLog(t)
	var calls atomic.Int32
	rngReady = func() bool {
		if calls.Add(1) == 1 {
			return false // not ready at the boot: the watch starts
		}
		panic("getrandom broke")
	}
	defer func() { rngReady = RNGReady }()
	WatchEntropy(time.Hour)
	for end := time.Now().Add(5 * time.Second); !strings.Contains(buf.String(), "panic=\"getrandom broke\""); {
		if time.Now().After(end) {
			t.Fatalf("no panic logged:\n%s", buf.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if out := buf.String(); !strings.Contains(out, `msg=panic in="entropy watch"`) || !strings.Contains(out, "boot.WatchEntropy") {
		t.Fatalf("the panic is logged without its place or stack:\n%s", out)
	}
}
