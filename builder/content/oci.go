package content

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	initcontent "github.com/rke2os/rke2os/init/shared/content"
)

// Annotations that name an image in an OCI index. containerd's export
// writes the full name in the first and the tag alone in the second.
const (
	annotationContainerdName = "io.containerd.image.name"
	annotationRefName        = "org.opencontainers.image.ref.name"
)

// maxIndexDepth bounds how deep indexes may nest (a multi-platform image is
// one level).
const maxIndexDepth = 4

var sha256Hex = regexp.MustCompile(`^[0-9a-f]{64}$`)

// isLayout tells an OCI image layout directory.
func isLayout(dir string) bool {
	for _, n := range []string{"oci-layout", "index.json"} {
		if _, err := os.Stat(filepath.Join(dir, n)); err == nil {
			return true
		}
	}
	return false
}

// addLayout reads an OCI image layout directory. It is opened as an
// os.Root, so that a symlink in it cannot make this read outside it.
func (s *Set) addLayout(dir string) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	imgs, err := ociImages(root.FS(), dir, nil)
	if err != nil {
		root.Close()
		return err
	}
	s.closers = append(s.closers, root)
	s.addImages(dir, imgs)
	return nil
}

// ociImages reads the images an OCI layout's index.json lists, from fsys (a
// directory or an archive). Small blobs (indexes, manifests, configs) are
// checked against their digests as read; layers are checked against sum
// (the sha256 an archive computed when read) when given, and always when
// extracted.
func ociImages(fsys fs.FS, where string, sum func(string) (string, bool)) ([]Image, error) {
	raw, err := initcontent.ReadMetadata(fsys, "index.json")
	if err != nil {
		return nil, err
	}
	idx, err := v1.ParseIndexManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("index.json: %w", err)
	}
	o := ociReader{fsys: fsys, where: where, sum: sum}
	var imgs []Image
	for i, d := range idx.Manifests {
		img, err := o.image(d, 0)
		if err != nil {
			return nil, fmt.Errorf("index.json manifest %d (%s): %w", i, d.Digest, err)
		}
		if img == nil {
			continue // no linux/amd64 image in it
		}
		img.Name = ociName(d.Annotations)
		imgs = append(imgs, *img)
	}
	return imgs, nil
}

// ociName returns the normalised name an index entry's annotations give,
// or "" when they give none: a bare tag ("v1.0") in ref.name names no
// repository.
func ociName(ann map[string]string) string {
	for _, k := range []string{annotationContainerdName, annotationRefName} {
		if n, err := NormalizeName(ann[k]); err == nil { // a bare tag has none
			return n
		}
	}
	return ""
}

type ociReader struct {
	fsys  fs.FS
	where string
	sum   func(string) (string, bool)
}

// blobPath checks a digest and returns where a layout keeps its blob.
func blobPath(h v1.Hash) (string, error) {
	if h.Algorithm != "sha256" || !sha256Hex.MatchString(h.Hex) {
		return "", fmt.Errorf("digest %q: want sha256:<64 hex digits>", h.String())
	}
	return "blobs/sha256/" + h.Hex, nil
}

// readBlob reads a small blob and checks its size and digest.
func (o ociReader) readBlob(d v1.Descriptor) ([]byte, error) {
	p, err := blobPath(d.Digest)
	if err != nil {
		return nil, err
	}
	b, err := initcontent.ReadMetadata(o.fsys, p)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(b)
	if got := hex.EncodeToString(sum[:]); got != d.Digest.Hex {
		return nil, fmt.Errorf("%s: sha256 is %s: corrupt or tampered", p, got)
	}
	if d.Size != 0 && int64(len(b)) != d.Size {
		return nil, fmt.Errorf("%s: %d bytes, the descriptor says %d", p, len(b), d.Size)
	}
	return b, nil
}

// image resolves a descriptor to the linux/amd64 image it stands for, or
// nil when an index holds none.
func (o ociReader) image(d v1.Descriptor, depth int) (*Image, error) {
	switch d.MediaType {
	case types.OCIImageIndex, types.DockerManifestList:
		if depth >= maxIndexDepth {
			return nil, fmt.Errorf("indexes nested more than %d deep", maxIndexDepth)
		}
		raw, err := o.readBlob(d)
		if err != nil {
			return nil, err
		}
		idx, err := v1.ParseIndexManifest(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("index %s: %w", d.Digest, err)
		}
		for _, m := range idx.Manifests {
			if m.Platform != nil && (m.Platform.OS != "linux" || m.Platform.Architecture != "amd64") {
				continue
			}
			return o.image(m, depth+1)
		}
		slog.Debug("index without a linux/amd64 image", "where", o.where, "digest", d.Digest)
		return nil, nil
	case types.OCIManifestSchema1, types.DockerManifestSchema2:
		return o.manifest(d)
	default:
		return nil, fmt.Errorf("media type %q is neither an image manifest nor an index", d.MediaType)
	}
}

func (o ociReader) manifest(d v1.Descriptor) (*Image, error) {
	raw, err := o.readBlob(d)
	if err != nil {
		return nil, err
	}
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", d.Digest, err)
	}
	rawCfg, err := o.readBlob(m.Config)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(rawCfg))
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", m.Config.Digest, err)
	}
	if len(cfg.RootFS.DiffIDs) != len(m.Layers) {
		return nil, fmt.Errorf("config %s has %d diff_ids for %d layers", m.Config.Digest, len(cfg.RootFS.DiffIDs), len(m.Layers))
	}
	var layers []initcontent.Layer
	for j, ld := range m.Layers {
		p, err := blobPath(ld.Digest)
		if err != nil {
			return nil, fmt.Errorf("layer %d: %w", j, err)
		}
		if _, err := fs.Stat(o.fsys, p); err != nil {
			return nil, fmt.Errorf("layer %s: not in %s: %w", ld.Digest, o.where, err)
		}
		if o.sum != nil {
			if got, _ := o.sum(p); got != ld.Digest.Hex {
				return nil, fmt.Errorf("layer %s: sha256 is %s: corrupt or tampered", p, got)
			}
		}
		diffID := cfg.RootFS.DiffIDs[j]
		if diffID.Algorithm != "sha256" {
			return nil, fmt.Errorf("layer %s: diff_id %s is not a sha256", p, diffID)
		}
		fsys := o.fsys
		layers = append(layers, initcontent.Layer{
			DiffID: diffID,
			Digest: ld.Digest,
			Open:   func() (io.ReadCloser, error) { return fsys.Open(p) },
			Where:  o.where + ":" + p,
		})
	}
	img := initcontent.NewImage("", m.Config.Digest.String(), d.Digest.String(), o.where, cfg, layers)
	return &img, nil
}
