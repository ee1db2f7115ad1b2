package blockdev

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Disk is a whole disk as sysfs describes it.
type Disk struct {
	Name      string // vda
	Size      int64  // bytes
	Model     string // device/model, trimmed; "" if sysfs has none
	Serial    string // serial or device/serial, trimmed; "" if none
	Removable bool
	ReadOnly  bool
	// Partitions are the partitions the kernel knows on it (vda1, ...).
	Partitions []string
}

// Dev is the disk's device, /dev/vda.
func (d Disk) Dev() string { return "/dev/" + d.Name }

// Disks lists the whole disks (no partitions), in sysfs' order (sorted
// by name).
func Disks() []Disk {
	var out []Disk
	for _, n := range Names() {
		if d, ok := DiskOf(n); ok {
			d.Partitions = DiskPartitions(n)
			out = append(out, d)
		}
	}
	return out
}

// DiskOf describes the whole disk name (vda); ok is false when there is
// no such block device or it is a partition. Its Partitions are left
// empty (Disks fills them).
func DiskOf(name string) (Disk, bool) {
	dir := filepath.Join(SysBlock, name)
	if name == "" || strings.ContainsAny(name, "/\x00") || name == "." || name == ".." {
		return Disk{}, false
	}
	if _, err := os.Stat(filepath.Join(dir, "partition")); err == nil {
		return Disk{}, false
	}
	sectors, err := readInt(filepath.Join(dir, "size"))
	if err != nil {
		return Disk{}, false
	}
	d := Disk{Name: name, Size: sectors * 512, Model: readTrim(filepath.Join(dir, "device", "model"))}
	d.Serial = readTrim(filepath.Join(dir, "serial"))
	if d.Serial == "" {
		d.Serial = readTrim(filepath.Join(dir, "device", "serial"))
	}
	removable, _ := readInt(filepath.Join(dir, "removable"))
	ro, _ := readInt(filepath.Join(dir, "ro"))
	d.Removable, d.ReadOnly = removable == 1, ro == 1
	return d, true
}

// DiskPartitions lists the partitions the kernel knows on disk (vda).
func DiskPartitions(disk string) []string {
	var out []string
	for _, p := range Names() {
		if ParentDisk(p) == disk {
			out = append(out, p)
		}
	}
	return out
}

func readTrim(p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func readInt(p string) (int64, error) {
	return strconv.ParseInt(readTrim(p), 10, 64)
}
