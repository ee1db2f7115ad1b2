// Package probe tells what a block device holds from where filesystems
// and volume formats keep their signatures: blank (zeros there, read back
// in full), ext4, a format of the node's own left unfinished, or anything
// else, named. PID 1 probes the state partition before it formats it;
// rke2-node probes a whole disk before it installs onto it. Both write
// only on positive evidence.
package probe

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Content says what a device holds.
type Content int

const (
	Blank Content = iota // zeros wherever a format keeps its signature: ours to format
	Ext4                 // an ext4 filesystem
	Other                // anything else: not ours to touch
	// Unfinished is a format of the init's own that was cut short (the
	// power went): the marker the state format writes first is still
	// there.
	Unfinished
	// UnfinishedInstall is a disk an install of rke2os was writing when
	// it was cut short: InstallRecord is still in its first sector.
	UnfinishedInstall
)

// FormatMarker starts the partition's first sector while the init formats
// it (ext4 leaves its first 1 KiB unused): a format cut short at any point
// is then told from data that is not ours by positive evidence.
const FormatMarker = "RKE2OS STATE FORMAT IN PROGRESS\n"

// InstallMarker starts a disk's first sector while rke2-node installs
// onto it (InstallRecord); the install replaces it last, with the boot
// code and the protective MBR.
const InstallMarker = "RKE2OS INSTALL IN PROGRESS\n"

// InstallRecord is the first sector of a disk being installed: the
// marker, then zeros. It has no 0x55AA boot signature, so no BIOS boots
// it and no firmware or kernel reads a partition table behind it, however
// much of the GPT is written.
func InstallRecord() []byte {
	b := make([]byte, 512)
	copy(b, InstallMarker)
	return b
}

// isInstallRecord tells InstallRecord from a sector that merely starts
// with the same words: the rest must be zeros.
func isInstallRecord(b []byte) bool {
	if len(b) < 512 || string(b[:len(InstallMarker)]) != InstallMarker {
		return false
	}
	for _, v := range b[len(InstallMarker):512] {
		if v != 0 {
			return false
		}
	}
	return true
}

// String names the content, for logs and test failures.
func (c Content) String() string {
	switch c {
	case Blank:
		return "blank"
	case Ext4:
		return "ext4"
	case Unfinished:
		return "unfinished format"
	case UnfinishedInstall:
		return "unfinished install"
	}
	return "other"
}

// Result is what Device found on a device.
type Result struct {
	Content Content
	Label   string // Ext4: the filesystem's label
	Found   string // Other, UnfinishedInstall: what is there, in words, like "a btrfs filesystem"
}

// Where filesystems and volume formats keep their signatures: the start
// (ext*, XFS, FAT, swap, LVM, LUKS, btrfs at 64 KiB, MD 1.1/1.2, ISO 9660
// at 32 KiB, bcachefs, F2FS, ZFS labels L0/L1), btrfs' mirror
// superblocks, and the end (MD 0.90/1.0, ZFS labels L2/L3, a backup GPT).
const (
	probeHead = 1 << 20
	probeTail = 1 << 20
)

// btrfsMirrors are the offsets of btrfs' backup superblocks; one past
// the device's end is not written.
var btrfsMirrors = []int64{64 << 20, 256 << 30}

// Region is a byte range of a device that Device reads.
type Region struct{ Off, Len int64 }

// Regions lists the ranges Device reads on a device of size bytes; they
// may overlap on a small device.
func Regions(size int64) []Region {
	rs := []Region{{0, min(size, probeHead)}}
	for _, off := range btrfsMirrors {
		if off < size {
			rs = append(rs, Region{off, min(size-off, 4096)})
		}
	}
	tail := max(0, size-probeTail)
	return append(rs, Region{tail, size - tail})
}

// Zero writes zeros over every region Device reads on a device of size
// bytes: after it the device is Blank. It does not sync.
func Zero(w io.WriterAt, size int64) error {
	for _, r := range Regions(size) {
		if _, err := w.WriteAt(make([]byte, r.Len), r.Off); err != nil {
			return fmt.Errorf("zero %d bytes at offset %d: %w", r.Len, r.Off, err)
		}
	}
	return nil
}

