package main

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// writeLayer writes files as an uncompressed layer tar to w: entries sorted
// by name, every parent directory present (0755 unless listed as a Dir
// with a mode of its own), owner root, every time epoch. It returns the
// layer's sha256, which is both its digest and its diff ID since
// docker-save layers are stored uncompressed.
func writeLayer(w io.Writer, files []file, epoch time.Time) (v1.Hash, int64, error) {
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(w, h)}
	tw := tar.NewWriter(cw)

	sorted := append([]file(nil), files...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	dirs := map[string]bool{}
	for i, f := range sorted {
		if f.Name == "" || path.IsAbs(f.Name) || path.Clean(f.Name) != f.Name || strings.HasPrefix(f.Name, "../") {
			return v1.Hash{}, 0, fmt.Errorf("layer file %q: want a clean relative path", f.Name)
		}
		if i > 0 && sorted[i-1].Name == f.Name {
			// One directory from two trees is one entry.
			if prev := sorted[i-1]; prev.Dir && f.Dir && prev.Mode == f.Mode {
				continue
			}
			return v1.Hash{}, 0, fmt.Errorf("layer file %q listed twice", f.Name)
		}
		// Each directory goes right before the first file inside it, so
		// an extractor always meets a parent before its contents. A
		// listed directory sorts before everything inside it, so it is
		// never implied first.
		if err := writeParents(tw, path.Dir(f.Name), dirs, epoch); err != nil {
			return v1.Hash{}, 0, err
		}
		if f.Dir {
			if err := writeDir(tw, f.Name, f.Mode, epoch); err != nil {
				return v1.Hash{}, 0, err
			}
			dirs[f.Name] = true
			continue
		}
		if err := writeFile(tw, f, epoch); err != nil {
			return v1.Hash{}, 0, err
		}
	}
	if err := tw.Close(); err != nil {
		return v1.Hash{}, 0, fmt.Errorf("close layer tar: %w", err)
	}
	return v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", h.Sum(nil))}, cw.n, nil
}

func writeParents(tw *tar.Writer, dir string, done map[string]bool, epoch time.Time) error {
	if dir == "." || done[dir] {
		return nil
	}
	if err := writeParents(tw, path.Dir(dir), done, epoch); err != nil {
		return err
	}
	done[dir] = true
	return writeDir(tw, dir, 0o755, epoch)
}

func writeDir(tw *tar.Writer, dir string, mode int64, epoch time.Time) error {
	hdr := &tar.Header{
		Typeflag: tar.TypeDir,
		Name:     dir + "/",
		Mode:     mode,
		ModTime:  epoch,
		Format:   tar.FormatPAX,
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("layer dir %s: %w", dir, err)
	}
	return nil
}

func writeFile(tw *tar.Writer, f file, epoch time.Time) error {
	if f.Link != "" {
		hdr := &tar.Header{Typeflag: tar.TypeSymlink, Name: f.Name, Linkname: f.Link, Mode: 0o777, ModTime: epoch, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("layer link %s: %w", f.Name, err)
		}
		return nil
	}
	var r io.Reader
	var size int64
	if f.Source == "" {
		r, size = bytes.NewReader(f.Data), int64(len(f.Data))
	} else {
		src, err := os.Open(f.Source)
		if err != nil {
			return fmt.Errorf("layer file %s: %w", f.Name, err)
		}
		defer src.Close()
		info, err := src.Stat()
		if err != nil {
			return fmt.Errorf("layer file %s: %w", f.Name, err)
		}
		if !info.Mode().IsRegular() {
			return fmt.Errorf("layer file %s: %s is not a regular file", f.Name, f.Source)
		}
		r, size = src, info.Size()
	}
	hdr := &tar.Header{
		Typeflag: tar.TypeReg,
		Name:     f.Name,
		Mode:     f.Mode,
		Size:     size,
		ModTime:  epoch,
		Format:   tar.FormatPAX,
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("layer file %s: %w", f.Name, err)
	}
	n, err := io.Copy(tw, r)
	if err != nil {
		return fmt.Errorf("layer file %s: copy %s: %w", f.Name, f.Source, err)
	}
	if n != size {
		return fmt.Errorf("layer file %s: %s changed size while read (%d, then %d bytes)", f.Name, f.Source, size, n)
	}
	return nil
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

// fileLayer is an uncompressed layer kept in a file. It implements v1.Layer
// with Compressed returning the uncompressed bytes, which is what a
// docker-save archive stores: go-containerregistry's own layers would gzip it.
type fileLayer struct {
	path string
	hash v1.Hash
	size int64
}

var _ v1.Layer = (*fileLayer)(nil)

func (l *fileLayer) Digest() (v1.Hash, error)             { return l.hash, nil }
func (l *fileLayer) DiffID() (v1.Hash, error)             { return l.hash, nil }
func (l *fileLayer) Size() (int64, error)                 { return l.size, nil }
func (l *fileLayer) MediaType() (types.MediaType, error)  { return types.DockerUncompressedLayer, nil }
func (l *fileLayer) Compressed() (io.ReadCloser, error)   { return os.Open(l.path) }
func (l *fileLayer) Uncompressed() (io.ReadCloser, error) { return os.Open(l.path) }
