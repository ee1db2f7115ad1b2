package boot

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rke2os/rke2os/init/shared/layout"
	"github.com/rke2os/rke2os/init/shared/probe"
	disk "github.com/rke2os/rke2os/internal/diskimage"
	"github.com/rke2os/rke2os/internal/disktest"
)

// A disk image as the builder writes it, then copied to a larger disk:
// the state partition grows to the end, the others stay.
func TestGrowLastPartition(t *testing.T) {
	p := filepath.Join(t.TempDir(), "disk.raw")
	slot := filepath.Join(t.TempDir(), "slot.img")
	if err := disk.WriteSlot(slot, []disk.File{{Path: "/boot/x", Data: []byte("x")}}); err != nil {
		t.Fatal(err)
	}
	bootCode := bytes.Repeat([]byte{0xEB, 0x63, 0x90, 0x10}, 110) // 440 bytes, as GRUB's would be
	err := disk.Write(p, disk.Spec{MBR: bootCode, Core: []byte("core"), ESPLabel: "RKE2_ESP",
		Slot: slot, StateSize: 64 << 20, Seed: []byte("t")})
	if err != nil {
		t.Fatal(err)
	}
	before := disktest.GPT(t, p)
	// Unchanged disk: nothing to grow.
	if added, err := GrowLastPartition(p, 5); err != nil || added != 0 {
		t.Fatalf("same-size disk: added %d, err %v", added, err)
	}
	if err := os.Truncate(p, fileSize(t, p)+1<<30); err != nil {
		t.Fatal(err)
	}
	added, err := GrowLastPartition(p, 5)
	if err != nil {
		t.Fatal(err)
	}
	if added < 1<<30-2<<20 || added > 1<<30 {
		t.Fatalf("added %d bytes, want about 1 GiB", added)
	}
	after := disktest.GPT(t, p)
	for i := range before.Partitions {
		b, a := before.Partitions[i], after.Partitions[i]
		if a.Start != b.Start || a.Name != b.Name || a.GUID != b.GUID {
			t.Errorf("partition %d moved or renamed: %+v -> %+v", b.Index, b, a)
		}
		if b.Index != 5 && a.End != b.End {
			t.Errorf("partition %d resized: %d -> %d", b.Index, b.End, a.End)
		}
	}
	st := after.Partitions[4]
	if st.End <= before.Partitions[4].End || (st.End+1)%2048 != 0 || st.End >= after.LastDataSector()+1 {
		t.Fatalf("state partition ends at %d (last data sector %d)", st.End, after.LastDataSector())
	}
	// The boot code in the MBR's first 440 bytes is GRUB's: kept.
	f, _ := os.Open(p)
	defer f.Close()
	mbr := make([]byte, 512)
	f.ReadAt(mbr, 0)
	if !bytes.Equal(mbr[:440], bootCode) || mbr[510] != 0x55 || mbr[511] != 0xAA {
		t.Fatal("MBR boot code or signature lost")
	}
	// The backup GPT at the disk's new end says the same.
	if err := after.Verify(f, uint64(fileSize(t, p))); err != nil {
		t.Fatalf("backup GPT: %v", err)
	}
	// A second boot finds nothing more to grow.
	if added, err := GrowLastPartition(p, 5); err != nil || added != 0 {
		t.Fatalf("second grow: added %d, err %v", added, err)
	}
	if _, err := GrowLastPartition(p, 9); err == nil || !strings.Contains(err.Error(), "no partition 9") {
		t.Fatalf("missing partition: err %v", err)
	}
}

