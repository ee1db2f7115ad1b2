// Package blockdev reads what sysfs says of block devices (their names,
// the disk a partition belongs to, a partition's GPT name, a disk's size,
// model and serial) and what the kernel says of an open one (its size and
// sector size). PID 1 finds its boot medium and state partition with it,
// rke2-node the slots and the ESP of the disk it booted from, and the
// disk an install writes to.
package blockdev

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// SysBlock is sysfs' directory of block devices (a variable for tests).
var SysBlock = "/sys/class/block"

// Names lists the block devices (vda, vda3, sr0, ...).
func Names() []string {
	ents, _ := os.ReadDir(SysBlock)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// PartName is a partition's GPT name (PARTNAME in its uevent), or "".
func PartName(name string) string {
	b, err := os.ReadFile(filepath.Join(SysBlock, name, "uevent"))
	if err != nil {
		return ""
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "PARTNAME="); ok {
			return v
		}
	}
	return ""
}

// ParentDisk is the disk a partition belongs to (vda for vda3), or "" when
// name is not a partition (sr0, a whole disk).
func ParentDisk(name string) string {
	if name == "" || name == "." {
		return ""
	}
	sys := filepath.Join(SysBlock, name)
	if _, err := os.Stat(filepath.Join(sys, "partition")); err != nil {
		return ""
	}
	// /sys/class/block/vda3 links to .../block/vda/vda3.
	real, err := filepath.EvalSymlinks(sys)
	if err != nil {
		return ""
	}
	return filepath.Base(filepath.Dir(real))
}

// Partition finds the partition of disk (vda) whose GPT name is partName
// and returns its device (/dev/vda3). Two partitions of one name on a
// disk are an error: which one is meant cannot be told.
func Partition(disk, partName string) (string, error) {
	var found []string
	for _, n := range Names() {
		if ParentDisk(n) == disk && PartName(n) == partName {
			found = append(found, "/dev/"+n)
		}
	}
	switch len(found) {
	case 0:
		return "", fmt.Errorf("/dev/%s has no partition named %s", disk, partName)
	case 1:
		return found[0], nil
	}
	return "", fmt.Errorf("/dev/%s has %d partitions named %s (%s); rename all but one", disk, len(found), partName, strings.Join(found, ", "))
}
