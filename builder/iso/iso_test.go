package iso

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rke2os/rke2os/init/pid1/boot"
)

func writeSources(t *testing.T, dir string, mtime time.Time) []File {
	t.Helper()
	files := []File{
		{Path: "/boot/vmlinuz", Source: filepath.Join(dir, "vmlinuz")},
		{Path: "/boot/grub/grub.cfg", Source: filepath.Join(dir, "grub.cfg")},
		{Path: "/boot/grub/bios.img", Source: filepath.Join(dir, "bios.img")},
		{Path: "/boot/grub/efi.img", Source: filepath.Join(dir, "efi.img")},
		{Path: "/var/lib/rancher/rke2/agent/images/rke2-images.linux-amd64.tar.zst", Source: filepath.Join(dir, "images")},
	}
	for i, f := range files {
		data := bytes.Repeat([]byte{byte('a' + i)}, 5000*(i+1))
		if err := os.WriteFile(f.Source, data, 0o640); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(f.Source, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	return files
}

func build(t *testing.T, mtime time.Time) []byte {
	t.Helper()
	dir := t.TempDir()
	files := writeSources(t, dir, mtime)
	ws := filepath.Join(dir, "ws")
	if err := os.Mkdir(ws, 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.iso")
	err := Write(out, ws, Spec{VolumeID: "RKE2_BOOT", Files: files, BIOSBoot: "/boot/grub/bios.img", EFIBoot: "/boot/grub/efi.img",
		Epoch: time.Unix(1735689600, 0)})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Two builds a second apart, from files with other dates and modes, give
// the same bytes: go-diskfs' clock and the build machine leave no trace.
func TestReproducible(t *testing.T) {
	a := build(t, time.Unix(1e9, 0))
	time.Sleep(1100 * time.Millisecond)
	b := build(t, time.Unix(1.5e9, 0))
	if !bytes.Equal(a, b) {
		n := 0
		for i := range a {
			if i < len(b) && a[i] != b[i] {
				if n < 10 {
					t.Errorf("byte %d (sector %d, offset %d): %#x != %#x", i, i/2048, i%2048, a[i], b[i])
				}
				n++
			}
		}
		t.Fatalf("two builds differ (%d vs %d bytes, %d bytes differ)", len(a), len(b), n)
	}
}

func TestVolumeLabelAndSize(t *testing.T) {
	img := build(t, time.Unix(1e9, 0))
	fstype, label := boot.ProbeLabel(img[:0x8800])
	if fstype != "iso9660" || label != "RKE2_BOOT" {
		t.Fatalf("probe = %q %q, want iso9660 RKE2_BOOT", fstype, label)
	}
	if len(img)%sector != 0 {
		t.Fatalf("size %d is not whole sectors", len(img))
	}
	// Cut to the volume: the payload is ~75 KB, the image must not carry megabytes of padding.
	if len(img) > 1<<20 {
		t.Fatalf("image is %d bytes: not cut to the volume size", len(img))
	}
	if !bytes.Contains(img, []byte("EL TORITO SPECIFICATION")) {
		t.Fatal("no El Torito boot record")
	}
}

func TestDates(t *testing.T) {
	ep := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	if got := shortDate(ep); !bytes.Equal(got, []byte{125, 1, 2, 3, 4, 5, 0}) {
		t.Errorf("shortDate = %v", got)
	}
	if got := string(longDate(ep)[:16]); got != "2025010203040500" {
		t.Errorf("longDate = %q", got)
	}
}
