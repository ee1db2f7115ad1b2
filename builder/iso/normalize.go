package iso

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// Normalize rewrites what go-diskfs takes from the clock and the build
// machine: the volume descriptors' dates, every directory record's date,
// and the Rock Ridge timestamps, owners, modes and link counts. It also
// cuts the file to the volume's size. The result depends only on the files'
// contents and names.
func Normalize(f *os.File, epoch time.Time) error {
	n := &normalizer{f: f, short: shortDate(epoch), long: longDate(epoch), seen: map[uint32]bool{}}
	var volumeBlocks uint32
	for s := uint32(16); s < 64; s++ {
		vd := make([]byte, sector)
		if _, err := f.ReadAt(vd, int64(s)*sector); err != nil {
			return fmt.Errorf("volume descriptor %d: %w", s, err)
		}
		if string(vd[1:6]) != "CD001" {
			return fmt.Errorf("sector %d: no volume descriptor", s)
		}
		switch vd[0] {
		case 255:
			if volumeBlocks == 0 {
				return errors.New("no primary volume descriptor")
			}
			return n.pad(volumeBlocks)
		case 1, 2:
			if vd[0] == 1 {
				volumeBlocks = binary.LittleEndian.Uint32(vd[80:])
			}
			copy(vd[813:], n.long) // creation
			copy(vd[830:], n.long) // modification
			copy(vd[847:], zeroLongDate())
			copy(vd[864:], n.long) // effective
			root := vd[156 : 156+34]
			copy(root[18:25], n.short)
			if _, err := f.WriteAt(vd, int64(s)*sector); err != nil {
				return err
			}
			if err := n.dir(binary.LittleEndian.Uint32(root[2:]), binary.LittleEndian.Uint32(root[10:])); err != nil {
				return err
			}
		}
	}
	return errors.New("no volume descriptor set terminator")
}

// padBlocks is the 300 KiB of zeros mkisofs appends by default: GRUB's
// BIOS disk driver cannot read the last sectors of a CD (reading the file
// placed there gives garbage), and some Linux drives fail read-ahead there.
const padBlocks = 150

// pad sets the file to the volume plus padding, and the volume size in the
// primary volume descriptor to match.
func (n *normalizer) pad(volumeBlocks uint32) error {
	total := volumeBlocks + padBlocks
	b := make([]byte, 8)
	putBoth(b, total)
	if _, err := n.f.WriteAt(b, 16*sector+80); err != nil {
		return err
	}
	return n.f.Truncate(int64(total) * sector)
}

type normalizer struct {
	f           *os.File
	short, long []byte
	seen        map[uint32]bool
}

// dir normalises every record of the directory extent at lba, recursively.
func (n *normalizer) dir(lba, size uint32) error {
	if n.seen[lba] {
		return nil
	}
	n.seen[lba] = true
	buf := make([]byte, size)
	if _, err := n.f.ReadAt(buf, int64(lba)*sector); err != nil {
		return fmt.Errorf("directory at %d: %w", lba, err)
	}
	type sub struct{ lba, size uint32 }
	var subs []sub
	for off := 0; off < len(buf); {
		l := int(buf[off])
		if l == 0 { // records do not cross sectors; the rest of this one is padding
			off = (off/sector + 1) * sector
			continue
		}
		if l < 34 || off+l > len(buf) {
			return fmt.Errorf("directory at %d: bad record length %d at %d", lba, l, off)
		}
		rec := buf[off : off+l]
		copy(rec[18:25], n.short)
		nameLen := int(rec[32])
		isDir := rec[25]&2 != 0
		name := rec[33 : 33+nameLen]
		su := 33 + nameLen
		if nameLen%2 == 0 {
			su++
		}
		if su < l {
			if err := n.systemUse(rec[su:], isDir); err != nil {
				return err
			}
		}
		if isDir && !(nameLen == 1 && (name[0] == 0 || name[0] == 1)) {
			subs = append(subs, sub{binary.LittleEndian.Uint32(rec[2:]), binary.LittleEndian.Uint32(rec[10:])})
		}
		off += l
	}
	if _, err := n.f.WriteAt(buf, int64(lba)*sector); err != nil {
		return err
	}
	for _, s := range subs {
		if err := n.dir(s.lba, s.size); err != nil {
			return err
		}
	}
	return nil
}

// systemUse normalises SUSP entries: TF (timestamps) and PX (attributes),
// following CE continuation areas.
func (n *normalizer) systemUse(b []byte, isDir bool) error {
	for len(b) >= 4 {
		sig, l := string(b[0:2]), int(b[2])
		if l < 4 || l > len(b) {
			return nil
		}
		e := b[:l]
		switch sig {
		case "TF":
			flags := e[4]
			w := 7
			if flags&0x80 != 0 {
				w = 17
			}
			for off := 5; off+w <= l; off += w {
				if w == 7 {
					copy(e[off:], n.short)
				} else {
					copy(e[off:], n.long)
				}
			}
		case "PX":
			mode := uint32(0o100444)
			links := uint32(1)
			if isDir {
				mode = 0o40555
				links = binary.LittleEndian.Uint32(e[12:]) // kept: it counts subdirectories
			}
			putBoth(e[4:], mode)
			putBoth(e[12:], links)
			putBoth(e[20:], 0)
			putBoth(e[28:], 0)
		case "CE":
			if l >= 28 {
				loc, off, size := binary.LittleEndian.Uint32(e[4:]), binary.LittleEndian.Uint32(e[12:]), binary.LittleEndian.Uint32(e[20:])
				if err := n.continuation(loc, off, size, isDir); err != nil {
					return err
				}
			}
		case "ST":
			return nil
		}
		b = b[l:]
	}
	return nil
}

func (n *normalizer) continuation(lba, off, size uint32, isDir bool) error {
	buf := make([]byte, size)
	pos := int64(lba)*sector + int64(off)
	if _, err := n.f.ReadAt(buf, pos); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	if err := n.systemUse(buf, isDir); err != nil {
		return err
	}
	_, err := n.f.WriteAt(buf, pos)
	return err
}

// putBoth writes v in ISO9660's both-endian form (LE then BE, 8 bytes).
func putBoth(b []byte, v uint32) {
	binary.LittleEndian.PutUint32(b, v)
	binary.BigEndian.PutUint32(b[4:], v)
}

func shortDate(t time.Time) []byte {
	t = t.UTC()
	return []byte{byte(t.Year() - 1900), byte(t.Month()), byte(t.Day()), byte(t.Hour()), byte(t.Minute()), byte(t.Second()), 0}
}

func longDate(t time.Time) []byte {
	t = t.UTC()
	b := []byte(fmt.Sprintf("%04d%02d%02d%02d%02d%02d00", t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second()))
	return append(b, 0)
}

func zeroLongDate() []byte {
	return append([]byte("0000000000000000"), 0)
}
