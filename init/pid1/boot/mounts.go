// Package boot holds the init's first steps: the pseudo filesystems, the
// move from the initramfs to a real root, kernel modules and the boot medium.
package boot

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

type mount struct {
	source, target, fstype string
	flags                  uintptr
	data                   string
}

// The pseudo filesystems every later step expects. devtmpfs comes first:
// Go's os/exec opens /dev/null.
var pseudoFS = []mount{
	{"devtmpfs", "/dev", "devtmpfs", unix.MS_NOSUID, "mode=0755"},
	{"proc", "/proc", "proc", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
	{"sysfs", "/sys", "sysfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
	{"tmpfs", "/run", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=0755"},
	{"cgroup2", "/sys/fs/cgroup", "cgroup2", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, "nsdelegate"},
	{"devpts", "/dev/pts", "devpts", unix.MS_NOSUID | unix.MS_NOEXEC, "gid=5,mode=0620,ptmxmode=0666"},
	{"tmpfs", "/dev/shm", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777"},
	{"tmpfs", "/tmp", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777"},
}

// MountPseudoFS mounts devtmpfs, proc, sysfs, /run, cgroup2, devpts and
// /dev/shm. A filesystem mounted already (the kernel may automount
// devtmpfs) is left as it is.
func MountPseudoFS() error {
	var errs []error
	for _, m := range pseudoFS {
		if err := os.MkdirAll(m.target, 0o755); err != nil {
			errs = append(errs, fmt.Errorf("mkdir %s: %w", m.target, err))
			continue
		}
		if mounted(m.target, m.fstype) {
			continue
		}
		if err := unix.Mount(m.source, m.target, m.fstype, m.flags, m.data); err != nil {
			errs = append(errs, fmt.Errorf("mount %s on %s: %w", m.fstype, m.target, err))
		}
	}
	return errors.Join(errs...)
}

// mounted reports whether target is a mount point of type fstype, judged by
// the filesystem magic (proc may not be mounted yet to read mountinfo).
func mounted(target, fstype string) bool {
	magic := map[string]int64{
		"devtmpfs": unix.TMPFS_MAGIC, "proc": unix.PROC_SUPER_MAGIC, "sysfs": unix.SYSFS_MAGIC,
		"cgroup2": unix.CGROUP2_SUPER_MAGIC, "devpts": unix.DEVPTS_SUPER_MAGIC,
	}[fstype]
	if magic == 0 {
		return false
	}
	var st, parent unix.Statfs_t
	if unix.Statfs(target, &st) != nil || st.Type != magic {
		return false
	}
	// Same magic as the parent means we are looking at the parent (tmpfs on tmpfs).
	if unix.Statfs(target+"/..", &parent) == nil && parent.Type == st.Type {
		var a, b unix.Stat_t
		if unix.Stat(target, &a) == nil && unix.Stat(target+"/..", &b) == nil && a.Dev == b.Dev {
			return false
		}
	}
	return true
}
