// Package etcdsnap takes, checks, lists and prunes etcd snapshots on a
// server's state partition, named and laid out as RKE2 does: files
// <name>-<node>-<unix time> (and .zip when compressed) in
// server/db/snapshots. A snapshot is written under a temporary name,
// synced, checked (the sha256 etcd appends to the stream, and the bbolt
// database it carries: its revision and keys) and only then renamed
// into place: a failed one leaves nothing that looks like a snapshot.
// No network, no schedule, no Kubernetes: the callers add those.
package etcdsnap

import (
	"archive/zip"
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/rke2os/rke2os/internal/durable"
)

// The defaults RKE2 documents for its etcd-snapshot-* keys.
const (
	DefaultName      = "etcd-snapshot"
	DefaultRetention = 5
	DefaultCron      = "0 */12 * * *"
	// OnDemandName is the name of a snapshot taken on demand (rke2
	// etcd-snapshot save without --name).
	OnDemandName = "on-demand"
	// ZipSuffix ends a compressed snapshot's file name.
	ZipSuffix = ".zip"
)

// Source streams a snapshot of etcd's database (clientv3's Maintenance
// is one).
type Source interface {
	Snapshot(ctx context.Context) (io.ReadCloser, error)
}

// Options say where a snapshot goes and what it is called.
type Options struct {
	Dir      string // the snapshot directory (created if missing)
	Name     string // the name's prefix (DefaultName, OnDemandName, a user's)
	Node     string // the node's name
	Compress bool   // zip it, as etcd-snapshot-compress does
	Now      time.Time
}

// File is one snapshot on disk.
type File struct {
	Name       string // the file's name: <name>-<node>-<unix>[.zip]
	Path       string
	Prefix     string // <name>
	Node       string
	Created    time.Time // from the name, as RKE2 reads it
	Size       int64
	Compressed bool
}

// Status is what a check found in a snapshot's database.
type Status struct {
	Revision  int64 // the highest revision of a key
	TotalKeys int   // key revisions stored
	Size      int64 // the database's bytes, without the hash
}

// nameRE is a snapshot file's name: prefix, node, unix seconds, optional
// zip. RKE2 allows any prefix and node name without a path separator.
var nameRE = regexp.MustCompile(`^(.+)-([^/]+)-([0-9]{9,11})(\.zip)?$`)

// validPart: a prefix or node name becomes a file name.
func validPart(what, s string) error {
	if s == "" || s == "." || s == ".." || strings.ContainsAny(s, "/\\\x00") || strings.HasPrefix(s, ".") {
		return fmt.Errorf("snapshot %s %q: not a file name (no /, \\, or leading dot)", what, s)
	}
	return nil
}

// FileName is the snapshot's file name, as RKE2 names it.
func FileName(prefix, node string, t time.Time, compress bool) string {
	n := fmt.Sprintf("%s-%s-%d", prefix, node, t.Unix())
	if compress {
		n += ZipSuffix
	}
	return n
}

// Parse reads a snapshot's file name; ok is false for any other file.
// The node's name must be known: a prefix may itself hold dashes.
func Parse(name, node string) (File, bool) {
	m := nameRE.FindStringSubmatch(name)
	if m == nil {
		return File{}, false
	}
	head := strings.TrimSuffix(name, m[4])
	head = strings.TrimSuffix(head, "-"+m[3])
	if node != "" {
		if !strings.HasSuffix(head, "-"+node) {
			return File{}, false
		}
		m[1], m[2] = strings.TrimSuffix(head, "-"+node), node
	}
	sec, err := strconv.ParseInt(m[3], 10, 64)
	if err != nil || m[1] == "" {
		return File{}, false
	}
	return File{Name: name, Prefix: m[1], Node: m[2], Created: time.Unix(sec, 0).UTC(), Compressed: m[4] != ""}, true
}

