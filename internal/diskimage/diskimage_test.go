package diskimage

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/rke2os/rke2os/init/shared/layout"
	"github.com/rke2os/rke2os/init/shared/probe"
	"github.com/rke2os/rke2os/internal/disktest"
)

func TestSlotPartitionSize(t *testing.T) {
	for _, tc := range []struct{ image, want int64 }{
		{1, 64 * mib},
		{32 * mib, 64 * mib},
		{33 * mib, 128 * mib},
		{360 * mib, 768 * mib},
	} {
		if got := SlotPartitionSize(tc.image); got != tc.want {
			t.Errorf("SlotPartitionSize(%d MiB) = %d MiB, want %d", tc.image>>20, got>>20, tc.want>>20)
		}
	}
}

// The raw disk's slot A holds the slot image's bytes, slot B is blank and
// as large, and the same slot files give the same slot image.
func TestWrite(t *testing.T) {
	t.Setenv("SOURCE_DATE_EPOCH", "1735689600")
	dir := t.TempDir()
	files := []File{{Path: "/boot/vmlinuz", Data: bytes.Repeat([]byte("k"), 5000)}, {Path: "/boot/grub/slot.cfg", Data: []byte("set x=1\n")}}
	slot, again := filepath.Join(dir, "slot.img"), filepath.Join(dir, "again.img")
	if err := WriteSlot(slot, files); err != nil {
		t.Fatal(err)
	}
	if err := WriteSlot(again, files); err != nil {
		t.Fatal(err)
	}
	img, _ := os.ReadFile(slot)
	if b, _ := os.ReadFile(again); !bytes.Equal(img, b) {
		t.Fatal("two slot images of the same files differ")
	}
	raw := filepath.Join(dir, "disk.raw")
	err := Write(raw, Spec{MBR: make([]byte, 440), Core: []byte("core"), ESPLabel: layout.ESPLabel,
		ESP: []File{{Path: "/boot/grub/grub.cfg", Data: []byte("# cfg\n")}}, Slot: slot, StateSize: 64 << 20, Seed: []byte("t")})
	if err != nil {
		t.Fatal(err)
	}
	d, err := diskfs.Open(raw, diskfs.WithOpenMode(diskfs.ReadOnly))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	pt, err := d.GetPartitionTable()
	if err != nil {
		t.Fatal(err)
	}
	parts := pt.(*gpt.Table).Partitions
	names := []string{PartBIOS, PartESP, PartSysA, PartSysB, PartState}
	for i, n := range names {
		if parts[i].Name != n {
			t.Errorf("partition %d is %q, want %q", i+1, parts[i].Name, n)
		}
	}
	if a, b := parts[2].Size, parts[3].Size; a != b || a != uint64(SlotPartitionSize(int64(len(img)))) {
		t.Errorf("slot sizes %d and %d, want both %d", a, b, SlotPartitionSize(int64(len(img))))
	}
	f, _ := os.Open(raw)
	defer f.Close()
	got := make([]byte, len(img))
	if _, err := io.ReadFull(io.NewSectionReader(f, int64(parts[2].Start)*512, int64(len(img))), got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, img) {
		t.Error("slot A does not hold the slot image's bytes")
	}
	zero := make([]byte, 1<<20)
	if _, err := f.ReadAt(zero, int64(parts[3].Start)*512); err != nil || !bytes.Equal(zero, make([]byte, 1<<20)) {
		t.Errorf("slot B is not blank (err %v)", err)
	}
}

// testSpec is a small disk: its slot files (one larger than a FAT write's
// chunk, from a file), GRUB stand-ins, and the slot image's digest.
func testSpec(t *testing.T) (Spec, []File) {
	t.Helper()
	t.Setenv("SOURCE_DATE_EPOCH", "1735689600")
	dir := t.TempDir()
	big := filepath.Join(dir, "images.tar.zst")
	b := make([]byte, chunk+12345)
	rand.NewChaCha8([32]byte{1}).Read(b)
	if err := os.WriteFile(big, b, 0o644); err != nil {
		t.Fatal(err)
	}
	files := []File{
		{Path: "/boot/vmlinuz", Data: bytes.Repeat([]byte("k"), 5000)},
		{Path: "/boot/grub/slot.cfg", Data: []byte("set slot_cmdline='x'\n")},
		{Path: "/rke2/agent/images/images.tar.zst", Source: big},
	}
	slot := filepath.Join(dir, "slot.img")
	if err := WriteSlot(slot, files); err != nil {
		t.Fatal(err)
	}
	return Spec{MBR: bytes.Repeat([]byte{0xEB}, 440), Core: bytes.Repeat([]byte("core"), 300), ESPLabel: layout.ESPLabel,
		ESP:  []File{{Path: "/EFI/BOOT/BOOTX64.EFI", Data: []byte("efi")}, {Path: "/boot/grub/grub.cfg", Data: []byte("# cfg\n")}},
		Slot: slot, SlotSHA256: fileDigest(t, slot), StateSize: 64 << 20, Seed: []byte("seed")}, files
}

func fileDigest(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("sha256:%x", sha256.Sum256(b))
}

