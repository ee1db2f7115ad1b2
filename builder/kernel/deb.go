package kernel

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// unpackDeb extracts the kernel image and module tree of a Debian package
// into dir. A .deb is an ar archive whose data.tar.* member holds the files.
func unpackDeb(debPath, dir string) error {
	f, err := os.Open(debPath)
	if err != nil {
		return err
	}
	defer f.Close()
	r := bufio.NewReader(f)
	magic := make([]byte, 8)
	if _, err := io.ReadFull(r, magic); err != nil || string(magic) != "!<arch>\n" {
		return errors.New("not a Debian package (no ar header)")
	}
	for {
		hdr := make([]byte, 60)
		if _, err := io.ReadFull(r, hdr); err != nil {
			if errors.Is(err, io.EOF) {
				return errors.New("no data.tar member in the package")
			}
			return fmt.Errorf("read ar header: %w", err)
		}
		name := strings.TrimRight(strings.TrimSpace(string(hdr[0:16])), "/")
		size, err := strconv.ParseInt(strings.TrimSpace(string(hdr[48:58])), 10, 64)
		if err != nil || size < 0 {
			return fmt.Errorf("ar member %q: bad size", name)
		}
		body := io.LimitReader(r, size)
		if strings.HasPrefix(name, "data.tar") {
			dec, err := decompressor(name, body)
			if err != nil {
				return err
			}
			return extractKernelFiles(tar.NewReader(dec), dir)
		}
		if _, err := io.Copy(io.Discard, body); err != nil {
			return err
		}
		if size%2 == 1 {
			if _, err := r.Discard(1); err != nil {
				return err
			}
		}
	}
}

func decompressor(name string, r io.Reader) (io.Reader, error) {
	switch path.Ext(name) {
	case ".xz":
		return xz.NewReader(bufio.NewReaderSize(r, 1<<20))
	case ".zst":
		d, err := zstd.NewReader(r)
		if err != nil {
			return nil, err
		}
		return d.IOReadCloser(), nil
	case ".gz":
		return gzip.NewReader(r)
	case ".tar":
		return r, nil
	}
	return nil, fmt.Errorf("%s: unsupported compression", name)
}

// extractKernelFiles writes boot/vmlinuz-* and lib/modules/** (also under
// usr/lib, Debian's merged /usr) into dir, refusing entries that would escape it.
func extractKernelFiles(tr *tar.Reader, dir string) error {
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read data.tar: %w", err)
		}
		name := path.Clean(strings.TrimPrefix(h.Name, "./"))
		name = strings.TrimPrefix(name, "usr/")
		if !strings.HasPrefix(name, "boot/vmlinuz-") && !strings.HasPrefix(name, "lib/modules/") {
			continue
		}
		if strings.HasPrefix(name, "/") || name == ".." || strings.HasPrefix(name, "../") {
			return fmt.Errorf("data.tar entry %q escapes the package root", h.Name)
		}
		target := filepath.Join(dir, filepath.FromSlash(name))
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return err
			}
			out, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
			if err != nil {
				return err
			}
			_, err = io.Copy(out, tr)
			if cerr := out.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("extract %s: %w", name, err)
			}
		}
		// Symlinks (build, source) point at headers the initramfs never needs.
	}
}
