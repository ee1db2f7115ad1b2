package boot

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"os"
	"path/filepath"
	"testing"

	"github.com/diskfs/go-diskfs/partition/gpt"
)

// FuzzGrowLastPartition grows a partition on arbitrary disk images (the
// disk is data, then grow MiB of zeros; fix recomputes the GPT checksums
// so that the fuzzer reaches past them). It never panics; when it fails
// or adds nothing, the image is unchanged; when it grows the partition,
// the GPT reads back with the partition ending later on a MiB boundary
// inside the disk, and the other partitions as they were.
func FuzzGrowLastPartition(f *testing.F) {
	// Small tables (4 entries, one sector) keep the inputs small.
	for _, parts := range [][][2]uint64{{{3, 5}}, {{3, 3}, {4, 5}}, {{4, 5}, {3, 3}}} {
		img := gptImage(f, 8, parts)
		f.Add(img, false, uint8(0), uint8(1))
		f.Add(img, false, uint8(1), uint8(len(parts)))
		f.Add(img, true, uint8(3), uint8(1))
	}
	f.Fuzz(func(t *testing.T, data []byte, fix bool, grow, part uint8) {
		if len(data) > 1<<20 {
			return
		}
		data = bytes.Clone(data)
		if fix {
			fixGPT(data, 1)
			fixGPT(data, int64(len(data))/512-1)
		}
		p := filepath.Join(t.TempDir(), "disk.raw")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(p, int64(len(data))+int64(grow%4)<<20); err != nil {
			t.Fatal(err)
		}
		before, _ := os.ReadFile(p)
		old, oldErr := readTable(t, p)
		added, err := GrowLastPartition(p, int(part%8))
		after, _ := os.ReadFile(p)
		if err != nil || added == 0 {
			if !bytes.Equal(before, after) {
				t.Fatalf("GrowLastPartition = %d, %v, and the image changed", added, err)
			}
			return
		}
		if oldErr != nil {
			t.Fatalf("grew a disk whose GPT does not read: %v", oldErr)
		}
		now, err := readTable(t, p)
		if err != nil {
			t.Fatalf("grown GPT does not read back: %v", err)
		}
		for _, q := range now.Partitions {
			var o *gpt.Partition
			for _, x := range old.Partitions {
				if x.Index == q.Index {
					o = x
				}
			}
			switch {
			case o == nil:
				t.Fatalf("partition %d appeared", q.Index)
			case q.Index != int(part%8) && (q.Start != o.Start || q.End != o.End):
				t.Fatalf("partition %d moved: %d-%d -> %d-%d", q.Index, o.Start, o.End, q.Start, q.End)
			case q.Index == int(part%8) && (q.Start != o.Start || q.End != o.End+uint64(added/512) ||
				(q.End+1)%2048 != 0 || q.End > now.LastDataSector() || int64(q.End+1)*512 > int64(len(after))):
				t.Fatalf("partition %d grew from %d-%d to %d-%d (added %d bytes, last data sector %d)", q.Index, o.Start, o.End, q.Start, q.End, added, now.LastDataSector())
			}
		}
	})
}

// readTable reads a GPT as GrowLastPartition does, headers checked
// first: go-diskfs alone allocates what a header says.
func readTable(t testing.TB, p string) (*gpt.Table, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if err := checkGPTHeaders(f, fileSize(t, p), 512); err != nil {
		return nil, err
	}
	return gpt.Read(f, 512, 512)
}

// gptImage is a disk of sectors 512-byte sectors with a GPT of 4
// entries: parts, first and last sector of each, Linux filesystems.
func gptImage(f testing.TB, sectors uint64, parts [][2]uint64) []byte {
	le := binary.LittleEndian
	b := make([]byte, sectors*512)
	b[446+4] = 0xee // protective MBR
	le.PutUint32(b[446+8:], 1)
	le.PutUint32(b[446+12:], uint32(sectors-1))
	b[510], b[511] = 0x55, 0xaa
	linux := []byte{0xaf, 0x3d, 0xc6, 0x0f, 0x83, 0x84, 0x72, 0x47, 0x8e, 0x79, 0x3d, 0x69, 0xd8, 0x47, 0x7d, 0xe4}
	for i, p := range parts {
		e := b[2*512+128*i:]
		copy(e, linux)
		e[16], e[31] = byte(i+1), 0x42 // partition GUID
		le.PutUint64(e[32:], p[0])
		le.PutUint64(e[40:], p[1])
	}
	copy(b[(sectors-2)*512:], b[2*512:3*512]) // backup entries
	for _, h := range [][2]uint64{{1, sectors - 1}, {sectors - 1, 1}} {
		hb := b[h[0]*512:]
		copy(hb, "EFI PART\x00\x00\x01\x00\x5c\x00\x00\x00")
		le.PutUint64(hb[24:], h[0])
		le.PutUint64(hb[32:], h[1])
		le.PutUint64(hb[40:], 3)         // first usable
		le.PutUint64(hb[48:], sectors-3) // last usable
		hb[56], hb[71] = 0x11, 0x22      // disk GUID
		le.PutUint64(hb[72:], map[bool]uint64{true: 2, false: sectors - 2}[h[0] == 1])
		le.PutUint32(hb[80:], 4)
		le.PutUint32(hb[84:], 128)
		fixGPT(b, int64(h[0]))
	}
	p := filepath.Join(f.TempDir(), "seed.raw")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		f.Fatal(err)
	}
	if _, err := readTable(f, p); err != nil {
		f.Fatalf("seed GPT: %v", err)
	}
	return b
}

// fixGPT recomputes the checksums of a GPT header at sector lba of b, and
// of its entries when b holds them, as a tool writing them would.
func fixGPT(b []byte, lba int64) {
	if lba < 1 || (lba+1)*512 > int64(len(b)) {
		return
	}
	h := b[lba*512:]
	le := binary.LittleEndian
	first, count, size := le.Uint64(h[72:]), uint64(le.Uint32(h[80:])), uint64(le.Uint32(h[84:]))
	if first < uint64(len(b))/512 && count*size <= 1<<20 && first*512+count*size <= uint64(len(b)) {
		le.PutUint32(h[88:], crc32.ChecksumIEEE(b[first*512:first*512+count*size]))
	}
	le.PutUint32(h[16:], 0)
	le.PutUint32(h[16:], crc32.ChecksumIEEE(h[:92]))
}
