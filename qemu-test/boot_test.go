// Package qemutest boots the images rke2-build made (make image) in QEMU
// and checks what only a boot can prove.
//
// The tests wait on the init's machine-readable console lines: milestones
// (WaitMilestone), events (WaitEvent, Events; init/shared/console/events.go
// names them) and error lines. They match sentences only where the words
// are what a test proves (the fix the RNG warning gives) and in the
// third-party lines, which our code does not write:
//   - the kernel's "Kernel panic" and "EXT4-fs error";
//   - containerd's "ImageCreate event ... io.cri-containerd.pinned" and the
//     kubelet's and containerd's mention of the mirror pod "etcd-node1"
//     (their logs reach the console with debug: {logs: true});
//   - hello-init's "hello-init started" (the benchmark's baseline PID 1).
package qemutest

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rke2os/rke2os/init/shared/console"
	"github.com/rke2os/rke2os/qemu-test/qemu"
)

// Under TCG on two cores, OVMF alone takes tens of seconds.
const bootTimeout = 5 * time.Minute

func outDir(t *testing.T) string {
	t.Helper()
	d := os.Getenv("RKE2_OUT")
	if d == "" {
		d = "../out"
	}
	if _, err := os.Stat(filepath.Join(d, "rke2-server.iso")); err != nil {
		t.Fatalf("no images to boot in %s: run `make image` (or `make test`) first: %v", d, err)
	}
	return d
}

