// Package diskimage writes the node's GPT disk: a BIOS boot partition for
// GRUB's core image, an ESP, two system slots for A/B upgrades, and a
// state partition the init formats on first boot. A system slot's content
// is a FAT32 image of its own (WriteSlot), the same bytes in slot A of the
// raw disk, in an upgrade artifact and in slot B after an upgrade.
//
// It is shared by the builder, which writes the raw disk image (Write),
// and rke2-node, which installs the same disk from the ISO onto a block
// device (Install): one code path lays out both, so an installed disk has
// the raw image's partition table, ESP files and slot A bytes. Everything
// is written by Go (go-diskfs); no loop device, no mkfs, no root for an
// image.
//
// The order of the writes makes a disk cut short unbootable and
// recognisable: first a record in the disk's first sector that has no
// boot signature (probe.InstallRecord), then the partitions' contents,
// synced, then the GPT, and last the first sector again, with GRUB's boot
// code and the protective MBR. Until that last write no firmware boots the
// disk and no kernel reads its partition table; the probe calls it an
// unfinished install, which the next install takes over.
package diskimage

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path"
	"strconv"
	"time"

	"github.com/diskfs/go-diskfs/filesystem/fat32"
	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/rke2os/rke2os/init/shared/layout"
	"github.com/rke2os/rke2os/init/shared/probe"
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
	// ESPSize is the ESP's size: OVMF ignores a FAT32 ESP much smaller
	// than 33 MiB.
	ESPSize = 64 * mib
	// BIOSSize is the BIOS boot partition's size, GRUB's core image's room.
	BIOSSize = 1 * mib
)

// The partitions' indexes in Layout.Partitions (their numbers less one).
const (
	IndexBIOS = iota
	IndexESP
	IndexA
	IndexB
	IndexState
)

// File is a file to write into a FAT filesystem of the disk.
type File struct {
	Path   string // in the filesystem, e.g. /boot/vmlinuz
	Source string // on the machine that writes the disk
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
	// Slot is the system slot image (WriteSlot) written into slot A.
	// When it is "", SlotFiles are written as a slot image straight onto
	// slot A: the bytes WriteSlot writes from them, with no image file in
	// between (an install has no room for one). Slot B is not written;
	// an image file's is blank, a device's has its first and last MiB
	// zeroed, so that no stale filesystem shows there.
	Slot      string
	SlotFiles []File
	// SlotSHA256 ("sha256:<hex>"), when set, is the slot image's digest:
	// slot A is read back from the disk and compared with it before the
	// partition table is written.
	SlotSHA256 string
	// StateSize is the size of the state partition; the init formats it,
	// and grows it to the end of the disk, at the first boot.
	StateSize int64
	// Seed makes the disk and partition GUIDs: same seed, same GUIDs.
	Seed []byte
	// Epoch dates the FAT filesystems' entries (SOURCE_DATE_EPOCH, which
	// go-diskfs reads from the environment); zero leaves the environment
	// as it is.
	Epoch time.Time
	// Progress, if set, is told of the writes as they go.
	Progress Progress
}

// Progress is told of the writes: what is being written (Phase*), and the
// bytes of it written so far, of total.
type Progress func(phase string, written, total int64)

// The phases Progress is told of.
const (
	PhaseESP    = "ESP"
	PhaseSlotA  = "system slot A"
	PhaseVerify = "reading back system slot A"
)

// BIOSPartitionLBA is where the BIOS boot partition starts (1 MiB).
const BIOSPartitionLBA = mib / sectorSize

// Layout is where the partitions of the disk lie.
type Layout struct {
	// Partitions are BIOS, ESP, slot A, slot B and state, in that order
	// (Index*), with their GUIDs.
	Partitions []*gpt.Partition
	// Size is the least disk the layout fits: up to the state
	// partition's end and the backup GPT after it.
	Size int64
	// SlotImageSize is the size of the slot image in slot A.
	SlotImageSize int64
	// DiskGUID is the GPT's disk GUID.
	DiskGUID string
}

// Offset is where partition i starts, in bytes.
func (l Layout) Offset(i int) int64 { return int64(l.Partitions[i].Start) * sectorSize }

// PartSize is partition i's size in bytes.
func (l Layout) PartSize(i int) int64 { return int64(l.Partitions[i].Size) }

