// Package artifact writes and reads rke2os's signed upgrade artifact: the
// content of one A/B system slot with a manifest that names it by size
// and sha256, and an ed25519 signature over the manifest. The builder
// writes it (rke2-build image --secrets); a node verifies it with the
// public key its image carries before any of it reaches a slot.
//
// An artifact is an uncompressed tar stream of exactly three regular
// files, in this order:
//
//	rke2os-upgrade.json  the manifest: Manifest as compact JSON, keys
//	                     sorted, at most 64 KiB
//	rke2os-upgrade.sig   ed25519 signature of the manifest's exact
//	                     bytes: 64 raw bytes
//	slot.img             the slot image (a FAT32 filesystem holding
//	                     /boot/vmlinuz, /boot/initrd, the airgap image
//	                     archives and /boot/os-release): slot_size bytes
//	                     whose sha256 is slot_sha256
//
// The reader takes the manifest and the signature first, so that a
// stream is refused before its slot image is read; the slot image is
// checked against the signed manifest as it streams, and its last read
// says whether it matched. The same inputs always give the same bytes:
// every tar header has mode 0644, uid and gid 0, no user or group names,
// and the manifest's creation time as its date.
//
// It imports nothing but the standard library, and no crypto/x509, so
// that the verifier can go into a small binary.
package artifact

import (
	"archive/tar"
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"slices"
	"strings"
	"time"
)

// The artifact's format.
const (
	// FormatVersion is the manifest's format, the only one this package
	// reads or writes.
	FormatVersion = 1

	// ManifestName, SignatureName and SlotName are the artifact's entries,
	// in their order.
	ManifestName  = "rke2os-upgrade.json"
	SignatureName = "rke2os-upgrade.sig"
	SlotName      = "slot.img"

	// MaxManifestSize bounds the manifest, which is read into memory
	// before its signature is checked.
	MaxManifestSize = 64 << 10
	// MaxSlotSize bounds a slot image: the largest file a USTAR header
	// describes (8 GiB - 1), many times a slot's size.
	MaxSlotSize = 1<<33 - 1
)

// Errors an artifact is refused with; the errors Open, Slot's reader and
// VerifyFile return wrap one of them, with a plain message.
var (
	// ErrFormat: not an upgrade artifact this package reads: not a tar
	// stream, entries missing, misnamed, out of order or extra, a
	// manifest too large, of an unknown format or with bad fields, or a
	// stream cut short.
	ErrFormat = errors.New("not a valid rke2os upgrade artifact")
	// ErrUnsigned: the artifact carries no signature.
	ErrUnsigned = errors.New("upgrade artifact not signed")
	// ErrBadSignature: the signature is not the manifest's by the
	// expected key: signed with another key, or altered.
	ErrBadSignature = errors.New("upgrade artifact signature not valid")
	// ErrDigest: the slot image is not the one the signed manifest names
	// (its size or sha256 differ): altered or damaged.
	ErrDigest = errors.New("slot image does not match its signed manifest")
)

// refusal is a refused artifact: a plain message, and the sentinel it
// wraps.
type refusal struct {
	kind error
	msg  string
}

func (e *refusal) Error() string { return "upgrade artifact: " + e.msg }
func (e *refusal) Unwrap() error { return e.kind }

func refuse(kind error, format string, a ...any) error {
	return &refusal{kind: kind, msg: fmt.Sprintf(format, a...)}
}

// Manifest describes an artifact's slot image; the signature covers its
// encoding. Its fields are declared in the order of their JSON keys,
// which json.Marshal keeps: the encoding is sorted, and canonical.
type Manifest struct {
	// Build identifies the build that made the slot image (given by the
	// builder's caller).
	Build string `json:"build"`
	// Created is the build's date (SOURCE_DATE_EPOCH), in whole seconds,
	// UTC (RFC 3339 in JSON).
	Created time.Time `json:"created"`
	// Format is FormatVersion.
	Format int `json:"format"`
	// Role is the node role the slot boots: server or agent.
	Role string `json:"role"`
	// SlotSHA256 is the slot image's sha256, lowercase hex.
	SlotSHA256 string `json:"slot_sha256"`
	// SlotSize is the slot image's size in bytes.
	SlotSize int64 `json:"slot_size"`
	// Version is the RKE2 version the slot runs, like v1.34.4+rke2r1.
	Version string `json:"version"`
}

