// Package content reads container images the way RKE2 does: from docker-save
// archives (.tar, .tar.gz, .tar.zst, like RKE2's rke2-images.linux-amd64.tar.zst),
// from OCI image layouts, and from registries configured by an RKE2
// registries.yaml. The builder uses it to find the rke2-runtime image among
// the archives it bakes into an image, to check every archive before it is
// baked, and to list what each holds.
//
// A large archive is read once: Open indexes (and for a compressed one,
// decompresses into a temporary file) and hashes every entry in one pass,
// where go-containerregistry's tarball package reads the whole archive again
// for every blob. Archives that try to reach outside a directory, carry
// device nodes, name missing blobs or blobs whose digests do not match are
// refused with an error that says which entry and why.
package content

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Image is one tagged image of a Set.
type Image struct {
	// Name is the normalised reference, "docker.io/rancher/rke2-runtime:v1.34.4-rke2r1".
	// An image stored without a tag has an empty Name.
	Name string
	// ID is the sha256 digest of the image's config ("sha256:..."): the
	// same wherever the image is stored, and what `docker images` shows.
	ID string
	// Digest is the manifest's digest when the source stores a manifest
	// (OCI layouts, registries); docker-save archives store none, so it is
	// empty for them.
	Digest string
	// Source is the archive file, OCI layout directory or registry
	// endpoint the image was read from.
	Source string

	config *v1.ConfigFile
	layers []layer
	remote v1.Image // set for images read from a registry
}

// Config returns the image's parsed config.
func (i Image) Config() *v1.ConfigFile { return i.config }

// String names the image and where it comes from, for messages.
func (i Image) String() string {
	n := i.Name
	if n == "" {
		n = "untagged " + i.ID
	}
	return n + " (" + i.Source + ")"
}

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
const DefaultMaxSize = 64 << 30

// archiveSuffixes are the file names Open takes from a directory, as RKE2
// does from agent/images/. The compression is found by magic number.
var archiveSuffixes = []string{".tar", ".tar.gz", ".tgz", ".tar.zst", ".tzst"}

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
	ents, err := os.ReadDir(p)
	if err != nil {
		return err
	}
	n := 0
	for _, e := range ents { // ReadDir sorts by name
		if e.IsDir() || !hasArchiveSuffix(e.Name()) {
			continue
		}
		if err := s.addArchive(filepath.Join(p, e.Name())); err != nil {
			return fmt.Errorf("%s: %w", e.Name(), err)
		}
		n++
	}
	if n == 0 {
		slog.Warn("no image archives in directory", "dir", p, "want", strings.Join(archiveSuffixes, " "))
	}
	return nil
}

func hasArchiveSuffix(n string) bool {
	for _, suf := range archiveSuffixes {
		if strings.HasSuffix(n, suf) {
			return true
		}
	}
	return false
}

func (s *Set) addArchive(p string) error {
	a, err := openArchive(p, s.opts.tmpDir, s.opts.maxSize)
	if err != nil {
		return err
	}
	var imgs []Image
	switch {
	case a.has("manifest.json"):
		imgs, err = dockerImages(a)
	case a.has("index.json"):
		imgs, err = ociImages(a, p, a.sum)
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
	want := dockerHub + "/rancher/rke2-runtime:" + runtimeTag(rke2Version)
	var found []string
	for _, img := range s.images {
		if img.Name == want {
			return img, nil
		}
		if repo, _ := splitTag(img.Name); strings.HasSuffix(repo, "/rancher/rke2-runtime") {
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