// Plan lays out a disk for a slot image of slotImageSize bytes and a
// state partition of stateSize bytes (64 MiB at least), with GUIDs made
// from seed.
func Plan(slotImageSize, stateSize int64, seed []byte) Layout {
	sysSize := SlotPartitionSize(slotImageSize)
	stateSize = roundMiB(stateSize)
	if stateSize < 64*mib {
		stateSize = 64 * mib
	}
	sizes := []int64{BIOSSize, ESPSize, sysSize, sysSize, stateSize}
	names := []string{PartBIOS, PartESP, PartSysA, PartSysB, PartState}
	types := []gpt.Type{gpt.BIOSBoot, gpt.EFISystemPartition, gpt.LinuxFilesystem, gpt.LinuxFilesystem, gpt.LinuxFilesystem}
	start := int64(BIOSPartitionLBA)
	l := Layout{SlotImageSize: slotImageSize, DiskGUID: guid(seed, "disk")}
	for i, sz := range sizes {
		end := start + sz/sectorSize - 1
		l.Partitions = append(l.Partitions, &gpt.Partition{Index: i + 1, Start: uint64(start), End: uint64(end), Size: uint64(sz),
			Type: types[i], Name: names[i], GUID: guid(seed, names[i])})
		start = end + 1
	}
	l.Size = (start + 34) * sectorSize // the backup GPT at the end
	return l
}

// Target is what a disk is written to: an image file or a block device
// (an *os.File), or a test's stand-in.
type Target interface {
	io.ReaderAt
	io.WriterAt
	Sync() error
}

// Write writes the raw disk image to out, a new file of the layout's size.
func Write(out string, spec Spec) error {
	l, err := spec.Layout()
	if err != nil {
		return err
	}
	f, err := os.OpenFile(out, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("disk: create %s: %w", out, err)
	}
	defer f.Close()
	if err := f.Truncate(l.Size); err != nil {
		return fmt.Errorf("disk: %w", err)
	}
	if _, err := writeDisk(f, l.Size, spec); err != nil {
		return err
	}
	return f.Close()
}

// Install writes the disk onto t, an existing device (or a file standing
// in for one) of size bytes, whatever it held: the raw image's partition
// table (its GUIDs; the backup GPT at the device's end, where the first
// boot grows the state partition to), its ESP files and its slot A bytes.
// The state partition's probe regions are zeroed, so that the first boot
// formats it. It returns the layout written.
func Install(t Target, size int64, spec Spec) (Layout, error) {
	return writeDisk(t, size, spec)
}

// Layout is the layout spec's disk has.
func (spec Spec) Layout() (Layout, error) {
	size, err := spec.slotImageSize()
	if err != nil {
		return Layout{}, err
	}
	return Plan(size, spec.StateSize, spec.Seed), nil
}

func (spec Spec) slotImageSize() (int64, error) {
	if spec.Slot == "" {
		return fatSize(spec.SlotFiles)
	}
	fi, err := os.Stat(spec.Slot)
	if err != nil {
		return 0, fmt.Errorf("disk: %w", err)
	}
	return fi.Size(), nil
}

// TooSmallError is a device smaller than the disk's layout.
type TooSmallError struct{ Size, Need int64 }

func (e *TooSmallError) Error() string {
	return fmt.Sprintf("the device has %d MiB, the system's partitions need %d MiB", e.Size>>20, (e.Need+mib-1)>>20)
}

