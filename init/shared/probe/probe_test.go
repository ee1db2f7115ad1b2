package probe

import (
	"bytes"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/rke2os/rke2os/init/shared/layout"
	"github.com/rke2os/rke2os/internal/disktest"
)

// imageSize is the size of every test image: enough for mkfs.xfs (300
// MiB at least) and mkfs.btrfs (109 MiB), with btrfs' first mirror
// superblock at 64 MiB inside. The files are sparse.
const imageSize = 300 << 20

// Real images made by Debian's tools, and fixtures where a tool needs
// what this machine may not have (MD RAID: mdadm --create needs the
// kernel's md driver; ZFS: no tool in Debian main). Every image is
// probed as a file of imageSize bytes; blkid, when given, must agree
// on what the image is, so a fixture is known to sit where the real
// format does.
func TestDeviceImages(t *testing.T) {
	for _, tc := range []struct {
		name  string
		make  func(t *testing.T, p string)
		want  Content
		label string // Ext4
		found string // Other: in Probe.Found
		blkid string // TYPE from blkid -p, "" to skip
	}{
		{"zeros", func(*testing.T, string) {}, Blank, "", "", ""},
		{"ext4", disktest.Tool("mkfs.ext4", "-F", "-q", "-L", layout.StateLabel), Ext4, layout.StateLabel, "", "ext4"},
		{"ext4 without label", disktest.Tool("mkfs.ext4", "-F", "-q"), Ext4, "", "", "ext4"},
		{"ext4 unfinished", func(t *testing.T, p string) {
			disktest.Tool("mkfs.ext4", "-F", "-q", "-L", layout.StateLabel+".new")(t, p)
		}, Ext4, layout.StateLabel + ".new", "", "ext4"},
		{"ext4 with signatures in its data", func(t *testing.T, p string) {
			disktest.Tool("mkfs.ext4", "-F", "-q", "-L", layout.StateLabel)(t, p)
			// Disk images stored in the filesystem: their signatures are
			// data, not a second format.
			disktest.WriteAt(t, p, imageSize-256<<10+128<<10, binary.LittleEndian.AppendUint64(nil, 0x00bab10c))
			disktest.WriteAt(t, p, 128<<10, binary.LittleEndian.AppendUint64(nil, 0x00bab10c))
			disktest.WriteAt(t, p, 64<<20+64, []byte("_BHRfS_M"))
			disktest.WriteAt(t, p, imageSize-512, []byte("EFI PART"))
		}, Ext4, layout.StateLabel, "", "ext4"},
		{"ext4 in an MD RAID 1.0 mirror (fixture)", func(t *testing.T, p string) {
			disktest.Tool("mkfs.ext4", "-F", "-q", "-L", layout.StateLabel)(t, p)
			off := int64((imageSize>>9-16)&^7) << 9
			disktest.WriteAt(t, p, off, mdSuperblock1(off, imageSize))
		}, Other, "", "an ext4 filesystem and an MD RAID member (metadata 1.0) (signatures of both)", "linux_raid_member"},
		{"ext4 in an MD RAID 0.90 mirror (fixture)", func(t *testing.T, p string) {
			disktest.Tool("mkfs.ext4", "-F", "-q", "-L", layout.StateLabel)(t, p)
			disktest.WriteAt(t, p, imageSize&^(64<<10-1)-64<<10, mdSuperblock090(imageSize))
		}, Other, "", "an ext4 filesystem and an MD RAID member (metadata 0.90) (signatures of both)", "linux_raid_member"},
		{"btrfs", disktest.Tool("mkfs.btrfs", "-q", "-f"), Other, "", "a btrfs filesystem", "btrfs"},
		{"btrfs, its first MiB zeroed", func(t *testing.T, p string) {
			disktest.Tool("mkfs.btrfs", "-q", "-f")(t, p)
			disktest.WriteAt(t, p, 0, make([]byte, 1<<20))
		}, Other, "", "a btrfs filesystem (a backup superblock)", ""},
		{"xfs", disktest.Tool("mkfs.xfs", "-q", "-f"), Other, "", "an XFS filesystem", "xfs"},
		{"vfat", disktest.Tool("mkfs.vfat"), Other, "", "a FAT filesystem", "vfat"},
		{"swap", disktest.Tool("mkswap"), Other, "", "a swap area", "swap"},
		{"LUKS2", func(t *testing.T, p string) {
			key := filepath.Join(t.TempDir(), "key")
			if err := os.WriteFile(key, []byte("k"), 0o600); err != nil {
				t.Fatal(err)
			}
			disktest.Tool("cryptsetup", "luksFormat", "--batch-mode", "--type", "luks2", "--pbkdf", "pbkdf2",
				"--pbkdf-force-iterations", "1000", "--key-file", key)(t, p)
		}, Other, "", "a LUKS encrypted volume", "crypto_LUKS"},
		{"LVM2 PV", func(t *testing.T, p string) {
			// pvcreate wants a block device: a loop device over the file.
			dev := disktest.Loop(t, p)
			disktest.Run(t, []string{"LVM_SUPPRESS_FD_WARNINGS=1"}, "pvcreate", "--devices", dev, "-ff", "-y", dev)
		}, Other, "", "an LVM2 physical volume", "LVM2_member"},
		{"squashfs", func(t *testing.T, p string) {
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o644)
			disktest.Run(t, nil, "mksquashfs", dir, p, "-noappend", "-quiet")
			os.Truncate(p, imageSize)
		}, Other, "", "a squashfs filesystem", "squashfs"},
		{"iso9660", func(t *testing.T, p string) {
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o644)
			os.Remove(p)
			disktest.Run(t, nil, "xorriso", "-as", "mkisofs", "-quiet", "-o", p, dir)
			os.Truncate(p, imageSize)
		}, Other, "", "an ISO 9660 filesystem", "iso9660"},
		{"MD RAID 1.0 (fixture)", func(t *testing.T, p string) {
			off := int64((imageSize>>9-16)&^7) << 9
			disktest.WriteAt(t, p, off, mdSuperblock1(off, imageSize))
		}, Other, "", "an MD RAID member (metadata 1.0)", "linux_raid_member"},
		{"MD RAID 1.2 (fixture)", func(t *testing.T, p string) {
			disktest.WriteAt(t, p, 4096, mdSuperblock1(4096, imageSize))
		}, Other, "", "an MD RAID member (metadata 1.2)", "linux_raid_member"},
		{"MD RAID 0.90 (fixture)", func(t *testing.T, p string) {
			disktest.WriteAt(t, p, imageSize&^(64<<10-1)-64<<10, mdSuperblock090(imageSize))
		}, Other, "", "an MD RAID member (metadata 0.90)", "linux_raid_member"},
		{"ZFS label L0 only (fixture)", func(t *testing.T, p string) {
			disktest.WriteAt(t, p, 128<<10+5<<10, binary.BigEndian.AppendUint64(nil, 0x00bab10c))
		}, Other, "", "a ZFS pool member", ""},
		{"ZFS label L3 only (fixture)", func(t *testing.T, p string) {
			disktest.WriteAt(t, p, imageSize-256<<10+128<<10, binary.LittleEndian.AppendUint64(nil, 0x00bab10c))
		}, Other, "", "a ZFS pool member", ""},
		{"one byte in the last MiB", func(t *testing.T, p string) {
			disktest.WriteAt(t, p, imageSize-1<<20+12345, []byte{1})
		}, Other, "", "a non-zero byte at offset 313536569", ""},
		{"one byte at the device's end", func(t *testing.T, p string) {
			disktest.WriteAt(t, p, imageSize-1, []byte{0x80})
		}, Other, "", "a non-zero byte at offset 314572799", ""},
		{"one byte at btrfs' first mirror", func(t *testing.T, p string) {
			disktest.WriteAt(t, p, 64<<20+4095, []byte{1})
		}, Other, "", "a non-zero byte at offset 67112959", ""},
		// The rule's edge: a byte where no format keeps a signature is
		// not looked at.
		{"one byte just before the last MiB", func(t *testing.T, p string) {
			disktest.WriteAt(t, p, imageSize-1<<20-1, []byte{1})
		}, Blank, "", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := disktest.ZeroFile(t, imageSize)
			tc.make(t, p)
			got := probeFile(t, p)
			if got.Content != tc.want || got.Label != tc.label || !strings.Contains(got.Found, tc.found) || (got.Content == Other) != (tc.found != "") {
				t.Fatalf("Device = %+v, want %v label %q found %q", got, tc.want, tc.label, tc.found)
			}
			if tc.blkid != "" {
				if typ := strings.TrimSpace(disktest.Output(t, nil, "blkid", "-p", "-o", "value", "-s", "TYPE", p)); typ != tc.blkid {
					t.Fatalf("blkid says %q, want %q: the image is not what the test means", typ, tc.blkid)
				}
			}
		})
	}
}

