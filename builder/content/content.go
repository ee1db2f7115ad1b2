// Package content reads the container images the builder bakes: docker-save
// archives (.tar, .tar.gz, .tar.zst, like RKE2's rke2-images.linux-amd64.tar.zst),
// OCI image layouts (directories or archives), and images in registries
// configured by an RKE2 registries.yaml. The builder uses it to find the
// rke2-runtime image among the archives it bakes into an image, to check
// every archive before it is baked, and to list what each holds.
//
// Reading archives, checking digests, refusing hostile entries, extracting
// and pulling are the init's package content's (the same code reads the
// archives on the node); this package adds OCI layouts and a Set that
// gathers the images of many sources and indexes them.
package content

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"

	initcontent "github.com/rke2os/rke2os/init/shared/content"
)

// Image is one tagged image of a Set: the init's, so that what the builder
// checks is read by the same code that reads it on the node.
type Image = initcontent.Image

// Remote is where Pull reads images from: an RKE2 registries.yaml
// (config.Registries, as initcontent.LoadRegistries reads it) and the
// pull's options.
type Remote = initcontent.Remote

// ExtractPaths extracts from img the files under prefixes into dest, which
// appears whole or not at all (see the init's content.ExtractPaths).
func ExtractPaths(img Image, dest string, prefixes []string) error {
	return initcontent.ExtractPaths(img, dest, prefixes)
}

// NormalizeName returns ref in the one form images are compared in,
// "docker.io/rancher/pause:3.10" for "rancher/pause:3.10".
func NormalizeName(ref string) (string, error) { return initcontent.NormalizeName(ref) }

// Set is a collection of images read from archives, layouts and
// registries. Close it to remove the temporary copies of compressed
// archives.
type Set struct {
	images  []Image
	sources []string
	closers []io.Closer
	opts    options
}

// options are what Option sets.
type options struct {
	tmpDir  string
	maxSize int64
}

// Option changes how a Set reads archives.
type Option func(*options)

// WithTempDir puts the decompressed copies of compressed archives in dir
// instead of $TMPDIR: they are as large as the archives uncompressed.
func WithTempDir(dir string) Option { return func(o *options) { o.tmpDir = dir } }

// WithMaxSize refuses a compressed archive that decompresses to more than n
// bytes (DefaultMaxSize unless set), so that a small hostile file cannot
// fill the disk.
func WithMaxSize(n int64) Option { return func(o *options) { o.maxSize = n } }

// DefaultMaxSize is the most a compressed archive may decompress to unless
// WithMaxSize says otherwise: RKE2's full airgap archive is a few GiB.
const DefaultMaxSize = initcontent.DefaultMaxSize

// NewSet returns an empty set, to fill with Add and Pull.
func NewSet(opts ...Option) *Set {
	s := &Set{opts: options{tmpDir: os.TempDir(), maxSize: DefaultMaxSize}}
	for _, o := range opts {
		o(&s.opts)
	}
	return s
}