func writeDisk(t Target, size int64, spec Spec) (Layout, error) {
	l, err := spec.Layout()
	if err != nil {
		return Layout{}, err
	}
	if size < l.Size {
		return l, &TooSmallError{Size: size, Need: l.Size}
	}
	if len(spec.MBR) != 440 {
		return l, fmt.Errorf("disk: MBR boot code is %d bytes, want 440", len(spec.MBR))
	}
	if int64(len(spec.Core)) > l.PartSize(IndexBIOS) {
		return l, fmt.Errorf("disk: GRUB core image (%d bytes) does not fit the 1 MiB BIOS boot partition", len(spec.Core))
	}
	if !spec.Epoch.IsZero() {
		// go-diskfs' FAT writer takes its dates from the environment.
		os.Setenv("SOURCE_DATE_EPOCH", strconv.FormatInt(spec.Epoch.Unix(), 10))
	}
	progress := spec.Progress
	if progress == nil {
		progress = func(string, int64, int64) {}
	}
	// The record first, then no partition table or signature anywhere:
	// from here on the disk is an unfinished install, whatever the power
	// does.
	if _, err := t.WriteAt(probe.InstallRecord(), 0); err != nil {
		return l, fmt.Errorf("disk: install marker: %w", err)
	}
	if err := t.Sync(); err != nil {
		return l, fmt.Errorf("disk: sync: %w", err)
	}
	for _, r := range probe.Regions(size) {
		if r.Off == 0 { // the record stays
			r.Off, r.Len = sectorSize, r.Len-sectorSize
		}
		if _, err := t.WriteAt(make([]byte, max(r.Len, 0)), r.Off); err != nil {
			return l, fmt.Errorf("disk: clear the disk's signatures: %w", err)
		}
	}
	core := make([]byte, l.PartSize(IndexBIOS))
	copy(core, spec.Core)
	if _, err := t.WriteAt(core, l.Offset(IndexBIOS)); err != nil {
		return l, fmt.Errorf("disk: GRUB core image: %w", err)
	}
	esp := newFresh(t, l.Offset(IndexESP), l.PartSize(IndexESP), func(n, total int64) { progress(PhaseESP, n, total) })
	if err := esp.writeFAT(spec.ESPLabel, spec.ESP); err != nil {
		return l, fmt.Errorf("disk: ESP: %w", err)
	}
	if err := writeSlotA(t, l, spec, progress); err != nil {
		return l, fmt.Errorf("disk: system slot A: %w", err)
	}
	for _, i := range []int{IndexB, IndexState} {
		if err := probe.Zero(io.NewOffsetWriter(t, l.Offset(i)), l.PartSize(i)); err != nil {
			return l, fmt.Errorf("disk: %s: %w", l.Partitions[i].Name, err)
		}
	}
	if err := t.Sync(); err != nil {
		return l, fmt.Errorf("disk: sync: %w", err)
	}
	if spec.SlotSHA256 != "" {
		if err := verifySlotA(t, l, spec.SlotSHA256, progress); err != nil {
			return l, err
		}
	}
	if err := writeTable(t, size, l, spec.MBR); err != nil {
		return l, err
	}
	return l, nil
}

func writeSlotA(t Target, l Layout, spec Spec, progress Progress) error {
	report := func(n, total int64) { progress(PhaseSlotA, n, total) }
	if spec.Slot == "" {
		return newFresh(t, l.Offset(IndexA), l.SlotImageSize, report).writeFAT(layout.SlotLabel, spec.SlotFiles)
	}
	f, err := os.Open(spec.Slot)
	if err != nil {
		return err
	}
	defer f.Close()
	w := &countingWriter{w: io.NewOffsetWriter(t, l.Offset(IndexA)), total: l.SlotImageSize, report: report}
	_, err = io.CopyBuffer(w, f, make([]byte, 4*mib))
	return err
}

// countingWriter reports the bytes written through it.
type countingWriter struct {
	w      io.Writer
	n      int64
	total  int64
	report func(n, total int64)
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	c.report(c.n, c.total)
	return n, err
}

