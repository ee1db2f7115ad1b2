package content

import (
	"archive/tar"
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// maxZstdWindow bounds the memory a hostile .tar.zst can make the decoder
// take. zstd -19 uses 8 MiB, --long=27 128 MiB; ours use 32 MiB.
const maxZstdWindow = 1 << 27

// maxLinkHops bounds how many links inside an archive one name may go
// through, so that a cycle fails instead of looping.
const maxLinkHops = 16

// DefaultMaxSize is the most a compressed archive may decompress to:
// RKE2's full airgap archive is a few GiB. It bounds the disk (the
// builder's decompressed copy) and the time (the init's single pass) a
// small hostile file can cost.
const DefaultMaxSize = 64 << 30

// The magic numbers compressed archives and layers start with.
var (
	gzipMagic = []byte{0x1f, 0x8b}
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// decompress returns br's content, decompressed when its first bytes are
// gzip's or zstd's magic number (the name is not trusted), and what
// releases the decoder. concurrency is zstd's decoder concurrency, 0 for
// its default.
func decompress(br *bufio.Reader, concurrency int) (r io.Reader, release func(), compressed bool, err error) {
	magic, _ := br.Peek(4)
	switch {
	case bytes.HasPrefix(magic, gzipMagic):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, true, fmt.Errorf("gzip: %w", err)
		}
		return zr, func() {}, true, nil
	case bytes.HasPrefix(magic, zstdMagic):
		// Not low-memory mode: that one keeps about one window of history
		// and moves it down for every block, several times slower on a
		// large window.
		opts := []zstd.DOption{zstd.WithDecoderMaxWindow(maxZstdWindow), zstd.WithDecoderLowmem(false)}
		if concurrency > 0 {
			opts = append(opts, zstd.WithDecoderConcurrency(concurrency))
		}
		zr, err := zstd.NewReader(br, opts...)
		if err != nil {
			return nil, nil, true, fmt.Errorf("zstd: %w", err)
		}
		return zr, zr.Close, true, nil
	}
	return br, func() {}, false, nil
}

// limitReader fails a read past its limit, where io.LimitReader would
// pretend the stream ended.
type limitReader struct {
	r         io.Reader
	max, read int64
}

func (l *limitReader) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	l.read += int64(n)
	if l.read > l.max {
		return n, fmt.Errorf("decompresses to more than the limit of %d bytes", l.max)
	}
	return n, err
}

// posReader is a tar stream that knows its position: after tar.Reader.Next
// it is where the entry's data starts.
type posReader interface {
	io.Reader
	pos() int64
}

// countReader counts the bytes read through it.
type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func (c *countReader) pos() int64 { return c.n }

// fileReader reads a plain file through a buffer and can seek, so that a
// tar.Reader over it jumps over the data of the entries nobody reads: the
// runtime image is a quarter of RKE2's airgap archive.
type fileReader struct {
	f   *os.File
	br  *bufio.Reader
	off int64 // where the next byte Read returns is in the file
}

func newFileReader(f *os.File) *fileReader {
	return &fileReader{f: f, br: bufio.NewReaderSize(f, 1<<20)}
}

func (r *fileReader) Read(p []byte) (int, error) {
	n, err := r.br.Read(p)
	r.off += int64(n)
	return n, err
}

func (r *fileReader) pos() int64 { return r.off }

// Seek moves to offset, from the start or from the current position. It
// keeps the buffer when the target is in it.
func (r *fileReader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += r.off
	default:
		return r.off, errors.New("fileReader: seek from the end is not supported")
	}
	if offset < 0 {
		return r.off, errors.New("fileReader: seek before the start")
	}
	if d := offset - r.off; d >= 0 && d <= int64(r.br.Buffered()) {
		r.br.Discard(int(d))
	} else {
		if _, err := r.f.Seek(offset, io.SeekStart); err != nil {
			return r.off, err
		}
		r.br.Reset(r.f)
	}
	r.off = offset
	return offset, nil
}

// errStop ends walkArchive early without an error.
var errStop = errors.New("stop")

// archiveWalk is the state of a walk over an image archive's tar: the
// names seen (a name may appear once) and the links inside it.
type archiveWalk struct {
	seen  map[string]bool
	links map[string]string // hard and symbolic links: name -> target, both clean
}

