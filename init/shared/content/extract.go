package content

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Whiteout names, from the OCI image spec's layer changesets: ".wh.<name>"
// deletes <name> of the layers below, ".wh..wh..opq" hides everything the
// layers below have in its directory.
const (
	whiteoutPrefix = ".wh."
	whiteoutOpaque = ".wh..wh..opq"
)

// permMask is what is kept of a file's permission bits: RKE2 (wharfie's
// extract) keeps 0755, so nothing extracted is group- or world-writable,
// setuid, setgid or sticky.
const permMask fs.FileMode = 0o755

// ExtractPaths extracts from img's layers, applied in order with their
// whiteouts, the files under prefixes ("/bin", "/charts") into dest,
// keeping their paths: /bin/kubelet lands at dest/bin/kubelet. A prefix of
// "/" takes everything.
//
// dest must not exist. It appears whole or not at all: the files go into a
// temporary sibling, renamed into place once every layer has been read to
// its end and its digests checked. Nothing is ever written outside that
// directory: entries with absolute paths or "..", symlinks that lead out
// of it when followed through the other links extracted (or absolute
// ones, which on the host would point out of it), entries under such a
// link, hard links to files not extracted, device nodes and FIFOs under
// the prefixes, and layers that expand to more than DefaultMaxLayerSize
// are refused. Permission bits are kept as RKE2 keeps them (at most
// 0755); owners are not (the builder does not run as root).
func ExtractPaths(img Image, dest string, prefixes []string) (err error) {
	x, err := startExtraction(dest, prefixes)
	if err != nil {
		return fmt.Errorf("extract %s: %w", img, err)
	}
	defer func() {
		if err != nil {
			x.abort()
			err = fmt.Errorf("extract %s: %w", img, err)
		}
	}()
	for i := range img.layers {
		if _, err := x.applyLayer(&img.layers[i]); err != nil {
			return err
		}
	}
	return x.commit()
}

// extraction is a destination being filled, layer after layer, in a
// temporary sibling directory that commit renames into place and abort
// removes.
type extraction struct {
	dest, tmp string
	root      *os.Root // tmp: nothing is written through a path outside it
	sel       selection
	// durable makes commit flush the files to disk before the rename and
	// the rename after it: a power cut must not leave a directory that
	// says it is complete (RKE2's .extracted) over half-written binaries.
	durable bool
	// maxLayerSize is the most one layer's tar may expand to
	// (DefaultMaxLayerSize; tests lower it).
	maxLayerSize int64
	// links are the symlinks written so far, by name: a later entry can
	// turn one outward (a directory it went through becomes a link), so
	// they are checked again after every layer.
	links map[string]bool
}

// DefaultMaxLayerSize is the most one layer's tar may expand to. The
// rke2-runtime image is one layer of 263 MB (v1.34, /bin and /charts
// whole); the cap is far above it and any layer RKE2 ships, yet stops a
// small compressed layer (or a registry's answer, which no archive size
// bounds) from filling the disk before its digest is checked at its end.
const DefaultMaxLayerSize = 4 << 30

// startExtraction checks the prefixes and dest, and makes the temporary
// directory beside dest.
func startExtraction(dest string, prefixes []string) (*extraction, error) {
	sel, err := cleanPrefixes(prefixes)
	if err != nil {
		return nil, err
	}
	if _, err := os.Lstat(dest); err == nil {
		return nil, fmt.Errorf("%s already exists", dest)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	parent := filepath.Dir(dest)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dest)+".tmp-")
	if err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(tmp)
	if err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	return &extraction{dest: dest, tmp: tmp, root: root, sel: sel, maxLayerSize: DefaultMaxLayerSize, links: map[string]bool{}}, nil
}

// applyLayer applies one layer's selected entries and whiteouts, then reads
// the layer to its end to check its digests. It returns the layer's
// uncompressed sha256, for a caller that did not know it yet.
func (x *extraction) applyLayer(l *Layer) (string, error) {
	stream, err := l.tarStream(x.maxLayerSize)
	if err != nil {
		return "", err
	}
	defer stream.Close()
	if err := x.apply(stream, l.Where); err != nil {
		return "", err
	}
	if err := stream.finish(); err != nil {
		return "", err
	}
	if err := x.checkLinks(); err != nil {
		return "", fmt.Errorf("layer %s: %w", l.Where, err)
	}
	return stream.gotDiffID, nil
}

// apply applies the selected entries and whiteouts of the layer tar r;
// where names the layer in errors.
func (x *extraction) apply(r io.Reader, where string) error {
	tr := tar.NewReader(r)
	written := map[string]bool{} // what this layer wrote: opaque whiteouts keep it
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("layer %s: %w", where, err)
		}
		name, err := cleanEntryName(hdr.Name)
		if err != nil {
			return fmt.Errorf("layer %s: %w", where, err)
		}
		if name == "." {
			continue
		}
		if err := x.applyEntry(tr, hdr, name, written); err != nil {
			return fmt.Errorf("layer %s: %w", where, err)
		}
	}
}

