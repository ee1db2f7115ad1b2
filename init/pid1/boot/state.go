package boot

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unsafe"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/ext4"
	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/rke2os/rke2os/init/shared/blockdev"
	"github.com/rke2os/rke2os/init/shared/console"
	"github.com/rke2os/rke2os/init/shared/layout"
	"github.com/rke2os/rke2os/init/shared/probe"
	"golang.org/x/sys/unix"
)

// StateDir is where the state filesystem is mounted: everything a node
// keeps across boots lives under /var (RKE2's /var/lib/rancher, the
// kubelet's /var/lib/kubelet, /var/log), as on Talos.
const StateDir = "/var"

// stateBinds are directories outside /var that RKE2 expects to keep too,
// bind-mounted from the state filesystem (the node password lives in
// /etc/rancher/node).
var stateBinds = map[string]string{"/etc/rancher": "/var/lib/rke2os/etc/rancher"}

// State is the state partition of the boot disk.
type State struct {
	Device    string // /dev/vda5
	Disk      string // /dev/vda
	Partition int    // 5
}

// FindState looks, once, for the partition named RKE2_STATE on the disk
// the system booted from (medium is its partition, like /dev/vda3): a
// state partition on another disk (an old install, a USB stick) is never
// touched. An ISO or PXE boot has none and keeps its state in memory
// (nil, nil).
func FindState(medium string) (*State, error) {
	disk := blockdev.ParentDisk(filepath.Base(medium))
	if disk == "" {
		return nil, nil
	}
	var found []*State
	for _, name := range blockdev.Names() {
		if blockdev.PartName(name) != layout.StateLabel || blockdev.ParentDisk(name) != disk {
			continue
		}
		pb, err := os.ReadFile(filepath.Join("/sys/class/block", name, "partition"))
		if err != nil {
			return nil, fmt.Errorf("state partition %s: %w", name, err)
		}
		n, err := strconv.Atoi(strings.TrimSpace(string(pb)))
		if err != nil {
			return nil, fmt.Errorf("state partition %s: partition number %q: %w", name, pb, err)
		}
		found = append(found, &State{Device: "/dev/" + name, Disk: "/dev/" + disk, Partition: n})
	}
	switch len(found) {
	case 0:
		return nil, nil
	case 1:
		return found[0], nil
	}
	return nil, fmt.Errorf("state: /dev/%s has %d partitions named %s (%s, %s); rename or remove all but one", disk, len(found), layout.StateLabel, found[0].Device, found[1].Device)
}

// MinStateSize is the least a node's state needs (layout.MinStateSize).
const MinStateSize = layout.MinStateSize

// formattingLabel marks a filesystem whose format has not finished (the
// power went in the middle): the label becomes layout.StateLabel last, so such a
// filesystem is formatted again rather than trusted.
const formattingLabel = layout.StateLabel + ".new"

