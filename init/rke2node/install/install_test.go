package install

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rke2os/rke2os/init/shared/blockdev"
	"github.com/rke2os/rke2os/init/shared/config"
	"github.com/rke2os/rke2os/init/shared/layout"
	"github.com/rke2os/rke2os/init/shared/probe"
	"github.com/rke2os/rke2os/internal/diskimage"
	"github.com/rke2os/rke2os/internal/disktest"
	"github.com/rke2os/rke2os/internal/syncbuf"
)

// fakeDisk is a block device for the fake sysfs: its size, attributes and
// partitions (names only: the kernel's view).
type fakeDisk struct {
	name          string
	size          int64
	model, serial string
	removable, ro bool
	parts         []string
	file          bool // a file of size in the fake /dev
}

// fakeMachine lays out sysfs (class/block/<name> links into
// devices/.../block/<disk>[/<part>]) and /dev (sparse files for the disks
// that have one), and returns the fake /dev.
func fakeMachine(t *testing.T, disks ...fakeDisk) string {
	t.Helper()
	root := t.TempDir()
	class := filepath.Join(root, "sys", "class", "block")
	dev := filepath.Join(root, "dev")
	for _, d := range []string{class, dev} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(p, content string) {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b := map[bool]string{true: "1\n", false: "0\n"}
	for _, d := range disks {
		dir := filepath.Join(root, "sys", "devices", "block", d.name)
		write(filepath.Join(dir, "size"), fmt.Sprintf("%d\n", d.size/512))
		write(filepath.Join(dir, "removable"), b[d.removable])
		write(filepath.Join(dir, "ro"), b[d.ro])
		if d.model != "" {
			write(filepath.Join(dir, "device", "model"), d.model+"  \n")
		}
		if d.serial != "" {
			write(filepath.Join(dir, "serial"), d.serial+"\n")
		}
		if err := os.Symlink(dir, filepath.Join(class, d.name)); err != nil {
			t.Fatal(err)
		}
		for i, p := range d.parts {
			pdir := filepath.Join(dir, p)
			write(filepath.Join(pdir, "partition"), fmt.Sprintf("%d\n", i+1))
			write(filepath.Join(pdir, "size"), "2048\n")
			if err := os.Symlink(pdir, filepath.Join(class, p)); err != nil {
				t.Fatal(err)
			}
		}
		if d.file {
			write(filepath.Join(dev, d.name), "")
			if err := os.Truncate(filepath.Join(dev, d.name), d.size); err != nil {
				t.Fatal(err)
			}
		}
	}
	old := blockdev.SysBlock
	blockdev.SysBlock = class
	t.Cleanup(func() { blockdev.SysBlock = old })
	return dev
}

func opts(t *testing.T, dev string, in config.Install) (Options, *syncbuf.Buffer) {
	var logs syncbuf.Buffer
	return Options{Install: in, Medium: "/dev/sr0", DevDir: dev, Tick: 5 * time.Millisecond,
		Log: slog.New(slog.NewTextHandler(&logs, nil))}, &logs
}

// A disk selector takes the first disk, in sysfs' order, that meets every
// criterion, never the ISO's own disk nor a removable, read-only, loop,
// RAM, CD or zram one; install.device names one, which must be a whole
// disk and not the ISO's. What is not found says why of every disk.
func TestChooseDisk(t *testing.T) {
	dev := fakeMachine(t,
		fakeDisk{name: "loop0", size: 100 << 30},
		fakeDisk{name: "sda", size: 64 << 30, model: "USB Stick", removable: true},
		fakeDisk{name: "sdb", size: 32 << 30, model: "Samsung SSD 870", serial: "S5Y1NX0R", parts: []string{"sdb1"}},
		fakeDisk{name: "sr0", size: 400 << 20},
		fakeDisk{name: "vda", size: 8 << 30, model: "QEMU HARDDISK", serial: "os-disk"},
		fakeDisk{name: "vdb", size: 20 << 30, serial: "data-disk", ro: true},
		fakeDisk{name: "vdc", size: 20 << 30, serial: "data-disk-2"},
		fakeDisk{name: "zram0", size: 100 << 30},
	)
	for _, tc := range []struct {
		in     config.Install
		medium string
		want   string
		err    string
	}{
		{config.Install{Disk: &config.DiskSelector{MinSize: 8 << 30}}, "/dev/sr0", "sdb", ""},
		{config.Install{Disk: &config.DiskSelector{MinSize: 8 << 30}}, "/dev/sdb1", "vda", ""}, // the ISO written to a disk
		{config.Install{Disk: &config.DiskSelector{MinSize: 10 << 30, Serial: "data-*"}}, "/dev/sr0", "vdc", ""},
		{config.Install{Disk: &config.DiskSelector{Model: "QEMU*"}}, "/dev/sr0", "vda", ""},
		{config.Install{Disk: &config.DiskSelector{Serial: "os-disk"}}, "", "vda", ""},
		{config.Install{Device: "/dev/vdc"}, "/dev/sr0", "vdc", ""},
		{config.Install{Device: "/dev/sda"}, "/dev/sr0", "sda", ""}, // removable, named: taken
		{config.Install{Disk: &config.DiskSelector{MinSize: 1 << 40}}, "/dev/sr0", "",
			"no disk matches install.disk {min_size: 1TiB} (disks: loop0: a loop device; sda: removable; sdb: 32.0 GiB, smaller than 1TiB; sr0: the ISO's own disk; vda: 8.0 GiB, smaller than 1TiB; vdb: read-only; vdc: 20.0 GiB, smaller than 1TiB; zram0: a compressed RAM disk)"},
		{config.Install{Disk: &config.DiskSelector{Model: "WDC*"}}, "/dev/sr0", "", `sdb: model "Samsung SSD 870"`},
		{config.Install{Device: "/dev/sr0"}, "/dev/sr0", "", "install.device /dev/sr0 is the disk the ISO booted from (/dev/sr0): an install never writes its own medium"},
		{config.Install{Device: "/dev/sdb"}, "/dev/sdb1", "", "is the disk the ISO booted from"},
		{config.Install{Device: "/dev/sdb1"}, "/dev/sr0", "", "install.device /dev/sdb1 is a partition of /dev/sdb; name the whole disk"},
		{config.Install{Device: "/dev/vdb"}, "/dev/sr0", "", "install.device /dev/vdb is read-only"},
		{config.Install{Device: "/dev/vdz"}, "/dev/sr0", "", "install.device /dev/vdz: no such device (disks: /dev/loop0 100.0 GiB, "},
	} {
		o, _ := opts(t, dev, tc.in)
		o.Medium = tc.medium
		// Every listed disk (and partition) has a node in the fake /dev.
		for _, n := range blockdev.Names() {
			os.WriteFile(filepath.Join(dev, n), nil, 0o644)
		}
		d, err := choose(context.Background(), o)
		if tc.err == "" && (err != nil || d.Name != tc.want) || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%+v from %s: %s, %v; want %q, %q", tc.in, tc.medium, d.Name, err, tc.want, tc.err)
		}
	}
	// A link (like /dev/disk/by-id/...) is followed to its disk.
	os.MkdirAll(filepath.Join(dev, "disk", "by-id"), 0o755)
	os.Symlink("../../vdc", filepath.Join(dev, "disk", "by-id", "virtio-data-disk-2"))
	o, _ := opts(t, dev, config.Install{Device: "/dev/disk/by-id/virtio-data-disk-2"})
	if d, err := choose(context.Background(), o); err != nil || d.Name != "vdc" {
		t.Errorf("by-id link: %s, %v", d.Name, err)
	}
}

