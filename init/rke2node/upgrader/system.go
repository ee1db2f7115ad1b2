package upgrader

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/rke2os/rke2os/init/shared/blockdev"
	"github.com/rke2os/rke2os/init/shared/slots"
	"golang.org/x/sys/unix"
)

// System is the machine under the upgrader: the booted slot, the slots'
// state on the ESP, the slots' partitions and the reboot. NodeSystem is
// the node's own; tests give a disk of files.
type System interface {
	// Current is the booted slot; ok is false on a boot from the ISO or
	// PXE (slots.ReadCurrent).
	Current() (c slots.Current, ok bool, err error)
	// Slots reads the slots' state on the booted disk's ESP.
	Slots(c slots.Current) (slots.State, error)
	// UpdateSlots changes it (slots.ESP.Update).
	UpdateSlots(c slots.Current, change func(slots.State) (slots.State, error)) (slots.State, error)
	// Partition is slot s's partition device on the booted disk and its
	// size in bytes.
	Partition(c slots.Current, s slots.Slot) (dev string, size int64, err error)
	// Open opens a slot's partition device to write it (never truncated)
	// or to read it back from the device, not from what the kernel
	// cached of the writes.
	Open(dev string, write bool) (Device, error)
	// Reboot asks PID 1 to reboot, in order.
	Reboot() error
}

// Device is an open slot partition.
type Device interface {
	io.Reader
	io.Writer
	Sync() error
	Close() error
}

// NodeSystem is the node's own System.
type NodeSystem struct{}

func (NodeSystem) Current() (slots.Current, bool, error) { return slots.ReadCurrent() }

func (NodeSystem) Slots(c slots.Current) (slots.State, error) {
	st, _, err := slots.ESP{Device: c.ESP}.Read()
	return st, err
}

func (NodeSystem) UpdateSlots(c slots.Current, change func(slots.State) (slots.State, error)) (slots.State, error) {
	return slots.ESP{Device: c.ESP}.Update(change)
}

func (NodeSystem) Partition(c slots.Current, s slots.Slot) (string, int64, error) {
	dev, err := c.Partition(s)
	if err != nil {
		return "", 0, err
	}
	size, err := deviceSize(filepath.Base(dev))
	if err != nil {
		return "", 0, err
	}
	return dev, size, nil
}

// deviceSize is a block device's size: sysfs counts it in 512-byte
// sectors, whatever the device's own sector size.
func deviceSize(name string) (int64, error) {
	p := filepath.Join(blockdev.SysBlock, name, "size")
	b, err := os.ReadFile(p)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%s: %q is not a sector count", p, b)
	}
	return n * 512, nil
}

func (NodeSystem) Open(dev string, write bool) (Device, error) {
	if write {
		return os.OpenFile(dev, os.O_WRONLY, 0)
	}
	f, err := os.Open(dev)
	if err != nil {
		return nil, err
	}
	// The writes are synced: dropping the cached pages makes the reads
	// go to the device, so that the read-back checks what it kept.
	_ = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
	return f, nil
}

// Reboot sends PID 1 the reboot request it serves in order (what
// Ctrl-Alt-Del sends): services stopped, filesystems unmounted.
func (NodeSystem) Reboot() error { return unix.Kill(1, unix.SIGINT) }