// Prepare makes the state partition ready and mounts it on StateDir. On
// the first boot the partition is blank: it is grown to the end of the
// disk (the image was written to a larger disk) and formatted ext4. A
// partition with anything else on it is refused, never overwritten.
func (s *State) Prepare() (formatted bool, err error) {
	p, size, err := s.probe()
	if err != nil {
		return false, err
	}
	fresh := p.Content == probe.Blank || p.Content == probe.Unfinished || p.Content == probe.Ext4 && p.Label == formattingLabel
	switch {
	case p.Content == probe.Other || p.Content == probe.UnfinishedInstall:
		return false, fmt.Errorf("state: %s (partition %s) holds %s; the init formats only a blank partition (zeros wherever filesystems keep their signatures), "+
			"so nothing was written. If its data may go, zero those places from a rescue system (%s) and reboot",
			s.Device, layout.StateLabel, p.Found, probe.WipeCommands(s.Device, size))
	case p.Content == probe.Unfinished || p.Content == probe.Ext4 && fresh:
		slog.Warn("state: the last format did not finish; formatting again", "device", s.Device)
	case p.Content == probe.Ext4 && p.Label != layout.StateLabel:
		slog.Warn("state filesystem has an unexpected label", "device", s.Device, "label", p.Label)
	}
	// The partition reaches the disk's end: on the first boot (the image
	// was written to a larger disk), and after the disk was enlarged.
	grown, err := GrowLastPartition(s.Disk, s.Partition)
	if err != nil {
		return false, fmt.Errorf("state: grow %s to the end of %s: %w; the partition is left as it was", s.Device, s.Disk, err)
	}
	if grown > 0 {
		slog.Info("state partition grown to the end of the disk", "device", s.Device, "added_mib", grown>>20)
	}
	if err := s.checkSize(); err != nil {
		return false, err
	}
	if fresh {
		slog.Info("state: formatting ext4", "device", s.Device, "mib", size>>20)
		console.Event(console.EventStateFormatting, "device", s.Device, "mib", size>>20)
		if err := FormatExt4(s.Device, layout.StateLabel); err != nil {
			return false, fmt.Errorf("state: format %s: %w", s.Device, err)
		}
		formatted = true
	}
	if err := MountState(s.Device, "ext4"); err != nil {
		return formatted, err
	}
	if grown > 0 && !formatted {
		// An existing filesystem follows its partition, online.
		if err := resizeExt4(StateDir, s.Device); err != nil {
			return formatted, fmt.Errorf("state: grow the filesystem on %s: %w; it keeps its old size", s.Device, err)
		}
		slog.Info("state filesystem grown to its partition", "device", s.Device, "added_mib", grown>>20)
		console.Event(console.EventStateGrown, "device", s.Device, "added_mib", grown>>20)
	}
	return formatted, nil
}

// probe says what the state partition holds, and its size. A partition
// that cannot be read in full is an error: blank needs evidence.
func (s *State) probe() (probe.Result, int64, error) {
	f, err := os.Open(s.Device)
	if err != nil {
		return probe.Result{}, 0, fmt.Errorf("state: %w; nothing was written", err)
	}
	defer f.Close()
	size, err := blockdev.Size(f)
	if err != nil {
		return probe.Result{}, 0, fmt.Errorf("state: %w; nothing was written", err)
	}
	p, err := probe.Device(f, size)
	if err != nil {
		return probe.Result{}, 0, fmt.Errorf("state: %s (partition %s): cannot tell whether it is blank: %w; nothing was written "+
			"(the kernel log names the disk's I/O errors, if any)", s.Device, layout.StateLabel, err)
	}
	return p, size, nil
}

// wipeHint is how to make a partition blank again from a rescue system,
// losing what it holds.
func wipeHint(device string) string {
	f, err := os.Open(device)
	if err != nil {
		return "dd if=/dev/zero of=" + device + " bs=1M"
	}
	defer f.Close()
	size, err := blockdev.Size(f)
	if err != nil {
		return "dd if=/dev/zero of=" + device + " bs=1M"
	}
	return probe.WipeCommands(device, size)
}

// resizeExt4 grows the ext4 filesystem mounted on dir to fill device,
// online, as resize2fs does (EXT4_IOC_RESIZE_FS with the new block count).
func resizeExt4(dir, device string) error {
	f, err := os.Open(device)
	if err != nil {
		return err
	}
	size, err := blockdev.Size(f)
	f.Close()
	if err != nil {
		return err
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return err
	}
	blocks := uint64(size) / uint64(st.Bsize)
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	const ext4IocResizeFS = 0x40086610 // _IOW('f', 16, __u64)
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, d.Fd(), ext4IocResizeFS, uintptr(unsafe.Pointer(&blocks))); e != 0 {
		return e
	}
	return nil
}

// checkSize refuses a state partition too small for a node, before the
// airgap import fails with "no space left" minutes later.
func (s *State) checkSize() error {
	f, err := os.Open(s.Device)
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	defer f.Close()
	size, err := blockdev.Size(f)
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	if size < MinStateSize {
		return fmt.Errorf("state: %s is %d MiB, and a node needs %d GiB there for the airgap images, containerd and etcd: "+
			"write the image to a disk of at least %d GiB, or grow the image file before the first boot (qemu-img resize rke2-server.raw 16G)",
			s.Device, size>>20, MinStateSize>>30, MinStateSize>>30+1)
	}
	return nil
}