// Roles are the node roles a manifest may name.
var Roles = []string{"server", "agent"}

// checkDescription checks the fields a builder gives: the role, the
// version, the build id and the date.
func (m *Manifest) checkDescription() error {
	if !slices.Contains(Roles, m.Role) {
		return fmt.Errorf("role %s: want server or agent", quote(m.Role))
	}
	if err := checkID(m.Version); err != nil {
		return fmt.Errorf("version %s: %v (want the RKE2 version, like v1.34.4+rke2r1)", quote(m.Version), err)
	}
	if err := checkID(m.Build); err != nil {
		return fmt.Errorf("build %s: %v", quote(m.Build), err)
	}
	// A USTAR header's date is 11 octal digits of seconds since 1970.
	if s := m.Created.Unix(); m.Created.IsZero() || s < 0 || s >= 1<<33 {
		return fmt.Errorf("created %s: want a date from 1970 to 2242 (SOURCE_DATE_EPOCH)", m.Created.Format(time.RFC3339))
	}
	return nil
}

// check checks every field, as a reader must.
func (m *Manifest) check() error {
	if m.Format != FormatVersion {
		return fmt.Errorf("format %d: this rke2os reads format %d", m.Format, FormatVersion)
	}
	if err := m.checkDescription(); err != nil {
		return err
	}
	if m.SlotSize <= 0 || m.SlotSize > MaxSlotSize {
		return fmt.Errorf("slot_size %d: want 1 to %d bytes", m.SlotSize, int64(MaxSlotSize))
	}
	if b, err := hex.DecodeString(m.SlotSHA256); err != nil || len(b) != sha256.Size || hex.EncodeToString(b) != m.SlotSHA256 {
		return fmt.Errorf("slot_sha256 %s: want 64 lowercase hex digits", quote(m.SlotSHA256))
	}
	return nil
}

// checkID checks a version or a build id: 1 to 128 letters, digits and
// . _ + - : @ /, so that it prints plainly in a message or a column.
func checkID(s string) error {
	if s == "" || len(s) > 128 {
		return errors.New("want 1 to 128 characters")
	}
	for _, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', strings.ContainsRune("._+-:@/", c):
		default:
			return fmt.Errorf("%q is not allowed (letters, digits and . _ + - : @ / are)", c)
		}
	}
	return nil
}

// quote quotes s for a message, shortened: s may come from a hostile
// stream.
func quote(s string) string {
	if len(s) > 64 {
		return fmt.Sprintf("%q...", s[:64])
	}
	return fmt.Sprintf("%q", s)
}

// encode is the manifest's canonical encoding, the bytes signed.
func (m *Manifest) encode() ([]byte, error) {
	return json.Marshal(m)
}

