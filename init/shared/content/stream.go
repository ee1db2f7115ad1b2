package content

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// What a pass over an archive keeps in memory before it has read
// manifest.json and knows what it needs: small files (image configs are a
// few KiB) up to a total; larger ones are passed over and, if they turn out
// to be needed, read in a second pass.
const (
	maxHeldFile  = 1 << 20
	maxHeldTotal = 32 << 20
)

// errNotHere says that an archive does not hold the image looked for.
var errNotHere = errors.New("image not in the archive")

// imageStream extracts one image from a docker-save archive while reading
// the archive once, front to back, without writing it or a decompressed
// copy anywhere: the init reads RKE2's 850 MB airgap archive (from a
// read-only medium, often compressed) for one 260 MB image. A plain tar is
// read with seeks over the entries it does not need.
//
// Layers are applied as they stream past when they come in order; a layer
// that comes before the one it must be applied after is spooled into
// tmpDir. An archive that lists its images (manifest.json) after their
// blobs, as go-containerregistry and newer docker write them, needs a
// second pass for the blobs passed over before the list was read.
// Every blob is checked against the digest its name claims, every layer
// against its diff_id; a layer applied before its config was read is
// checked once the config is.
type imageStream struct {
	ctx    context.Context
	path   string // the archive
	want   string // the normalised name of the image looked for
	tmpDir string
	x      *extraction

	// What pass 1 learns about the archive.
	links    map[string]string // the links inside it
	regular  map[string]bool   // the names of its regular files
	tags     []string          // the tags of every image it holds, as written
	held     map[string][]byte // small files read before manifest.json
	heldN    int
	passed   map[string]bool // files passed over before manifest.json was read
	listed   bool            // manifest.json has been read
	complete bool            // pass 1 has read the whole archive

	// The image, once manifest.json names it.
	entry      *dockerManifestEntry
	cfgName    string // resolved through links
	layerNames []string
	cfg        *v1.ConfigFile
	cfgSum     string

	next    int                                   // the layer to apply next
	ready   map[int]func() (io.ReadCloser, error) // layers read ahead, by index
	diffIDs map[int]string                        // uncompressed sha256 of layers applied before the config was read
	spools  []string
}

// extractImage extracts the image called want (normalised) from the
// archive at p into x. It returns errNotHere when the archive does not hold
// it, and found tells whether the archive was seen to hold it: an error
// after that is the image's (corrupt, tampered, hostile), before it the
// archive's.
func extractImage(ctx context.Context, p, want, tmpDir string, x *extraction) (s *imageStream, found bool, err error) {
	s = &imageStream{ctx: ctx, path: p, want: want, tmpDir: tmpDir, x: x,
		regular: map[string]bool{}, held: map[string][]byte{}, passed: map[string]bool{},
		ready: map[int]func() (io.ReadCloser, error){}, diffIDs: map[int]string{}}
	defer s.removeSpools()
	if err := s.pass(true); err != nil {
		return s, s.entry != nil, err
	}
	if !s.listed {
		return s, false, errors.New("no manifest.json: not a docker-save archive")
	}
	if s.entry == nil {
		return s, false, errNotHere
	}
	if !s.done() {
		s.complete = true // pass 1 stops early only when done
		if err := s.resolve(); err != nil {
			return s, true, err
		}
		if err := s.pass(false); err != nil {
			return s, true, err
		}
	}
	if !s.done() {
		return s, true, fmt.Errorf("%s: the image's blobs were not all read", p) // resolve checked they are there
	}
	return s, true, nil
}

// pass reads the archive from the start.
func (s *imageStream) pass(first bool) error {
	f, err := os.Open(s.path)
	if err != nil {
		return err
	}
	defer f.Close()
	fr := newFileReader(f)
	stream, release, compressed, err := decompress(fr.br, 0)
	if err != nil {
		return err
	}
	defer release()
	var r io.Reader = fr // seekable: tar skips what is not read
	if compressed {
		r = &limitReader{r: stream, max: DefaultMaxSize}
	}
	tr := tar.NewReader(r)
	w := newArchiveWalk()
	if first {
		s.links = w.links
	}
	err = w.walk(tr, func(name string, hdr *tar.Header) error {
		if err := s.ctx.Err(); err != nil {
			return err
		}
		if first {
			s.regular[name] = true
		}
		if !s.listed {
			return s.beforeList(name, hdr, tr, w)
		}
		return s.afterList(name, tr, first)
	})
	if err != nil {
		return err
	}
	if first && !s.listed {
		// manifest.json may be a link to a file read before it.
		if real, err := w.resolve("manifest.json"); err == nil && s.held[real] != nil {
			return s.list(s.held[real], w)
		}
	}
	return nil
}

// beforeList handles a file met before manifest.json: manifest.json itself,
// or a file that may or may not be needed.
func (s *imageStream) beforeList(name string, hdr *tar.Header, tr io.Reader, w *archiveWalk) error {
	if name == "manifest.json" {
		raw, err := readLimited(tr, name)
		if err != nil {
			return err
		}
		if err := s.list(raw, w); err != nil {
			return err
		}
		if s.done() {
			return errStop
		}
		return nil
	}
	if hdr.Size <= maxHeldFile && s.heldN+int(hdr.Size) <= maxHeldTotal {
		b, err := readLimited(tr, name)
		if err != nil {
			return err
		}
		s.held[name] = b
		s.heldN += len(b)
		return nil
	}
	s.passed[name] = true
	return nil
}

