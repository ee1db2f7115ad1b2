package diskimage

import (
	"encoding/json"
	"fmt"
	"os"
	"path"
	"strings"
	"time"
)

// ManifestFormat is the version of Manifest this code writes and reads.
const ManifestFormat = 1

// Manifest is what an install needs to write the raw image's disk from
// the files of a medium (the ISO): rke2-build writes it beside them
// (layout.InstallManifest), and both the raw image and an install are
// written from the Spec it gives, so that they hold the same bytes.
type Manifest struct {
	Format int    `json:"format"`
	Role   string `json:"role"`
	// Epoch is the build's SOURCE_DATE_EPOCH, which dates the FAT
	// entries: the slot image's bytes depend on it.
	Epoch int64 `json:"source_date_epoch"`
	// MBR and Core are the medium's files holding GRUB's boot code (440
	// bytes) and core image, both for BIOSPartitionLBA.
	MBR  string `json:"mbr"`
	Core string `json:"core"`
	// ESPLabel labels the ESP's filesystem; ESP lists its files.
	ESPLabel string         `json:"esp_label"`
	ESP      []ManifestFile `json:"esp"`
	// Slot lists the system slot's files, in the order the slot image
	// holds them (the image's bytes depend on it); SlotSize and
	// SlotSHA256 are the image's size and digest ("sha256:<hex>").
	Slot       []ManifestFile `json:"slot"`
	SlotSize   int64          `json:"slot_size"`
	SlotSHA256 string         `json:"slot_sha256"`
	// StateSize is the state partition's size in the table; the first
	// boot grows it to the disk's end.
	StateSize int64 `json:"state_size"`
}

// ManifestFile is one file of a FAT filesystem of the disk and where the
// medium holds it.
type ManifestFile struct {
	Path   string `json:"path"`   // in the disk's filesystem
	Medium string `json:"medium"` // below the medium's root
}

// ReadManifest reads the manifest at p.
func ReadManifest(p string) (*Manifest, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	if m.Format != ManifestFormat {
		return nil, fmt.Errorf("%s: format %d, this rke2-node reads %d", p, m.Format, ManifestFormat)
	}
	for _, f := range append(append([]ManifestFile{}, m.ESP...), m.Slot...) {
		if !path.IsAbs(f.Path) || !path.IsAbs(f.Medium) || strings.Contains(f.Medium, "..") {
			return nil, fmt.Errorf("%s: file %q from %q: want absolute paths inside the medium", p, f.Path, f.Medium)
		}
	}
	if !strings.HasPrefix(m.SlotSHA256, "sha256:") || m.SlotSize <= 0 {
		return nil, fmt.Errorf("%s: no slot image size and digest", p)
	}
	return &m, nil
}

// Bytes is the manifest as rke2-build writes it.
func (m *Manifest) Bytes() ([]byte, error) {
	b, err := json.MarshalIndent(m, "", "  ")
	return append(b, '\n'), err
}

// Spec is the disk of the manifest, its files read through local, which
// maps a path below the medium's root to the file on this machine. The
// slot is written from its files (SlotFiles); the builder, which has the
// slot image, sets Slot to write that instead. Seed is the slot image's
// digest, as for every disk of a build.
func (m *Manifest) Spec(local func(medium string) string) (Spec, error) {
	mbr, err := os.ReadFile(local(m.MBR))
	if err != nil {
		return Spec{}, fmt.Errorf("GRUB's boot code: %w", err)
	}
	core, err := os.ReadFile(local(m.Core))
	if err != nil {
		return Spec{}, fmt.Errorf("GRUB's core image: %w", err)
	}
	files := func(list []ManifestFile) []File {
		var out []File
		for _, f := range list {
			out = append(out, File{Path: f.Path, Source: local(f.Medium)})
		}
		return out
	}
	s := Spec{MBR: mbr, Core: core, ESPLabel: m.ESPLabel, ESP: files(m.ESP), SlotFiles: files(m.Slot),
		SlotSHA256: m.SlotSHA256, StateSize: m.StateSize, Seed: []byte(m.SlotSHA256), Epoch: time.Unix(m.Epoch, 0).UTC()}
	size, err := fatSize(s.SlotFiles)
	if err != nil {
		return Spec{}, err
	}
	if size != m.SlotSize {
		return Spec{}, fmt.Errorf("the slot's files make an image of %d bytes, the build's was %d: the medium's files are not the build's", size, m.SlotSize)
	}
	return s, nil
}
