package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"
)

// Names of what run writes into the output directory, as RKE2 names its own
// airgap artifacts: RKE2's images, and apart from them the QEMU tests' own
// (images/testworkload), which must never reach a node's image.
const (
	archiveName     = "rke2-images.linux-amd64.tar"
	zstdName        = archiveName + ".zst"
	listName        = "rke2-images.linux-amd64.txt"
	testArchiveName = "rke2os-test-images.linux-amd64.tar"
	testZstdName    = testArchiveName + ".zst"
	testListName    = "rke2os-test-images.linux-amd64.txt"
)

// zstdWindow bounds the decoder's memory. 8 MiB is what zstd -19 uses, so
// any zstd -d takes it without a --long option. It matters for speed too:
// klauspost/compress's decoder (containerd's) keeps by default only about a
// window of history and moves it down every MiB or so, so on this archive a
// 32 MiB window decodes at half the speed for 0.7% less size.
const zstdWindow = 1 << 23

// archive is one docker-save archive run writes: Name is its uncompressed
// .tar's name (the .tar.zst is Name+".zst"), List the image list's.
type archive struct {
	Name, List string
	KeepTar    bool
	Specs      []imageSpec
}

func run(versionsPath, cache, out string, keepTar bool, epoch time.Time) error {
	env, err := readEnv(versionsPath)
	if err != nil {
		return err
	}
	// The charts of our own live beside versions.env (images/charts).
	specs, err := imageSpecs(env, cache, filepath.Join(filepath.Dir(versionsPath), "charts"), epoch)
	if err != nil {
		return err
	}
	testSpecs, err := testImageSpecs(env, cache)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", out, err)
	}
	tmp, err := os.MkdirTemp(out, ".mkimages-")
	if err != nil {
		return fmt.Errorf("temp dir: %w", err)
	}
	defer os.RemoveAll(tmp)

	// The test archive's plain .tar would serve nobody: only its .tar.zst.
	archives := []archive{
		{Name: archiveName, List: listName, KeepTar: keepTar, Specs: specs},
		{Name: testArchiveName, List: testListName, Specs: testSpecs},
	}
	for _, a := range archives {
		if err := writeImages(out, tmp, a, epoch); err != nil {
			return err
		}
	}
	return nil
}

// writeImages makes the images of a and writes them as its archive and list.
func writeImages(out, tmp string, a archive, epoch time.Time) error {
	var images []taggedImage
	for i, s := range a.Specs {
		start := time.Now()
		l, err := layerFile(filepath.Join(tmp, fmt.Sprintf("%s-layer%d.tar", strings.TrimSuffix(a.Name, ".tar"), i)), s.Files, epoch)
		if err != nil {
			return fmt.Errorf("image %s: %w", s.Ref, err)
		}
		img, err := newImage(l, s.Entrypoint, epoch)
		if err != nil {
			return fmt.Errorf("image %s: %w", s.Ref, err)
		}
		images = append(images, taggedImage{Tag: s.Ref, Image: img})
		slog.Info("layer", "image", s.Ref, "files", len(s.Files), "bytes", l.size, "digest", l.hash, "took", time.Since(start).Round(time.Millisecond))
	}

	start := time.Now()
	if err := writeArchives(out, tmp, a.Name, images, a.KeepTar, epoch); err != nil {
		return err
	}
	var list strings.Builder
	for _, ti := range images {
		fmt.Fprintf(&list, "docker.io/%s\n", ti.Tag)
	}
	if err := os.WriteFile(filepath.Join(out, a.List), []byte(list.String()), 0o644); err != nil {
		return fmt.Errorf("write image list: %w", err)
	}
	slog.Info("archive", "path", filepath.Join(out, a.Name+".zst"), "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// layerFile writes files as a layer tar at path.
func layerFile(path string, files []file, epoch time.Time) (*fileLayer, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("create layer: %w", err)
	}
	h, size, err := writeLayer(f, files, epoch)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("write %s: %w", path, cerr)
	}
	if err != nil {
		return nil, err
	}
	return &fileLayer{path: path, hash: h, size: size}, nil
}

// writeArchives writes the archive name (a .tar's name) once, into the
// .tar.zst and (keepTar) the plain .tar at the same time, and renames both
// into place only when whole.
func writeArchives(out, tmp, name string, images []taggedImage, keepTar bool, epoch time.Time) error {
	sort.Slice(images, func(i, j int) bool { return images[i].Tag < images[j].Tag })
	zname := name + ".zst"
	zf, err := os.Create(filepath.Join(tmp, zname))
	if err != nil {
		return fmt.Errorf("create archive: %w", err)
	}
	defer zf.Close()
	enc, err := zstd.NewWriter(zf,
		zstd.WithWindowSize(zstdWindow),
		zstd.WithEncoderLevel(zstd.SpeedBetterCompression))
	if err != nil {
		return fmt.Errorf("zstd: %w", err)
	}
	var w io.Writer = enc
	var tf *os.File
	if keepTar {
		tf, err = os.Create(filepath.Join(tmp, name))
		if err != nil {
			return fmt.Errorf("create archive: %w", err)
		}
		defer tf.Close()
		w = io.MultiWriter(tf, enc)
	}
	if err := writeArchive(w, images, epoch); err != nil {
		enc.Close()
		return err
	}
	if err := enc.Close(); err != nil {
		return fmt.Errorf("zstd: %w", err)
	}
	done := []string{zname}
	if keepTar {
		done = append(done, name)
	} else if err := os.Remove(filepath.Join(out, name)); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("remove stale %s: %w", name, err)
	}
	for _, f := range []*os.File{zf, tf} {
		if f == nil {
			continue
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("write %s: %w", f.Name(), err)
		}
	}
	for _, n := range done {
		if err := os.Rename(filepath.Join(tmp, n), filepath.Join(out, n)); err != nil {
			return fmt.Errorf("move %s into place: %w", n, err)
		}
		info, err := os.Stat(filepath.Join(out, n))
		if err != nil {
			return err
		}
		slog.Info("wrote", "path", filepath.Join(out, n), "bytes", info.Size())
	}
	return nil
}