// writeFile writes a file of its own into the destination (RKE2's
// .extracted marker), before it is committed.
func (x *extraction) writeFile(name string, data []byte, perm fs.FileMode) error {
	return x.root.WriteFile(name, data, perm)
}

// mkdirs makes directories in the destination that the layers may not
// have had.
func (x *extraction) mkdirs(names ...string) error {
	for _, n := range names {
		if err := x.root.MkdirAll(n, 0o755); err != nil {
			return err
		}
	}
	return nil
}

// commit renames the temporary directory into place.
func (x *extraction) commit() error {
	if x.durable {
		if err := syncPath(x.tmp, true); err != nil {
			return err
		}
	}
	x.root.Close()
	if err := os.Chmod(x.tmp, 0o755); err != nil {
		return err
	}
	if err := os.Rename(x.tmp, x.dest); err != nil {
		return err
	}
	if x.durable {
		return syncPath(filepath.Dir(x.dest), false)
	}
	return nil
}

// syncPath flushes p to disk: with wholeFS, the filesystem holding it
// (one call for every file extracted, where an fsync of each would wait
// for each); else the directory p's entries (a rename into it).
func syncPath(p string, wholeFS bool) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	if wholeFS {
		err = unix.Syncfs(int(f.Fd()))
	} else {
		err = f.Sync()
	}
	if err != nil {
		return fmt.Errorf("sync %s: %w", p, err)
	}
	return nil
}

// abort removes the temporary directory and everything in it.
func (x *extraction) abort() {
	x.root.Close()
	os.RemoveAll(x.tmp)
}

// selection is the set of paths to extract, as clean relative prefixes.
type selection []string

func cleanPrefixes(prefixes []string) (selection, error) {
	if len(prefixes) == 0 {
		return nil, errors.New("no paths to extract given")
	}
	var sel selection
	for _, p := range prefixes {
		for _, part := range strings.Split(p, "/") {
			if part == ".." {
				return nil, fmt.Errorf("path %q has a \"..\"", p)
			}
		}
		sel = append(sel, strings.TrimPrefix(path.Clean("/"+p), "/"))
	}
	return sel, nil
}

// has tells whether name (clean, relative) is under one of the prefixes.
func (s selection) has(name string) bool {
	for _, p := range s {
		if p == "" || name == p || strings.HasPrefix(name, p+"/") {
			return true
		}
	}
	return false
}

// touches tells whether removing name could remove something selected:
// name is selected, or a parent of a prefix.
func (s selection) touches(name string) bool {
	if name == "." || s.has(name) {
		return true
	}
	for _, p := range s {
		if strings.HasPrefix(p, name+"/") {
			return true
		}
	}
	return false
}

func (x *extraction) applyEntry(r io.Reader, hdr *tar.Header, name string, written map[string]bool) error {
	root, sel := x.root, x.sel
	dir, base := path.Split(name)
	dir = path.Clean(dir)
	if base == whiteoutOpaque {
		if sel.touches(dir) {
			return hideLower(root, dir, written)
		}
		return nil
	}
	if strings.HasPrefix(base, whiteoutPrefix) {
		target := strings.TrimPrefix(base, whiteoutPrefix)
		if target == "" || target == "." || target == ".." {
			return fmt.Errorf("tar entry %q is a whiteout of nothing", hdr.Name)
		}
		target = path.Join(dir, target)
		if sel.touches(target) {
			return removeIfExists(root, target)
		}
		return nil
	}
	if !sel.has(name) {
		return nil
	}
	// The root makes a write through a link that leads out of it fail
	// anyway; this says why, and gives a symlink's real directory. (A
	// whiteout through such a link removes nothing: the root refuses.)
	realDir, err := x.resolve(".", dir)
	if err != nil {
		return fmt.Errorf("tar entry %q: its directory %q %w", hdr.Name, dir, err)
	}
	perm := fs.FileMode(hdr.Mode) & permMask
	switch hdr.Typeflag {
	case tar.TypeDir:
		if fi, err := root.Lstat(name); err == nil && !fi.IsDir() {
			if err := root.Remove(name); err != nil {
				return err
			}
		}
		if err := root.MkdirAll(name, 0o755); err != nil {
			return err
		}
		written[name] = true
		return root.Chmod(name, perm|0o700) // keep it writable to us while extracting
	case tar.TypeReg, tar.TypeRegA:
		if isSparse(hdr) {
			return fmt.Errorf("tar entry %q is a sparse file", hdr.Name)
		}
		if err := replace(root, name); err != nil {
			return err
		}
		f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
		if err != nil {
			return err
		}
		n, err := io.Copy(f, r)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
		if n != hdr.Size {
			return fmt.Errorf("write %s: %d bytes, header says %d", name, n, hdr.Size)
		}
		written[name] = true
		if err := root.Chmod(name, perm); err != nil { // umask may have cut it
			return err
		}
		return root.Chtimes(name, hdr.ModTime, hdr.ModTime)
	case tar.TypeSymlink:
		t := hdr.Linkname
		if t == "" || path.IsAbs(t) {
			return fmt.Errorf("tar entry %q is a symlink to %q, an absolute path: on the host it would point outside the extracted files", hdr.Name, t)
		}
		if _, err := x.resolve(realDir, t); err != nil {
			return fmt.Errorf("tar entry %q is a symlink to %q, which followed through the links before it %w", hdr.Name, t, err)
		}
		if err := replace(root, name); err != nil {
			return err
		}
		written[name] = true
		x.links[name] = true
		return root.Symlink(t, name)
	case tar.TypeLink:
		t, err := cleanEntryName(hdr.Linkname)
		if err != nil {
			return fmt.Errorf("tar entry %q is a hard link: %w", hdr.Name, err)
		}
		if !sel.has(t) {
			return fmt.Errorf("tar entry %q is a hard link to %q, which is not among the extracted paths", hdr.Name, hdr.Linkname)
		}
		if fi, err := root.Lstat(t); err != nil || !fi.Mode().IsRegular() {
			return fmt.Errorf("tar entry %q is a hard link to %q, which is not a file extracted before it", hdr.Name, hdr.Linkname)
		}
		if err := replace(root, name); err != nil {
			return err
		}
		written[name] = true
		return root.Link(t, name)
	default:
		return fmt.Errorf("tar entry %q is a %s, which is refused", hdr.Name, typeName(hdr.Typeflag))
	}
}