// Save takes a snapshot from src into o.Dir: streamed into a temporary
// file, synced, checked, compressed if asked, renamed into place and the
// directory synced. On any error nothing named as a snapshot is left.
func Save(ctx context.Context, src Source, o Options) (File, Status, error) {
	if err := validPart("name", o.Name); err != nil {
		return File{}, Status{}, err
	}
	if err := validPart("node", o.Node); err != nil {
		return File{}, Status{}, err
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return File{}, Status{}, fmt.Errorf("snapshot: %w", err)
	}
	name := FileName(o.Name, o.Node, o.Now, false)
	final := filepath.Join(o.Dir, name)
	if _, err := os.Lstat(final); err == nil || fileExists(final+ZipSuffix) {
		return File{}, Status{}, fmt.Errorf("snapshot %s: a snapshot of that name exists (one per second per name and node)", name)
	}
	tmp, err := os.CreateTemp(o.Dir, "."+name+".*.part")
	if err != nil {
		return File{}, Status{}, fmt.Errorf("snapshot %s: %w", name, err)
	}
	defer os.Remove(tmp.Name())
	err = stream(ctx, src, tmp)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return File{}, Status{}, fmt.Errorf("snapshot %s: %w", name, err)
	}
	st, err := Check(tmp.Name())
	if err != nil {
		return File{}, Status{}, fmt.Errorf("snapshot %s: %w", name, err)
	}
	from := tmp.Name()
	if o.Compress {
		z, err := zipFile(from, name, o.Dir)
		if err != nil {
			return File{}, Status{}, fmt.Errorf("snapshot %s: compress: %w", name, err)
		}
		defer os.Remove(z)
		from, name, final = z, name+ZipSuffix, final+ZipSuffix
	}
	if err := os.Rename(from, final); err != nil {
		return File{}, Status{}, fmt.Errorf("snapshot %s: %w", name, err)
	}
	if err := durable.SyncDir(o.Dir); err != nil {
		return File{}, Status{}, fmt.Errorf("snapshot %s: %w", name, err)
	}
	fi, err := os.Stat(final)
	if err != nil {
		return File{}, Status{}, fmt.Errorf("snapshot %s: %w", name, err)
	}
	f, _ := Parse(name, o.Node)
	f.Path, f.Size = final, fi.Size()
	return f, st, nil
}

func stream(ctx context.Context, src Source, w *os.File) error {
	rc, err := src.Snapshot(ctx)
	if err != nil {
		return err
	}
	defer rc.Close()
	if _, err := io.Copy(w, rc); err != nil {
		return err
	}
	return w.Sync()
}

func fileExists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// hashSize is the sha256 etcd appends to a snapshot's database.
const hashSize = sha256.Size

// Check checks a snapshot file (a plain one; Open reads a zip's): the
// sha256 etcd appends to the database (its size is a whole number of
// 512-byte blocks plus the hash), then the database itself, read with
// bbolt as etcdutl snapshot status reads it.
func Check(path string) (Status, error) {
	f, err := os.Open(path)
	if err != nil {
		return Status{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Status{}, err
	}
	size := fi.Size()
	if size < 512+hashSize || size%512 != hashSize {
		return Status{}, fmt.Errorf("%d bytes: not an etcd snapshot (its database, whole 512-byte blocks, then a %d-byte sha256)", size, hashSize)
	}
	h := sha256.New()
	if _, err := io.CopyN(h, f, size-hashSize); err != nil {
		return Status{}, fmt.Errorf("read: %w", err)
	}
	want := make([]byte, hashSize)
	if _, err := io.ReadFull(f, want); err != nil {
		return Status{}, fmt.Errorf("read: %w", err)
	}
	if !bytes.Equal(h.Sum(nil), want) {
		return Status{}, errors.New("its sha256 does not match the one etcd appended: the snapshot is damaged")
	}
	st, err := dbStatus(path)
	if err != nil {
		return Status{}, fmt.Errorf("the database: %w", err)
	}
	st.Size = size - hashSize
	return st, nil
}

// dbStatus reads the revision and key count of a snapshot's bbolt
// database (etcd's "key" bucket: keys are revisions, 8 bytes big-endian
// main revision, '_', 8 bytes sub revision).
func dbStatus(path string) (Status, error) {
	db, err := bolt.Open(path, 0o400, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return Status{}, err
	}
	defer db.Close()
	var st Status
	err = db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("key"))
		if b == nil {
			return errors.New(`no "key" bucket: not an etcd database`)
		}
		return b.ForEach(func(k, _ []byte) error {
			if len(k) < 8 {
				return fmt.Errorf("a key of %d bytes in the key bucket", len(k))
			}
			st.TotalKeys++
			st.Revision = max(st.Revision, int64(binary.BigEndian.Uint64(k[:8])))
			return nil
		})
	})
	return st, err
}