// MountState mounts the state filesystem on StateDir and binds the
// directories outside /var that must persist.
func MountState(device, fstype string) error {
	if err := os.MkdirAll(StateDir, 0o755); err != nil {
		return err
	}
	if err := unix.Mount(device, StateDir, fstype, unix.MS_NOSUID|unix.MS_NOATIME, "errors=remount-ro"); err != nil {
		return fmt.Errorf("state: mount %s (%s) on %s: %w; repair it from a rescue system (e2fsck -y %s), "+
			"or, to start the node afresh and lose its state, zero the places where filesystems keep their signatures (%s)",
			device, fstype, StateDir, err, device, wipeHint(device))
	}
	for target, src := range stateBinds {
		for _, d := range []string{src, target} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return fmt.Errorf("state: %w", err)
			}
		}
		if err := unix.Mount(src, target, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("state: bind %s on %s: %w", src, target, err)
		}
	}
	slog.Info("state mounted", "device", device, "dir", StateDir)
	return nil
}

// FormatExt4 writes an empty ext4 filesystem over the whole device. The
// label is written last: until then the filesystem says it is unfinished.
func FormatExt4(device, label string) error {
	f, err := os.OpenFile(device, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	size, err := blockdev.Size(f)
	if err != nil {
		return err
	}
	// The marker first: from here until it is cleared the partition holds
	// our unfinished format, whatever the power does.
	if err := writeMarker(f, probe.FormatMarker); err != nil {
		return fmt.Errorf("format marker: %w", err)
	}
	fs, err := ext4.Create(file.New(f, false), size, 0, 512, ext4Params(size))
	if err != nil {
		return err
	}
	// e2fsck expects lost+found, and puts what it recovers there.
	if err := fs.Mkdir("lost+found"); err != nil {
		return fmt.Errorf("lost+found: %w", err)
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := fs.SetLabel(label); err != nil {
		return fmt.Errorf("label: %w", err)
	}
	if err := f.Sync(); err != nil {
		return err
	}
	return writeMarker(f, "")
}

// writeMarker writes the first sector of the partition (marker, then
// zeros) durably.
func writeMarker(f *os.File, marker string) error {
	b := make([]byte, 512)
	copy(b, marker)
	if _, err := f.WriteAt(b, 0); err != nil {
		return err
	}
	return f.Sync()
}

// ext4Params lays out the state filesystem: 4 KiB blocks, 32768 blocks
// per group, one inode per 32 KiB (mke2fs' "big" type: container layers
// hold many small files, but fewer inodes make the first boot faster).
// The inodes per group must fill whole blocks of the inode table, as
// mke2fs makes them: the kernel computes the table's size by rounding
// down and finds a group with a partial block "wrong" (go-diskfs rounds
// only to 8 inodes, so the count is given here).
func ext4Params(size int64) *ext4.Params {
	const (
		blockSize      = 4096
		blocksPerGroup = 8 * blockSize // one block of block bitmap
		inodeSize      = 256
		bytesPerInode  = 32768
		perBlock       = blockSize / inodeSize
	)
	blocks := size / blockSize
	groups := (blocks + blocksPerGroup - 1) / blocksPerGroup
	perGroup := (size/bytesPerInode + groups - 1) / groups
	perGroup = (perGroup + perBlock - 1) / perBlock * perBlock
	return &ext4.Params{VolumeName: formattingLabel, SectorsPerBlock: blockSize / 512, BlocksPerGroup: blocksPerGroup,
		InodeCount: uint32(perGroup * groups)}
}

// GrowLastPartition extends partition number part to the end of the disk
// when it is the last one and the disk is larger than its GPT says (the
// image was written to a bigger disk). It returns the bytes added.
func GrowLastPartition(disk string, part int) (int64, error) {
	f, err := os.OpenFile(disk, os.O_RDWR, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	size, err := blockdev.Size(f)
	if err != nil {
		return 0, err
	}
	sector, err := blockdev.SectorSize(f)
	if err != nil {
		return 0, err
	}
	if err := checkGPTHeaders(f, size, sector); err != nil {
		return 0, err
	}
	t, err := gpt.Read(f, sector, sector)
	if err != nil {
		return 0, fmt.Errorf("read GPT: %w", err)
	}
	if t.TotalSize() > uint64(size) {
		return 0, fmt.Errorf("the GPT describes %d MiB but the disk has %d MiB: the image was written to a smaller disk", t.TotalSize()>>20, size>>20)
	}
	var p *gpt.Partition
	for _, q := range t.Partitions {
		if q.Index == part {
			p = q
		}
	}
	if p == nil {
		return 0, fmt.Errorf("no partition %d in the GPT", part)
	}
	sectors := uint64(size) / uint64(sector)
	if p.Start > p.End || p.End >= sectors {
		return 0, fmt.Errorf("partition %d spans sectors %d to %d of a disk of %d: the GPT is damaged", part, p.Start, p.End, sectors)
	}
	for _, q := range t.Partitions {
		if q.Start > p.Start && q.Type != gpt.Unused {
			slog.Info("state partition is not the disk's last; keeping its size", "disk", disk, "partition", part)
			return 0, nil
		}
	}
	t.Resize(uint64(size))
	end := t.LastDataSector()
	if end >= sectors {
		return 0, fmt.Errorf("a disk of %d sectors is too small for its GPT", sectors)
	}
	// Partitions end on a MiB boundary, as the builder lays them out
	// (on a disk smaller than a MiB there is none to end on).
	perMiB := uint64(1<<20) / uint64(sector)
	if end = (end+1)/perMiB*perMiB - 1; end+1 == 0 || end <= p.End {
		return 0, nil
	}
	added := int64(end-p.End) * int64(sector)
	p.End = end
	p.Size = (p.End - p.Start + 1) * uint64(sector)
	if err := t.Write(f, size); err != nil {
		return 0, fmt.Errorf("write GPT: %w", err)
	}
	if err := f.Sync(); err != nil {
		return 0, err
	}
	if err := resizeKernelPartition(f, part, int64(p.Start)*int64(sector), int64(p.Size)); err != nil {
		return 0, fmt.Errorf("tell the kernel the new size of partition %d: %w", part, err)
	}
	return added, nil
}

// checkGPTHeaders refuses a GPT header that go-diskfs would trust (its
// signature and checksum hold) but whose fields would have it allocate
// without bound or write outside the table: go-diskfs reads the entries
// where a header says, but writes them back beside the header. Each
// valid header, at sector 1 and at the disk's last, must name its own
// sector, hold 128-byte entries in whole sectors (1 MiB at most) right
// beside it, and, at sector 1, a backup inside the disk.
func checkGPTHeaders(f io.ReaderAt, size int64, sector int) error {
	sectors := size / int64(sector)
	for _, lba := range []int64{1, sectors - 1} {
		if lba < 1 {
			continue
		}
		h := make([]byte, 92)
		if n, _ := f.ReadAt(h, lba*int64(sector)); n < len(h) {
			continue // gpt.Read says why
		}
		crc := binary.LittleEndian.Uint32(h[16:])
		binary.LittleEndian.PutUint32(h[16:], 0)
		if string(h[:8]) != "EFI PART" || binary.LittleEndian.Uint32(h[12:]) != 92 || crc32.ChecksumIEEE(h) != crc {
			continue // not a header gpt.Read uses
		}
		self, alt := binary.LittleEndian.Uint64(h[24:]), binary.LittleEndian.Uint64(h[32:])
		first, count, esize := binary.LittleEndian.Uint64(h[72:]), binary.LittleEndian.Uint32(h[80:]), binary.LittleEndian.Uint32(h[84:])
		arraySectors := uint64(count) * 128 / uint64(sector)
		switch {
		case self != uint64(lba):
			return fmt.Errorf("the GPT header at sector %d says it is at sector %d: the GPT is damaged", lba, self)
		case esize != 128 || count == 0 || uint64(count)*128 > 1<<20 || uint64(count)*128%uint64(sector) != 0:
			return fmt.Errorf("the GPT header at sector %d lists %d partition entries of %d bytes; want 128-byte entries filling whole sectors, 1 MiB at most", lba, count, esize)
		case lba == 1 && first != 2, lba > 1 && first+arraySectors != uint64(lba):
			return fmt.Errorf("the GPT header at sector %d puts its partition entries at sector %d, not beside itself", lba, first)
		case lba > 1 && alt != 1:
			return fmt.Errorf("the backup GPT header at sector %d says the primary is at sector %d, not 1: the GPT is damaged", lba, alt)
		case lba == 1 && alt >= uint64(sectors):
			return fmt.Errorf("the GPT describes %d MiB but the disk has %d MiB: the image was written to a smaller disk", (alt+1)/uint64(1<<20/sector), size>>20)
		}
	}
	return nil
}

// resizeKernelPartition updates the kernel's view of one partition
// (BLKPG_RESIZE_PARTITION): the disk's other partitions are in use, so
// the whole table cannot be re-read. A regular file (tests) has no view.
func resizeKernelPartition(f *os.File, part int, start, length int64) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.Mode()&os.ModeDevice == 0 {
		return nil
	}
	p := unix.BlkpgPartition{Start: start, Length: length, Pno: int32(part)}
	arg := unix.BlkpgIoctlArg{Op: unix.BLKPG_RESIZE_PARTITION, Datalen: int32(unsafe.Sizeof(p)), Data: (*byte)(unsafe.Pointer(&p))}
	const blkpg = 0x1269 // _IO(0x12, 105)
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), blkpg, uintptr(unsafe.Pointer(&arg))); e != 0 {
		return e
	}
	return nil
}

