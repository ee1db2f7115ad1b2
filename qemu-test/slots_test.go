//go:build nodetest

// The slots' rollback and a reset, on the raw disk: about two minutes under
// TCG on 2 cores; it runs with make node-test, beside CI's budget.

package qemutest

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/rke2os/rke2os/builder/bootloader"
	"github.com/rke2os/rke2os/init/shared/console"
	"github.com/rke2os/rke2os/init/shared/layout"
	"github.com/rke2os/rke2os/init/shared/slots"
	disk "github.com/rke2os/rke2os/internal/diskimage"
	"github.com/rke2os/rke2os/internal/disktest"
	"github.com/rke2os/rke2os/qemu-test/qemu"
)

// grubEnv reads, and with change rewrites in place, the disk image's GRUB
// environment block, as GRUB and the node do.
func grubEnv(t *testing.T, image string, change func(slots.Env)) slots.Env {
	t.Helper()
	d, err := diskfs.Open(image)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	fs, err := d.GetFilesystem(2)
	if err != nil {
		t.Fatalf("the ESP of %s: %v", image, err)
	}
	f, err := fs.OpenFile(layout.GRUBEnv, os.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	env, err := slots.ParseEnv(b)
	if err != nil {
		t.Fatal(err)
	}
	if change != nil {
		change(env)
		nb, err := env.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write(nb); err != nil {
			t.Fatal(err)
		}
	}
	if c, ok := f.(io.Closer); ok {
		c.Close()
	}
	return env
}

// writeSlot writes a slot image made of files into the disk image's slot.
func writeSlot(t *testing.T, image string, slot slots.Slot, files []disk.File) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "slot.img")
	if err := disk.WriteSlot(p, files); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	start, size := disktest.Partition(t, image, slot.PartName())
	if int64(len(b)) > size {
		t.Fatalf("slot image of %d bytes, slot of %d", len(b), size)
	}
	f, err := os.OpenFile(image, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, start); err != nil {
		t.Fatal(err)
	}
}