// A GPT whose checksums hold but whose header would have go-diskfs
// allocate what it says (2^32 entries: 512 GiB, a "fatal error: runtime:
// out of memory" that no recover catches, so PID 1 exits and the kernel
// panics) or write entries elsewhere than it read them is refused, and
// nothing is written; a disk too small to hold a MiB-aligned partition
// end is left as it is (it used to "grow" to sector 2^64-1).
func TestGrowLastPartitionDamagedGPT(t *testing.T) {
	le := binary.LittleEndian
	for _, tc := range []struct {
		name   string
		damage func(b []byte)
		grow   int64
		errHas string
	}{
		{"entry count", func(b []byte) { le.PutUint32(b[512+80:], 0xffffffff) }, 1 << 20, "lists 4294967295 partition entries of 128 bytes"},
		{"entry size", func(b []byte) { le.PutUint32(b[512+84:], 0) }, 1 << 20, "lists 4 partition entries of 0 bytes"},
		{"header's own sector", func(b []byte) { le.PutUint64(b[512+24:], 3) }, 1 << 20, "says it is at sector 3"},
		{"entries elsewhere", func(b []byte) { le.PutUint64(b[512+72:], 6) }, 1 << 20, "puts its partition entries at sector 6"},
		{"backup header's primary", func(b []byte) { le.PutUint64(b[7*512+32:], 2) }, 0, "says the primary is at sector 2"},
		{"smaller disk", func(b []byte) { le.PutUint64(b[512+32:], 1<<40) }, 1 << 20, "the image was written to a smaller disk"},
		{"disk under a MiB", func([]byte) {}, 100 << 10, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := gptImage(t, 8, [][2]uint64{{3, 5}})
			tc.damage(b)
			fixGPT(b, 1)
			fixGPT(b, 7)
			p := filepath.Join(t.TempDir(), "disk.raw")
			os.WriteFile(p, b, 0o644)
			os.Truncate(p, int64(len(b))+tc.grow)
			before, _ := os.ReadFile(p)
			added, err := GrowLastPartition(p, 1)
			if tc.errHas == "" && (err != nil || added != 0) || tc.errHas != "" && (err == nil || !strings.Contains(err.Error(), tc.errHas)) {
				t.Fatalf("GrowLastPartition = %d, %v; want error %q", added, err, tc.errHas)
			}
			if after, _ := os.ReadFile(p); !bytes.Equal(before, after) {
				t.Fatal("the disk changed")
			}
		})
	}
}

// The filesystem the init formats passes a repairing e2fsck with nothing
// to repair, at the builder's default size and at a node's, and carries
// the label only once it is complete.
func TestFormatExt4(t *testing.T) {
	e2fsck, err := exec.LookPath("e2fsck")
	if err != nil {
		e2fsck = "/usr/sbin/e2fsck" // not on a user's PATH on Debian
	}
	// 4 GiB, the size that failed in QEMU (4040 inodes per group), and one
	// whose last group is short.
	for _, size := range []int64{4 << 30, 7575 << 20, 5<<30 + 12345<<12} {
		t.Run(fmt.Sprintf("%dMiB", size>>20), func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "state.img")
			if err := os.WriteFile(p, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(p, size); err != nil {
				t.Fatal(err)
			}
			if err := FormatExt4(p, layout.StateLabel); err != nil {
				t.Fatal(err)
			}
			if got := probeFile(t, p); got.Content != probe.Ext4 || got.Label != layout.StateLabel {
				t.Fatalf("probe after format = %+v", got)
			}
			sb := head(t, p)
			// The format marker is cleared once the format is done.
			if !bytes.Equal(sb[:1024], make([]byte, 1024)) {
				t.Fatalf("the first KiB is not zero after the format: %q", bytes.TrimRight(sb[:64], "\x00"))
			}
			// The kernel sizes a group's inode table as inodes per group
			// divided by inodes per block, rounded down: it must be whole.
			sb = sb[1024:]
			blockSize := 1024 << binary.LittleEndian.Uint32(sb[24:])
			perGroup := binary.LittleEndian.Uint32(sb[40:])
			inodeSize := binary.LittleEndian.Uint16(sb[88:])
			if blockSize != 4096 || perGroup%uint32(blockSize/int(inodeSize)) != 0 {
				t.Fatalf("block size %d, %d inodes of %d bytes per group: not whole inode table blocks", blockSize, perGroup, inodeSize)
			}
			// -fy repairs what it finds; exit status 0 means it found nothing.
			if out, err := exec.Command(e2fsck, "-fy", p).CombinedOutput(); err != nil {
				t.Fatalf("e2fsck: %v\n%s", err, out)
			}
		})
	}
}

