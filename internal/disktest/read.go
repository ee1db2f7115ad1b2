package disktest

import (
	"crypto/sha256"
	"io"
	"os"
	"testing"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/partition/gpt"
)

// GPT reads the partition table of the disk image p.
func GPT(t testing.TB, p string) *gpt.Table {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tb, err := gpt.Read(f, 512, 512)
	if err != nil {
		t.Fatalf("GPT of %s: %v", p, err)
	}
	return tb
}

// Partition is where the partition named name lies in the disk image p,
// in bytes.
func Partition(t testing.TB, p, name string) (start, size int64) {
	t.Helper()
	for _, part := range GPT(t, p).Partitions {
		if part.Name == name {
			return int64(part.Start) * 512, int64(part.Size)
		}
	}
	t.Fatalf("%s has no partition %s", p, name)
	return 0, 0
}

// Hash is the sha256 of n bytes of the file p at off.
func Hash(t testing.TB, p string, off, n int64) [32]byte {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if m, err := io.Copy(h, io.NewSectionReader(f, off, n)); err != nil || m != n {
		t.Fatalf("read %d bytes of %s at %d: %d, %v", n, p, off, m, err)
	}
	return [32]byte(h.Sum(nil))
}

// ESPFile reads the file path from the ESP (partition 2) of the disk
// image disk.
func ESPFile(t testing.TB, disk, path string) string {
	t.Helper()
	d, err := diskfs.Open(disk, diskfs.WithOpenMode(diskfs.ReadOnly))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	fsys, err := d.GetFilesystem(2)
	if err != nil {
		t.Fatalf("ESP of %s: %v", disk, err)
	}
	f, err := fsys.OpenFile(path, os.O_RDONLY)
	if err != nil {
		t.Fatalf("ESP %s: %v", path, err)
	}
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
