package qemutest

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/rke2os/rke2os/init/shared/console"
	"github.com/rke2os/rke2os/qemu-test/qemu"
)

// buildEnv names an input of the images the tests build themselves, from
// the environment make qemu-test sets.
func buildEnv(t *testing.T, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		t.Fatalf("%s is not set: run the QEMU tests through make qemu-test", name)
	}
	return v
}

// The config sources a user has besides cidata, each proven by a boot: a
// config baked into the image by rke2-build --config (PXE boot of its
// initrd), and one placed on the boot medium (rke2/config.yaml on the raw
// disk's system partition), which wins over the baked one.
func TestConfigSources(t *testing.T) {
	bin, kernel, grub := buildEnv(t, "RKE2_BIN"), buildEnv(t, "RKE2_KERNEL"), buildEnv(t, "RKE2_GRUB")
	dir := t.TempDir()
	baked := filepath.Join(dir, "baked.yaml")
	// debug.hooks makes every boot warn: a visible effect of the file.
	if err := os.WriteFile(baked, []byte("hostname: baked-node\ndebug:\n  hooks: true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	cmd := exec.Command(filepath.Join(bin, "rke2-build"), "image", "--role", "server", "--output", out,
		"--kernel", kernel, "--grub", grub, "--init", filepath.Join(bin, "rke2-init"), "--node", filepath.Join(bin, "rke2-node"),
		"--overlays", "../overlays", "--config", baked)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("rke2-build --config: %v\n%s", err, b)
	}

	t.Run("baked", func(t *testing.T) {
		cmdline, err := os.ReadFile(filepath.Join(out, "rke2-server.cmdline"))
		if err != nil {
			t.Fatal(err)
		}
		vm := qemu.Start(t, qemu.Config{Machine: "q35", Kernel: filepath.Join(out, "rke2-server.vmlinuz"),
			Initrd: filepath.Join(out, "rke2-server.initrd"), Append: strings.TrimSpace(string(cmdline))})
		ev, err := vm.WaitEvent(console.EventConfigLoaded, map[string]string{"sources": "/etc/rke2/config.yaml"}, bootTimeout)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(strings.Split(ev["debug"], ","), "hooks") {
			t.Fatalf("the baked debug.hooks is not on: debug=%q", ev["debug"])
		}
		powerOffInOrder(t, vm, regexp.MustCompile(`node: `))
	})

	t.Run("boot medium", func(t *testing.T) {
		disk := filepath.Join(t.TempDir(), "disk.raw")
		if b, err := exec.Command("cp", "--sparse=always", filepath.Join(out, "rke2-server.raw"), disk).CombinedOutput(); err != nil {
			t.Fatalf("cp: %v %s", err, b)
		}
		if err := os.Truncate(disk, 6<<30); err != nil {
			t.Fatal(err)
		}
		writeMediumConfig(t, disk, "debug:\n  hooks: false\n")
		vm := qemu.Start(t, qemu.Config{Machine: "q35", Disk: disk, MemoryMiB: 2048})
		ev, err := vm.WaitEvent(console.EventConfigLoaded, nil, bootTimeout)
		if err != nil {
			t.Fatal(err)
		}
		if ev["sources"] != "/etc/rke2/config.yaml, /run/rke2/medium/rke2/config.yaml" {
			t.Errorf("config sources %q, want the baked one, then the medium's", ev["sources"])
		}
		if _, err := vm.WaitMilestone("config-loaded", time.Minute); err != nil {
			t.Fatal(err)
		}
		if slices.Contains(strings.Split(ev["debug"], ","), "hooks") {
			t.Errorf("the medium's debug.hooks: false did not win over the baked true")
		}
		powerOffInOrder(t, vm, regexp.MustCompile(`node: `))
	})
}

// writeMediumConfig puts rke2/config.yaml on the raw disk's system
// partition (RKE2_A, FAT32), as a user would with a mounted image.
func writeMediumConfig(t *testing.T, disk, content string) {
	t.Helper()
	d, err := diskfs.Open(disk)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	part := 0
	tbl, err := d.GetPartitionTable()
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range tbl.GetPartitions() {
		if p.Label() == "RKE2_A" {
			part = i + 1
		}
	}
	if part == 0 {
		t.Fatal("no RKE2_A partition")
	}
	fs, err := d.GetFilesystem(part)
	if err != nil {
		t.Fatalf("RKE2_A: %v", err)
	}
	if err := fs.Mkdir("/rke2"); err != nil {
		t.Fatal(err)
	}
	f, err := fs.OpenFile("/rke2/config.yaml", os.O_CREATE|os.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte(content)); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}