// errLeavesTree is what resolve says of a path that leads out of the
// destination.
var errLeavesTree = errors.New("leads outside the extracted files")

// resolve follows p, relative to dir (a directory under the root, reached
// without links), through the links already extracted, one name at a time
// as the kernel would, and returns where it leads. It fails when that is
// out of the root: a ".." above it, an absolute link, or more than
// maxLinkHops links (a loop). Read as text, every link of "d -> .",
// "e -> d/..", "f -> e/.." stays inside; followed, f is the root's parent.
// A name that does not exist (yet) is taken as a plain directory: a ".."
// after it is read as text, and checkLinks looks again once later entries
// may have made it a link.
func (x *extraction) resolve(dir, p string) (string, error) {
	var cur []string
	if dir != "." {
		cur = strings.Split(dir, "/")
	}
	todo := strings.Split(p, "/")
	for hops := 0; len(todo) > 0; {
		c := todo[0]
		todo = todo[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(cur) == 0 {
				return "", errLeavesTree
			}
			cur = cur[:len(cur)-1]
			continue
		}
		next := path.Join(path.Join(cur...), c)
		if fi, err := x.root.Lstat(next); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			cur = append(cur, c)
			continue
		}
		if hops++; hops > maxLinkHops {
			return "", fmt.Errorf("is more than %d links deep", maxLinkHops)
		}
		t, err := x.root.Readlink(next)
		if err != nil {
			return "", err
		}
		if path.IsAbs(t) {
			return "", fmt.Errorf("goes through %s -> %s, an absolute path, and so %w", next, t, errLeavesTree)
		}
		todo = append(strings.Split(t, "/"), todo...)
	}
	if len(cur) == 0 {
		return ".", nil
	}
	return path.Join(cur...), nil
}

// checkLinks follows again every symlink written so far. A link checked
// when it was written can lead out later: "e -> d/.." is inside while d
// is a directory, and not once a later entry makes d a link to ".".
func (x *extraction) checkLinks() error {
	for _, name := range slices.Sorted(maps.Keys(x.links)) {
		fi, err := x.root.Lstat(name)
		if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			delete(x.links, name) // removed or replaced since
			continue
		}
		t, err := x.root.Readlink(name)
		if err != nil {
			return err
		}
		dir, err := x.resolve(".", path.Dir(name))
		if err == nil {
			_, err = x.resolve(dir, t)
		}
		if err != nil {
			return fmt.Errorf("symlink %s -> %s, followed through the links extracted after it too, %w", name, t, err)
		}
	}
	return nil
}

// replace makes room for a new entry: it creates the parent directories and
// removes whatever was at name, so that the new entry never writes through
// a symlink a lower layer left there.
func replace(root *os.Root, name string) error {
	if d := path.Dir(name); d != "." {
		if err := root.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	return removeIfExists(root, name)
}

func removeIfExists(root *os.Root, name string) error {
	if _, err := root.Lstat(name); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return root.RemoveAll(name)
}

// hideLower applies an opaque whiteout: everything in dir that this layer
// did not write goes. Directories with something of this layer inside stay.
func hideLower(root *os.Root, dir string, written map[string]bool) error {
	if fi, err := root.Lstat(dir); err != nil || !fi.IsDir() {
		return nil
	}
	var files, dirs []string
	err := fs.WalkDir(root.FS(), dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == dir || written[p] {
			return nil
		}
		if d.IsDir() {
			dirs = append(dirs, p)
		} else {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, f := range files {
		if err := root.Remove(f); err != nil {
			return err
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(dirs))) // children before parents
	for _, d := range dirs {
		if err := root.Remove(d); err != nil && !isNotEmpty(err) {
			return err
		}
	}
	return nil
}

func isNotEmpty(err error) bool {
	return errors.Is(err, syscall.ENOTEMPTY) || errors.Is(err, syscall.EEXIST)
}
