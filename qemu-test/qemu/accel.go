package qemu

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

var (
	accelOnce sync.Once
	accel     = "tcg"
)

// Accel returns "kvm" when RKE2_QEMU_ACCEL asks for it or a probe shows KVM
// boots a guest here, "tcg" otherwise. Nested KVM often hangs after the
// firmware, so the probe must see the guest's firmware finish, not only
// /dev/kvm open.
func Accel() string {
	accelOnce.Do(func() {
		switch os.Getenv("RKE2_QEMU_ACCEL") {
		case "tcg":
			return
		case "kvm":
			accel = "kvm"
			return
		}
		if f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0); err == nil {
			f.Close()
			if probeKVM() {
				accel = "kvm"
			}
		}
	})
	return accel
}

// probeKVM runs SeaBIOS with no boot device under KVM: it prints "No
// bootable device" on the serial console within seconds when KVM works.
func probeKVM() bool {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, "qemu-system-x86_64", "-accel", "kvm", "-display", "none", "-serial", "stdio",
		"-nodefaults", "-no-reboot", "-m", "64").CombinedOutput()
	return len(out) > 0 && containsAny(string(out), "No bootable device", "Booting from")
}

func containsAny(s string, subs ...string) bool {
	for _, x := range subs {
		if strings.Contains(s, x) {
			return true
		}
	}
	return false
}