// Write writes an artifact of the slot image slot to w, signed with key.
// It reads slot to its end twice: to measure it, then to copy it (a slot
// that is an io.Seeker, like an *os.File, is read in place; another is
// spooled to a temporary file). The manifest's Format, SlotSize and
// SlotSHA256 are set from what it reads, whatever m holds, and its
// Created is taken in whole seconds, UTC. A slot whose content changes
// between the two reads fails the write: the bytes written to w are then
// not an artifact.
func Write(w io.Writer, m Manifest, slot io.Reader, key ed25519.PrivateKey) error {
	if len(key) != ed25519.PrivateKeySize {
		return errors.New("upgrade artifact: the signing key is not an ed25519 private key")
	}
	m.Format = FormatVersion
	m.Created = m.Created.UTC().Truncate(time.Second)
	if err := m.checkDescription(); err != nil {
		return fmt.Errorf("upgrade artifact: manifest: %w", err)
	}
	src, size, sum, cleanup, err := measure(slot)
	if err != nil {
		return fmt.Errorf("upgrade artifact: slot image: %w", err)
	}
	defer cleanup()
	m.SlotSize, m.SlotSHA256 = size, sum
	if err := m.check(); err != nil {
		return fmt.Errorf("upgrade artifact: manifest: %w", err)
	}
	body, err := m.encode()
	if err != nil {
		return fmt.Errorf("upgrade artifact: manifest: %w", err)
	}
	if len(body) > MaxManifestSize {
		return fmt.Errorf("upgrade artifact: manifest is %d bytes, over %d", len(body), MaxManifestSize)
	}
	sig := ed25519.Sign(key, body)

	tw := tar.NewWriter(w)
	for _, e := range []struct {
		name string
		data []byte
	}{{ManifestName, body}, {SignatureName, sig}} {
		if err := tw.WriteHeader(header(e.name, int64(len(e.data)), m.Created)); err != nil {
			return fmt.Errorf("upgrade artifact: %w", err)
		}
		if _, err := tw.Write(e.data); err != nil {
			return fmt.Errorf("upgrade artifact: %w", err)
		}
	}
	if err := tw.WriteHeader(header(SlotName, size, m.Created)); err != nil {
		return fmt.Errorf("upgrade artifact: %w", err)
	}
	h := sha256.New()
	n, err := io.Copy(tw, io.TeeReader(io.LimitReader(src, size), h))
	if err != nil {
		return fmt.Errorf("upgrade artifact: slot image: %w", err)
	}
	if n != size || hex.EncodeToString(h.Sum(nil)) != sum {
		return fmt.Errorf("upgrade artifact: the slot image changed while it was written (%d bytes and sha256 %s, then %d bytes and another sha256)", size, sum, n)
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("upgrade artifact: %w", err)
	}
	return nil
}

// header is an entry's tar header: the same for the same entry, always.
func header(name string, size int64, date time.Time) *tar.Header {
	return &tar.Header{Typeflag: tar.TypeReg, Name: name, Size: size, Mode: 0o644, ModTime: date, Format: tar.FormatUSTAR}
}

// measure reads slot to its end for its size and sha256, and gives a
// reader of the same bytes again: slot itself, sought back, or a spooled
// copy, which cleanup removes.
func measure(slot io.Reader) (src io.Reader, size int64, sum string, cleanup func(), err error) {
	cleanup = func() {}
	if s, ok := slot.(io.Seeker); ok {
		if start, err := s.Seek(0, io.SeekCurrent); err == nil {
			size, sum, err := digest(slot)
			if err != nil {
				return nil, 0, "", cleanup, err
			}
			if _, err := s.Seek(start, io.SeekStart); err != nil {
				return nil, 0, "", cleanup, err
			}
			return slot, size, sum, cleanup, nil
		}
	}
	f, err := os.CreateTemp("", "rke2os-slot-")
	if err != nil {
		return nil, 0, "", cleanup, fmt.Errorf("spool: %w", err)
	}
	cleanup = func() {
		f.Close()
		os.Remove(f.Name())
	}
	size, sum, err = digest(io.TeeReader(slot, f))
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		cleanup()
		return nil, 0, "", func() {}, err
	}
	return f, size, sum, cleanup, nil
}

// digest reads r to its end, or to just past MaxSlotSize.
func digest(r io.Reader) (int64, string, error) {
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(r, MaxSlotSize+1))
	if err != nil {
		return 0, "", err
	}
	if n == 0 {
		return 0, "", errors.New("empty")
	}
	if n > MaxSlotSize {
		return 0, "", fmt.Errorf("over %d bytes", int64(MaxSlotSize))
	}
	return n, hex.EncodeToString(h.Sum(nil)), nil
}

// Artifact is an artifact whose manifest is signed by the expected key;
// its slot image is checked as it is read.
type Artifact struct {
	m    Manifest
	slot *slotReader
}

// Manifest is the artifact's signed manifest.
func (a *Artifact) Manifest() Manifest { return a.m }

// Slot streams the slot image. Its last read does not return io.EOF
// unless the slot image had the signed size and sha256 and nothing
// followed it in the artifact; otherwise it returns an error wrapping
// ErrDigest or ErrFormat, after the bytes read. Until then, the bytes
// read are not verified: write them where nothing boots or uses them
// before the end is reached without error.
func (a *Artifact) Slot() io.Reader { return a.slot }

