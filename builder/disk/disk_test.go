package disk

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/rke2os/rke2os/init/shared/layout"
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
