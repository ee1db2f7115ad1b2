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

	v1 "github.com/google/go-containerregistry/pkg/v1"
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
	// The images Kubernetes' conformance tests run (-conformance), for
	// make conformance alone.
	conformanceArchiveName = "rke2os-conformance-images.linux-amd64.tar"
	conformanceZstdName    = conformanceArchiveName + ".zst"
	conformanceListName    = "rke2os-conformance-images.linux-amd64.txt"
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
	// The test archive's plain .tar would serve nobody: only its .tar.zst.
	return writeAll(out, epoch,
		archive{Name: archiveName, List: listName, KeepTar: keepTar, Specs: specs},
		archive{Name: testArchiveName, List: testListName, Specs: testSpecs})
}

// writeAll writes the archives into out, their layers made in a temporary
// directory there.
func writeAll(out string, epoch time.Time, archives ...archive) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", out, err)
	}
	tmp, err := os.MkdirTemp(out, ".mkimages-")
	if err != nil {
		return fmt.Errorf("temp dir: %w", err)
	}
	defer os.RemoveAll(tmp)
	for _, a := range archives {
		if err := writeImages(out, tmp, a, epoch); err != nil {
			return err
		}
	}
	return nil
}

// runConformance writes the conformance archive alone (mkimages
// -conformance): the images Kubernetes' conformance tests run, apart from
// RKE2's archive and the QEMU tests' so that neither grows by them.
func runConformance(versionsPath, cache, out string, epoch time.Time) error {
	env, err := readEnv(versionsPath)
	if err != nil {
		return err
	}
	specs, err := conformanceImageSpecs(env, cache)
	if err != nil {
		return err
	}
	return writeAll(out, epoch, archive{Name: conformanceArchiveName, List: conformanceListName, Specs: specs})
}

// writeImages makes the images of a and writes them as its archive and list.
func writeImages(out, tmp string, a archive, epoch time.Time) error {
	var images []taggedImage
	// The layers of each image by reference, for the images built on it.
	made := map[string][]v1.Layer{}
	n := 0
	var layersOf func(s *imageSpec) ([]v1.Layer, error)
	layersOf = func(s *imageSpec) ([]v1.Layer, error) {
		if ls, ok := made[s.Ref]; ok {
			return ls, nil
		}
		var ls []v1.Layer
		if s.Base != nil {
			base, err := layersOf(s.Base)
			if err != nil {
				return nil, err
			}
			ls = append(ls, base...)
		}
		start := time.Now()
		l, err := layerFile(filepath.Join(tmp, fmt.Sprintf("%s-layer%d.tar", strings.TrimSuffix(a.Name, ".tar"), n)), s.Files, epoch)
		n++
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", s.Ref, err)
		}
		slog.Info("layer", "image", s.Ref, "files", len(s.Files), "bytes", l.size, "digest", l.hash, "took", time.Since(start).Round(time.Millisecond))
		ls = append(ls, l)
		made[s.Ref] = ls
		return ls, nil
	}
	for i := range a.Specs {
		s := &a.Specs[i]
		layers, err := layersOf(s)
		if err != nil {
			return err
		}
		img, err := newImage(layers, s.config(), epoch)
		if err != nil {
			return fmt.Errorf("image %s: %w", s.Ref, err)
		}
		images = append(images, taggedImage{Tag: s.Ref, Image: img})
	}

	start := time.Now()
	if err := writeArchives(out, tmp, a.Name, images, a.KeepTar, epoch); err != nil {
		return err
	}
	var list strings.Builder
	for _, ti := range images {
		fmt.Fprintf(&list, "%s\n", fullName(ti.Tag))
	}
	if err := os.WriteFile(filepath.Join(out, a.List), []byte(list.String()), 0o644); err != nil {
		return fmt.Errorf("write image list: %w", err)
	}
	slog.Info("archive", "path", filepath.Join(out, a.Name+".zst"), "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// fullName is ref as containerd names it: docker.io/rancher/pause:3.10 for
// rancher/pause:3.10, registry.k8s.io/pause:3.10.1 as it is.
func fullName(ref string) string {
	if first, _, ok := strings.Cut(ref, "/"); ok && (strings.ContainsAny(first, ".:") || first == "localhost") {
		return ref
	}
	return "docker.io/" + ref
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