// A format cut short (the power went) keeps the placeholder label, which
// Prepare formats again instead of mounting.
func TestUnfinishedFormatIsNotState(t *testing.T) {
	b := make([]byte, 4096)
	b[1024+56], b[1024+57] = 0x53, 0xEF
	copy(b[1024+120:], formattingLabel)
	got, err := probe.Device(bytes.NewReader(b), int64(len(b)))
	if err != nil || got.Content != probe.Ext4 || got.Label != formattingLabel || got.Label == layout.StateLabel {
		t.Fatalf("probe.Device = %+v, %v", got, err)
	}
}

// A format cut at any point, even before ext4's superblock is written
// (bitmaps and inode tables come first), still carries the marker written
// before anything else: it is ours, and formatted again. Without the
// marker the same bytes are someone else's data.
func TestCutFormatIsFormattedAgain(t *testing.T) {
	p := filepath.Join(t.TempDir(), "state.img")
	const size = 4 << 30
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, size); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeMarker(f, probe.FormatMarker); err != nil {
		t.Fatal(err)
	}
	// What a cut format leaves: some metadata blocks written, no superblock.
	f.WriteAt(bytes.Repeat([]byte{0xff}, 4096), 256<<10)
	f.Close()
	if got := probeFile(t, p); got.Content != probe.Unfinished {
		t.Fatalf("probe of a cut format = %+v, want unfinished", got)
	}
	// Prepare formats it (a regular file: no partition to grow, no mount).
	if err := FormatExt4(p, layout.StateLabel); err != nil {
		t.Fatal(err)
	}
	if got := probeFile(t, p); got.Content != probe.Ext4 || got.Label != layout.StateLabel {
		t.Fatalf("after the new format: %+v", got)
	}
	// The same metadata without the marker is not ours.
	f, _ = os.OpenFile(p, os.O_RDWR, 0)
	f.WriteAt(make([]byte, 8192), 0)
	f.Close()
	if got := probeFile(t, p); got.Content != probe.Other {
		t.Fatalf("unmarked data = %+v, want other", got)
	}
}

func head(t *testing.T, p string) []byte {
	t.Helper()
	b := make([]byte, 64<<10)
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n, _ := f.ReadAt(b, 0)
	return b[:n]
}

// Links into the medium whose archive is gone are removed; the user's
// own files and links elsewhere stay.
func TestUnlinkGone(t *testing.T) {
	dir := t.TempDir()
	own := filepath.Join(dir, "own.tar")
	os.WriteFile(own, []byte("x"), 0o644)
	os.Symlink(mediumImages+"/gone-from-the-medium.tar.zst", filepath.Join(dir, "gone.tar.zst"))
	os.Symlink(own, filepath.Join(dir, "elsewhere.tar"))
	if err := unlinkGone(dir); err != nil {
		t.Fatal(err)
	}
	var left []string
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		left = append(left, e.Name())
	}
	if strings.Join(left, " ") != "elsewhere.tar own.tar" {
		t.Fatalf("left %v", left)
	}
	if err := unlinkGone(filepath.Join(dir, "missing")); err != nil {
		t.Fatalf("missing dir: %v", err)
	}
}

