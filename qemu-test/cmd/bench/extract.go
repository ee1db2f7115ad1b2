package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/rke2os/rke2os/internal/fsutil"

	"github.com/rke2os/rke2os/init/shared/content"
)

// benchExtract times the init's extraction of the runtime image at a
// node's first boot (content.Bootstrap: find rancher/rke2-runtime:<tag> in
// the airgap archive, check every digest, extract /bin and /charts into
// data/<key>/ durably, link bin) beside GNU tar extracting the same
// image's layer tars, taken out of the archive beforehand and not timed.
// The baseline is the floor of writing those files: it decompresses
// nothing, searches nothing, checks no digest and syncs nothing to disk.
// Each run extracts into a fresh directory; the two are interleaved so
// that both see the same page cache.
func benchExtract(tb *benchTB, archive, version string, runs int) []row {
	layers, err := runtimeLayers(tb, archive, version)
	check(err)
	plain := strings.TrimSuffix(archive, ".zst")
	if _, err := os.Stat(plain); plain == archive || err != nil {
		plain = ""
	}
	var ours, oursPlain, base []float64
	for i := 0; i < runs; i++ {
		dir, secs, err := extractOurs(tb, archive, version)
		check(err)
		ours = append(ours, secs)
		tarDir, tarSecs, err := extractTar(tb, layers)
		check(err)
		base = append(base, tarSecs)
		if i == 0 {
			// What is timed must be the same work: the same files, byte for byte.
			check(sameTree(tarDir, dir, "bin", "charts"))
		}
		os.RemoveAll(tarDir)
		if plain != "" {
			pdir, psecs, err := extractOurs(tb, plain, version)
			check(err)
			oursPlain = append(oursPlain, psecs)
			os.RemoveAll(pdir)
		}
		os.RemoveAll(dir)
	}
	rows := []row{ratioRow("extract the runtime (bin, charts) from the airgap .tar.zst (s)", median(ours), "tar -x of the same layer tars", median(base))}
	if plain != "" {
		rows = append(rows, ratioRow("extract the runtime (bin, charts) from the airgap .tar (s)", median(oursPlain), "tar -x of the same layer tars", median(base)))
	}
	return rows
}

// extractOurs bootstraps the runtime of version from archive alone into a
// fresh data directory, as the init does, and returns the extracted
// runtime's directory (data/<key>) and the seconds it took.
func extractOurs(tb *benchTB, archive, version string) (string, float64, error) {
	abs, err := filepath.Abs(archive)
	if err != nil {
		return "", 0, err
	}
	dataDir := tb.TempDir()
	images := filepath.Join(tb.TempDir(), "images")
	if err := os.MkdirAll(images, 0o755); err != nil {
		return "", 0, err
	}
	if err := os.Symlink(abs, filepath.Join(images, filepath.Base(abs))); err != nil {
		return "", 0, err
	}
	o := content.Options{DataDir: dataDir, ImagesDir: images, Version: version, TempDir: tb.TempDir(),
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	start := time.Now()
	res, err := content.Bootstrap(context.Background(), o)
	secs := time.Since(start).Seconds()
	if err != nil {
		return "", 0, err
	}
	if res.Skipped {
		return "", 0, fmt.Errorf("bootstrap into the fresh %s found the runtime already there", dataDir)
	}
	return filepath.Dir(res.BinDir), secs, nil
}

// runtimeLayers writes the layer tars of the runtime image of version, as
// the archive's manifest.json lists them, to plain files in a temporary
// directory, in the order they apply.
func runtimeLayers(tb *benchTB, archive, version string) ([]string, error) {
	want, err := content.NormalizeName(content.RuntimeRef(version))
	if err != nil {
		return nil, err
	}
	a, err := content.OpenArchive(archive, tb.TempDir(), 0)
	if err != nil {
		return nil, err
	}
	defer a.Close()
	raw, err := content.ReadMetadata(a, "manifest.json")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", archive, err)
	}
	var manifest []struct{ RepoTags, Layers []string }
	if err := json.Unmarshal(raw, &manifest); err != nil {
		return nil, fmt.Errorf("%s: manifest.json: %w", archive, err)
	}
	for _, m := range manifest {
		for _, tag := range m.RepoTags {
			if n, err := content.NormalizeName(tag); err != nil || n != want {
				continue
			}
			dir := tb.TempDir()
			var paths []string
			for i, l := range m.Layers {
				p := filepath.Join(dir, fmt.Sprintf("layer-%d.tar", i))
				if err := copyFile(a, l, p); err != nil {
					return nil, fmt.Errorf("%s: %w", archive, err)
				}
				paths = append(paths, p)
			}
			return paths, nil
		}
	}
	return nil, fmt.Errorf("%s holds no %s", archive, want)
}

func copyFile(fsys fs.FS, name, p string) error {
	r, err := fsys.Open(name)
	if err != nil {
		return err
	}
	defer r.Close()
	return fsutil.WriteFrom(p, r)
}

// extractTar runs `tar -x -f layer -C dir` for each layer in turn into a
// fresh directory, and returns it and the seconds it took.
func extractTar(tb *benchTB, layers []string) (string, float64, error) {
	dir := tb.TempDir()
	start := time.Now()
	for _, l := range layers {
		if b, err := exec.Command("tar", "-x", "-f", l, "-C", dir).CombinedOutput(); err != nil {
			return "", 0, fmt.Errorf("tar -x -f %s: %v: %s", l, err, b)
		}
	}
	return dir, time.Since(start).Seconds(), nil
}

// sameTree checks that got holds, under each of dirs, the same regular
// files with the same bytes as want does, and that bin/containerd and
// bin/kubelet are among them.
func sameTree(want, got string, dirs ...string) error {
	for _, must := range []string{"bin/containerd", "bin/kubelet"} {
		for _, root := range []string{want, got} {
			if fi, err := os.Stat(filepath.Join(root, must)); err != nil || !fi.Mode().IsRegular() || fi.Size() == 0 {
				return fmt.Errorf("extracted runtime in %s: no %s (%v)", root, must, err)
			}
		}
	}
	for _, d := range dirs {
		err := filepath.WalkDir(filepath.Join(want, d), func(p string, e fs.DirEntry, err error) error {
			if err != nil || !e.Type().IsRegular() {
				return err
			}
			rel, _ := filepath.Rel(want, p)
			a, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			b, err := os.ReadFile(filepath.Join(got, rel))
			if err != nil {
				return fmt.Errorf("tar extracted %s, the init did not: %w", rel, err)
			}
			if !bytes.Equal(a, b) {
				return fmt.Errorf("%s differs between tar and the init", rel)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}
