package blockdev

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeSys lays out sysfs as the kernel does: class/block/<name> links to
// devices/.../block/<disk>[/<part>], partitions have a partition file.
func fakeSys(t *testing.T, parts map[string]string) {
	t.Helper()
	root := t.TempDir()
	class := filepath.Join(root, "class", "block")
	if err := os.MkdirAll(class, 0o755); err != nil {
		t.Fatal(err)
	}
	for dev, partName := range parts {
		disk := strings.TrimRight(dev, "0123456789")
		dir := filepath.Join(root, "devices", "block", disk)
		if dev != disk {
			dir = filepath.Join(dir, dev)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		uevent := "DEVNAME=" + dev + "\n"
		if dev != disk {
			uevent += "PARTN=1\nPARTNAME=" + partName + "\n"
			if err := os.WriteFile(filepath.Join(dir, "partition"), []byte("1\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, "uevent"), []byte(uevent), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(dir, filepath.Join(class, dev)); err != nil {
			t.Fatal(err)
		}
	}
	old := SysBlock
	SysBlock = class
	t.Cleanup(func() { SysBlock = old })
}

func TestPartition(t *testing.T) {
	fakeSys(t, map[string]string{"vda": "", "vda2": "EFI", "vda3": "RKE2_A", "vda4": "RKE2_B", "vdb": "", "vdb3": "RKE2_A", "sda": "", "sda1": "X", "sda2": "X"})
	for _, tc := range []struct{ disk, name, want, err string }{
		{"vda", "RKE2_B", "/dev/vda4", ""},
		{"vdb", "RKE2_A", "/dev/vdb3", ""},
		{"vdb", "EFI", "", "no partition named EFI"},
		{"sda", "X", "", "2 partitions named X"},
	} {
		got, err := Partition(tc.disk, tc.name)
		if got != tc.want || (err == nil) != (tc.err == "") || err != nil && !strings.Contains(err.Error(), tc.err) {
			t.Errorf("Partition(%s, %s) = %q, %v; want %q, %q", tc.disk, tc.name, got, err, tc.want, tc.err)
		}
	}
	if d := ParentDisk("vda3"); d != "vda" {
		t.Errorf("ParentDisk(vda3) = %q", d)
	}
	if d := ParentDisk("vda"); d != "" {
		t.Errorf("ParentDisk(vda) = %q, want none (a disk)", d)
	}
	if n := PartName("vda4"); n != "RKE2_B" {
		t.Errorf("PartName(vda4) = %q", n)
	}
}

// Disks lists the whole disks with what sysfs says of them.
func TestDisks(t *testing.T) {
	fakeSys(t, map[string]string{"vda": "", "vda1": "EFI", "vdb": "", "sda": ""})
	attrs := map[string]map[string]string{
		"vda": {"size": "16777216\n", "device/model": "QEMU HARDDISK   \n", "serial": "os-disk\n", "removable": "0\n", "ro": "0\n"},
		"vdb": {"size": "2048\n", "device/serial": " S3Z9NB0K\n", "removable": "1\n", "ro": "1\n"},
		"sda": {"size": "720896\n"},
	}
	for disk, files := range attrs {
		for name, content := range files {
			p := filepath.Join(SysBlock, disk, name)
			os.MkdirAll(filepath.Dir(p), 0o755)
			os.WriteFile(p, []byte(content), 0o644)
		}
	}
	got := Disks()
	want := []Disk{
		{Name: "sda", Size: 720896 * 512},
		{Name: "vda", Size: 8 << 30, Model: "QEMU HARDDISK", Serial: "os-disk", Partitions: []string{"vda1"}},
		{Name: "vdb", Size: 1 << 20, Serial: "S3Z9NB0K", Removable: true, ReadOnly: true},
	}
	if len(got) != len(want) {
		t.Fatalf("Disks() = %+v", got)
	}
	for i := range want {
		if got[i].Name != want[i].Name || got[i].Size != want[i].Size || got[i].Model != want[i].Model || got[i].Serial != want[i].Serial ||
			got[i].Removable != want[i].Removable || got[i].ReadOnly != want[i].ReadOnly || strings.Join(got[i].Partitions, ",") != strings.Join(want[i].Partitions, ",") {
			t.Errorf("disk %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	if _, ok := DiskOf("vda1"); ok {
		t.Error("a partition is a disk")
	}
	if _, ok := DiskOf("../vda"); ok {
		t.Error("a path is a disk")
	}
}
