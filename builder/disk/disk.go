// Package disk writes the raw GPT disk image: a BIOS boot partition for
// GRUB's core image, an ESP, two system slots for A/B upgrades, and a
// state partition the init formats on first boot. A system slot's content
// is a FAT32 image of its own (WriteSlot), the same bytes in slot A of the
// raw disk, in an upgrade artifact and in slot B after an upgrade.
// Everything is written by Go (go-diskfs); no loop device, no mkfs, no
// root.
package disk

import (
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/disk"
	"github.com/diskfs/go-diskfs/filesystem"
	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/rke2os/rke2os/init/shared/layout"
)

// Partition names (GPT labels); the FAT filesystems carry the same labels,
// except the ESP, which GRUB finds as the boot filesystem.
const (
	PartBIOS   = "BIOS"
	PartESP    = layout.ESPPartition
	PartSysA   = "RKE2_A"
	PartSysB   = "RKE2_B"
	PartState  = layout.StateLabel
	mib        = 1 << 20
	sectorSize = 512
)

// File is a file to write into a FAT filesystem of the disk.
type File struct {
	Path   string // in the filesystem, e.g. /boot/vmlinuz
	Source string // on the build machine
	Data   []byte // used when Source is empty
}

// Spec describes the disk.
type Spec struct {
	// MBR is the boot code for the first 440 bytes; Core the BIOS boot
	// partition's content. Both are built for the BIOS partition's LBA,
	// which BIOSPartitionLBA gives.
	MBR, Core []byte
	// ESPLabel labels the ESP's filesystem (GRUB searches it).
	ESPLabel string
	ESP      []File
	// Slot is the system slot image (WriteSlot) written into slot A;
	// slot B is left blank.
	Slot string
	// StateSize is the size of the state partition; the init formats it.
	StateSize int64
	// Seed makes the disk and partition GUIDs: same seed, same GUIDs.
	Seed []byte
}

// BIOSPartitionLBA is where the BIOS boot partition starts (1 MiB).
const BIOSPartitionLBA = mib / sectorSize

// Write writes the raw disk image to out.
func Write(out string, spec Spec) error {
	slot, err := os.Open(spec.Slot)
	if err != nil {
		return fmt.Errorf("disk: %w", err)
	}
	defer slot.Close()
	fi, err := slot.Stat()
	if err != nil {
		return fmt.Errorf("disk: %w", err)
	}
	sysSize := SlotPartitionSize(fi.Size())
	const espSize = 64 * mib // OVMF ignores a FAT32 ESP much smaller than 33 MiB
	stateSize := roundMiB(spec.StateSize)
	if stateSize < 64*mib {
		stateSize = 64 * mib
	}
	sizes := []int64{1 * mib, espSize, sysSize, sysSize, stateSize}
	names := []string{PartBIOS, PartESP, PartSysA, PartSysB, PartState}
	types := []gpt.Type{gpt.BIOSBoot, gpt.EFISystemPartition, gpt.LinuxFilesystem, gpt.LinuxFilesystem, gpt.LinuxFilesystem}
	start := int64(BIOSPartitionLBA)
	var parts []*gpt.Partition
	for i, sz := range sizes {
		end := start + sz/sectorSize - 1
		parts = append(parts, &gpt.Partition{Index: i + 1, Start: uint64(start), End: uint64(end), Size: uint64(sz),
			Type: types[i], Name: names[i], GUID: guid(spec.Seed, names[i])})
		start = end + 1
	}
	total := (start + 34) * sectorSize // backup GPT at the end
	d, err := diskfs.Create(out, total, diskfs.SectorSizeDefault)
	if err != nil {
		return fmt.Errorf("disk: create %s: %w", out, err)
	}
	if err := fill(d, parts, spec); err != nil {
		d.Close()
		return err
	}
	if err := d.Close(); err != nil {
		return err
	}
	if err := copyAt(out, slot, int64(parts[2].Start)*sectorSize); err != nil {
		return fmt.Errorf("disk: system slot A: %w", err)
	}
	return writeBootCode(out, spec, sizes[0])
}

// copyAt copies r into the file at off, in large writes.
func copyAt(path string, r io.Reader, off int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := io.CopyBuffer(io.NewOffsetWriter(f, off), r, make([]byte, 4*mib)); err != nil {
		return err
	}
	return f.Close()
}

// SlotPartitionSize sizes a system slot's partition for a slot image of
// size bytes: twice the image, in whole 64 MiB, so that a next version up
// to twice as large (a newer kernel, more or larger airgap images: RKE2's
// image archives grew by a third across the last minor versions) is
// written by an upgrade into the same partition. Both slots have the size.
func SlotPartitionSize(size int64) int64 {
	return (2*size + 64*mib - 1) / (64 * mib) * (64 * mib)
}