func newArchiveWalk() *archiveWalk {
	return &archiveWalk{seen: map[string]bool{}, links: map[string]string{}}
}

// walk reads an image archive's tar stream, checks every entry, records
// links, and calls file for each regular file with its clean name; file
// may read the entry's data from tr. Entries that could escape a
// directory, device nodes and other oddities are refused: no honest
// archive holds them. file returning errStop ends the walk early.
func (w *archiveWalk) walk(tr *tar.Reader, file func(name string, hdr *tar.Header) error) error {
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read tar: %w", err)
		}
		name, err := cleanEntryName(hdr.Name)
		if err != nil {
			return err
		}
		if name == "." {
			continue
		}
		if hdr.Typeflag != tar.TypeDir {
			if w.seen[name] {
				return fmt.Errorf("tar entry %q appears twice", hdr.Name)
			}
			w.seen[name] = true
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
		case tar.TypeReg, tar.TypeRegA:
			if isSparse(hdr) {
				return fmt.Errorf("tar entry %q is a sparse file, which an image archive never holds", hdr.Name)
			}
			if err := file(name, hdr); err == errStop {
				return nil
			} else if err != nil {
				return err
			}
		case tar.TypeSymlink, tar.TypeLink:
			target, err := linkTarget(name, hdr)
			if err != nil {
				return err
			}
			w.links[name] = target
		default:
			return fmt.Errorf("tar entry %q is a %s, which an image archive never holds", hdr.Name, typeName(hdr.Typeflag))
		}
	}
}

// resolve follows links inside the archive from name until it reaches a
// name that is not a link.
func (w *archiveWalk) resolve(name string) (string, error) {
	for hops := 0; hops <= maxLinkHops; hops++ {
		t, ok := w.links[name]
		if !ok {
			return name, nil
		}
		name = t
	}
	return "", fmt.Errorf("%s: more than %d links deep", name, maxLinkHops)
}

// cleanEntryName checks a tar entry's name and returns it without a leading
// "./" or trailing "/". Absolute names and ".." anywhere are refused rather
// than cleaned: no honest writer makes them, and they are how an archive
// reaches outside the directory it is extracted into.
func cleanEntryName(n string) (string, error) {
	if n == "" {
		return "", fmt.Errorf("tar entry with an empty name")
	}
	if strings.HasPrefix(n, "/") {
		return "", fmt.Errorf("tar entry %q has an absolute path", n)
	}
	if strings.ContainsRune(n, 0) || strings.Contains(n, "\\") {
		return "", fmt.Errorf("tar entry %q has a NUL or backslash in its name", n)
	}
	for _, part := range strings.Split(n, "/") {
		if part == ".." {
			return "", fmt.Errorf("tar entry %q has a \"..\" in its path", n)
		}
	}
	return path.Clean(n), nil
}

// linkTarget resolves a link entry's target to a clean name in the archive,
// refusing any that leaves it. A symlink's target is relative to the link's
// directory, a hard link's to the archive's root.
func linkTarget(name string, hdr *tar.Header) (string, error) {
	t := hdr.Linkname
	if t == "" || strings.HasPrefix(t, "/") {
		return "", fmt.Errorf("tar entry %q links to %q, outside the archive", hdr.Name, t)
	}
	if hdr.Typeflag == tar.TypeSymlink {
		t = path.Join(path.Dir(name), t)
	} else {
		t = path.Clean(t)
	}
	if t == ".." || strings.HasPrefix(t, "../") || t == "." {
		return "", fmt.Errorf("tar entry %q links to %q, outside the archive", hdr.Name, hdr.Linkname)
	}
	return t, nil
}

// isSparse tells a sparse file, whose stored bytes are not its content.
func isSparse(hdr *tar.Header) bool {
	if hdr.Typeflag == tar.TypeGNUSparse {
		return true
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

func typeName(t byte) string {
	switch t {
	case tar.TypeChar:
		return "character device"
	case tar.TypeBlock:
		return "block device"
	case tar.TypeFifo:
		return "FIFO"
	case tar.TypeGNUSparse:
		return "sparse file"
	case tar.TypeCont:
		return "contiguous file"
	default:
		return fmt.Sprintf("tar type %q", t)
	}
}
