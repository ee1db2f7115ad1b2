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

	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/rke2os/rke2os/builder/disk"
)

func TestProbeState(t *testing.T) {
	ext := make([]byte, 4096)
	ext[1024+56], ext[1024+57] = 0x53, 0xEF
	copy(ext[1024+120:], "RKE2_STATE")
	fat := make([]byte, 4096)
	fat[3] = 'M'
	for _, tc := range []struct {
		name  string
		b     []byte
		want  Content
		label string
	}{
		{"zeros", make([]byte, 65536), Blank, ""},
		{"empty read", nil, Blank, ""},
		{"ext4", ext, Ext4, "RKE2_STATE"},
		{"something else", fat, Other, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, label := ProbeState(tc.b)
			if got != tc.want || label != tc.label {
				t.Fatalf("ProbeState = %v %q, want %v %q", got, label, tc.want, tc.label)
			}
		})
	}
}

// A disk image as the builder writes it, then copied to a larger disk:
// the state partition grows to the end, the others stay.
func TestGrowLastPartition(t *testing.T) {
	p := filepath.Join(t.TempDir(), "disk.raw")
	bootCode := bytes.Repeat([]byte{0xEB, 0x63, 0x90, 0x10}, 110) // 440 bytes, as GRUB's would be
	err := disk.Write(p, disk.Spec{MBR: bootCode, Core: []byte("core"), ESPLabel: "RKE2_BOOT",
		System: []disk.File{{Path: "/boot/x", Data: []byte("x")}}, StateSize: 64 << 20, Seed: []byte("t")})
	if err != nil {
		t.Fatal(err)
	}
	before := readGPT(t, p)
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
	after := readGPT(t, p)
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
			if err := FormatExt4(p, StateLabel); err != nil {
				t.Fatal(err)
			}
			sb := head(t, p)
			if kind, label := ProbeState(sb); kind != Ext4 || label != StateLabel {
				t.Fatalf("ProbeState after format = %v %q", kind, label)
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
	if kind, label := ProbeState(b); kind != Ext4 || label != formattingLabel || label == StateLabel {
		t.Fatalf("ProbeState = %v %q", kind, label)
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
	os.Symlink(MediumImages+"/gone-from-the-medium.tar.zst", filepath.Join(dir, "gone.tar.zst"))
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

func readGPT(t *testing.T, p string) *gpt.Table {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tb, err := gpt.Read(f, 512, 512)
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

func fileSize(t *testing.T, p string) int64 {
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