func regionDigest(t *testing.T, p string, off, n int64) [32]byte {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, off, n)); err != nil {
		t.Fatal(err)
	}
	return [32]byte(h.Sum(nil))
}

// usedDisk is a disk of size bytes that held something: an old GPT, a
// btrfs superblock, data everywhere the install writes.
func usedDisk(t *testing.T, size int64) string {
	p := disktest.ZeroFile(t, size)
	junk := bytes.Repeat([]byte("old data "), 1<<17)
	for off := int64(0); off < size; off += 37 << 20 {
		disktest.WriteAt(t, p, off, junk)
	}
	disktest.WriteAt(t, p, 512, []byte("EFI PART"))
	disktest.WriteAt(t, p, 64<<10+64, []byte("_BHRfS_M"))
	disktest.WriteAt(t, p, size-512, []byte("EFI PART"))
	return p
}

func openRW(t *testing.T, p string) *os.File {
	t.Helper()
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// Installed onto a used device larger than the image, from the slot's
// files rather than its image, the disk has the raw image's partition
// table (GUIDs, starts, sizes), boot code, core image, ESP files (and the
// node's config beside them) and slot A bytes; its state partition is
// blank to the probe, and the backup GPT is at the device's end.
func TestInstallEqualsWrite(t *testing.T) {
	spec, files := testSpec(t)
	raw := filepath.Join(t.TempDir(), "disk.raw")
	if err := Write(raw, spec); err != nil {
		t.Fatal(err)
	}
	const size = 1 << 30
	dev := usedDisk(t, size)
	in := spec
	in.Slot, in.SlotFiles = "", files
	in.ESP = append(append([]File{}, spec.ESP...), File{Path: layout.ESPConfig, Data: []byte("hostname: n1\n")})
	var phases []string
	in.Progress = func(phase string, n, total int64) {
		if len(phases) == 0 || phases[len(phases)-1] != phase {
			phases = append(phases, phase)
		}
		if n > total {
			t.Errorf("%s: %d of %d bytes", phase, n, total)
		}
	}
	l, err := Install(openRW(t, dev), size, in)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(phases, ", "); got != "ESP, system slot A, reading back system slot A" {
		t.Errorf("progress phases: %s", got)
	}
	want, got := disktest.GPT(t, raw), disktest.GPT(t, dev)
	if got.GUID != want.GUID || len(got.Partitions) != len(want.Partitions) {
		t.Fatalf("disk GUID %s, %d partitions; want %s, %d", got.GUID, len(got.Partitions), want.GUID, len(want.Partitions))
	}
	for i, w := range want.Partitions {
		g := got.Partitions[i]
		if g.Name != w.Name || g.GUID != w.GUID || g.Start != w.Start || g.End != w.End || g.Type != w.Type {
			t.Errorf("partition %d: %+v, want %+v", i+1, g, w)
		}
	}
	if got.LastDataSector() != size/512-34 {
		t.Errorf("the GPT ends at sector %d, want the device's end", got.LastDataSector())
	}
	if l.Size != fileSizeOf(t, raw) {
		t.Errorf("layout size %d, raw image %d", l.Size, fileSizeOf(t, raw))
	}
	for _, r := range []struct {
		what    string
		off, n  int64
		devOnly bool
	}{
		{"boot code", 0, 440, false},
		{"core image", BIOSPartitionLBA * 512, 1 << 20, false},
		{"slot A", l.Offset(IndexA), l.SlotImageSize, false},
	} {
		if regionDigest(t, dev, r.off, r.n) != regionDigest(t, raw, r.off, r.n) {
			t.Errorf("%s differs from the raw image's", r.what)
		}
	}
	rawESP, devESP := espFiles(t, raw), espFiles(t, dev)
	if devESP[layout.ESPConfig] != "hostname: n1\n" {
		t.Errorf("the config on the ESP: %q", devESP[layout.ESPConfig])
	}
	delete(devESP, layout.ESPConfig)
	if !maps.Equal(rawESP, devESP) {
		t.Errorf("ESP files %v, want the raw image's %v", devESP, rawESP)
	}
	f := openRW(t, dev)
	for _, i := range []int{IndexB, IndexState} {
		p, err := probe.Device(io.NewSectionReader(f, l.Offset(i), l.PartSize(i)), l.PartSize(i))
		if err != nil || p.Content != probe.Blank {
			t.Errorf("%s: %+v, %v; want blank", l.Partitions[i].Name, p, err)
		}
	}
	if p, err := probe.Device(f, size); err != nil || p.Content != probe.Other || !strings.Contains(p.Found, "GPT") {
		t.Errorf("the installed disk probes as %+v, %v", p, err)
	}
}

// A device smaller than the layout is refused before anything is written.
func TestInstallTooSmall(t *testing.T) {
	spec, _ := testSpec(t)
	dev := usedDisk(t, 300<<20)
	before := regionDigest(t, dev, 0, 300<<20)
	_, err := Install(openRW(t, dev), 300<<20, spec)
	var small *TooSmallError
	if !errors.As(err, &small) || small.Size != 300<<20 {
		t.Fatalf("err = %v", err)
	}
	if regionDigest(t, dev, 0, 300<<20) != before {
		t.Error("a refused install wrote to the device")
	}
}

// cutTarget fails every write after the first budget bytes, as a power
// cut or a dying disk stops an install: the write that crosses the budget
// is written in whole sectors up to it (a disk writes a sector whole or
// not at all).
type cutTarget struct {
	*os.File
	budget int64
}

var errCut = errors.New("cut")

func (c *cutTarget) WriteAt(p []byte, off int64) (int, error) {
	if int64(len(p)) > c.budget {
		n, _ := c.File.WriteAt(p[:c.budget&^511], off)
		c.budget = 0
		return n, errCut
	}
	c.budget -= int64(len(p))
	return c.File.WriteAt(p, off)
}

// An install cut at any point leaves a disk that no firmware boots (no
// boot signature, no boot code), whose partition table no kernel reads,
// and that the probe calls an unfinished install; the next install takes
// it over and writes the whole disk.
func TestInstallCut(t *testing.T) {
	spec, files := testSpec(t)
	spec.Slot, spec.SlotFiles = "", files
	const size = 512 << 20
	dev := usedDisk(t, size)
	// Find out how much a whole install writes, then cut it short at
	// points throughout: while the disk is claimed, in the ESP, in slot A,
	// while the GPT is written, and just before the first sector.
	count := &cutTarget{File: openRW(t, dev), budget: 1 << 62}
	if _, err := Install(count, size, spec); err != nil {
		t.Fatal(err)
	}
	total := 1<<62 - count.budget
	for _, at := range []int64{100, 1 << 20, 3 << 20, 40 << 20, total / 2, total - 40<<10, total - 600, total - 512, total - 1} {
		dev := usedDisk(t, size)
		_, err := Install(&cutTarget{File: openRW(t, dev), budget: at}, size, spec)
		if err == nil || !strings.Contains(err.Error(), errCut.Error()) {
			t.Fatalf("cut after %d of %d bytes: err = %v", at, total, err)
		}
		f := openRW(t, dev)
		first := make([]byte, 512)
		f.ReadAt(first, 0)
		if first[510] == 0x55 || first[511] == 0xAA || bytes.Equal(first[:440], spec.MBR) {
			t.Errorf("cut after %d of %d bytes: the first sector has boot code or a boot signature", at, total)
		}
		if at > 512 {
			if p, err := probe.Device(f, size); err != nil || p.Content != probe.UnfinishedInstall {
				t.Errorf("cut after %d of %d bytes: probes as %+v, %v; want an unfinished install", at, total, p, err)
			}
		}
		if at < total/2 {
			if _, err := gpt.Read(f, 512, 512); err == nil {
				t.Errorf("cut after %d of %d bytes, before the table: a GPT reads", at, total)
			}
		}
	}
	// The last cut disk is taken over: the install writes it whole.
	if _, err := Install(openRW(t, dev), size, spec); err != nil {
		t.Fatal(err)
	}
	ref := usedDisk(t, size)
	if _, err := Install(openRW(t, ref), size, spec); err != nil {
		t.Fatal(err)
	}
	if regionDigest(t, dev, 0, 128<<20) != regionDigest(t, ref, 0, 128<<20) {
		t.Error("the install over a cut one differs from one over a used disk")
	}
}

// A file given whole and the same file read in chunks make the same slot
// image: the FAT writer's clusters do not depend on how it is fed.
func TestSlotChunksSameBytes(t *testing.T) {
	_, files := testSpec(t)
	whole := append([]File{}, files...)
	b, err := os.ReadFile(files[2].Source)
	if err != nil {
		t.Fatal(err)
	}
	whole[2] = File{Path: files[2].Path, Data: b}
	dir := t.TempDir()
	a, c := filepath.Join(dir, "a.img"), filepath.Join(dir, "c.img")
	if err := WriteSlot(a, whole); err != nil {
		t.Fatal(err)
	}
	if err := WriteSlot(c, files); err != nil {
		t.Fatal(err)
	}
	if fileDigest(t, a) != fileDigest(t, c) {
		t.Fatal("the slot image depends on how its files are fed to the FAT writer")
	}
}

func fileSizeOf(t *testing.T, p string) int64 { return disktest.FileSize(t, p) }

// espFiles reads every file of the disk's ESP (partition 2).
func espFiles(t *testing.T, p string) map[string]string {
	t.Helper()
	d, err := diskfs.Open(p, diskfs.WithOpenMode(diskfs.ReadOnly))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	fsys, err := d.GetFilesystem(IndexESP + 1)
	if err != nil {
		t.Fatalf("ESP of %s: %v", p, err)
	}
	out := map[string]string{}
	var walk func(dir string)
	walk = func(dir string) {
		ents, err := fsys.ReadDir(dir)
		if err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		for _, e := range ents {
			name := path.Join(dir, e.Name())
			if e.IsDir() {
				walk(name)
				continue
			}
			f, err := fsys.OpenFile(name, os.O_RDONLY)
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(f)
			if err != nil {
				t.Fatal(err)
			}
			out["/"+name] = string(b)
		}
	}
	walk(".")
	return out
}