// Open reads an artifact's manifest and signature from r and checks them
// against pub: an artifact that is not one, is unsigned, is signed by
// another key or has a manifest that is not valid is refused before its
// slot image is read. r is then positioned at the slot image, which
// Slot streams.
func Open(r io.Reader, pub ed25519.PublicKey) (*Artifact, error) {
	if len(pub) != ed25519.PublicKeySize {
		return nil, errors.New("upgrade artifact: no ed25519 public key to verify it with")
	}
	tr := tar.NewReader(r)

	hdr, err := next(tr, "its manifest")
	if err == io.EOF {
		return nil, refuse(ErrFormat, "the stream is empty, or an empty tar archive")
	}
	if err != nil {
		return nil, err
	}
	if hdr.Name != ManifestName {
		return nil, refuse(ErrFormat, "its first entry is %s, want %s (is it an rke2os upgrade artifact?)", quote(hdr.Name), ManifestName)
	}
	if err := checkEntry(hdr, 1, MaxManifestSize); err != nil {
		return nil, err
	}
	body := make([]byte, hdr.Size)
	if _, err := io.ReadFull(tr, body); err != nil {
		return nil, cut(ManifestName, err)
	}

	hdr, err = next(tr, "its signature")
	switch {
	case err == io.EOF:
		return nil, refuse(ErrUnsigned, "it is not signed: it ends after its manifest, with no %s", SignatureName)
	case err != nil:
		return nil, err
	case hdr.Name == SlotName:
		return nil, refuse(ErrUnsigned, "it is not signed: %s follows its manifest, with no %s between them", SlotName, SignatureName)
	case hdr.Name != SignatureName:
		return nil, refuse(ErrFormat, "its second entry is %s, want %s", quote(hdr.Name), SignatureName)
	case hdr.Typeflag != tar.TypeReg:
		return nil, checkEntry(hdr, 0, 0)
	case hdr.Size == 0:
		return nil, refuse(ErrUnsigned, "it is not signed: %s is empty", SignatureName)
	case hdr.Size != ed25519.SignatureSize:
		return nil, refuse(ErrBadSignature, "%s is %d bytes; an ed25519 signature is %d", SignatureName, hdr.Size, ed25519.SignatureSize)
	}
	sig := make([]byte, ed25519.SignatureSize)
	if _, err := io.ReadFull(tr, sig); err != nil {
		return nil, cut(SignatureName, err)
	}
	if !ed25519.Verify(pub, body, sig) {
		return nil, refuse(ErrBadSignature, "its signature is not by this upgrade key (public key %s): it was signed with another key (an image built with other secrets?), or its manifest was altered", Fingerprint(pub))
	}

	// Signed: the manifest is the signer's, and parsed only now.
	m, err := parseManifest(body)
	if err != nil {
		return nil, err
	}

	hdr, err = next(tr, SlotName)
	switch {
	case err == io.EOF:
		return nil, refuse(ErrFormat, "it ends after its signature, with no %s", SlotName)
	case err != nil:
		return nil, err
	case hdr.Name != SlotName:
		return nil, refuse(ErrFormat, "its third entry is %s, want %s", quote(hdr.Name), SlotName)
	}
	if err := checkEntry(hdr, 1, MaxSlotSize); err != nil {
		return nil, err
	}
	if hdr.Size != m.SlotSize {
		return nil, refuse(ErrDigest, "%s is %d bytes, its signed manifest says %d", SlotName, hdr.Size, m.SlotSize)
	}
	return &Artifact{m: m, slot: &slotReader{tr: tr, want: m, h: sha256.New()}}, nil
}

// next reads the next entry's header; io.EOF is the archive's end.
func next(tr *tar.Reader, what string) (*tar.Header, error) {
	hdr, err := tr.Next()
	switch {
	case err == io.EOF:
		return nil, io.EOF
	case errors.Is(err, io.ErrUnexpectedEOF):
		return nil, refuse(ErrFormat, "it is cut short before %s", what)
	case errors.Is(err, tar.ErrHeader) || errors.Is(err, tar.ErrInsecurePath):
		return nil, refuse(ErrFormat, "not a tar stream, or a damaged one, before %s (%v)", what, err)
	case err != nil:
		return nil, fmt.Errorf("upgrade artifact: read %s: %w", what, err)
	}
	return hdr, nil
}