// A disk that is not there yet is waited for, as drivers probe late.
func TestChooseWaits(t *testing.T) {
	dev := fakeMachine(t, fakeDisk{name: "vda", size: 8 << 30})
	o, _ := opts(t, dev, config.Install{Device: "/dev/vda"})
	o.Wait = 5 * time.Second
	go func() {
		time.Sleep(1500 * time.Millisecond)
		os.WriteFile(filepath.Join(dev, "vda"), nil, 0o644)
	}()
	start := time.Now()
	if d, err := choose(context.Background(), o); err != nil || d.Name != "vda" || time.Since(start) < time.Second {
		t.Fatalf("%s, %v after %s", d.Name, err, time.Since(start))
	}
}

// medium lays out what the ISO carries for an install: the slot's files,
// GRUB's disk images and the manifest; and the slot image the builder
// made from them.
func medium(t *testing.T) (dir string, m *diskimage.Manifest, slotImage string) {
	t.Helper()
	t.Setenv("SOURCE_DATE_EPOCH", "1") // anything: the manifest's epoch is what counts
	dir = t.TempDir()
	put := func(p string, b []byte) {
		local := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(local), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(local, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	m = &diskimage.Manifest{Format: diskimage.ManifestFormat, Role: "server", Epoch: 1735689600, ESPLabel: layout.ESPLabel, StateSize: 256 << 20,
		MBR: layout.InstallDir + "/mbr.bin", Core: layout.InstallDir + "/core.img"}
	mbr := bytes.Repeat([]byte{0xEB}, 440)
	put(m.MBR, mbr)
	put(m.Core, bytes.Repeat([]byte("core"), 500))
	for _, f := range [][2]string{{"/EFI/BOOT/BOOTX64.EFI", "bootx64.efi"}, {"/boot/grub/grub.cfg", "grub.cfg"}, {layout.GRUBEnv, "grubenv"}} {
		put(layout.InstallDir+"/"+f[1], []byte("esp file "+f[1]))
		m.ESP = append(m.ESP, diskimage.ManifestFile{Path: f[0], Medium: layout.InstallDir + "/" + f[1]})
	}
	big := make([]byte, 20<<20+7)
	for i := range big {
		big[i] = byte(i * 7)
	}
	var files []diskimage.File
	for _, f := range []struct {
		path string
		data []byte
	}{{"/boot/vmlinuz", []byte("kernel")}, {"/boot/initrd", []byte("initrd")}, {"/boot/grub/slot.cfg", []byte("set slot_cmdline='x'\n")},
		{"/boot/os-release", []byte("NAME=rke2os\n")}, {"/rke2/agent/images/images.tar", big}} {
		put(f.path, f.data)
		m.Slot = append(m.Slot, diskimage.ManifestFile{Path: f.path, Medium: f.path})
		files = append(files, diskimage.File{Path: f.path, Source: filepath.Join(dir, filepath.FromSlash(f.path))})
	}
	t.Setenv("SOURCE_DATE_EPOCH", "1735689600") // the builder's
	slotImage = filepath.Join(t.TempDir(), "slot.img")
	if err := diskimage.WriteSlot(slotImage, files); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SOURCE_DATE_EPOCH", "1")
	b, _ := os.ReadFile(slotImage)
	m.SlotSHA256, m.SlotSize = fmt.Sprintf("sha256:%x", sha256.Sum256(b)), int64(len(b))
	mb, err := m.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	put(layout.InstallManifest, mb)
	return dir, m, slotImage
}

const diskSize = 6 << 30

// The install onto a file standing in for a disk writes the partition
// table and slot A of the builder's raw disk (diskimage.Write from the
// same manifest, with the slot image), the ESP with the node's config,
// and logs each step and the writes' progress.
func TestInstall(t *testing.T) {
	mdir, m, slotImage := medium(t)
	dev := fakeMachine(t, fakeDisk{name: "sr0", size: 400 << 20}, fakeDisk{name: "vda", size: diskSize, model: "QEMU HARDDISK", file: true})
	o, logs := opts(t, dev, config.Install{Disk: &config.DiskSelector{MinSize: 5 << 30}})
	o.MediumDir = mdir
	o.Config = []byte("hostname: installed\n")
	res, err := Run(context.Background(), o)
	if err != nil {
		t.Fatalf("%v\n%s", err, logs)
	}
	if res.Device != "/dev/vda" || res.Found != "blank" || res.SlotSHA256 != m.SlotSHA256 || res.Bytes != diskSize {
		t.Errorf("result %+v", res)
	}
	// The builder's disk, from the same manifest.
	spec, err := m.Spec(func(p string) string { return filepath.Join(mdir, filepath.FromSlash(p)) })
	if err != nil {
		t.Fatal(err)
	}
	spec.Slot, spec.SlotFiles = slotImage, nil
	raw := filepath.Join(t.TempDir(), "rke2-server.raw")
	if err := diskimage.Write(raw, spec); err != nil {
		t.Fatal(err)
	}
	disk := filepath.Join(dev, "vda")
	want, got := disktest.GPT(t, raw), disktest.GPT(t, disk)
	if got.GUID != want.GUID {
		t.Errorf("disk GUID %s, want %s", got.GUID, want.GUID)
	}
	for i, w := range want.Partitions {
		g := got.Partitions[i]
		if g.Name != w.Name || g.GUID != w.GUID || g.Start != w.Start || g.End != w.End {
			t.Errorf("partition %d: %+v, want %+v", i+1, g, w)
		}
	}
	a := want.Partitions[diskimage.IndexA]
	if disktest.Hash(t, disk, int64(a.Start)*512, m.SlotSize) != disktest.Hash(t, raw, int64(a.Start)*512, m.SlotSize) {
		t.Error("slot A differs from the raw disk's")
	}
	if disktest.Hash(t, disk, 0, 440) != disktest.Hash(t, raw, 0, 440) {
		t.Error("the boot code differs from the raw disk's")
	}
	cfg := disktest.ESPFile(t, disk, layout.ESPConfig)
	if cfg != "hostname: installed\n" {
		t.Errorf("the config on the ESP: %q", cfg)
	}
	for _, want := range []string{`msg="install: target disk" device=/dev/vda size="6.0 GiB" model="QEMU HARDDISK" serial="" chosen_by="install.disk {min_size: 5GiB}"`,
		`msg="install: the disk is blank"`, `msg="install: ESP"`, `msg="install: system slot A" device=/dev/vda mib=64`,
		`msg="install: progress" what="system slot A"`, `msg="install: reading back system slot A"`,
		`msg="install: system slot A, read back from the disk, matches the slot image"`,
		`msg="install: partition table and boot code written, last: the disk boots"`, `msg="install: done" device=/dev/vda slot=A`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the log lacks %s:\n%s", want, logs)
		}
	}

	// Installed, the disk holds something: a second install without
	// wipe: true refuses it, names what it holds and the fix, and writes
	// nothing.
	before := disktest.Hash(t, disk, 0, 128<<20)
	_, err = Run(context.Background(), o)
	for _, want := range []string{"install: /dev/vda holds a GPT partition table (partitions BIOS, EFI, RKE2_A, RKE2_B, RKE2_STATE: an rke2os installation)",
		"does not say wipe: true, so nothing was written", "add wipe: true under install:", "dd if=/dev/zero of=/dev/vda bs=64K seek=0 count=1048576"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("second install: %v; want %q in it", err, want)
		}
	}
	if disktest.Hash(t, disk, 0, 128<<20) != before {
		t.Error("a refused install wrote to the disk")
	}
	// With wipe: true it is written again.
	o.Install.Wipe = true
	if res, err := Run(context.Background(), o); err != nil || !strings.Contains(res.Found, "GPT partition table") {
		t.Fatalf("wipe: true: %+v, %v", res, err)
	}
}