// zipFile writes src into a new zip in dir, as the entry name, and
// returns the zip's (temporary) path, synced.
func zipFile(src, name, dir string) (string, error) {
	in, err := os.Open(src)
	if err != nil {
		return "", err
	}
	defer in.Close()
	out, err := os.CreateTemp(dir, "."+name+".*.zip.part")
	if err != nil {
		return "", err
	}
	ok := false
	defer func() {
		if !ok {
			out.Close()
			os.Remove(out.Name())
		}
	}()
	zw := zip.NewWriter(out)
	w, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Deflate})
	if err != nil {
		return "", err
	}
	if _, err := io.Copy(w, in); err != nil {
		return "", err
	}
	if err := zw.Close(); err != nil {
		return "", err
	}
	if err := out.Sync(); err != nil {
		return "", err
	}
	if err := out.Close(); err != nil {
		return "", err
	}
	ok = true
	return out.Name(), nil
}

// List lists the node's snapshots in dir (any prefix), oldest first. A
// missing directory is no snapshot; an unreadable one is an error.
func List(dir, node string) ([]File, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("snapshots: %w", err)
	}
	var out []File
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		f, ok := Parse(e.Name(), node)
		if !ok {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			return nil, fmt.Errorf("snapshots: %w", err)
		}
		f.Path, f.Size = filepath.Join(dir, e.Name()), fi.Size()
		out = append(out, f)
	}
	slices.SortFunc(out, func(a, b File) int { return cmp.Or(a.Created.Compare(b.Created), cmp.Compare(a.Name, b.Name)) })
	return out, nil
}

// Prune deletes the node's oldest snapshots of the prefix beyond keep
// (etcd-snapshot-retention), as RKE2 prunes after each scheduled
// snapshot, and returns those deleted. keep < 1 keeps everything. The
// snapshot named saved (the one just taken; "" for none) counts as kept
// and is never deleted, even when files named with a later time (a clock
// that was ahead) sort after it.
func Prune(dir, prefix, node string, keep int, saved string) ([]File, error) {
	if keep < 1 {
		return nil, nil
	}
	all, err := List(dir, node)
	if err != nil {
		return nil, err
	}
	var mine []File
	for _, f := range all {
		if f.Prefix != prefix {
			continue
		}
		if f.Name == saved {
			keep--
			continue
		}
		mine = append(mine, f)
	}
	if len(mine) <= keep {
		return nil, nil
	}
	var gone []File
	for _, f := range mine[:len(mine)-keep] {
		if err := os.Remove(f.Path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return gone, fmt.Errorf("prune %s: %w", f.Name, err)
		}
		gone = append(gone, f)
	}
	return gone, durable.SyncDir(dir)
}

// Open opens a snapshot for reading its database: a plain file as it is,
// a zip's one entry. The caller closes it.
func Open(f File) (io.ReadCloser, error) {
	if !f.Compressed {
		return os.Open(f.Path)
	}
	zr, err := zip.OpenReader(f.Path)
	if err != nil {
		return nil, fmt.Errorf("snapshot %s: %w", f.Name, err)
	}
	if len(zr.File) != 1 {
		zr.Close()
		return nil, fmt.Errorf("snapshot %s: %d entries in the zip, want one", f.Name, len(zr.File))
	}
	rc, err := zr.File[0].Open()
	if err != nil {
		zr.Close()
		return nil, fmt.Errorf("snapshot %s: %w", f.Name, err)
	}
	return struct {
		io.Reader
		io.Closer
	}{rc, closers{rc, zr}}, nil
}

type closers []io.Closer

func (c closers) Close() error {
	var errs []error
	for _, x := range c {
		errs = append(errs, x.Close())
	}
	return errors.Join(errs...)
}