// Device reads the places where common filesystems and volume
// formats keep their signatures on a device of size bytes and says what
// it holds. Blank needs positive evidence: every one of those places read
// in full, without error, and holds zeros only. A read that fails or
// comes back short is an error, never Blank: formatting on a guess is how
// data is lost.
//
// An ext4 superblock at 1 KiB makes the device Ext4 unless another format
// signs the start too, or an MD RAID superblock the end (a stale format,
// or a RAID member, is not ours to mount; blkid too calls an ext4 with an
// MD superblock a RAID member). ZFS labels, btrfs mirrors and a backup
// GPT do not: an ext4 filesystem's data blocks may hold anything, even a
// disk image.
//
// The first sector of an install cut short (InstallRecord) makes the
// device UnfinishedInstall, whatever else is there: the install that
// wrote it takes the disk over again.
func Device(r io.ReaderAt, size int64) (Result, error) {
	if size <= 0 {
		return Result{}, fmt.Errorf("the device has %d bytes: nothing to probe", size)
	}
	d := &probed{size: size}
	for _, rg := range Regions(size) {
		b := make([]byte, rg.Len)
		n, err := r.ReadAt(b, rg.Off)
		switch {
		case n == len(b) && (err == nil || errors.Is(err, io.EOF)):
			// A full read may report EOF at the end of the device.
		case err != nil:
			return Result{}, fmt.Errorf("read %d bytes at offset %d: %w", len(b), rg.Off, err)
		default:
			return Result{}, fmt.Errorf("read %d bytes at offset %d: short read, %d bytes", len(b), rg.Off, n)
		}
		d.chunks = append(d.chunks, chunk{rg.Off, b})
	}
	if isInstallRecord(d.at(0, 512)) {
		return Result{Content: UnfinishedInstall, Found: "an unfinished rke2os install (its marker is in the first sector)"}, nil
	}
	if string(d.at(0, len(FormatMarker))) == FormatMarker {
		return Result{Content: Unfinished}, nil
	}
	var start, further, fallback []string
	ext4 := false
	for _, s := range signatures {
		if !s.match(d) {
			continue
		}
		switch {
		case s.what == ext4What:
			ext4 = true
		case s.fallback:
			fallback = appendNew(fallback, s.what)
		case s.start:
			start = appendNew(start, s.what)
		default:
			further = appendNew(further, s.what)
		}
	}
	switch {
	case ext4 && len(start) == 0:
		return Result{Content: Ext4, Label: strings.TrimRight(string(d.at(1024+120, 16)), "\x00")}, nil
	case ext4:
		return Result{Content: Other, Found: ext4What + " and " + strings.Join(start, " and ") + " (signatures of both)"}, nil
	case len(start)+len(further) > 0:
		found := start
		for _, f := range further {
			// A backup of a format found already says nothing more.
			if !slices.ContainsFunc(found, func(s string) bool { return strings.HasPrefix(f, s) }) {
				found = append(found, f)
			}
		}
		return Result{Content: Other, Found: strings.Join(found, " and ")}, nil
	case len(fallback) > 0:
		return Result{Content: Other, Found: fallback[0]}, nil
	}
	for _, c := range d.chunks {
		for i, v := range c.b {
			if v != 0 {
				return Result{Content: Other, Found: fmt.Sprintf("data that is not a format the init knows (a non-zero byte at offset %d)", c.off+int64(i))}, nil
			}
		}
	}
	return Result{Content: Blank}, nil
}

func appendNew(list []string, s string) []string {
	if slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}

// probed holds the regions read from a device.
type probed struct {
	size   int64
	chunks []chunk
}

type chunk struct {
	off int64
	b   []byte
}

// at returns n bytes at off if a region read holds all of them, else nil.
func (d *probed) at(off int64, n int) []byte {
	if off < 0 {
		return nil
	}
	for _, c := range d.chunks {
		if off >= c.off && off+int64(n) <= c.off+int64(len(c.b)) {
			return c.b[off-c.off : off-c.off+int64(n)]
		}
	}
	return nil
}

