package main

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// taggedImage is an image and the one tag it is saved under.
type taggedImage struct {
	Tag   string
	Image v1.Image
}

// defaultPath is the PATH of every image, as in a Debian or distroless base.
const defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// newImage makes a linux/amd64 image of layers with config.
func newImage(layers []v1.Layer, config v1.Config, epoch time.Time) (v1.Image, error) {
	cfg := &v1.ConfigFile{
		Architecture: "amd64",
		OS:           "linux",
		Created:      v1.Time{Time: epoch},
		Config:       config,
		RootFS:       v1.RootFS{Type: "layers"},
	}
	img, err := mutate.ConfigFile(empty.Image, cfg)
	if err != nil {
		return nil, fmt.Errorf("image config: %w", err)
	}
	for _, l := range layers {
		img, err = mutate.Append(img, mutate.Addendum{
			Layer:   l,
			History: v1.History{Created: v1.Time{Time: epoch}, CreatedBy: "rke2os images/cmd/mkimages"},
		})
		if err != nil {
			return nil, fmt.Errorf("image layer: %w", err)
		}
	}
	return img, nil
}

// config is s's image config: its base's (or only defaultPath in Env),
// with what s sets over it, as a Dockerfile's instructions after FROM.
// An image that sets only Entrypoint gets {Entrypoint, Env: [defaultPath]},
// the config RKE2's images have always had.
func (s *imageSpec) config() v1.Config {
	var c v1.Config
	if s.Base != nil {
		c = s.Base.config()
	} else {
		c.Env = []string{defaultPath}
	}
	if s.Env != nil {
		c.Env = slices.Clone(s.Env)
	}
	if s.Entrypoint != nil {
		c.Entrypoint = slices.Clone(s.Entrypoint)
	}
	if s.Cmd != nil {
		c.Cmd = slices.Clone(s.Cmd)
	}
	if s.User != "" {
		c.User = s.User
	}
	if s.WorkingDir != "" {
		c.WorkingDir = s.WorkingDir
	}
	if len(s.ExposedPorts) > 0 {
		ports := map[string]struct{}{}
		for p := range c.ExposedPorts {
			ports[p] = struct{}{}
		}
		for _, p := range s.ExposedPorts {
			ports[p] = struct{}{}
		}
		c.ExposedPorts = ports
	}
	return c
}

// writeArchive writes images as a docker-save archive ("docker save"'s
// format, read by `docker load`, `ctr images import` and RKE2).
//
// go-containerregistry's tarball.MultiRefWrite writes the same format, but
// walks a map, so two runs order the images differently; this writer fixes
// the order: manifest.json first (so that a reader streaming the archive once
// knows which blobs it wants before it meets them), then every config and
// layer under blobs/sha256/ in the order of the images, each blob once.
func writeArchive(w io.Writer, images []taggedImage, epoch time.Time) error {
	var manifest tarball.Manifest
	type blob struct {
		name string
		open func() (io.ReadCloser, error)
		size int64
	}
	var blobs []blob
	seen := map[string]bool{}
	add := func(h v1.Hash, size int64, open func() (io.ReadCloser, error)) string {
		n := "blobs/" + h.Algorithm + "/" + h.Hex
		if !seen[n] {
			seen[n] = true
			blobs = append(blobs, blob{name: n, open: open, size: size})
		}
		return n
	}
	for _, ti := range images {
		// name.NewTag would take a missing tag for "latest": insist on one.
		last := ti.Tag[strings.LastIndex(ti.Tag, "/")+1:]
		if _, err := name.NewTag(ti.Tag); err != nil || !strings.Contains(last, ":") {
			return fmt.Errorf("image %q: want a tagged reference like rancher/name:tag (%v)", ti.Tag, err)
		}
		cfgName, err := ti.Image.ConfigName()
		if err != nil {
			return fmt.Errorf("image %s config: %w", ti.Tag, err)
		}
		raw, err := ti.Image.RawConfigFile()
		if err != nil {
			return fmt.Errorf("image %s config: %w", ti.Tag, err)
		}
		d := tarball.Descriptor{
			Config:   add(cfgName, int64(len(raw)), func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(raw)), nil }),
			RepoTags: []string{ti.Tag},
		}
		layers, err := ti.Image.Layers()
		if err != nil {
			return fmt.Errorf("image %s layers: %w", ti.Tag, err)
		}
		for _, l := range layers {
			h, err := l.Digest()
			if err != nil {
				return fmt.Errorf("image %s layer: %w", ti.Tag, err)
			}
			size, err := l.Size()
			if err != nil {
				return fmt.Errorf("image %s layer %s: %w", ti.Tag, h, err)
			}
			d.Layers = append(d.Layers, add(h, size, l.Compressed))
		}
		manifest = append(manifest, d)
	}
	m, err := json.Marshal(manifest)
	if err != nil {
		return fmt.Errorf("manifest.json: %w", err)
	}

	tw := tar.NewWriter(w)
	hdr := func(name string, typ byte, mode, size int64) *tar.Header {
		return &tar.Header{Typeflag: typ, Name: name, Mode: mode, Size: size, ModTime: epoch, Format: tar.FormatPAX}
	}
	if err := tw.WriteHeader(hdr("manifest.json", tar.TypeReg, 0o644, int64(len(m)))); err != nil {
		return fmt.Errorf("manifest.json: %w", err)
	}
	if _, err := tw.Write(m); err != nil {
		return fmt.Errorf("manifest.json: %w", err)
	}
	for _, dir := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(hdr(dir, tar.TypeDir, 0o755, 0)); err != nil {
			return fmt.Errorf("%s: %w", dir, err)
		}
	}
	for _, b := range blobs {
		if err := tw.WriteHeader(hdr(b.name, tar.TypeReg, 0o644, b.size)); err != nil {
			return fmt.Errorf("%s: %w", b.name, err)
		}
		r, err := b.open()
		if err != nil {
			return fmt.Errorf("%s: %w", b.name, err)
		}
		n, err := io.Copy(tw, r)
		r.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", b.name, err)
		}
		if n != b.size {
			return fmt.Errorf("%s: wrote %d bytes, want %d", b.name, n, b.size)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("close archive: %w", err)
	}
	return nil
}
