// Package iso writes the bootable ISO9660 image with go-diskfs: Rock Ridge
// names, two El Torito entries (GRUB for BIOS, a FAT image with GRUB for
// UEFI), and every date and owner normalised so that the same inputs give
// the same bytes.
package iso

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"time"

	"github.com/rke2os/rke2os/internal/fsutil"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/disk"
	"github.com/diskfs/go-diskfs/filesystem"
	"github.com/diskfs/go-diskfs/filesystem/iso9660"
)

const sector = 2048

// File is one file of the image: its path in the ISO and the file it comes from.
type File struct {
	Path   string // absolute path in the ISO, e.g. /boot/vmlinuz
	Source string // file on the build machine
}

// Spec describes the image.
type Spec struct {
	VolumeID string
	Files    []File
	// BIOSBoot and EFIBoot are paths in the ISO of the El Torito images;
	// none makes a data-only volume.
	BIOSBoot, EFIBoot string
	// Epoch is the date written everywhere a date goes.
	Epoch time.Time
}

// Write writes the ISO to out. The workspace is a scratch directory on the
// same filesystem as the sources where possible: files are staged by hard
// link, which makes the build several times faster than copying.
func Write(out, workspace string, spec Spec) error {
	var payload int64
	for _, f := range spec.Files {
		fi, err := os.Stat(f.Source)
		if err != nil {
			return fmt.Errorf("iso: %w", err)
		}
		payload += (fi.Size() + sector - 1) / sector * sector
		if err := stage(f, workspace); err != nil {
			return fmt.Errorf("iso: stage %s: %w", f.Path, err)
		}
	}
	// go-diskfs writes into an image of the size it is given; give it room
	// for descriptors and directories, and cut it to the volume size after.
	size := payload + 8<<20 + int64(len(spec.Files))*4*sector
	d, err := diskfs.Create(out, size, diskfs.SectorSizeDefault)
	if err != nil {
		return fmt.Errorf("iso: create %s: %w", out, err)
	}
	d.LogicalBlocksize = sector
	fs, err := d.CreateFilesystem(disk.FilesystemSpec{Partition: 0, FSType: filesystem.TypeISO9660, VolumeLabel: spec.VolumeID, WorkDir: workspace})
	if err != nil {
		d.Close()
		return fmt.Errorf("iso: %w", err)
	}
	isofs, ok := fs.(*iso9660.FileSystem)
	if !ok {
		d.Close()
		return errors.New("iso: go-diskfs returned no ISO9660 filesystem")
	}
	opts := iso9660.FinalizeOptions{
		RockRidge:        true,
		DeepDirectories:  true,
		VolumeIdentifier: spec.VolumeID,
	}
	// A data-only volume (a NoCloud cidata disk) has no boot entries.
	if spec.BIOSBoot != "" {
		bios := &iso9660.ElToritoEntry{Platform: iso9660.BIOS, Emulation: iso9660.NoEmulation, BootFile: spec.BIOSBoot, BootTable: true, LoadSegment: 0}
		bios.SetLoadSize(4)
		opts.ElTorito = &iso9660.ElTorito{
			BootCatalog:     "/boot/boot.catalog",
			HideBootCatalog: false,
			Entries: []*iso9660.ElToritoEntry{
				bios,
				{Platform: iso9660.EFI, Emulation: iso9660.NoEmulation, BootFile: spec.EFIBoot},
			},
		}
	}
	if err := isofs.Finalize(opts); err != nil {
		d.Close()
		return fmt.Errorf("iso: finalize: %w", err)
	}
	if err := d.Close(); err != nil {
		return fmt.Errorf("iso: close: %w", err)
	}
	f, err := os.OpenFile(out, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := Normalize(f, spec.Epoch); err != nil {
		return fmt.Errorf("iso: normalise %s: %w", out, err)
	}
	return f.Sync()
}

func stage(f File, workspace string) error {
	dst := filepath.Join(workspace, filepath.FromSlash(path.Clean("/"+f.Path)))
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	if err := os.Link(f.Source, dst); err == nil {
		return nil
	}
	// Another filesystem (or no hard links): copy.
	return fsutil.CopyFile(f.Source, dst)
}

// Paths lists the files' ISO paths, sorted (for messages and tests).
func (s Spec) Paths() []string {
	var p []string
	for _, f := range s.Files {
		p = append(p, f.Path)
	}
	sort.Strings(p)
	return p
}