// mdadm itself reads the MD fixtures as RAID members: their superblocks
// are where, and what, mdadm writes.
func TestMDFixturesAreRAIDMembers(t *testing.T) {
	for _, tc := range []struct {
		version string
		off     int64
		sb      []byte
	}{
		{"1.0", int64((imageSize>>9-16)&^7) << 9, mdSuperblock1(int64((imageSize>>9-16)&^7)<<9, imageSize)},
		{"1.2", 4096, mdSuperblock1(4096, imageSize)},
		{"0.90", imageSize&^(64<<10-1) - 64<<10, mdSuperblock090(imageSize)},
	} {
		t.Run(tc.version, func(t *testing.T) {
			p := disktest.ZeroFile(t, imageSize)
			disktest.WriteAt(t, p, tc.off, tc.sb)
			out := disktest.Output(t, nil, "mdadm", "--examine", p)
			if !strings.Contains(out, "Version : "+tc.version) || !strings.Contains(out, "Checksum") || !strings.Contains(out, "correct") {
				t.Fatalf("mdadm --examine:\n%s", out)
			}
		})
	}
}

// A read that fails or comes back short, anywhere Device looks, is an
// error that says where, never Blank; on an ext4 image as on a blank one.
func TestDeviceReadErrors(t *testing.T) {
	blank := disktest.ZeroFile(t, imageSize)
	ext4 := disktest.ZeroFile(t, imageSize)
	disktest.Tool("mkfs.ext4", "-F", "-q", "-L", layout.StateLabel)(t, ext4)
	for _, tc := range []struct {
		name   string
		p      string
		fault  faultyReader
		size   int64 // 0: the file's
		errHas string
	}{
		{"ext4, superblock unreadable", ext4, faultyReader{at: 1080}, 0, "read 1048576 bytes at offset 0: input/output error"},
		{"ext4, short read of the start", ext4, faultyReader{at: 4096, short: true}, 0, "read 1048576 bytes at offset 0: short read, 4096 bytes"},
		{"ext4, end unreadable", ext4, faultyReader{at: imageSize - 1}, 0, "at offset 313524224: input/output error"},
		{"blank, first sector unreadable", blank, faultyReader{at: 0}, 0, "at offset 0: input/output error"},
		{"blank, btrfs mirror unreadable", blank, faultyReader{at: 64 << 20}, 0, "read 4096 bytes at offset 67108864: input/output error"},
		{"blank, short read of the end", blank, faultyReader{at: imageSize - 512, short: true}, 0, "short read, 1048064 bytes"},
		{"blank, device shorter than its size", blank, faultyReader{at: -1}, imageSize + 1<<20, "at offset 314572800: EOF"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := os.Open(tc.p)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			tc.fault.r = f
			size := tc.size
			if size == 0 {
				size = imageSize
			}
			got, err := Device(tc.fault, size)
			if err == nil || !strings.Contains(err.Error(), tc.errHas) {
				t.Fatalf("Device = %+v, %v; want an error with %q", got, err, tc.errHas)
			}
			if got.Content == Blank && got != (Result{}) {
				t.Fatalf("Device = %+v with the error", got)
			}
		})
	}
	// Without the fault the same images are what they are: the errors
	// above come from the reads alone.
	if p := probeFile(t, blank); p.Content != Blank {
		t.Fatalf("blank image: %+v", p)
	}
	if p := probeFile(t, ext4); p.Content != Ext4 {
		t.Fatalf("ext4 image: %+v", p)
	}
	// io.ReaderAt allows io.EOF with a full read at the end of the input.
	f, _ := os.Open(blank)
	defer f.Close()
	if p, err := Device(eofAtEnd{f, imageSize}, imageSize); err != nil || p.Content != Blank {
		t.Fatalf("full read with EOF at the end: %+v, %v", p, err)
	}
}