// WriteSlot writes a system slot image to out: a FAT32 filesystem
// labelled layout.SlotLabel holding files, sized to them, reproducible
// (the same files give the same bytes).
func WriteSlot(out string, files []File) error {
	size, err := fatSize(files)
	if err != nil {
		return err
	}
	d, err := diskfs.Create(out, size, diskfs.SectorSizeDefault)
	if err != nil {
		return fmt.Errorf("slot: create %s: %w", out, err)
	}
	if err := writeFAT(d, 0, layout.SlotLabel, files); err != nil {
		d.Close()
		return fmt.Errorf("slot: %w", err)
	}
	return d.Close()
}

func fill(d *disk.Disk, parts []*gpt.Partition, spec Spec) error {
	table := &gpt.Table{Partitions: parts, LogicalSectorSize: sectorSize, PhysicalSectorSize: sectorSize,
		ProtectiveMBR: true, GUID: guid(spec.Seed, "disk")}
	if err := d.Partition(table); err != nil {
		return fmt.Errorf("disk: partition: %w", err)
	}
	if err := writeFAT(d, 2, spec.ESPLabel, spec.ESP); err != nil {
		return fmt.Errorf("disk: ESP: %w", err)
	}
	return nil
}

func writeBootCode(out string, spec Spec, biosSize int64) error {
	// Boot code last, over go-diskfs' protective MBR (the table stays).
	f, err := os.OpenFile(out, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if len(spec.MBR) != 440 {
		return fmt.Errorf("disk: MBR boot code is %d bytes, want 440", len(spec.MBR))
	}
	if int64(len(spec.Core)) > biosSize {
		return fmt.Errorf("disk: GRUB core image (%d bytes) does not fit the 1 MiB BIOS boot partition", len(spec.Core))
	}
	if _, err := f.WriteAt(spec.MBR, 0); err != nil {
		return err
	}
	if _, err := f.WriteAt(spec.Core, BIOSPartitionLBA*sectorSize); err != nil {
		return err
	}
	return f.Sync()
}

// fatSize sizes a FAT32 filesystem for files: the payload plus room for
// its tables and clusters, never under the 40 MiB FAT32 (and OVMF) like.
func fatSize(files []File) (int64, error) {
	var sum int64
	for _, f := range files {
		if f.Source == "" {
			sum += int64(len(f.Data))
			continue
		}
		fi, err := os.Stat(f.Source)
		if err != nil {
			return 0, fmt.Errorf("disk: %w", err)
		}
		sum += fi.Size()
	}
	size := roundMiB(sum + sum/16 + 16*mib)
	if size < 64*mib {
		size = 64 * mib
	}
	return size, nil
}

func roundMiB(n int64) int64 { return (n + mib - 1) / mib * mib }

func writeFAT(d *disk.Disk, part int, label string, files []File) error {
	fs, err := d.CreateFilesystem(disk.FilesystemSpec{Partition: part, FSType: filesystem.TypeFat32, VolumeLabel: label, Reproducible: true})
	if err != nil {
		return err
	}
	made := map[string]bool{}
	for _, f := range files {
		p := path.Clean("/" + f.Path)
		if dir := path.Dir(p); dir != "/" && !made[dir] {
			if err := fs.Mkdir(dir); err != nil {
				return fmt.Errorf("mkdir %s: %w", dir, err)
			}
			made[dir] = true
		}
		data := f.Data
		if f.Source != "" {
			// One large Write per file: go-diskfs' FAT32 is an order of
			// magnitude slower when fed in small pieces.
			if data, err = os.ReadFile(f.Source); err != nil {
				return err
			}
		}
		w, err := fs.OpenFile(p, os.O_CREATE|os.O_RDWR)
		if err != nil {
			return fmt.Errorf("create %s: %w", p, err)
		}
		if _, err := w.Write(data); err != nil {
			return fmt.Errorf("write %s: %w", p, err)
		}
		if c, ok := w.(io.Closer); ok {
			if err := c.Close(); err != nil {
				return fmt.Errorf("close %s: %w", p, err)
			}
		}
	}
	return nil
}

// guid derives a stable RFC 4122 (version 4 layout) GUID from seed and name.
func guid(seed []byte, name string) string {
	h := sha256.Sum256(append(append([]byte{}, seed...), name...))
	h[6] = h[6]&0x0f | 0x40
	h[8] = h[8]&0x3f | 0x80
	return fmt.Sprintf("%X-%X-%X-%X-%X", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}
