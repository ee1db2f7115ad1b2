//go:build installtest

package qemutest

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rke2os/rke2os/init/shared/console"
	"github.com/rke2os/rke2os/internal/disktest"
	"github.com/rke2os/rke2os/qemu-test/qemu"
)

// installTimeout bounds an ISO boot that installs: the boot to the config,
// then the ESP and the system slot (about 400 MiB through go-diskfs' FAT
// writer) written and read back, under TCG.
const installTimeout = 20 * time.Minute

// The server ISO installs itself onto a blank 8 GiB disk, as a user does on
// bare metal: the config (NoCloud user-data) says install: {device:
// /dev/vda, after: reboot}, and the machine boots from its disk first, so
// that the blank disk falls through to the CD. The install logs each step
// and its progress, and reboots. The disk then holds the raw image's
// partition table (GUIDs, starts, sizes) and slot A's bytes, and the
// config on its ESP without the install section. The next boot, with the
// ISO still attached and no NoCloud volume at all, comes from the disk
// (GRUB's rke2.slot=A, slot A's partition as the medium), with the
// carried config (its hostname names etcd's pod), and reaches node-ready.
// A last boot from the ISO against the installed disk, without wipe:
// true, refuses it, says why and the fix, and writes nothing.
func TestInstall(t *testing.T) {
	out := outDir(t)
	disk := filepath.Join(t.TempDir(), "disk.raw") // raw, so that the test reads what the VM wrote
	if err := os.WriteFile(disk, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(disk, 8<<30); err != nil {
		t.Fatal(err)
	}
	n := newTestNode(t, qemu.Config{ISO: filepath.Join(out, "rke2-server.iso"), Disk: disk, DiskFirst: true})
	n.userData("install:\n  device: /dev/vda\n  after: reboot\n")
	cidataDrive := n.cfg.Extra

	// 1. The ISO installs, and reboots (QEMU's -no-reboot: it exits).
	started := time.Now()
	vm := qemu.Start(t, n.cfg)
	// Progress at least every 10 s while the disk is written, as seen
	// from here (the init's lines carry no time of their own).
	waitInstalled(t, vm, 10*time.Second)
	if _, err := vm.WaitEvent(console.EventShutdownBegin, map[string]string{"action": "reboot"}, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := vm.WaitExit(2 * time.Minute); err != nil {
		t.Fatal(err)
	}
	took := time.Since(started)
	con := vm.Console()
	for _, re := range []string{
		`boot medium mounted" device=/dev/sr0 fstype=iso9660 label=RKE2_BOOT`,
		`install: target disk" device=/dev/vda size="8.0 GiB" .* chosen_by="install.device /dev/vda"`,
		`install: the disk is blank" device=/dev/vda`,
		`install: system slot A" device=/dev/vda mib=\d+`,
		`install: (progress|finished)" what="system slot A" device=/dev/vda written_mib=\d+ of_mib=\d+`,
		`install: system slot A, read back from the disk, matches the slot image" device=/dev/vda sha256=sha256:[0-9a-f]{64}`,
		`install: partition table and boot code written, last: the disk boots`,
		`install: done" device=/dev/vda slot=A`,
		`installed: the system is on the disk`,
	} {
		if !regexp.MustCompile(re).MatchString(con) {
			t.Errorf("the install's console lacks %s", re)
		}
	}
	// Nothing of the live node started.
	for _, m := range []string{"network-up", "content-ready"} {
		if _, ok := vm.Milestones()[m]; ok {
			t.Errorf("milestone %s on the boot that installed", m)
		}
	}
	if evs := vm.Events("installed"); len(evs) != 1 {
		t.Errorf("installed events: %v", evs)
	} else if ev := evs[0]; ev["device"] != "/dev/vda" || ev["found"] != "blank" || !positive(ev["seconds"]) || !positive(ev["write_seconds"]) ||
		!positive(ev["written_mib"]) {
		t.Errorf("the installed event: %v", ev)
	} else {
		t.Logf("install: %s MiB written, synced and read back in %s s, the install %s s", ev["written_mib"], ev["write_seconds"], ev["seconds"])
	}
	t.Logf("install: %s from QEMU's start to its exit; timeline %v", took.Round(time.Second), vm.Milestones())

	// 2. The disk holds the raw image's table and slot A, and the config.
	raw := filepath.Join(out, "rke2-server.raw")
	want, got := disktest.GPT(t, raw), disktest.GPT(t, disk)
	if got.GUID != want.GUID || len(got.Partitions) != len(want.Partitions) {
		t.Fatalf("installed disk GUID %s with %d partitions, the raw image's %s with %d", got.GUID, len(got.Partitions), want.GUID, len(want.Partitions))
	}
	for i, w := range want.Partitions {
		g := got.Partitions[i]
		if g.Name != w.Name || g.GUID != w.GUID || g.Start != w.Start || g.End != w.End || g.Type != w.Type {
			t.Errorf("partition %d: %s %s %d-%d, the raw image's %s %s %d-%d", i+1, g.Name, g.GUID, g.Start, g.End, w.Name, w.GUID, w.Start, w.End)
		}
	}
	a := want.Partitions[2]
	// The whole partition: the image's bytes, then zeros (the disk was
	// blank, and the raw image's partition is zeros past the image).
	if h, w := disktest.Hash(t, disk, int64(a.Start)*512, int64(a.Size)), disktest.Hash(t, raw, int64(a.Start)*512, int64(a.Size)); h != w {
		t.Errorf("slot A (%s) differs from the raw image's: %x, want %x", a.Name, h, w)
	}
	cfg := disktest.ESPFile(t, disk, "/rke2/config.yaml")
	if !strings.Contains(cfg, "hostname: node1") || strings.Contains(cfg, "install:") {
		t.Errorf("the config carried to the ESP:\n%s", cfg)
	}

	// 3. From the disk, the ISO still attached, no NoCloud volume.
	n.cfg.Extra = nil
	vm = n.boot()
	for _, re := range []string{
		`Kernel command line: .*rke2\.slot=A`,
		`boot medium mounted" device=/dev/vda3 fstype=vfat label=RKE2_A`,
		`system slot" slot=A good=A`,
		`config loaded" sources=/dev/vda2:/rke2/config.yaml `,
	} {
		if !regexp.MustCompile(re).MatchString(vm.Console()) {
			t.Errorf("the boot from the disk: no %s", re)
		}
	}
	waitNodeReady(t, vm)
	t.Logf("boot from the installed disk: %v", vm.Milestones())
	powerOffInOrder(t, vm)
	if h, w := disktest.Hash(t, disk, int64(a.Start)*512, int64(a.Size)), disktest.Hash(t, raw, int64(a.Start)*512, int64(a.Size)); h != w {
		t.Errorf("slot A changed on the boot from it")
	}

	// 4. The ISO again, against the installed disk, without wipe: true.
	n.cfg.Extra, n.cfg.DiskFirst = cidataDrive, false
	before := disktest.Hash(t, disk, 0, 128<<20)
	vm = qemu.Start(t, n.cfg)
	m, err := vm.WaitFor(regexp.MustCompile(`(?m)^rke2-init error=(".*install.*")\r?\n`), installTimeout)
	if err != nil {
		t.Fatalf("the second install: %v", err)
	}
	for _, want := range []string{"/dev/vda holds a GPT partition table (partitions BIOS, EFI, RKE2_A, RKE2_B, RKE2_STATE: an rke2os installation)",
		"nothing was written", "wipe: true", "dd if=/dev/zero of=/dev/vda"} {
		if !strings.Contains(m[1], want) {
			t.Errorf("the refusal does not say %q: %s", want, m[1])
		}
	}
	if _, err := vm.WaitEvent(console.EventMaintenance, nil, time.Minute); err != nil {
		t.Error(err)
	}
	powerOffInOrder(t, vm, regexp.MustCompile(`install: /dev/vda holds`))
	if disktest.Hash(t, disk, 0, 128<<20) != before {
		t.Error("the refused install wrote to the disk")
	}
}

// positive reports whether s is a number above zero.
func positive(s string) bool {
	v, err := strconv.ParseFloat(s, 64)
	return err == nil && v > 0
}

// waitInstalled waits for the installed milestone, failing at an error
// line, and checks that from the first write on the install logs a line
// at least every d (with a few seconds' slack for the polling).
func waitInstalled(t *testing.T, vm *qemu.VM, d time.Duration) {
	t.Helper()
	done := regexp.MustCompile(`(?m)^rke2-init (milestone=installed |error=)`)
	writing := regexp.MustCompile(`(?m)^rke2-init .*msg="install: (ESP|system slot A|reading back system slot A|progress|finished)"`)
	deadline := time.Now().Add(installTimeout)
	lines, lastLine, longest := 0, time.Time{}, time.Duration(0)
	for {
		console := vm.Console()
		if m := done.FindStringSubmatch(console); m != nil {
			if m[1] == "error=" {
				t.Fatalf("install: %v", vm.Errors())
			}
			break
		}
		if n := len(writing.FindAllString(console, -1)); n > lines {
			lines, lastLine = n, time.Now()
		} else if lines > 0 && time.Since(lastLine) > longest {
			longest = time.Since(lastLine)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no installed milestone after %s; errors: %v", installTimeout, vm.Errors())
		}
		if err := vm.WaitExit(time.Second); err == nil || !strings.Contains(err.Error(), "still running") {
			t.Fatalf("QEMU exited before the install was done: %v; errors: %v", err, vm.Errors())
		}
	}
	if lines < 3 {
		t.Errorf("%d progress lines from the install", lines)
	}
	if longest > d+5*time.Second {
		t.Errorf("the install logged nothing for %s while it wrote the disk", longest.Round(time.Second))
	}
}
