package probe

import (
	"io"
	"testing"

	"github.com/rke2os/rke2os/init/shared/layout"
)

// FuzzDevice probes arbitrary devices: head, then gap zero bytes,
// then tail (gap lets a few bytes stand for a device of gigabytes). It
// never panics; Blank means the first and last MiB and btrfs' first
// mirror superblock hold zeros only, read back here independently; and
// a read that fails anywhere in those places is an error, while one
// outside them changes nothing.
func FuzzDevice(f *testing.F) {
	ext4 := make([]byte, 2048)
	ext4[1024+56], ext4[1024+57] = 0x53, 0xEF
	copy(ext4[1024+120:], layout.StateLabel)
	btrfs := make([]byte, 64<<10+72)
	copy(btrfs[64<<10+64:], "_BHRfS_M")
	swap := make([]byte, 4096)
	copy(swap[4086:], "SWAPSPACE2")
	md := mdSuperblock1(0, 1<<20)
	f.Add([]byte{}, []byte{}, uint32(0), int64(-1))
	f.Add([]byte{0}, []byte{}, uint32(300<<20), int64(-1))
	f.Add(ext4, []byte{}, uint32(100<<20), int64(1080))
	f.Add(ext4, md, uint32(1<<30), int64(-1))
	f.Add(btrfs, []byte{}, uint32(0), int64(64<<20))
	f.Add(swap, []byte{1}, uint32(2<<20), int64(-1))
	f.Add([]byte{}, []byte("EFI PART"), uint32(64<<20), int64(64<<20+100))
	f.Fuzz(func(t *testing.T, head, tail []byte, gap uint32, failAt int64) {
		d := sparseDevice{head: head, tail: tail, size: int64(len(head)) + int64(gap) + int64(len(tail))}
		got, err := Device(d, d.size)
		if d.size == 0 {
			if err == nil {
				t.Fatalf("empty device: %+v", got)
			}
			return
		}
		if err != nil {
			t.Fatalf("Device of a readable device: %v", err)
		}
		checked := [][2]int64{{0, min(d.size, 1<<20)}, {max(0, d.size-1<<20), d.size}}
		if d.size > 64<<20 {
			checked = append(checked, [2]int64{64 << 20, min(d.size, 64<<20+4096)})
		}
		if got.Content == Blank {
			for _, r := range checked {
				b := make([]byte, r[1]-r[0])
				d.ReadAt(b, r[0])
				for i, v := range b {
					if v != 0 {
						t.Fatalf("Blank with a non-zero byte at %d", r[0]+int64(i))
					}
				}
			}
		}
		if got.Content == Ext4 {
			b := make([]byte, 2)
			if d.ReadAt(b, 1080); b[0] != 0x53 || b[1] != 0xEF {
				t.Fatal("Ext4 without ext4's magic")
			}
		}
		if failAt < 0 || failAt >= d.size {
			return
		}
		inside := false
		for _, r := range checked {
			inside = inside || r[0] <= failAt && failAt < r[1]
		}
		for _, short := range []bool{false, true} {
			fgot, ferr := Device(faultyReader{r: d, at: failAt, short: short}, d.size)
			switch {
			case inside && ferr == nil:
				t.Fatalf("read failing at %d (short %v): Device = %+v without an error", failAt, short, fgot)
			case !inside && !inProbeRegions(failAt, d.size) && (ferr != nil || fgot != got):
				t.Fatalf("read failing at %d, where nothing is probed: %+v, %v; want %+v", failAt, fgot, ferr, got)
			}
		}
	})
}

// inProbeRegions says whether Device reads the byte at off.
func inProbeRegions(off, size int64) bool {
	for _, r := range Regions(size) {
		if r.Off <= off && off < r.Off+r.Len {
			return true
		}
	}
	return false
}

// sparseDevice is head, zeros, then tail, size bytes in all.
type sparseDevice struct {
	head, tail []byte
	size       int64
}

func (d sparseDevice) ReadAt(b []byte, off int64) (int, error) {
	if off < 0 || off >= d.size {
		return 0, io.EOF
	}
	n := int(min(int64(len(b)), d.size-off))
	clear(b[:n])
	if off < int64(len(d.head)) {
		copy(b[:n], d.head[off:])
	}
	tailOff := d.size - int64(len(d.tail))
	if end := off + int64(n); end > tailOff {
		from := max(off, tailOff)
		copy(b[from-off:n], d.tail[from-tailOff:])
	}
	if n < len(b) {
		return n, io.EOF
	}
	return n, nil
}
