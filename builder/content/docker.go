package content

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"path"
	"regexp"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// maxMetadataSize bounds what is read into memory whole: manifest.json,
// index.json, image configs and manifests. Real ones are a few KiB.
const maxMetadataSize = 16 << 20

// dockerManifestEntry is one image of a docker-save archive's manifest.json.
type dockerManifestEntry struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// hexDigestName matches the names under which archives store blobs by
// their sha256: "blobs/sha256/<hex>" (docker 25 and later), "<hex>.json"
// (older docker's configs), "sha256:<hex>" and "<hex>.tar", "<hex>.tar.gz"
// (go-containerregistry's configs and layers). Older docker's
// "<layer id>/layer.tar" is not a content digest.
var hexDigestName = regexp.MustCompile(`^(?:blobs/sha256/|sha256:)?([0-9a-f]{64})(?:\.json|\.tar|\.tar\.gz|\.tar\.zst)?$`)

// digestInName returns the sha256 a blob's name claims, if it claims one.
func digestInName(n string) string {
	m := hexDigestName.FindStringSubmatch(n)
	if m == nil {
		return ""
	}
	return m[1]
}

// dockerImages reads a docker-save archive's manifest.json and checks each
// image it lists against the archive: every config and layer present, each
// blob's sha256 the one its name claims, each uncompressed layer's sha256
// its diff_id in the config. (A compressed layer's diff_id is checked when
// it is read.)
func dockerImages(a *archiveFS) ([]Image, error) {
	raw, err := readSmall(a, "manifest.json")
	if err != nil {
		return nil, err
	}
	var manifest []dockerManifestEntry
	if err := json.Unmarshal(raw, &manifest); err != nil {
		return nil, fmt.Errorf("manifest.json: %w", err)
	}
	if len(manifest) == 0 {
		return nil, fmt.Errorf("manifest.json lists no images")
	}
	var imgs []Image
	for i, d := range manifest {
		img, err := dockerImage(a, d)
		if err != nil {
			return nil, fmt.Errorf("manifest.json image %d (%s): %w", i, strings.Join(d.RepoTags, " "), err)
		}
		names, err := normalizeAll(d.RepoTags)
		if err != nil {
			return nil, fmt.Errorf("manifest.json image %d: %w", i, err)
		}
		for _, n := range names {
			img.Name = n
			imgs = append(imgs, img)
		}
	}
	return imgs, nil
}

// normalizeAll normalises tags; no tags gives one empty name, an untagged
// image.
func normalizeAll(tags []string) ([]string, error) {
	if len(tags) == 0 {
		return []string{""}, nil
	}
	names := make([]string, 0, len(tags))
	for _, t := range tags {
		n, err := NormalizeName(t)
		if err != nil {
			return nil, err
		}
		names = append(names, n)
	}
	return names, nil
}

func dockerImage(a *archiveFS, d dockerManifestEntry) (Image, error) {
	cfgName, err := blobName(a, d.Config, "config")
	if err != nil {
		return Image{}, err
	}
	cfgSum, _ := a.sum(cfgName)
	if want := digestInName(cfgName); want != "" && want != cfgSum {
		return Image{}, fmt.Errorf("config %s: sha256 is %s, its name says %s: corrupt or tampered", cfgName, cfgSum, want)
	}
	rawCfg, err := readSmall(a, cfgName)
	if err != nil {
		return Image{}, err
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(rawCfg))
	if err != nil {
		return Image{}, fmt.Errorf("config %s: %w", cfgName, err)
	}
	if len(cfg.RootFS.DiffIDs) != len(d.Layers) {
		return Image{}, fmt.Errorf("config %s has %d diff_ids for %d layers", cfgName, len(cfg.RootFS.DiffIDs), len(d.Layers))
	}
	img := Image{ID: "sha256:" + cfgSum, config: cfg}
	for j, l := range d.Layers {
		ln, err := blobName(a, l, "layer")
		if err != nil {
			return Image{}, err
		}
		sum, _ := a.sum(ln)
		if want := digestInName(ln); want != "" && want != sum {
			return Image{}, fmt.Errorf("layer %s: sha256 is %s, its name says %s: corrupt or tampered", ln, sum, want)
		}
		diffID := cfg.RootFS.DiffIDs[j]
		if diffID.Algorithm != "sha256" {
			return Image{}, fmt.Errorf("layer %s: diff_id %s is not a sha256", ln, diffID)
		}
		compressed, err := isCompressed(a, ln)
		if err != nil {
			return Image{}, err
		}
		if !compressed && sum != diffID.Hex {
			return Image{}, fmt.Errorf("layer %s: sha256 is %s, the config's diff_id says %s: corrupt or tampered", ln, sum, diffID.Hex)
		}
		img.layers = append(img.layers, layer{
			diffID: diffID,
			digest: v1.Hash{Algorithm: "sha256", Hex: sum},
			open:   func() (io.ReadCloser, error) { return a.Open(ln) },
			where:  a.path + ":" + ln,
		})
	}
	return img, nil
}

// blobName checks a name manifest.json gives for a blob and returns it
// cleaned; the blob must be in the archive.
func blobName(a *archiveFS, n, what string) (string, error) {
	c, err := cleanEntryName(n)
	if err != nil || c == "." {
		return "", fmt.Errorf("manifest.json names %s %q, which is not a path inside the archive", what, n)
	}
	if !a.has(c) {
		return "", fmt.Errorf("manifest.json names %s %q, which the archive does not hold", what, n)
	}
	return c, nil
}

// isCompressed tells a gzip or zstd blob by its first bytes.
func isCompressed(fsys fs.FS, name string) (bool, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return false, err
	}
	defer f.Close()
	var magic [4]byte
	n, err := io.ReadFull(f, magic[:])
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return false, fmt.Errorf("read %s: %w", name, err)
	}
	m := magic[:n]
	return bytes.HasPrefix(m, []byte{0x1f, 0x8b}) || bytes.HasPrefix(m, []byte{0x28, 0xb5, 0x2f, 0xfd}), nil
}

// readSmall reads a metadata file whole, refusing one too large to be one.
func readSmall(fsys fs.FS, name string) ([]byte, error) {
	f, err := fsys.Open(path.Clean(name))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxMetadataSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if len(b) > maxMetadataSize {
		return nil, fmt.Errorf("read %s: larger than %d MiB, too large for image metadata", name, maxMetadataSize>>20)
	}
	return b, nil
}
