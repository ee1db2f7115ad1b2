package qemutest

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rke2os/rke2os/init/shared/console"
	"github.com/rke2os/rke2os/qemu-test/qemu"
)

// The power button is served from modules-loaded on: pressed at once, and
// pressed while the boot waits for a cable. A VM without an entropy source
// (no virtio-rng, no RDRAND under TCG) is told in plain words what it lacks.
func TestPowerButtonEarly(t *testing.T) {
	iso := filepath.Join(outDir(t), "rke2-server.iso")
	t.Run("right after modules-loaded", func(t *testing.T) {
		vm := qemu.Start(t, qemu.Config{ISO: iso, MemoryMiB: 2048})
		if _, err := vm.WaitMilestone("modules-loaded", bootTimeout); err != nil {
			t.Fatal(err)
		}
		powerOffInOrder(t, vm)
	})
	t.Run("waiting for a cable without an RNG", func(t *testing.T) {
		vm := qemu.Start(t, qemu.Config{ISO: iso, MemoryMiB: 2048, NoRNG: true})
		if err := vm.SetLink(false); err != nil {
			t.Fatal(err)
		}
		if _, err := vm.WaitEvent(console.EventRNGMissing, nil, bootTimeout); err != nil {
			t.Fatal(err)
		}
		// The words are what this proves: what the machine lacks, and the fix.
		if words := `this machine has no hardware random number generator \(no virtio-rng or TPM device, no RDRAND in the CPU\).*Give the VM a virtio-rng device \(QEMU: -device virtio-rng-pci`; !regexp.MustCompile(words).MatchString(vm.Console()) {
			t.Fatalf("no %q on the console", words)
		}
		if _, err := vm.WaitEventFunc(console.EventCarrierWaiting, func(ev map[string]string) bool {
			return ev["waited"] == "30s" && strings.Contains(ev["links"], "eth0")
		}, "a wait of 30s for carrier with eth0 present", bootTimeout); err != nil {
			t.Fatal(err)
		}
		if ms := vm.Milestones(); ms["network-up"] != 0 {
			t.Errorf("network-up at t=%.3f with the cable unplugged", ms["network-up"])
		}
		powerOffInOrder(t, vm)
	})
}

// powerOffInOrder presses the power button and expects the init's orderly
// shutdown, then QEMU exiting by itself, with no error on the way but those
// allowed.
func powerOffInOrder(t *testing.T, vm *qemu.VM, allowed ...*regexp.Regexp) {
	t.Helper()
	if err := vm.Powerdown(); err != nil {
		t.Fatal(err)
	}
	if _, err := vm.WaitMilestone("shutdown-done", 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := vm.WaitExit(time.Minute); err != nil {
		t.Fatal(err)
	}
	if errs := unexpectedErrors(vm, allowed); len(errs) > 0 {
		t.Errorf("init reported errors:\n%s", strings.Join(errs, "\n"))
	}
}

// unexpectedErrors are the init's error lines that match none of allowed.
func unexpectedErrors(vm *qemu.VM, allowed []*regexp.Regexp) []string {
	var errs []string
	for _, e := range vm.Errors() {
		ok := false
		for _, re := range allowed {
			ok = ok || re.MatchString(e)
		}
		if !ok {
			errs = append(errs, e)
		}
	}
	return errs
}
