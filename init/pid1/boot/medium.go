package boot

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rke2os/rke2os/init/shared/blockdev"
	"github.com/rke2os/rke2os/init/shared/console"
	"github.com/rke2os/rke2os/init/shared/layout"
	"golang.org/x/sys/unix"
)

// Medium is a block device found by its label.
type Medium struct {
	Device string // /dev/sr0, /dev/vda3
	FSType string // iso9660 or vfat
	Label  string
}

// FindMedium waits up to timeout for a block device whose GPT partition
// name or filesystem label is label. Devices appear while their drivers
// probe, so the search repeats until the deadline.
func FindMedium(label string, timeout time.Duration) (*Medium, error) {
	deadline := time.Now().Add(timeout)
	for {
		if m := scanBlock(label); m != nil {
			return m, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("no block device labelled %s after %s (devices: %s); is the ISO or disk attached, and is its driver in the initramfs?",
				label, timeout, strings.Join(blockdev.Names(), " "))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func scanBlock(label string) *Medium {
	for _, name := range blockdev.Names() {
		if strings.HasPrefix(name, "loop") || strings.HasPrefix(name, "ram") {
			continue
		}
		dev := "/dev/" + name
		fstype, fslabel := probeFS(dev)
		if fstype == "" {
			continue
		}
		if fslabel == label || blockdev.PartName(name) == label {
			return &Medium{Device: dev, FSType: fstype, Label: label}
		}
	}
	return nil
}

// probeFS reads a filesystem's type and label from its first blocks.
func probeFS(dev string) (fstype, label string) {
	f, err := os.Open(dev)
	if err != nil {
		return "", ""
	}
	defer f.Close()
	buf := make([]byte, 0x8800)
	n, _ := f.ReadAt(buf, 0)
	return ProbeLabel(buf[:n])
}

// ProbeLabel recognises ISO9660 (volume identifier) and FAT32 (volume
// label) from the first 34 KiB of a device.
func ProbeLabel(b []byte) (fstype, label string) {
	if len(b) >= 0x8000+72 && b[0x8000] == 1 && string(b[0x8001:0x8006]) == "CD001" {
		return "iso9660", strings.TrimRight(string(b[0x8000+40:0x8000+72]), " \x00")
	}
	if len(b) >= 512 && b[510] == 0x55 && b[511] == 0xAA && bytes.Equal(b[0x52:0x5A], []byte("FAT32   ")) {
		return "vfat", strings.TrimRight(string(b[0x47:0x52]), " \x00")
	}
	return "", ""
}

// Mount mounts the medium read-only on layout.MediumDir.
func (m *Medium) Mount() error {
	if err := os.MkdirAll(layout.MediumDir, 0o755); err != nil {
		return err
	}
	if err := unix.Mount(m.Device, layout.MediumDir, m.FSType, unix.MS_RDONLY|unix.MS_NODEV|unix.MS_NOSUID, ""); err != nil {
		return fmt.Errorf("mount %s (%s) on %s: %w", m.Device, m.FSType, layout.MediumDir, err)
	}
	slog.Info("boot medium mounted", "device", m.Device, "fstype", m.FSType, "label", m.Label, "dir", layout.MediumDir)
	console.Event(console.EventMediumMounted, "device", m.Device, "fstype", m.FSType, "label", m.Label, "dir", layout.MediumDir)
	return nil
}

// LinkImages makes the medium's image archives appear in RKE2's images
// directory as symlinks: RKE2 and the init read them in place, so a 1 GiB
// archive costs no copy and no memory. Files a user put there already win.
func LinkImages(imagesDir string) (int, error) {
	if err := unlinkGone(imagesDir); err != nil {
		return 0, err
	}
	ents, err := os.ReadDir(mediumImages)
	if os.IsNotExist(err) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("images on the boot medium: %w", err)
	}
	if err := os.MkdirAll(imagesDir, 0o755); err != nil {
		return 0, err
	}
	n := 0
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		link := filepath.Join(imagesDir, e.Name())
		target := filepath.Join(mediumImages, e.Name())
		if cur, err := os.Readlink(link); err == nil && cur == target {
			n++
			continue
		}
		if _, err := os.Lstat(link); err == nil {
			slog.Info("image archive present, not linking the medium's", "file", link)
			continue
		}
		if err := os.Symlink(target, link); err != nil {
			return n, fmt.Errorf("link %s: %w", link, err)
		}
		n++
	}
	return n, nil
}

// unlinkGone removes links into the medium whose archive is gone: the
// images directory lives on the state partition, across image updates
// that drop or rename an archive, and a dangling link stops RKE2's import.
func unlinkGone(imagesDir string) error {
	ents, err := os.ReadDir(imagesDir)
	if err != nil {
		return nil // not there yet
	}
	for _, e := range ents {
		if e.Type()&os.ModeSymlink == 0 {
			continue
		}
		link := filepath.Join(imagesDir, e.Name())
		target, err := os.Readlink(link)
		if err != nil || !strings.HasPrefix(target, mediumImages+"/") {
			continue
		}
		if _, err := os.Stat(target); os.IsNotExist(err) {
			if err := os.Remove(link); err != nil {
				return fmt.Errorf("remove stale link %s: %w", link, err)
			}
			slog.Info("image archive gone from the boot medium; link removed", "file", link, "target", target)
		}
	}
	return nil
}

// mediumImages is where the mounted medium carries the airgap image
// archives (rke2-build bakes them there).
const mediumImages = layout.MediumDir + layout.MediumImagesDir