// What a disk holds is refused, named, unless wipe: true; a blank disk
// whose partitions the kernel still lists is not blank.
func TestInstallRefuses(t *testing.T) {
	mdir, _, _ := medium(t)
	for _, tc := range []struct {
		name  string
		parts []string
		make  func(t *testing.T, p string)
		found string
	}{
		{"btrfs", nil, func(t *testing.T, p string) { disktest.WriteAt(t, p, 64<<10+64, []byte("_BHRfS_M")) }, "holds a btrfs filesystem"},
		{"data at the end", nil, func(t *testing.T, p string) { disktest.WriteAt(t, p, diskSize-100, []byte("x")) }, "holds data that is not a format the init knows"},
		{"partitions the kernel knows", []string{"vda1", "vda2"}, func(*testing.T, string) {}, "holds partitions the kernel knows (vda1, vda2)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dev := fakeMachine(t, fakeDisk{name: "vda", size: diskSize, file: true, parts: tc.parts})
			disk := filepath.Join(dev, "vda")
			tc.make(t, disk)
			o, _ := opts(t, dev, config.Install{Device: "/dev/vda"})
			o.MediumDir = mdir
			before := disktest.Hash(t, disk, 0, 128<<20)
			_, err := Run(context.Background(), o)
			if err == nil || !strings.Contains(err.Error(), "install: /dev/vda "+tc.found) || !strings.Contains(err.Error(), "nothing was written") {
				t.Fatalf("err = %v, want %q", err, tc.found)
			}
			if disktest.Hash(t, disk, 0, 128<<20) != before {
				t.Error("a refused install wrote to the disk")
			}
			o.Install.Wipe = true
			if _, err := Run(context.Background(), o); err != nil {
				t.Fatalf("wipe: true: %v", err)
			}
		})
	}
	// Too small for the system and a node's state: refused before anything.
	dev := fakeMachine(t, fakeDisk{name: "vda", size: 2 << 30, file: true})
	o, _ := opts(t, dev, config.Install{Device: "/dev/vda"})
	o.MediumDir = mdir
	if _, err := Run(context.Background(), o); err == nil || !strings.Contains(err.Error(), "install: /dev/vda is 2.0 GiB; the system needs") ||
		!strings.Contains(err.Error(), "choose a disk of at least 5.0 GiB") {
		t.Errorf("small disk: %v", err)
	}
}

// A disk an install was cut short on is taken over without wipe: true.
func TestInstallTakesOverUnfinished(t *testing.T) {
	mdir, m, _ := medium(t)
	dev := fakeMachine(t, fakeDisk{name: "vda", size: diskSize, file: true})
	disk := filepath.Join(dev, "vda")
	// A cut install: the record written, some of the ESP, junk beyond.
	disktest.WriteAt(t, disk, 0, probe.InstallRecord())
	disktest.WriteAt(t, disk, 2<<20, bytes.Repeat([]byte("half an ESP"), 1000))
	disktest.WriteAt(t, disk, diskSize-512, []byte("EFI PART"))
	o, logs := opts(t, dev, config.Install{Device: "/dev/vda"})
	o.MediumDir = mdir
	res, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if res.Found != "an unfinished rke2os install" || !strings.Contains(logs.String(), "taking it over") {
		t.Errorf("result %+v, log:\n%s", res, logs)
	}
	if got := disktest.GPT(t, disk); len(got.Partitions) != 5 || res.SlotSHA256 != m.SlotSHA256 {
		t.Errorf("after the takeover: %d partitions", len(got.Partitions))
	}
}
