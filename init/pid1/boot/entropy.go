package boot

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rke2os/rke2os/init/shared/console"
	"github.com/rke2os/rke2os/init/shared/goroutine"
	"golang.org/x/sys/unix"
)

// EntropyWait is how long the init lets the kernel's random number
// generator initialise before it says that it has not.
const EntropyWait = 5 * time.Second

// WatchEntropy says once, in plain words, if the kernel's random number
// generator is still not ready after wait, and again when it becomes
// ready. Every key and certificate the node makes (etcd's, the kubelet's,
// TLS sessions) waits on it; without a hardware source (QEMU's default CPU
// under TCG has no RDRAND, and a VM without virtio-rng has no other) it
// can take minutes, and the boot then looks stuck for no visible reason.
// It returns at once; the watch runs in the background.
func WatchEntropy(wait time.Duration) {
	if src := HardwareRNG("/sys", "/proc/cpuinfo"); src == "" {
		// The kernel then seeds its generator from timer jitter alone,
		// which is slow under emulation: say so before it shows as a hang.
		slog.Warn("this machine has no hardware random number generator (no virtio-rng or TPM device, no RDRAND in the CPU): " +
			"the kernel seeds its generator from timer jitter, slowly in a VM without hardware acceleration, and the node's keys and certificates wait for it. " +
			"Give the VM a virtio-rng device (QEMU: -device virtio-rng-pci; libvirt: <rng model='virtio'>)")
		console.Event(console.EventRNGMissing)
	}
	if rngReady() {
		return
	}
	// A panic here costs the warning, never PID 1.
	goroutine.Go("entropy watch", func() {
		start := time.Now()
		for time.Since(start) < wait {
			if rngReady() {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		slog.Warn("the kernel's random number generator is not ready after " + wait.String() +
			": the node's keys and certificates (etcd, the kubelet, TLS) wait for it. " +
			"Give the machine a hardware RNG: in a VM a virtio-rng device (QEMU: -device virtio-rng-pci; libvirt: <rng model='virtio'>), " +
			"on hardware a CPU with RDRAND or a TPM")
		console.Event(console.EventRNGNotReady, "waited", wait)
		for !rngReady() {
			time.Sleep(time.Second)
		}
		slog.Info("the kernel's random number generator is ready", "after", time.Since(start).Round(100*time.Millisecond))
	})
}

// rngReady is RNGReady; tests replace it.
var rngReady = RNGReady

// HardwareRNG names the machine's hardware entropy source: the kernel's
// hw_random device (virtio_rng.0, tpm-rng-0, ...) or the CPU's RDRAND/RDSEED;
// "" when there is none.
func HardwareRNG(sys, cpuinfo string) string {
	if b, err := os.ReadFile(filepath.Join(sys, "class/misc/hw_random/rng_current")); err == nil {
		if s := strings.TrimSpace(string(b)); s != "" && s != "none" {
			return s
		}
	}
	b, err := os.ReadFile(cpuinfo)
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || strings.TrimSpace(k) != "flags" {
			continue
		}
		for _, f := range strings.Fields(v) {
			if f == "rdrand" || f == "rdseed" {
				return "cpu " + f
			}
		}
		break
	}
	return ""
}

// RNGReady reports whether the kernel's CRNG is initialised: getrandom
// without GRND_NONBLOCK would not block.
func RNGReady() bool {
	var b [1]byte
	_, err := unix.Getrandom(b[:], unix.GRND_NONBLOCK)
	return err == nil
}