// verifySlotA reads slot A back from the disk, past the kernel's cache of
// what was written, and compares it with the slot image's digest.
func verifySlotA(t Target, l Layout, want string, progress Progress) error {
	dropCache(t)
	h := sha256.New()
	r := io.NewSectionReader(t, l.Offset(IndexA), l.SlotImageSize)
	w := &countingWriter{w: h, total: l.SlotImageSize, report: func(n, total int64) { progress(PhaseVerify, n, total) }}
	if _, err := io.CopyBuffer(w, r, make([]byte, 4*mib)); err != nil {
		return fmt.Errorf("disk: read back system slot A: %w", err)
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != want {
		return fmt.Errorf("disk: system slot A reads back as %s, but the slot image is %s: the disk did not keep what was written, "+
			"or the files it was written from are not the build's; no partition table was written, the disk does not boot", got, want)
	}
	return nil
}

// writeTable writes the GPT, primary and backup, then the first sector:
// GRUB's boot code and the protective MBR, in one write, last.
func writeTable(t Target, size int64, l Layout, mbr []byte) error {
	table := &gpt.Table{Partitions: l.Partitions, LogicalSectorSize: sectorSize, PhysicalSectorSize: sectorSize,
		ProtectiveMBR: true, GUID: l.DiskGUID}
	first := &firstSector{Target: t, b: make([]byte, sectorSize)}
	if err := table.Write(first, size); err != nil {
		return fmt.Errorf("disk: partition table: %w", err)
	}
	if err := t.Sync(); err != nil {
		return fmt.Errorf("disk: sync: %w", err)
	}
	copy(first.b, mbr)
	if first.b[510] != 0x55 || first.b[511] != 0xAA {
		return fmt.Errorf("disk: the protective MBR has no boot signature")
	}
	if _, err := t.WriteAt(first.b, 0); err != nil {
		return fmt.Errorf("disk: boot code: %w", err)
	}
	if err := t.Sync(); err != nil {
		return fmt.Errorf("disk: sync: %w", err)
	}
	return nil
}

// firstSector passes go-diskfs' table writes to the target, except those
// to the first sector (the protective MBR), which it keeps: writeTable
// writes that sector itself, last. It is go-diskfs' backend.WritableFile.
type firstSector struct {
	Target
	b []byte
}

func (s *firstSector) WriteAt(p []byte, off int64) (int, error) {
	if off < sectorSize {
		n := copy(s.b[off:], p)
		if n < len(p) {
			m, err := s.Target.WriteAt(p[n:], sectorSize)
			return n + m, err
		}
		return n, nil
	}
	return s.Target.WriteAt(p, off)
}

func (s *firstSector) Stat() (os.FileInfo, error) { return nil, fmt.Errorf("disk: no stat") }
func (s *firstSector) Read([]byte) (int, error)   { return 0, fmt.Errorf("disk: no sequential read") }
func (s *firstSector) Close() error               { return nil }
func (s *firstSector) Seek(int64, int) (int64, error) {
	return 0, fmt.Errorf("disk: no seek")
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
	f, err := os.OpenFile(out, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("slot: create %s: %w", out, err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		return fmt.Errorf("slot: %w", err)
	}
	if err := newFresh(f, 0, size, nil).writeFAT(layout.SlotLabel, files); err != nil {
		return fmt.Errorf("slot: %w", err)
	}
	return f.Close()
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

// chunk is how much of a file goes into one FAT write: large, since
// go-diskfs' FAT32 rewrites its tables at every write, and a multiple of
// every cluster size, so that the clusters are those of one write.
const chunk = 16 * mib

// writeFAT makes a FAT32 filesystem over the region and writes files
// into it, then zeros what it left unwritten.
func (r *fresh) writeFAT(label string, files []File) error {
	fs, err := fat32.Create(r, r.size, 0, sectorSize, label, true)
	if err != nil {
		return err
	}
	made := map[string]bool{}
	buf := make([]byte, chunk)
	for _, f := range files {
		p := path.Clean("/" + f.Path)
		if dir := path.Dir(p); dir != "/" && !made[dir] {
			if err := fs.Mkdir(dir); err != nil {
				return fmt.Errorf("mkdir %s: %w", dir, err)
			}
			made[dir] = true
		}
		w, err := fs.OpenFile(p, os.O_CREATE|os.O_RDWR)
		if err != nil {
			return fmt.Errorf("create %s: %w", p, err)
		}
		if f.Source == "" {
			_, err = w.Write(f.Data)
		} else {
			err = copyFile(w, f.Source, buf)
		}
		if err != nil {
			return fmt.Errorf("write %s: %w", p, err)
		}
		if err := w.Close(); err != nil {
			return fmt.Errorf("close %s: %w", p, err)
		}
	}
	return r.fill()
}

// copyFile writes the file at src into w in chunks of len(buf).
func copyFile(w io.Writer, src string, buf []byte) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	for {
		n, err := io.ReadFull(in, buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// guid derives a stable RFC 4122 (version 4 layout) GUID from seed and name.
func guid(seed []byte, name string) string {
	h := sha256.Sum256(append(append([]byte{}, seed...), name...))
	h[6] = h[6]&0x0f | 0x40
	h[8] = h[8]&0x3f | 0x80
	return fmt.Sprintf("%X-%X-%X-%X-%X", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}