// signature is one place a format marks a device.
type signature struct {
	what     string                          // "a btrfs filesystem"
	start    bool                            // counts against an ext4 superblock beside it (see Device)
	fallback bool                            // not a format: named only when nothing else is found
	at       func(size int64) []int64        // offsets of the magic
	magic    string                          // bytes at each offset
	check    func(d *probed, off int64) bool // more of the header, when the magic is short or common
}

func (s signature) match(d *probed) bool {
	for _, off := range s.at(d.size) {
		b := d.at(off, len(s.magic))
		if b != nil && string(b) == s.magic && (s.check == nil || s.check(d, off)) {
			return true
		}
	}
	return false
}

func at(offs ...int64) func(int64) []int64 { return func(int64) []int64 { return offs } }

const ext4What = "an ext4 filesystem"

// mdMagic is the MD RAID superblock's magic, 0xa92b4efc little-endian
// (0.90 is in the host's order: the big-endian spelling is listed too).
const mdMagic, mdMagicBE = "\xfc\x4e\x2b\xa9", "\xa9\x2b\x4e\xfc"

// signatures lists the formats Device names. The all-zero rule, not
// this list, decides Blank: a format missing here is still "data".
var signatures = []signature{
	{what: ext4What, at: at(1024 + 56), magic: "\x53\xef"},
	// MD RAID 1.x: version 1 and the superblock's own sector.
	{what: "an MD RAID member (metadata 1.1)", start: true, at: at(0), magic: mdMagic, check: mdCheck(1)},
	{what: "an MD RAID member (metadata 1.2)", start: true, at: at(4096), magic: mdMagic, check: mdCheck(1)},
	// At the end, and still against an ext4 at the start: a RAID 1
	// member with metadata 1.0 or 0.90 shows its filesystem at offset 0.
	{what: "an MD RAID member (metadata 1.0)", start: true, at: func(size int64) []int64 { return []int64{(size>>9 - 16) &^ 7 << 9} }, magic: mdMagic, check: mdCheck(1)},
	{what: "an MD RAID member (metadata 0.90)", start: true, at: md090, magic: mdMagic, check: mdCheck(0)},
	{what: "an MD RAID member (metadata 0.90)", start: true, at: md090, magic: mdMagicBE, check: mdCheck(0)},
	{what: "a LUKS encrypted volume", start: true, at: at(0), magic: "LUKS\xba\xbe"},
	{what: "an LVM2 physical volume", start: true, at: at(0, 512, 1024, 1536), magic: "LABELONE", check: func(d *probed, off int64) bool {
		return string(d.at(off+24, 8)) == "LVM2 001"
	}},
	{what: "a bcache or bcachefs device", start: true, at: at(4096 + 24), magic: "\xc6\x85\x73\xf6\x4e\x1a\x45\xca\x82\x65\xf5\x7f\x48\xba\x6d\x81"},
	{what: "a bcachefs filesystem", start: true, at: at(4096 + 24), magic: "\xc6\x85\x73\xf6\x66\xce\x90\xa9\xd9\x6a\x60\xcf\x80\x3d\xf7\xef"},
	// A ZFS uberblock is 8 bytes anywhere in a 128 KiB ring: named, but
	// not held against an ext4, as blkid does not either.
	{what: "a ZFS pool member", at: zfsUberblocks(0, 256<<10), magic: "\x0c\xb1\xba\x00\x00\x00\x00\x00"},
	{what: "a ZFS pool member", at: zfsUberblocks(0, 256<<10), magic: "\x00\x00\x00\x00\x00\xba\xb1\x0c"},
	{what: "a ZFS pool member", at: zfsEndUberblocks, magic: "\x0c\xb1\xba\x00\x00\x00\x00\x00"},
	{what: "a ZFS pool member", at: zfsEndUberblocks, magic: "\x00\x00\x00\x00\x00\xba\xb1\x0c"},
	{what: "a btrfs filesystem", start: true, at: at(64<<10 + 64), magic: "_BHRfS_M"},
	{what: "a btrfs filesystem (a backup superblock)", at: func(int64) []int64 {
		return []int64{btrfsMirrors[0] + 64, btrfsMirrors[1] + 64}
	}, magic: "_BHRfS_M"},
	{what: "an XFS filesystem", start: true, at: at(0), magic: "XFSB"},
	{what: "an F2FS filesystem", start: true, at: at(1024), magic: "\x10\x20\xf5\xf2"},
	{what: "a swap area", start: true, at: at(4096-10, 8192-10, 16384-10, 32768-10, 65536-10), magic: "SWAPSPACE2"},
	{what: "a swap area", start: true, at: at(4096-10, 8192-10, 16384-10, 32768-10, 65536-10), magic: "SWAP-SPACE"},
	{what: "an ISO 9660 filesystem", start: true, at: at(32769), magic: "CD001"},
	{what: "a UDF filesystem", start: true, at: at(32769, 34817, 36865), magic: "BEA01"},
	{what: "a squashfs filesystem", start: true, at: at(0), magic: "hsqs"},
	{what: "a ReiserFS filesystem", start: true, at: at(64<<10 + 52), magic: "ReIsEr"},
	{what: "a JFS filesystem", start: true, at: at(32768), magic: "JFS1"},
	{what: "an NTFS filesystem", start: true, at: at(3), magic: "NTFS    "},
	{what: "an exFAT filesystem", start: true, at: at(3), magic: "EXFAT   "},
	{what: "a FAT filesystem", start: true, at: at(54), magic: "FAT1", check: bootSector},
	{what: "a FAT filesystem", start: true, at: at(82), magic: "FAT32", check: bootSector},
	{what: "a GPT partition table", start: true, at: at(512, 4096), magic: "EFI PART"},
	{what: "a GPT partition table (its backup header)", at: func(size int64) []int64 { return []int64{size - 512, size - 4096} }, magic: "EFI PART"},
	// Last: any boot sector left, a DOS partition table or a bootloader.
	{what: "a DOS partition table or boot sector", fallback: true, at: at(510), magic: "\x55\xaa"},
}