// checkEntry checks that an entry is a regular file of min to max bytes.
func checkEntry(hdr *tar.Header, min, max int64) error {
	if hdr.Typeflag != tar.TypeReg {
		return refuse(ErrFormat, "%s is not a regular file (tar type %q)", hdr.Name, hdr.Typeflag)
	}
	if hdr.Size < min || hdr.Size > max {
		return refuse(ErrFormat, "%s is %d bytes; want %d to %d", hdr.Name, hdr.Size, min, max)
	}
	return nil
}

// cut is the error of an entry's content that ends early.
func cut(name string, err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) || err == io.EOF {
		return refuse(ErrFormat, "it is cut short in %s", name)
	}
	return fmt.Errorf("upgrade artifact: read %s: %w", name, err)
}

// parseManifest parses a signed manifest: format 1, in its canonical
// encoding (what Write signs), with every field valid.
func parseManifest(body []byte) (Manifest, error) {
	var probe struct {
		Format *int `json:"format"`
	}
	if err := json.Unmarshal(body, &probe); err != nil {
		return Manifest{}, refuse(ErrFormat, "its manifest is not a JSON object: %v", err)
	}
	if probe.Format == nil {
		return Manifest{}, refuse(ErrFormat, "its manifest has no format")
	}
	if *probe.Format != FormatVersion {
		return Manifest{}, refuse(ErrFormat, "its manifest is format %d; this rke2os reads format %d (an artifact of a newer rke2os?)", *probe.Format, FormatVersion)
	}
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return Manifest{}, refuse(ErrFormat, "its manifest: %v", err)
	}
	if err := m.check(); err != nil {
		return Manifest{}, refuse(ErrFormat, "its manifest: %v", err)
	}
	if canon, err := m.encode(); err != nil || !bytes.Equal(canon, body) {
		return Manifest{}, refuse(ErrFormat, "its manifest is not in its canonical encoding (compact JSON, keys sorted, each once, dates in whole seconds UTC)")
	}
	return m, nil
}

// slotReader streams slot.img, counting and hashing it, and checks it at
// its end.
type slotReader struct {
	tr   *tar.Reader
	want Manifest
	h    hash.Hash
	n    int64
	err  error // once set, every read returns it
}

func (s *slotReader) Read(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	n, err := s.tr.Read(p)
	s.n += int64(n)
	s.h.Write(p[:n])
	switch {
	case err == io.EOF:
		s.err = s.end()
	case errors.Is(err, io.ErrUnexpectedEOF):
		s.err = refuse(ErrFormat, "it is cut short: %s ends after %d of its %d bytes", SlotName, s.n, s.want.SlotSize)
	case err != nil:
		s.err = fmt.Errorf("upgrade artifact: read %s: %w", SlotName, err)
	}
	return n, s.err
}

// end checks the whole slot image against the manifest, and that the
// archive ends there: io.EOF if all is well.
func (s *slotReader) end() error {
	if s.n != s.want.SlotSize {
		return refuse(ErrDigest, "%s is %d bytes, its signed manifest says %d", SlotName, s.n, s.want.SlotSize)
	}
	if sum := hex.EncodeToString(s.h.Sum(nil)); sum != s.want.SlotSHA256 {
		return refuse(ErrDigest, "%s has sha256 %s, its signed manifest says %s: it was altered or damaged on its way", SlotName, sum, s.want.SlotSHA256)
	}
	hdr, err := next(s.tr, "its end")
	switch {
	case err == io.EOF:
		return io.EOF
	case err != nil:
		return err
	}
	return refuse(ErrFormat, "an entry %s follows %s; an artifact has three entries", quote(hdr.Name), SlotName)
}

// VerifyFile checks the artifact file p as a node would before using it:
// its signature by pub, its manifest, and its slot image's size and
// sha256, streamed, never held in memory. It returns the signed manifest.
func VerifyFile(p string, pub ed25519.PublicKey) (*Manifest, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	a, err := Open(f, pub)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	buf := make([]byte, 256<<10)
	for {
		_, err := a.Slot().Read(buf)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
	}
	m := a.Manifest()
	return &m, nil
}