func TestDeviceSmallDevices(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    []byte
		want Content
	}{
		{"one zero byte", []byte{0}, Blank},
		{"one byte", []byte{1}, Other},
		{"100 KiB of zeros", make([]byte, 100<<10), Blank},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Device(bytes.NewReader(tc.b), int64(len(tc.b)))
			if err != nil || got.Content != tc.want {
				t.Fatalf("Device = %+v, %v; want %v", got, err, tc.want)
			}
		})
	}
	if _, err := Device(bytes.NewReader(nil), 0); err == nil {
		t.Fatal("an empty device probed without error")
	}
}

// faultyReader fails, or cuts short without an error (as a broken driver
// might), every read that covers offset at; -1 never.
type faultyReader struct {
	r     io.ReaderAt
	at    int64
	short bool
}

func (f faultyReader) ReadAt(b []byte, off int64) (int, error) {
	if f.at < off || f.at >= off+int64(len(b)) {
		return f.r.ReadAt(b, off)
	}
	if f.short {
		return f.r.ReadAt(b[:f.at-off], off)
	}
	return 0, syscall.EIO
}

// eofAtEnd reports io.EOF with a full read that reaches the end.
type eofAtEnd struct {
	r    io.ReaderAt
	size int64
}

func (e eofAtEnd) ReadAt(b []byte, off int64) (int, error) {
	n, err := e.r.ReadAt(b, off)
	if err == nil && off+int64(n) == e.size {
		err = io.EOF
	}
	return n, err
}

