package boot

import (
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
	err := disk.Write(p, disk.Spec{MBR: make([]byte, 440), Core: []byte("core"), ESPLabel: "RKE2_BOOT",
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
	if mbr[510] != 0x55 || mbr[511] != 0xAA {
		t.Fatal("MBR signature lost")
	}
	// A second boot finds nothing more to grow.
	if added, err := GrowLastPartition(p, 5); err != nil || added != 0 {
		t.Fatalf("second grow: added %d, err %v", added, err)
	}
	if _, err := GrowLastPartition(p, 9); err == nil || !strings.Contains(err.Error(), "no partition 9") {
		t.Fatalf("missing partition: err %v", err)
	}
}

// The filesystem the init formats passes e2fsck and carries the label.
func TestFormatExt4(t *testing.T) {
	e2fsck, err := exec.LookPath("e2fsck")
	if err != nil {
		e2fsck = "/usr/sbin/e2fsck" // not on a user's PATH on Debian
	}
	p := filepath.Join(t.TempDir(), "state.img")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, 512<<20); err != nil {
		t.Fatal(err)
	}
	if err := FormatExt4(p, StateLabel); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 64<<10)
	f, _ := os.Open(p)
	f.ReadAt(b, 0)
	f.Close()
	if kind, label := ProbeState(b); kind != Ext4 || label != StateLabel {
		t.Fatalf("ProbeState after format = %v %q", kind, label)
	}
	if out, err := exec.Command(e2fsck, "-fn", p).CombinedOutput(); err != nil {
		t.Fatalf("e2fsck: %v\n%s", err, out)
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
