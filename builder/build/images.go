package build

import (
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"

	"github.com/rke2os/rke2os/builder/content"
	"github.com/rke2os/rke2os/init/shared/config"
	"github.com/rke2os/rke2os/init/shared/layout"
)

// bakedImages are the archives an image carries, checked and indexed.
type bakedImages struct {
	archives  []string
	index     []content.IndexEntry
	indexFile string
	digests   map[string]string // path on the medium -> sha256 of the file
}

// readImages opens every archive (checking digests and refusing hostile
// entries), finds the runtime image for o.Version as RKE2 would, and
// writes the index of what is baked.
func readImages(o Options, tmp string) (*bakedImages, error) {
	if o.Version == "" {
		return nil, inputErr("--images needs --version, the RKE2 version whose rancher/rke2-runtime image the node extracts (like v1.34.4+rke2r1)")
	}
	seen := map[string]string{}
	for _, p := range o.Images {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, inputErr("images: %w", err)
		}
		if !fi.Mode().IsRegular() {
			return nil, inputErr("images %s: give docker-save archives (.tar, .tar.gz, .tar.zst) to bake; directories and OCI layouts are read but not baked yet", p)
		}
		if prev, ok := seen[filepath.Base(p)]; ok {
			return nil, inputErr("images %s and %s have the same file name; RKE2's images directory is flat", prev, p)
		}
		seen[filepath.Base(p)] = p
	}
	set := content.NewSet(content.WithTempDir(tmp))
	defer set.Close()
	if err := set.Add(o.Images...); err != nil {
		return nil, &InputError{err}
	}
	if _, err := set.FindRuntime(o.Version); err != nil {
		return nil, &InputError{err}
	}
	b := &bakedImages{archives: o.Images, index: set.Index(), digests: map[string]string{}}
	for _, p := range o.Images {
		d, err := digest(p)
		if err != nil {
			return nil, fmt.Errorf("images: %w", err)
		}
		b.digests[path.Join(layout.MediumImagesDir, filepath.Base(p))] = d
	}
	for i := range b.index {
		b.index[i].Archive = path.Join(layout.MediumImagesDir, filepath.Base(b.index[i].Archive))
	}
	// The index on the medium names the archives where the node finds them.
	idx, err := json.MarshalIndent(b.index, "", "  ")
	if err != nil {
		return nil, err
	}
	b.indexFile = filepath.Join(tmp, "images.json")
	if err := os.WriteFile(b.indexFile, idx, 0o644); err != nil {
		return nil, fmt.Errorf("images index: %w", err)
	}
	return b, nil
}

// release renders the image's config.Release, read by the init.
func (b *bakedImages) release(version string) ([]byte, error) {
	r := config.Release{RKE2Version: version, Archives: b.digests}
	for _, e := range b.index {
		r.Images = append(r.Images, config.ReleaseImage{Name: e.Name, ID: e.ID, Digest: e.Digest, Archive: e.Archive})
	}
	out, err := json.MarshalIndent(r, "", "  ")
	return append(out, '\n'), err
}

// files lists {path on the medium, source} of what the images add.
func (b *bakedImages) files() [][2]string {
	if b == nil {
		return nil
	}
	out := [][2]string{{layout.MediumIndex, b.indexFile}}
	for _, a := range b.archives {
		out = append(out, [2]string{path.Join(layout.MediumImagesDir, filepath.Base(a)), a})
	}
	return out
}