// Wipe makes the state partition blank, as the probe sees blank: zeros
// wherever filesystems keep their signatures. The next Prepare formats it:
// the node boots as new. Asked for by a reset (rke2.reset=1, the GRUB
// menu's reset entry); the system slots are not touched.
func (s *State) Wipe() error {
	f, err := os.OpenFile(s.Device, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("reset: %w", err)
	}
	defer f.Close()
	size, err := blockdev.Size(f)
	if err != nil {
		return fmt.Errorf("reset: %w", err)
	}
	if err := s.wipe(f, size); err != nil {
		return err
	}
	return f.Close()
}

// syncWriterAt is what wipe writes to: the device, or a test's record.
type syncWriterAt interface {
	io.WriterAt
	Sync() error
}

func (s *State) wipe(f syncWriterAt, size int64) error {
	// The format's marker first and last: a power cut anywhere in between
	// leaves a partition the probe knows for an unfinished format of ours
	// (formatted again at the next boot), never one it takes for foreign
	// data and refuses.
	sector := make([]byte, 512)
	copy(sector, probe.FormatMarker)
	if _, err := f.WriteAt(sector, 0); err != nil {
		return fmt.Errorf("reset: mark %s: %w", s.Device, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("reset: sync %s: %w", s.Device, err)
	}
	if err := probe.Zero(pastFirstSector{f}, size); err != nil {
		return fmt.Errorf("reset: %s: %w", s.Device, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("reset: sync %s: %w", s.Device, err)
	}
	if _, err := f.WriteAt(make([]byte, 512), 0); err != nil {
		return fmt.Errorf("reset: %s: %w", s.Device, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("reset: sync %s: %w", s.Device, err)
	}
	return nil
}

// pastFirstSector writes all but what falls in the first sector.
type pastFirstSector struct{ w io.WriterAt }

func (p pastFirstSector) WriteAt(b []byte, off int64) (int, error) {
	n := len(b)
	if off < 512 {
		skip := min(int64(len(b)), 512-off)
		b, off = b[skip:], off+skip
	}
	if len(b) == 0 {
		return n, nil
	}
	if _, err := p.w.WriteAt(b, off); err != nil {
		return 0, err
	}
	return n, nil
}
