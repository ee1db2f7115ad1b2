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

// MaxMetadataSize bounds what is read into memory whole: manifest.json,
// index.json, image configs and manifests. Real ones are a few KiB.
const MaxMetadataSize = 16 << 20

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

// parseDockerManifest parses a docker-save archive's manifest.json.
func parseDockerManifest(raw []byte) ([]dockerManifestEntry, error) {
	var manifest []dockerManifestEntry
	if err := json.Unmarshal(raw, &manifest); err != nil {
		return nil, fmt.Errorf("manifest.json: %w", err)
	}
	if len(manifest) == 0 {
		return nil, fmt.Errorf("manifest.json lists no images")
	}
	return manifest, nil
}

// names normalises an image's tags; no tags gives one empty name, an
// untagged image.
func (d dockerManifestEntry) names() ([]string, error) {
	if len(d.RepoTags) == 0 {
		return []string{""}, nil
	}
	names := make([]string, 0, len(d.RepoTags))
	for _, t := range d.RepoTags {
		n, err := NormalizeName(t)
		if err != nil {
			return nil, err
		}
		names = append(names, n)
	}
	return names, nil
}

// blobName checks a name manifest.json gives for a blob and returns it
// cleaned.
func blobName(n, what string) (string, error) {
	c, err := cleanEntryName(n)
	if err != nil || c == "." {
		return "", fmt.Errorf("manifest.json names %s %q, which is not a path inside the archive", what, n)
	}
	return c, nil
}

// parseImageConfig checks an image config's bytes against the sha256 its
// name claims, parses it, and checks that it has one sha256 diff_id for
// each of n layers.
func parseImageConfig(cfgName, sum string, raw []byte, n int) (*v1.ConfigFile, error) {
	if want := digestInName(cfgName); want != "" && want != sum {
		return nil, fmt.Errorf("config %s: sha256 is %s, its name says %s: corrupt or tampered", cfgName, sum, want)
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", cfgName, err)
	}
	if len(cfg.RootFS.DiffIDs) != n {
		return nil, fmt.Errorf("config %s has %d diff_ids for %d layers", cfgName, len(cfg.RootFS.DiffIDs), n)
	}
	for _, d := range cfg.RootFS.DiffIDs {
		if d.Algorithm != "sha256" {
			return nil, fmt.Errorf("config %s: diff_id %s is not a sha256", cfgName, d)
		}
	}
	return cfg, nil
}

// Images reads a docker-save archive's manifest.json and checks each image
// it lists against the archive: every config and layer present, each
// blob's sha256 the one its name claims, each uncompressed layer's sha256
// its diff_id in the config. (A compressed layer's diff_id is checked when
// it is read.) An image with several tags is listed once per tag.
func (a *Archive) Images() ([]Image, error) {
	raw, err := ReadMetadata(a, "manifest.json")
	if err != nil {
		return nil, err
	}
	manifest, err := parseDockerManifest(raw)
	if err != nil {
		return nil, err
	}
	var imgs []Image
	for i, d := range manifest {
		img, err := a.dockerImage(d)
		if err != nil {
			return nil, fmt.Errorf("manifest.json image %d (%s): %w", i, strings.Join(d.RepoTags, " "), err)
		}
		names, err := d.names()
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

// blob checks a blob name of manifest.json and that the archive holds it,
// and returns it cleaned with its sha256.
func (a *Archive) blob(n, what string) (string, string, error) {
	c, err := blobName(n, what)
	if err != nil {
		return "", "", err
	}
	sum, ok := a.Sum(c)
	if !ok {
		return "", "", fmt.Errorf("manifest.json names %s %q, which the archive does not hold", what, n)
	}
	return c, sum, nil
}

func (a *Archive) dockerImage(d dockerManifestEntry) (Image, error) {
	cfgName, cfgSum, err := a.blob(d.Config, "config")
	if err != nil {
		return Image{}, err
	}
	rawCfg, err := ReadMetadata(a, cfgName)
	if err != nil {
		return Image{}, err
	}
	cfg, err := parseImageConfig(cfgName, cfgSum, rawCfg, len(d.Layers))
	if err != nil {
		return Image{}, err
	}
	img := Image{ID: "sha256:" + cfgSum, Source: a.path, config: cfg}
	for j, l := range d.Layers {
		ln, sum, err := a.blob(l, "layer")
		if err != nil {
			return Image{}, err
		}
		if want := digestInName(ln); want != "" && want != sum {
			return Image{}, fmt.Errorf("layer %s: sha256 is %s, its name says %s: corrupt or tampered", ln, sum, want)
		}
		diffID := cfg.RootFS.DiffIDs[j]
		compressed, err := isCompressed(a, ln)
		if err != nil {
			return Image{}, err
		}
		if !compressed && sum != diffID.Hex {
			return Image{}, fmt.Errorf("layer %s: sha256 is %s, the config's diff_id says %s: corrupt or tampered", ln, sum, diffID.Hex)
		}
		img.layers = append(img.layers, Layer{
			DiffID: diffID,
			Digest: v1.Hash{Algorithm: "sha256", Hex: sum},
			Open:   func() (io.ReadCloser, error) { return a.Open(ln) },
			Where:  a.path + ":" + ln,
		})
	}
	return img, nil
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
	return bytes.HasPrefix(m, gzipMagic) || bytes.HasPrefix(m, zstdMagic), nil
}

// ReadMetadata reads a metadata file (manifest.json, index.json, a config)
// whole, refusing one larger than MaxMetadataSize.
func ReadMetadata(fsys fs.FS, name string) ([]byte, error) {
	f, err := fsys.Open(path.Clean(name))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	defer f.Close()
	return readLimited(f, name)
}

// readLimited reads r whole, refusing more than MaxMetadataSize bytes.
func readLimited(r io.Reader, name string) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxMetadataSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if len(b) > MaxMetadataSize {
		return nil, fmt.Errorf("read %s: larger than %d MiB, too large for image metadata", name, MaxMetadataSize>>20)
	}
	return b, nil
}