// mdCheck checks an MD superblock's major version; a 1.x superblock
// names its own sector, which a superblock inside a file's data (a disk
// image stored on a filesystem) does not match.
func mdCheck(major uint32) func(d *probed, off int64) bool {
	return func(d *probed, off int64) bool {
		v := d.at(off+4, 4)
		if v == nil {
			return false
		}
		if major == 0 {
			minor := d.at(off+8, 4)
			return minor != nil && binary.LittleEndian.Uint32(v) == 0 &&
				(binary.LittleEndian.Uint32(minor) == 90 || binary.BigEndian.Uint32(minor) == 90)
		}
		so := d.at(off+144, 8)
		return binary.LittleEndian.Uint32(v) == 1 && so != nil && binary.LittleEndian.Uint64(so) == uint64(off>>9)
	}
}

// md090 is where MD 0.90 keeps its superblock: in the last 64 KiB-aligned
// 64 KiB of the device.
func md090(size int64) []int64 { return []int64{size&^(64<<10-1) - 64<<10} }

// zfsUberblocks are the 1 KiB slots of the uberblock rings of the ZFS
// labels starting at offs (each label is 256 KiB, its ring the second half).
func zfsUberblocks(offs ...int64) func(int64) []int64 {
	return func(int64) []int64 {
		var out []int64
		for _, l := range offs {
			for i := int64(0); i < 128; i++ {
				out = append(out, l+128<<10+i<<10)
			}
		}
		return out
	}
}

// zfsEndUberblocks are the rings of labels L2 and L3, in the last 512 KiB
// of the device rounded down to 256 KiB.
func zfsEndUberblocks(size int64) []int64 {
	end := size &^ (256<<10 - 1)
	return zfsUberblocks(end-512<<10, end-256<<10)(size)
}

// bootSector checks the 0x55AA mark that ends a FAT boot sector.
func bootSector(d *probed, _ int64) bool { return string(d.at(510, 2)) == "\x55\xaa" }

// WipeCommands zero every place Device reads on a device of size
// bytes (GNU dd, offsets and counts in bytes): after them the device is
// blank to the init, which formats it.
func WipeCommands(device string, size int64) string {
	var cmds []string
	for _, r := range Regions(size) {
		cmds = append(cmds, fmt.Sprintf("dd if=/dev/zero of=%s bs=64K seek=%d count=%d oflag=seek_bytes iflag=count_bytes conv=fsync", device, r.Off, r.Len))
	}
	return strings.Join(cmds, " && ")
}