func probeFile(t *testing.T, p string) Result {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := Device(f, disktest.FileSize(t, p))
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// mdSuperblock1 is an MD RAID 1.x superblock (RAID 1 of two devices of
// size bytes, this one active) at off, with its checksum, as mdadm writes
// it (struct mdp_superblock_1 in the kernel's md_p.h).
func mdSuperblock1(off, size int64) []byte {
	le := binary.LittleEndian
	b := make([]byte, 256+2*2)
	le.PutUint32(b[0:], 0xa92b4efc)
	le.PutUint32(b[4:], 1) // major_version
	copy(b[16:32], "rke2os-md-fixtr!")
	copy(b[32:], "rke2test")
	le.PutUint64(b[64:], 1735689600) // ctime
	le.PutUint32(b[72:], 1)          // level
	dataSize := uint64(size>>9) - 16
	if off < 1<<20 {
		dataSize = uint64(size>>9) - 2048
		le.PutUint64(b[128:], 2048) // data_offset
	}
	le.PutUint64(b[80:], dataSize)        // size
	le.PutUint32(b[92:], 2)               // raid_disks
	le.PutUint64(b[136:], dataSize)       // data_size
	le.PutUint64(b[144:], uint64(off>>9)) // super_offset
	copy(b[168:184], "rke2os-md-device")  // device_uuid
	le.PutUint64(b[192:], 1735689600)     // utime
	le.PutUint64(b[200:], 1)              // events
	le.PutUint64(b[208:], ^uint64(0))     // resync_offset: in sync
	le.PutUint32(b[220:], 2)              // max_dev
	le.PutUint16(b[258:], 1)              // dev_roles: 0, 1
	var sum uint64
	for i := 0; i < len(b); i += 4 {
		sum += uint64(le.Uint32(b[i:]))
	}
	le.PutUint32(b[216:], uint32(sum&0xffffffff+sum>>32)) // sb_csum
	return b
}

// mdSuperblock090 is an MD RAID 0.90 superblock (mdp_super_t, 4 KiB of
// 32-bit words in the host's order) for a device of size bytes.
func mdSuperblock090(size int64) []byte {
	var w [1024]uint32
	w[0], w[1], w[2] = 0xa92b4efc, 0, 90 // magic, major, minor
	w[5], w[6], w[7] = 0x726b6532, 1735689600, 1
	w[8] = uint32((size&^(64<<10-1) - 64<<10) >> 10) // size in KiB
	w[9], w[10] = 2, 2                               // nr_disks, raid_disks
	w[13], w[14], w[15] = 1, 2, 3                    // set_uuid1..3
	w[32], w[33], w[34], w[35] = 1735689600, 1, 2, 2 // utime, state, active, working
	w[40] = 1                                        // events
	for i := uint32(0); i < 2; i++ {                 // disks[0], disks[1]: number, major, minor, raid_disk, state
		copy(w[128+32*i:], []uint32{i, 0, 0, i, 6})
	}
	copy(w[992:], []uint32{0, 0, 0, 0, 6}) // this_disk
	var sum uint64
	for _, v := range w {
		sum += uint64(v)
	}
	w[38] = uint32(sum&0xffffffff + sum>>32) // sb_csum
	b := make([]byte, 4096)
	for i, v := range w {
		binary.LittleEndian.PutUint32(b[4*i:], v)
	}
	return b
}

// The first sector of an install cut short makes a disk an unfinished
// install, whatever else is on it; the same words with anything more in
// the sector (a boot signature, say) are data like any other.
func TestInstallRecord(t *testing.T) {
	rec := InstallRecord()
	if len(rec) != 512 || rec[510] == 0x55 || rec[511] == 0xAA {
		t.Fatalf("the record is %d bytes, ends %x: a firmware could boot it", len(rec), rec[510:])
	}
	p := disktest.ZeroFile(t, 64<<20)
	disktest.WriteAt(t, p, 512, []byte("EFI PART")) // a GPT header half written behind it
	disktest.WriteAt(t, p, 0, rec)
	if got := probeFile(t, p); got.Content != UnfinishedInstall || !strings.Contains(got.Found, "unfinished rke2os install") {
		t.Fatalf("Device = %+v, want an unfinished install", got)
	}
	disktest.WriteAt(t, p, 510, []byte{0x55, 0xAA})
	if got := probeFile(t, p); got.Content != Other {
		t.Fatalf("the marker with a boot signature: %+v, want other", got)
	}
	// Zero makes the device blank.
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := Zero(f, 64<<20); err != nil {
		t.Fatal(err)
	}
	if got := probeFile(t, p); got.Content != Blank {
		t.Fatalf("after Zero: %+v", got)
	}
}
