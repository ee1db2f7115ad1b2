package blockdev

import (
	"errors"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// SectorSize is a block device's logical sector size; 512 for a file.
func SectorSize(f *os.File) (int, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if fi.Mode()&os.ModeDevice == 0 {
		return 512, nil
	}
	n, err := unix.IoctlGetInt(int(f.Fd()), unix.BLKSSZGET)
	if err != nil {
		return 0, fmt.Errorf("sector size of %s: %w", f.Name(), err)
	}
	if n < 512 || n > 64<<10 || n&(n-1) != 0 {
		return 0, fmt.Errorf("sector size of %s: the kernel says %d bytes", f.Name(), n)
	}
	return n, nil
}

// Size is a block device's size in bytes, or a regular file's (a disk
// image standing in for a device in tests).
func Size(f *os.File) (int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if fi.Mode()&os.ModeDevice == 0 {
		return fi.Size(), nil
	}
	var size uint64
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.BLKGETSIZE64, uintptr(unsafe.Pointer(&size))); e != 0 {
		return 0, fmt.Errorf("size of %s: %w", f.Name(), e)
	}
	if size == 0 {
		return 0, errors.New("size of " + f.Name() + ": zero")
	}
	return int64(size), nil
}