// Open reads images from each path: a docker-save or OCI archive file
// (.tar, .tar.gz, .tar.zst), an OCI image layout directory, or a directory
// holding such archives (like RKE2's agent/images/), in that order.
// Compressed archives are decompressed once into $TMPDIR; NewSet and Add
// take options.
func Open(paths ...string) (*Set, error) {
	s := NewSet()
	if err := s.Add(paths...); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Add reads images from each path, as Open does. On error the set keeps
// what it had read before the failing path.
func (s *Set) Add(paths ...string) error {
	for _, p := range paths {
		if err := s.add(p); err != nil {
			return fmt.Errorf("open %s: %w", p, err)
		}
	}
	return nil
}

func (s *Set) add(p string) error {
	info, err := os.Stat(p)
	if err != nil {
		return err
	}
	if !info.IsDir() {
		return s.addArchive(p)
	}
	if isLayout(p) {
		return s.addLayout(p)
	}
	// The archives RKE2 would import from the directory, as it names them.
	archives, err := initcontent.Archives(p)
	if err != nil {
		return err
	}
	for _, a := range archives {
		if err := s.addArchive(a); err != nil {
			return fmt.Errorf("%s: %w", filepath.Base(a), err)
		}
	}
	if len(archives) == 0 {
		slog.Warn("no image archives in directory", "dir", p, "want", strings.Join(initcontent.ArchiveSuffixes, " "))
	}
	return nil
}

func (s *Set) addArchive(p string) error {
	a, err := initcontent.OpenArchive(p, s.opts.tmpDir, s.opts.maxSize)
	if err != nil {
		return err
	}
	var imgs []Image
	switch {
	case a.Has("manifest.json"):
		imgs, err = a.Images()
	case a.Has("index.json"):
		imgs, err = ociImages(a, p, a.Sum)
	default:
		err = errors.New("neither manifest.json (docker save) nor index.json (OCI): not an image archive")
	}
	if err != nil {
		a.Close()
		return err
	}
	s.closers = append(s.closers, a)
	s.addImages(p, imgs)
	return nil
}

func (s *Set) addImages(source string, imgs []Image) {
	for i := range imgs {
		imgs[i].Source = source
	}
	s.images = append(s.images, imgs...)
	s.sources = append(s.sources, source)
}

// Pull adds to the set the linux/amd64 images refs name, read from the
// endpoints r gives for each (its mirrors first, then the registry
// itself; nil r: the registry itself). Only manifests and configs are
// fetched now; layers are fetched when extracted.
func (s *Set) Pull(ctx context.Context, r *Remote, refs ...string) error {
	for _, ref := range refs {
		img, err := initcontent.Pull(ctx, r, ref)
		if err != nil {
			return err
		}
		s.addImages(img.Source, []Image{img})
	}
	return nil
}

// Images returns every image of the set, in the order read.
func (s *Set) Images() []Image {
	return append([]Image(nil), s.images...)
}

// Find returns the first image called ref (in any spelling NormalizeName
// accepts).
func (s *Set) Find(ref string) (Image, error) {
	want, err := NormalizeName(ref)
	if err != nil {
		return Image{}, err
	}
	for _, img := range s.images {
		if img.Name == want {
			return img, nil
		}
	}
	return Image{}, fmt.Errorf("no image %s in %s", want, s.describeSources())
}

// FindRuntime returns the rke2-runtime image for an RKE2 version such as
// "v1.34.4+rke2r1": docker.io/rancher/rke2-runtime:v1.34.4-rke2r1, as RKE2
// looks for it. When it is missing, the error lists the rke2-runtime tags
// the set does hold.
func (s *Set) FindRuntime(rke2Version string) (Image, error) {
	if rke2Version == "" {
		return Image{}, errors.New("find rke2-runtime: no RKE2 version given")
	}
	want, err := NormalizeName(initcontent.RuntimeRef(rke2Version))
	if err != nil {
		return Image{}, fmt.Errorf("find rke2-runtime: RKE2 version %q: %w", rke2Version, err)
	}
	var found []string
	for _, img := range s.images {
		if img.Name == want {
			return img, nil
		}
		if strings.Contains(img.Name, "/"+initcontent.RuntimeRepo+":") {
			found = append(found, img.Name)
		}
	}
	if len(found) == 0 {
		return Image{}, fmt.Errorf("no %s in %s, and no rke2-runtime image at all (%d images: %s)",
			want, s.describeSources(), len(s.images), s.describeNames(8))
	}
	sort.Strings(found)
	return Image{}, fmt.Errorf("no %s in %s; the rke2-runtime images found are %s: build or download the runtime of RKE2 %s",
		want, s.describeSources(), strings.Join(found, ", "), rke2Version)
}

func (s *Set) describeSources() string {
	if len(s.sources) == 0 {
		return "no sources"
	}
	return strings.Join(s.sources, ", ")
}

func (s *Set) describeNames(max int) string {
	var names []string
	for i, img := range s.images {
		if i == max {
			names = append(names, fmt.Sprintf("and %d more", len(s.images)-max))
			break
		}
		names = append(names, img.Name)
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// IndexEntry tells where one image is: its name, config and manifest
// digests, and the base name of the archive (or layout directory, or
// registry) holding it, which is also its name once the builder has copied
// it into agent/images/.
type IndexEntry struct {
	Name    string `json:"name"`
	ID      string `json:"id"`
	Digest  string `json:"digest,omitempty"`
	Archive string `json:"archive"`
}

// Index lists the set's images, sorted by name and archive.
func (s *Set) Index() []IndexEntry {
	idx := make([]IndexEntry, 0, len(s.images))
	for _, img := range s.images {
		idx = append(idx, IndexEntry{Name: img.Name, ID: img.ID, Digest: img.Digest, Archive: filepath.Base(img.Source)})
	}
	sort.SliceStable(idx, func(i, j int) bool {
		if idx[i].Name != idx[j].Name {
			return idx[i].Name < idx[j].Name
		}
		return idx[i].Archive < idx[j].Archive
	})
	return idx
}

// IndexJSON is Index as indented JSON, ending in a newline.
func (s *Set) IndexJSON() ([]byte, error) {
	b, err := json.MarshalIndent(s.Index(), "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// Close releases the set's files and removes its temporary copies.
func (s *Set) Close() error {
	var errs []error
	for _, c := range s.closers {
		errs = append(errs, c.Close())
	}
	s.closers = nil
	return errors.Join(errs...)
}
