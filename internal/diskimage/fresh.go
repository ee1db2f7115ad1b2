package diskimage

import (
	"errors"
	"io/fs"
	"os"
	"sort"

	"github.com/diskfs/go-diskfs/backend"
	"golang.org/x/sys/unix"
)

// fresh is a byte range of a target written as if it were a new, zeroed
// file: a read of what has not been written in it returns zeros, as it
// would from a new image file, whatever the device held there; fill then
// writes zeros over what is left. The range ends up holding the bytes a
// new file would, so a filesystem made in it on a used device is the one
// made in an image file. It is go-diskfs' backend.Storage, offsets from
// the range's start.
type fresh struct {
	t           Target
	start, size int64
	written     []span // sorted, disjoint, not touching
	n           int64  // bytes written, for progress
	report      func(n, total int64)
}

// span is [off, end) of the range.
type span struct{ off, end int64 }

func newFresh(t Target, start, size int64, report func(n, total int64)) *fresh {
	if report == nil {
		report = func(int64, int64) {}
	}
	return &fresh{t: t, start: start, size: size, report: report}
}

var errOutside = errors.New("disk: write outside the partition")

func (r *fresh) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > r.size {
		return 0, errOutside
	}
	n, err := r.t.WriteAt(p, r.start+off)
	if n > 0 {
		r.mark(off, off+int64(n))
		r.n += int64(n)
		r.report(min(r.n, r.size), r.size)
	}
	return n, err
}

// ReadAt reads what was written, and zeros where nothing was.
func (r *fresh) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off >= r.size {
		return 0, errOutside
	}
	end := min(off+int64(len(p)), r.size)
	clear(p[:end-off])
	i := sort.Search(len(r.written), func(i int) bool { return r.written[i].end > off })
	for ; i < len(r.written) && r.written[i].off < end; i++ {
		s := r.written[i]
		from, to := max(s.off, off), min(s.end, end)
		if _, err := r.t.ReadAt(p[from-off:to-off], r.start+from); err != nil {
			return 0, err
		}
	}
	if end-off < int64(len(p)) {
		return int(end - off), errOutside
	}
	return len(p), nil
}

// mark records [off, end) as written.
func (r *fresh) mark(off, end int64) {
	// The common case: a write just after (or over the end of) the last.
	if k := len(r.written); k > 0 && r.written[k-1].off <= off && off <= r.written[k-1].end {
		r.written[k-1].end = max(r.written[k-1].end, end)
		return
	}
	i := sort.Search(len(r.written), func(i int) bool { return r.written[i].end >= off })
	j := i
	for j < len(r.written) && r.written[j].off <= end {
		off, end = min(off, r.written[j].off), max(end, r.written[j].end)
		j++
	}
	r.written = append(r.written[:i], append([]span{{off, end}}, r.written[j:]...)...)
}

// fill writes zeros over the range wherever nothing was written.
func (r *fresh) fill() error {
	zeros := make([]byte, 4*mib)
	at := int64(0)
	gaps := append(append([]span{}, r.written...), span{r.size, r.size})
	for _, s := range gaps {
		for at < s.off {
			n := min(int64(len(zeros)), s.off-at)
			if _, err := r.WriteAt(zeros[:n], at); err != nil {
				return err
			}
			at += n
		}
		at = max(at, s.end)
	}
	return nil
}

// What go-diskfs' FAT code does not use of a backend.
var _ backend.Storage = (*fresh)(nil)

func (r *fresh) Stat() (fs.FileInfo, error)              { return nil, errors.New("disk: no stat") }
func (r *fresh) Read([]byte) (int, error)                { return 0, errors.New("disk: no sequential read") }
func (r *fresh) Seek(int64, int) (int64, error)          { return 0, errors.New("disk: no seek") }
func (r *fresh) Close() error                            { return nil }
func (r *fresh) Sys() (*os.File, error)                  { return nil, errors.New("disk: no file") }
func (r *fresh) Writable() (backend.WritableFile, error) { return r, nil }
func (r *fresh) Path() string                            { return "" }

// dropCache makes the next reads of t come from the disk rather than
// from the kernel's cache of what was written (after a Sync): a block
// device's buffers are flushed and dropped (BLKFLSBUF), a file's cached
// pages dropped. Best effort: a target that is no file has no cache.
func dropCache(t Target) {
	f, ok := t.(*os.File)
	if !ok {
		return
	}
	if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeDevice != 0 {
		_ = unix.IoctlSetInt(int(f.Fd()), unix.BLKFLSBUF, 0)
		return
	}
	_ = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
}