func fileSize(t testing.TB, p string) int64 {
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// A state partition too small for a node is refused with the fix, before
// anything is formatted.
func TestStateTooSmall(t *testing.T) {
	p := filepath.Join(t.TempDir(), "vda5")
	os.WriteFile(p, nil, 0o644)
	os.Truncate(p, 256<<20)
	err := (&State{Device: p}).checkSize()
	if err == nil || !strings.Contains(err.Error(), "is 256 MiB") || !strings.Contains(err.Error(), "qemu-img resize") {
		t.Fatalf("err = %v", err)
	}
	os.Truncate(p, MinStateSize)
	if err := (&State{Device: p}).checkSize(); err != nil {
		t.Fatalf("%d bytes refused: %v", int64(MinStateSize), err)
	}
}

// Prepare refuses a partition that is not blank, names what it holds and
// writes nothing; the commands it offers make the partition blank.
func TestPrepareRefusesAndTheWipeWorks(t *testing.T) {
	p := disktest.ZeroFile(t, 300<<20)
	disktest.Tool("mkfs.btrfs", "-q", "-f")(t, p)
	disktest.WriteAt(t, p, 300<<20-100, []byte("data at the end"))
	before := disktest.Output(t, nil, "sha256sum", p)
	_, err := (&State{Device: p, Disk: "/nonexistent", Partition: 5}).Prepare()
	if err == nil || !strings.Contains(err.Error(), "state: "+p+" (partition RKE2_STATE) holds a btrfs filesystem;") ||
		!strings.Contains(err.Error(), "nothing was written") {
		t.Fatalf("Prepare: %v", err)
	}
	if after := disktest.Output(t, nil, "sha256sum", p); after != before {
		t.Fatal("Prepare wrote to a partition it refused")
	}
	_, cmds, _ := strings.Cut(err.Error(), "from a rescue system (")
	cmds, _, _ = strings.Cut(cmds, ") and reboot")
	if !strings.HasPrefix(cmds, "dd if=/dev/zero of="+p) {
		t.Fatalf("no wipe commands in %q", err)
	}
	disktest.Run(t, nil, "sh", "-c", cmds)
	if got := probeFile(t, p); got.Content != probe.Blank {
		t.Fatalf("after %s: %+v", cmds, got)
	}
	if fileSize(t, p) != 300<<20 {
		t.Fatalf("the wipe changed the size to %d", fileSize(t, p))
	}
}

// Prepare's probe error names the device and says nothing was written.
func TestPrepareProbeError(t *testing.T) {
	p := filepath.Join(t.TempDir(), "vda5")
	os.WriteFile(p, nil, 0o644)
	_, err := (&State{Device: p, Disk: "/nonexistent", Partition: 5}).Prepare()
	if err == nil || !strings.Contains(err.Error(), p+" (partition RKE2_STATE): cannot tell whether it is blank: the device has 0 bytes") ||
		!strings.Contains(err.Error(), "nothing was written") {
		t.Fatalf("Prepare: %v", err)
	}
}

func probeFile(t *testing.T, p string) probe.Result {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := probe.Device(f, fileSize(t, p))
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// A reset cut by a power loss after any of its writes leaves a partition
// the probe calls blank or an unfinished format of ours, never foreign.
func TestWipeIsCutSafe(t *testing.T) {
	p := filepath.Join(t.TempDir(), "state")
	const size = 300 << 20
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	// A formatted partition's signatures at its start and end.
	f.WriteAt(bytes.Repeat([]byte{0xAB}, 1<<20), 0)
	f.WriteAt(bytes.Repeat([]byte{0xCD}, 1<<20), size-1<<20)
	f.Close()
	rec := &recordingFile{path: p}
	s := &State{Device: p}
	if err := s.wipe(rec, size); err != nil {
		t.Fatal(err)
	}
	// Replay the writes one by one on a copy, probing after each.
	orig := filepath.Join(t.TempDir(), "orig")
	g, _ := os.Create(orig)
	g.Truncate(size)
	g.WriteAt(bytes.Repeat([]byte{0xAB}, 1<<20), 0)
	g.WriteAt(bytes.Repeat([]byte{0xCD}, 1<<20), size-1<<20)
	defer g.Close()
	for i, w := range rec.writes {
		if _, err := g.WriteAt(w.data, w.off); err != nil {
			t.Fatal(err)
		}
		r, err := probe.Device(g, size)
		if err != nil {
			t.Fatal(err)
		}
		last := i == len(rec.writes)-1
		if r.Content != probe.Unfinished && !(last && r.Content == probe.Blank) {
			t.Fatalf("after write %d of %d (at %d): %v (%s)", i+1, len(rec.writes), w.off, r.Content, r.Found)
		}
	}
}

type recordedWrite struct {
	data []byte
	off  int64
}

// recordingFile records writes instead of making them.
type recordingFile struct {
	path   string
	writes []recordedWrite
}

func (r *recordingFile) WriteAt(b []byte, off int64) (int, error) {
	r.writes = append(r.writes, recordedWrite{bytes.Clone(b), off})
	return len(b), nil
}
func (r *recordingFile) Sync() error { return nil }