// A slot that cannot boot is tried as many times as it has tries, then
// GRUB boots the good slot again, which reports the rollback and forgets
// the trial. Slot B gets the server's kernel and an initramfs that is not
// one: the kernel panics, and panic=5 (on slot B's own command line, from
// its slot.cfg) reboots it. A reset (rke2.reset=1, what the GRUB menu's
// reset entry adds) then wipes the state partition: the node boots as
// new, and the rollback's record is gone with the state.
func TestSlotRollback(t *testing.T) {
	image := rawDisk(t, 8<<30)
	writeSlot(t, image, slots.B, []disk.File{
		{Path: "/boot/vmlinuz", Source: filepath.Join(outDir(t), "rke2-server.vmlinuz")},
		{Path: "/boot/initrd", Data: bytes.Repeat([]byte("not an initramfs "), 4096)},
		{Path: bootloader.SlotConfigPath, Data: bootloader.SlotConfig("console=ttyS0,115200 panic=5")},
	})
	grubEnv(t, image, func(env slots.Env) {
		slots.State{Good: slots.A, Try: slots.B, Tries: slots.DefaultTries}.Apply(env)
	})
	cfg := qemu.Config{Machine: "q35", MemoryMiB: 2048, Disk: image}
	for try := 1; try <= slots.DefaultTries; try++ {
		vm := qemu.Start(t, cfg)
		if _, err := vm.WaitFor(regexp.MustCompile(`Command line: .*rke2\.medium=RKE2_B rke2\.slot=B rke2\.trial=1`), bootTimeout); err != nil {
			t.Fatalf("try %d: GRUB did not boot slot B as a trial: %v", try, err)
		}
		if err := vm.WaitExit(bootTimeout); err != nil {
			t.Fatalf("try %d: the broken slot did not reboot: %v", try, err)
		}
		if !strings.Contains(vm.Console(), "Kernel panic") {
			t.Errorf("try %d: no kernel panic on the console", try)
		}
		env := grubEnv(t, image, nil)
		if s := slots.StateOf(env); s.Try != slots.B || s.Tries != slots.DefaultTries-try {
			t.Errorf("after try %d: state %+v, want %d tries left", try, s, slots.DefaultTries-try)
		}
	}
	vm := qemu.Start(t, cfg)
	if _, err := vm.WaitFor(regexp.MustCompile(`Command line: .*rke2\.medium=RKE2_A rke2\.slot=A rke2\.trial=0`), bootTimeout); err != nil {
		t.Fatalf("no tries left: GRUB did not boot the good slot A: %v", err)
	}
	if _, err := vm.WaitEvent(console.EventSlot, map[string]string{"slot": "A", "good": "A", "outcome": "rolled-back"}, nodeTimeout); err != nil {
		t.Fatalf("the rollback was not seen: %v; errors: %v", err, vm.Errors())
	}
	if _, err := vm.WaitFor(regexp.MustCompile(`(?m)^rke2-init error=".*upgrade rolled back: slot B did not reach node-ready in 2 boots; booted slot A again`), time.Second); err != nil {
		t.Errorf("the rollback was not reported in plain words: %v", err)
	}
	if _, err := vm.WaitMilestone("config-loaded", nodeTimeout); err != nil {
		t.Fatalf("the good slot did not boot on: %v; errors: %v", err, vm.Errors())
	}
	powerOffInOrder(t, vm, regexp.MustCompile(`rolled back`))
	if s := slots.StateOf(grubEnv(t, image, nil)); s != (slots.State{Good: slots.A}) {
		t.Errorf("after the rollback: state %+v, want slot A good and nothing tried", s)
	}
	if rb := stateFile(t, image, "/lib/rke2os/upgrade/rollback.json"); !strings.Contains(rb, `"tried":"B"`) {
		t.Errorf("rollback record %q", rb)
	}

	// The reset switch, as the menu entry passes it: slot A boots as new.
	out := outDir(t)
	cmdline, err := os.ReadFile(filepath.Join(out, "rke2-server.cmdline"))
	if err != nil {
		t.Fatal(err)
	}
	reset := cfg
	reset.Kernel, reset.Initrd = filepath.Join(out, "rke2-server.vmlinuz"), filepath.Join(out, "rke2-server.initrd")
	reset.Append = strings.TrimSpace(string(cmdline)) + " rke2.medium=RKE2_A rke2.slot=A rke2.trial=0 rke2.reset=1"
	vm = qemu.Start(t, reset)
	if _, err := vm.WaitEvent(console.EventStateReset, map[string]string{"device": "/dev/vda5"}, nodeTimeout); err != nil {
		t.Fatalf("reset: %v; errors: %v", err, vm.Errors())
	}
	if _, err := vm.WaitEvent(console.EventStateReady, map[string]string{"device": "/dev/vda5", "formatted": "true"}, time.Minute); err != nil {
		t.Fatalf("reset: %v; errors: %v", err, vm.Errors())
	}
	if _, err := vm.WaitMilestone("config-loaded", nodeTimeout); err != nil {
		t.Fatalf("reset: %v; errors: %v", err, vm.Errors())
	}
	powerOffInOrder(t, vm, regexp.MustCompile(`reset`))
	if ls := stateList(t, image, "/lib/rke2os"); strings.Contains(ls, "upgrade") {
		t.Errorf("the reset kept the old state:\n%s", ls)
	}

	// A slot B that GRUB cannot load (no kernel on it): GRUB falls back to
	// slot A with a try left, and the trial is over, not taken again at
	// every boot (an upgrader would write the slot again, and again).
	writeSlot(t, image, slots.B, []disk.File{
		{Path: bootloader.SlotConfigPath, Data: bootloader.SlotConfig("console=ttyS0,115200 panic=5")},
	})
	grubEnv(t, image, func(env slots.Env) {
		slots.State{Good: slots.A, Try: slots.B, Tries: slots.DefaultTries}.Apply(env)
	})
	vm = qemu.Start(t, cfg)
	if _, err := vm.WaitFor(regexp.MustCompile(`Command line: .*rke2\.medium=RKE2_A rke2\.slot=A rke2\.trial=0`), bootTimeout); err != nil {
		t.Fatalf("GRUB did not fall back to slot A: %v", err)
	}
	if _, err := vm.WaitEvent(console.EventSlot, map[string]string{"slot": "A", "good": "A", "outcome": "rolled-back"}, nodeTimeout); err != nil {
		t.Fatalf("the fallback was not taken for a rollback: %v; errors: %v", err, vm.Errors())
	}
	if _, err := vm.WaitFor(regexp.MustCompile(`(?m)^rke2-init error=".*upgrade rolled back: GRUB booted slot A while slot B was being tried with 1 tries left`), time.Second); err != nil {
		t.Errorf("the fallback was not reported in plain words: %v", err)
	}
	if _, err := vm.WaitMilestone("config-loaded", nodeTimeout); err != nil {
		t.Fatalf("slot A did not boot on: %v; errors: %v", err, vm.Errors())
	}
	powerOffInOrder(t, vm, regexp.MustCompile(`rolled back`))
	if s := slots.StateOf(grubEnv(t, image, nil)); s != (slots.State{Good: slots.A}) {
		t.Errorf("after the fallback: state %+v, want slot A good and nothing tried", s)
	}
}