// list reads manifest.json: errNotHere when the image is not in it, else
// what the image is made of, and whatever of it was read before.
func (s *imageStream) list(raw []byte, w *archiveWalk) error {
	s.listed = true
	manifest, err := parseDockerManifest(raw)
	if err != nil {
		return err
	}
	for i, d := range manifest {
		names, err := d.names()
		if err != nil {
			return fmt.Errorf("manifest.json image %d: %w", i, err)
		}
		s.tags = append(s.tags, d.RepoTags...)
		if s.entry == nil && slices.Contains(names, s.want) {
			s.entry = &manifest[i]
		}
	}
	if s.entry == nil {
		return errNotHere
	}
	return s.resolve()
}

// resolve finds the files the image is made of, through the links known so
// far, and takes those already read. Once pass 1 has read the whole
// archive, a name it did not see is missing.
func (s *imageStream) resolve() error {
	d := s.entry
	names := append([]string{d.Config}, d.Layers...)
	resolved := make([]string, len(names))
	for i, n := range names {
		what := "layer"
		if i == 0 {
			what = "config"
		}
		c, err := blobName(n, what)
		if err != nil {
			return err
		}
		if resolved[i], err = (&archiveWalk{links: s.links}).resolve(c); err != nil {
			return err
		}
		if s.complete && !s.regular[resolved[i]] {
			return fmt.Errorf("manifest.json names %s %q, which the archive does not hold", what, n)
		}
	}
	s.cfgName, s.layerNames = resolved[0], resolved[1:]
	if b := s.held[s.cfgName]; b != nil && s.cfg == nil {
		if err := s.setConfig(b); err != nil {
			return err
		}
	}
	for i, n := range s.layerNames {
		if b := s.held[n]; b != nil && i >= s.next {
			s.ready[i] = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
		}
	}
	return s.drain()
}

// afterList handles a file met once the image's parts are known.
func (s *imageStream) afterList(name string, tr io.Reader, first bool) error {
	if name == s.cfgName && s.cfg == nil {
		raw, err := readLimited(tr, name)
		if err != nil {
			return err
		}
		if err := s.setConfig(raw); err != nil {
			return err
		}
	}
	var need []int
	for i, n := range s.layerNames {
		if n == name && i >= s.next && s.ready[i] == nil {
			need = append(need, i)
		}
	}
	switch {
	case len(need) == 1 && need[0] == s.next:
		if err := s.applyLayer(s.next, func() (io.ReadCloser, error) { return io.NopCloser(tr), nil }); err != nil {
			return err
		}
	case len(need) > 0 && first && s.passedOver():
		// A layer before it must be read again in a second pass: so can it,
		// rather than be copied.
	case len(need) > 0:
		open, err := s.spool(name, tr)
		if err != nil {
			return err
		}
		for _, i := range need {
			s.ready[i] = open
		}
	}
	if err := s.drain(); err != nil {
		return err
	}
	if s.done() {
		return errStop
	}
	return nil
}

// setConfig checks and parses the image config, and checks the layers
// applied before it against it.
func (s *imageStream) setConfig(raw []byte) error {
	sum := sha256.Sum256(raw)
	s.cfgSum = hex.EncodeToString(sum[:])
	cfg, err := parseImageConfig(s.cfgName, s.cfgSum, raw, len(s.entry.Layers))
	if err != nil {
		return err
	}
	s.cfg = cfg
	for i, got := range s.diffIDs {
		if want := cfg.RootFS.DiffIDs[i].Hex; got != want {
			return fmt.Errorf("layer %s:%s: uncompressed sha256 is %s, the image config says %s: corrupt or tampered", s.path, s.layerNames[i], got, want)
		}
	}
	return nil
}

// applyLayer applies layer i, read from open, and moves on to the next.
func (s *imageStream) applyLayer(i int, open func() (io.ReadCloser, error)) error {
	l := Layer{Open: open, Where: s.path + ":" + s.layerNames[i]}
	if h := digestInName(s.layerNames[i]); h != "" {
		l.Digest = v1.Hash{Algorithm: "sha256", Hex: h}
	}
	if s.cfg != nil {
		l.DiffID = s.cfg.RootFS.DiffIDs[i]
	}
	got, err := s.x.applyLayer(&l)
	if err != nil {
		return err
	}
	if s.cfg == nil {
		s.diffIDs[i] = got
	}
	delete(s.ready, i)
	s.next++
	return nil
}

// drain applies the layers read ahead that are next in order.
func (s *imageStream) drain() error {
	for s.ready[s.next] != nil {
		if err := s.applyLayer(s.next, s.ready[s.next]); err != nil {
			return err
		}
	}
	return nil
}

// spool copies a layer that cannot be applied yet into a temporary file.
func (s *imageStream) spool(name string, r io.Reader) (func() (io.ReadCloser, error), error) {
	f, err := os.CreateTemp(s.tmpDir, "layer-*")
	if err != nil {
		return nil, fmt.Errorf("spool layer %s: %w", name, err)
	}
	s.spools = append(s.spools, f.Name())
	_, err = io.Copy(f, r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("spool layer %s: %w", name, err)
	}
	p := f.Name()
	return func() (io.ReadCloser, error) { return os.Open(p) }, nil
}

func (s *imageStream) removeSpools() {
	for _, p := range s.spools {
		os.Remove(p)
	}
}

// passedOver tells whether a layer not yet applied was passed over before
// manifest.json was read.
func (s *imageStream) passedOver() bool {
	for i := s.next; i < len(s.layerNames); i++ {
		if s.passed[s.layerNames[i]] {
			return true
		}
	}
	return false
}

// done tells whether every layer is applied and the config checked.
func (s *imageStream) done() bool {
	return s.entry != nil && s.cfg != nil && s.next == len(s.layerNames)
}
