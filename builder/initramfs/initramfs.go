// Package initramfs writes the early root filesystem the kernel unpacks: a
// gzip-compressed newc cpio archive, written with u-root's cpio package.
// Entries are sorted and carry fixed owners and times, so the same inputs
// give the same bytes.
package initramfs

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/u-root/u-root/pkg/cpio"
)

// Archive collects the entries of an initramfs.
type Archive struct {
	recs  map[string]cpio.Record
	mtime uint64
}

// New returns an empty archive whose entries carry mtime (seconds since the epoch).
func New(mtime int64) *Archive {
	return &Archive{recs: map[string]cpio.Record{}, mtime: uint64(mtime)}
}

func clean(name string) (string, error) {
	n := path.Clean("/" + name)[1:]
	if n == "" || n == "." {
		return "", fmt.Errorf("initramfs: empty path %q", name)
	}
	return n, nil
}

// put adds rec and its missing parent directories.
func (a *Archive) put(rec cpio.Record) error {
	name, err := clean(rec.Name)
	if err != nil {
		return err
	}
	rec.Name = name
	if old, ok := a.recs[name]; ok && old.Mode&cpio.S_IFMT == cpio.S_IFDIR && rec.Mode&cpio.S_IFMT == cpio.S_IFDIR {
		return nil
	}
	a.recs[name] = rec
	for d := path.Dir(name); d != "."; d = path.Dir(d) {
		if _, ok := a.recs[d]; !ok {
			a.recs[d] = cpio.Directory(d, 0o755)
		}
	}
	return nil
}

// Dir adds a directory.
func (a *Archive) Dir(name string, perm os.FileMode) error {
	return a.put(cpio.Directory(name, uint64(perm.Perm())))
}

// Bytes adds a regular file with the given content.
func (a *Archive) Bytes(name string, data []byte, perm os.FileMode) error {
	return a.put(cpio.StaticRecord(data, cpio.Info{Name: name, Mode: cpio.S_IFREG | uint64(perm.Perm())}))
}

// File adds the regular file src as name; content is read when the archive is written.
func (a *Archive) File(name, src string, perm os.FileMode) error {
	fi, err := os.Stat(src)
	if err != nil {
		return fmt.Errorf("initramfs %s: %w", name, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("initramfs %s: %s is not a regular file", name, src)
	}
	return a.put(cpio.Record{
		ReaderAt: &lazyFile{path: src},
		Info:     cpio.Info{Name: name, Mode: cpio.S_IFREG | uint64(perm.Perm()), FileSize: uint64(fi.Size())},
	})
}

// Symlink adds a symbolic link.
func (a *Archive) Symlink(name, target string) error {
	return a.put(cpio.Symlink(name, target))
}

// CharDev adds a character device node; the kernel opens /dev/console
// for PID 1 before any devtmpfs exists, so the archive must carry it.
func (a *Archive) CharDev(name string, perm os.FileMode, major, minor uint64) error {
	return a.put(cpio.CharDev(name, uint64(perm.Perm()), major, minor))
}

// Tree adds every file below src under the directory dst, keeping modes.
// Only directories, regular files and symlinks are allowed.
func (a *Archive) Tree(dst, src string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		if rel == "." {
			return nil
		}
		name := path.Join(dst, filepath.ToSlash(rel))
		fi, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case fi.IsDir():
			return a.Dir(name, fi.Mode())
		case fi.Mode().IsRegular():
			return a.File(name, p, fi.Mode())
		case fi.Mode()&os.ModeSymlink != 0:
			t, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return a.Symlink(name, t)
		}
		return fmt.Errorf("initramfs: %s is neither a file, a directory nor a symlink", p)
	})
}

// Names lists the archive's paths in the order they are written.
func (a *Archive) Names() []string {
	names := make([]string, 0, len(a.recs))
	for n := range a.recs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// WriteTo writes the gzip-compressed cpio archive to w.
func (a *Archive) WriteTo(w io.Writer) (int64, error) {
	cw := &countWriter{w: w}
	zw, err := gzip.NewWriterLevel(cw, gzip.BestSpeed)
	if err != nil {
		return 0, err
	}
	rw := cpio.Newc.Writer(zw)
	for i, name := range a.Names() {
		rec := a.recs[name]
		rec = cpio.MakeReproducible(rec)
		rec.MTime = a.mtime
		rec.Ino = uint64(i + 1)
		rec.NLink = 1
		if rec.Mode&cpio.S_IFMT == cpio.S_IFDIR {
			rec.NLink = 2
		}
		if err := rw.WriteRecord(rec); err != nil {
			return cw.n, fmt.Errorf("initramfs %s: %w", name, err)
		}
		if lf, ok := rec.ReaderAt.(*lazyFile); ok {
			lf.close()
		}
	}
	if err := cpio.WriteTrailer(rw); err != nil {
		return cw.n, err
	}
	if err := zw.Close(); err != nil {
		return cw.n, err
	}
	return cw.n, nil
}

// lazyFile opens its file on first read, so that an archive of many
// modules does not hold a descriptor for each.
type lazyFile struct {
	path string
	f    *os.File
}

func (l *lazyFile) ReadAt(p []byte, off int64) (int, error) {
	if l.f == nil {
		f, err := os.Open(l.path)
		if err != nil {
			return 0, err
		}
		l.f = f
	}
	return l.f.ReadAt(p, off)
}

func (l *lazyFile) close() {
	if l.f != nil {
		l.f.Close()
		l.f = nil
	}
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// List reads back the names in a gzip-compressed cpio archive, for tests and checks.
func List(data []byte) ([]string, error) {
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		return nil, err
	}
	recs, err := cpio.ReadAllRecords(cpio.Newc.Reader(bytes.NewReader(raw)))
	if err != nil {
		return nil, err
	}
	var names []string
	for _, r := range recs {
		if !strings.HasPrefix(r.Name, "TRAILER!!!") {
			names = append(names, r.Name)
		}
	}
	return names, nil
}