// bootAndPowerOff waits for the medium, presses the power button and
// expects an orderly shutdown with QEMU exiting by itself.
func bootAndPowerOff(t *testing.T, vm *qemu.VM, wantMedium string, allowed ...*regexp.Regexp) {
	t.Helper()
	if _, err := vm.WaitMilestone("modules-loaded", bootTimeout); err != nil {
		t.Fatal(err)
	}
	if wantMedium != "" {
		if _, err := vm.WaitEvent(console.EventMediumMounted, map[string]string{"label": wantMedium}, time.Minute); err != nil {
			t.Fatal(err)
		}
		// The airgap archive baked by make image is linked where RKE2 reads it.
		if _, err := vm.WaitEvent(console.EventImagesLinked, map[string]string{"count": "1", "dir": "/var/lib/rancher/rke2/agent/images"}, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	// The button's input device is watched once its module is loaded.
	if _, err := vm.WaitEvent(console.EventPowerButton, nil, time.Minute); err != nil {
		t.Fatal(err)
	}
	if errs := unexpectedErrors(vm, allowed); len(errs) > 0 {
		t.Errorf("init reported errors:\n%s", strings.Join(errs, "\n"))
	}
	if err := vm.Powerdown(); err != nil {
		t.Fatal(err)
	}
	if _, err := vm.WaitMilestone("shutdown-done", 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := vm.WaitExit(time.Minute); err != nil {
		t.Fatal(err)
	}
	ms := vm.Milestones()
	for _, order := range [][2]string{{"init-start", "modules-loaded"}, {"modules-loaded", "shutdown-begin"}, {"shutdown-begin", "shutdown-done"}} {
		if ms[order[0]] > ms[order[1]] {
			t.Errorf("milestone %s (t=%.3f) after %s (t=%.3f)", order[0], ms[order[0]], order[1], ms[order[1]])
		}
	}
	if n := strings.Count(vm.Console(), "milestone=init-start"); n != 1 {
		t.Errorf("init-start logged %d times, want once", n)
	}
}

func TestBootMatrix(t *testing.T) {
	out := outDir(t)
	for _, media := range []string{"iso", "raw"} {
		for _, fw := range []qemu.Firmware{qemu.BIOS, qemu.UEFI} {
			for _, machine := range []string{"pc", "q35"} {
				media, fw, machine := media, fw, machine
				t.Run(media+"/"+string(fw)+"/"+machine, func(t *testing.T) {
					t.Parallel()
					cfg := qemu.Config{Machine: machine, Firmware: fw}
					want := "RKE2_BOOT"
					if media == "iso" {
						cfg.ISO = filepath.Join(out, "rke2-server.iso")
					} else {
						// Written to a larger disk, as a user would: the
						// init grows the state partition to fit a node.
						cfg.Disk = qemu.Overlay(t, filepath.Join(out, "rke2-server.raw"), 8<<30)
						want = "RKE2_A"
					}
					bootAndPowerOff(t, qemu.Start(t, cfg), want)
				})
			}
		}
	}
}

func pxe(t *testing.T, role, extra string) qemu.Config {
	out := outDir(t)
	cmdline, err := os.ReadFile(filepath.Join(out, "rke2-"+role+".cmdline"))
	if err != nil {
		t.Fatal(err)
	}
	return qemu.Config{Machine: "q35",
		Kernel: filepath.Join(out, "rke2-"+role+".vmlinuz"), Initrd: filepath.Join(out, "rke2-"+role+".initrd"),
		Append: strings.TrimSpace(string(cmdline)) + " " + extra}
}

func TestPXEBoot(t *testing.T) {
	t.Parallel()
	for _, role := range []string{"server", "agent"} {
		t.Run(role, func(t *testing.T) {
			extra := ""
			if role == "agent" { // an agent needs a server to join and the token
				extra = "rke2.config=" + base64.StdEncoding.EncodeToString([]byte("rke2:\n  server: https://10.0.2.100:9345\n  token: my-shared-secret\n"))
			}
			vm := qemu.Start(t, pxe(t, role, extra))
			// With no network in the config, every NIC with a link asks DHCP:
			// QEMU's user network leases 10.0.2.15.
			if _, err := vm.WaitMilestone("network-up", bootTimeout); err != nil {
				t.Fatal(err)
			}
			if _, err := vm.WaitEvent(console.EventNetworkUp, map[string]string{"node_ip": "10.0.2.15"}, time.Minute); err != nil {
				t.Fatal(err)
			}
			// The lease came by the automatic DHCP, not a named interface.
			if _, err := vm.WaitEventFunc(console.EventDHCPLease, func(ev map[string]string) bool {
				return strings.HasPrefix(ev["item"], "eth0 (automatic DHCP")
			}, "a lease of the automatic DHCP on eth0", time.Second); err != nil {
				t.Error(err)
			}
			// Without a medium there are no airgap images: the runtime must come
			// from a registry, which this sandbox cannot reach.
			bootAndPowerOff(t, vm, "", regexp.MustCompile(`rke2-init error="node: .*rke2-runtime`))
			if len(vm.Events(console.EventMediumNone)) == 0 {
				t.Error("PXE boot did not report running from the initramfs alone")
			}
		})
	}
}

// Ctrl-Alt-Del reaches PID 1 as SIGINT: an orderly stop, then a reboot
// (QEMU's -no-reboot turns it into an exit).
func TestCtrlAltDelReboots(t *testing.T) {
	t.Parallel()
	vm := qemu.Start(t, pxe(t, "server", ""))
	if _, err := vm.WaitEvent(console.EventPowerButton, nil, bootTimeout); err != nil {
		t.Fatal(err)
	}
	if _, err := vm.QMP("send-key", map[string]any{"keys": []map[string]string{
		{"type": "qcode", "data": "ctrl"}, {"type": "qcode", "data": "alt"}, {"type": "qcode", "data": "delete"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := vm.WaitEvent(console.EventShutdownBegin, map[string]string{"action": "reboot"}, time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := vm.WaitMilestone("shutdown-done", time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := vm.WaitExit(time.Minute); err != nil {
		t.Fatal(err)
	}
}

// A panic inside a boot step is reported and the init stays up: the
// kernel does not panic, and the power button still works.
func TestPanicIsContained(t *testing.T) {
	t.Parallel()
	vm := qemu.Start(t, pxe(t, "server", "rke2.debug.panic=medium"))
	if _, err := vm.WaitFor(regexp.MustCompile(`rke2-init error="medium: panic: `), bootTimeout); err != nil {
		t.Fatal(err)
	}
	if _, err := vm.WaitEvent(console.EventPowerButton, nil, time.Minute); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(vm.Console(), "Kernel panic") {
		t.Fatal("kernel panicked")
	}
	if err := vm.Powerdown(); err != nil {
		t.Fatal(err)
	}
	if _, err := vm.WaitMilestone("shutdown-done", 2*time.Minute); err != nil {
		t.Fatal(err)
	}
}

// A broken config stops the boot with the source and line in plain words;
// the init stays up (maintenance mode) and still powers off on the button.
func TestBrokenConfig(t *testing.T) {
	t.Parallel()
	bad := base64.StdEncoding.EncodeToString([]byte("hostname: node1\nwrite_files:\n  - path: /etc/x\n    permissions: rw\n"))
	vm := qemu.Start(t, pxe(t, "server", "rke2.config="+bad))
	if _, err := vm.WaitFor(regexp.MustCompile(`rke2-init error=.*line 4 column 18: write_files\[0\]\.permissions \\"rw\\" is not an octal mode`), bootTimeout); err != nil {
		t.Fatal(err)
	}
	if _, err := vm.WaitEvent(console.EventMaintenance, nil, time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, ok := vm.Milestones()["config-loaded"]; ok {
		t.Error("config-loaded logged for a broken config")
	}
	if _, err := vm.WaitEvent(console.EventPowerButton, nil, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := vm.Powerdown(); err != nil {
		t.Fatal(err)
	}
	if _, err := vm.WaitMilestone("shutdown-done", 2*time.Minute); err != nil {
		t.Fatal(err)
	}
}
