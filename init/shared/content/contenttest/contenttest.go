// Package contenttest builds the image archives, layers and images that
// the tests of the content packages (the init's and the builder's) read:
// tars written exactly as given (hostile ones too), docker-save archives
// the way docker writes them, and a small rke2-runtime image.
package contenttest

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"
)

// RuntimeRef is the runtime image of RuntimeVersion, as RKE2 names it.
const (
	RuntimeRef     = "rancher/rke2-runtime:v1.34.4-rke2r1"
	RuntimeVersion = "v1.34.4+rke2r1"
)

// Entry is one entry of a tar built by a test.
type Entry struct {
	Name string
	Type byte // 0 means a regular file
	Body string
	Link string
	Mode int64
}

// File is a regular file, mode 0755.
func File(name, body string) Entry { return Entry{Name: name, Body: body, Mode: 0o755} }

// Dir is a directory.
func Dir(name string) Entry { return Entry{Name: name, Type: tar.TypeDir, Mode: 0o755} }

// Symlink is a symbolic link to target.
func Symlink(name, target string) Entry {
	return Entry{Name: name, Type: tar.TypeSymlink, Link: target}
}

// Hardlink is a hard link to target.
func Hardlink(name, target string) Entry { return Entry{Name: name, Type: tar.TypeLink, Link: target} }

// Tar writes entries as a tar, exactly as given: no cleaning, no checks.
func Tar(t testing.TB, entries ...Entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		typ := e.Type
		if typ == 0 {
			typ = tar.TypeReg
		}
		mode := e.Mode
		if mode == 0 {
			mode = 0o644
		}
		hdr := &tar.Header{Name: e.Name, Typeflag: typ, Mode: mode, Linkname: e.Link, ModTime: time.Unix(1700000000, 0), Format: tar.FormatPAX}
		if typ == tar.TypeReg {
			hdr.Size = int64(len(e.Body))
		}
		if typ == tar.TypeChar || typ == tar.TypeBlock {
			hdr.Devmajor, hdr.Devminor = 1, 3
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatalf("tar header %q: %v", e.Name, err)
		}
		if typ == tar.TypeReg {
			if _, err := tw.Write([]byte(e.Body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Sha is the hex sha256 of b.
func Sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// Gzip compresses b.
func Gzip(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Zstd compresses b.
func Zstd(t testing.TB, b []byte) []byte {
	t.Helper()
	enc, err := zstd.NewWriter(nil, zstd.WithWindowSize(1<<20))
	if err != nil {
		t.Fatal(err)
	}
	return enc.EncodeAll(b, nil)
}

// Uncompressed returns b decompressed if it is gzip or zstd, else b.
func Uncompressed(t testing.TB, b []byte) []byte {
	t.Helper()
	br := bufio.NewReader(bytes.NewReader(b))
	magic, _ := br.Peek(4)
	var r io.Reader = br
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(br)
		if err != nil {
			t.Fatal(err)
		}
		r = zr
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(br)
		if err != nil {
			t.Fatal(err)
		}
		defer zr.Close()
		r = zr
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Image is an image of a docker-save archive built by a test.
type Image struct {
	Tags   []string
	Layers [][]byte // as stored: a layer may be compressed
	// DiffIDs overrides the config's diff_ids when set.
	DiffIDs []string
}

// ManifestEntry is one image of a docker-save manifest.json.
type ManifestEntry struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// Archive describes a docker-save archive for Bytes to write.
type Archive struct {
	Images []Image
	// Edit changes the entries (the blobs, in the order written) or the
	// manifest before they are written, to make hostile variants.
	Edit func(entries []Entry, manifest []ManifestEntry) ([]Entry, []ManifestEntry)
	// ManifestLast writes manifest.json after the blobs, as
	// go-containerregistry and newer docker do; docker 25's
	// blobs/sha256/ layout, with manifest.json first, otherwise.
	ManifestLast bool
	// ManifestAfter writes manifest.json after that many blobs.
	ManifestAfter int
	// LayersFirst writes every layer before any config.
	LayersFirst bool
}

// DockerArchive is Archive{Images: imgs, Edit: edit}.Bytes(t).
func DockerArchive(t testing.TB, imgs []Image, edit func([]Entry, []ManifestEntry) ([]Entry, []ManifestEntry)) []byte {
	return Archive{Images: imgs, Edit: edit}.Bytes(t)
}

// Bytes writes the archive.
func (a Archive) Bytes(t testing.TB) []byte {
	t.Helper()
	var entries, configs []Entry
	var manifest []ManifestEntry
	seen := map[string]bool{}
	addBlob := func(b []byte, to *[]Entry) string {
		n := "blobs/sha256/" + Sha(b)
		if !seen[n] {
			seen[n] = true
			*to = append(*to, Entry{Name: n, Body: string(b), Mode: 0o644})
		}
		return n
	}
	for _, img := range a.Images {
		cfg := v1.ConfigFile{Architecture: "amd64", OS: "linux", RootFS: v1.RootFS{Type: "layers"}}
		d := ManifestEntry{RepoTags: img.Tags}
		for i, l := range img.Layers {
			diff := Sha(Uncompressed(t, l))
			if img.DiffIDs != nil {
				diff = img.DiffIDs[i]
			}
			cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, v1.Hash{Algorithm: "sha256", Hex: diff})
			d.Layers = append(d.Layers, addBlob(l, &entries))
		}
		raw, err := json.Marshal(cfg)
		if err != nil {
			t.Fatal(err)
		}
		to := &entries
		if a.LayersFirst {
			to = &configs
		}
		d.Config = addBlob(raw, to)
		manifest = append(manifest, d)
	}
	entries = append(entries, configs...)
	if a.Edit != nil {
		entries, manifest = a.Edit(entries, manifest)
	}
	m, err := json.Marshal(manifest)
	if err != nil {
		t.Fatal(err)
	}
	me := Entry{Name: "manifest.json", Body: string(m), Mode: 0o644}
	all := []Entry{Dir("blobs/"), Dir("blobs/sha256/")}
	switch {
	case a.ManifestLast:
		all = append(append(all, entries...), me)
	case a.ManifestAfter > 0:
		all = append(append(append(all, entries[:a.ManifestAfter]...), me), entries[a.ManifestAfter:]...)
	default:
		all = append(append([]Entry{me}, all...), entries...)
	}
	return Tar(t, all...)
}

// WriteFile writes b to a new file called name in a temporary directory.
func WriteFile(t testing.TB, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// RuntimeLayers is a two-layer runtime image: the second layer replaces a
// file, deletes one with a whiteout and clears a directory with an opaque
// whiteout, so extraction must apply them in order. The second is gzipped.
func RuntimeLayers(t testing.TB) [][]byte {
	l1 := Tar(t,
		Dir("bin/"), File("bin/containerd", "containerd-old"), File("bin/kubelet", "kubelet-1"),
		File("bin/gone", "deleted by the next layer"),
		Dir("charts/"), Dir("charts/old/"), File("charts/old/a.yaml", "hidden by an opaque whiteout"),
		Dir("etc/"), File("etc/not-extracted", "x"),
	)
	l2 := Tar(t,
		Dir("bin/"), File("bin/containerd", "containerd-new"), File("bin/.wh.gone", ""),
		Symlink("bin/runc", "containerd"),
		Hardlink("bin/kubectl", "bin/kubelet"),
		Dir("charts/old/"), File("charts/old/.wh..wh..opq", ""), File("charts/old/b.yaml", "kept"),
		File("charts/rke2-coredns.yaml", "apiVersion: helm.cattle.io/v1\n"),
	)
	return [][]byte{l1, Gzip(t, l2)}
}

// RuntimeTree is what RuntimeLayers gives once /bin and /charts are
// extracted: file contents, and "-> target" for links.
var RuntimeTree = map[string]string{
	"bin/containerd":           "containerd-new",
	"bin/kubelet":              "kubelet-1",
	"bin/kubectl":              "kubelet-1",
	"bin/runc":                 "-> containerd",
	"charts/old/b.yaml":        "kept",
	"charts/rke2-coredns.yaml": "apiVersion: helm.cattle.io/v1\n",
}

// Tree reads the files and links under dir as RuntimeTree lists them.
func Tree(t testing.TB, dir string) map[string]string {
	t.Helper()
	got := map[string]string{}
	err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		switch {
		case info.Mode()&os.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			got[rel] = "-> " + l
		case info.Mode().IsRegular():
			b, _ := os.ReadFile(p)
			got[rel] = string(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// CheckRuntimeTree checks that dir holds RuntimeTree and nothing else
// (extra lists names that may be there too), bin/containerd mode 0755.
func CheckRuntimeTree(t testing.TB, dir string, extra ...string) {
	t.Helper()
	got := Tree(t, dir)
	for k, v := range RuntimeTree {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	for _, k := range extra {
		delete(got, k)
	}
	for k := range got {
		if _, ok := RuntimeTree[k]; !ok {
			t.Errorf("unexpected %s (%q)", k, got[k])
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, "bin/containerd")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("bin/containerd: %v, %v; want mode 0755", fi, err)
	}
}

// GGCRImage builds an image with go-containerregistry from uncompressed
// layer tars; its layers are stored gzipped, as in a registry.
func GGCRImage(t testing.TB, arch string, layers ...[]byte) v1.Image {
	t.Helper()
	img, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{Architecture: arch, OS: "linux", RootFS: v1.RootFS{Type: "layers"}})
	if err != nil {
		t.Fatal(err)
	}
	img = mutate.MediaType(img, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	for _, l := range layers {
		b := l
		gl, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil },
			tarball.WithMediaType(types.OCILayer))
		if err != nil {
			t.Fatal(err)
		}
		if img, err = mutate.AppendLayers(img, gl); err != nil {
			t.Fatal(err)
		}
	}
	return img
}

// UncompressedRuntimeLayers is RuntimeLayers, each uncompressed.
func UncompressedRuntimeLayers(t testing.TB) [][]byte {
	var out [][]byte
	for _, l := range RuntimeLayers(t) {
		out = append(out, Uncompressed(t, l))
	}
	return out
}

// MixedArchive is a docker-save archive holding the runtime of
// RuntimeLayers, a pause image with two tags, and an untagged image.
func MixedArchive(t testing.TB) []byte {
	return DockerArchive(t, []Image{
		{Tags: []string{RuntimeRef}, Layers: RuntimeLayers(t)},
		{Tags: []string{"docker.io/rancher/mirrored-pause:3.10", "index.docker.io/rancher/pause:3.10"}, Layers: [][]byte{Tar(t, File("pause", "p"))}},
		{Layers: [][]byte{Tar(t, File("untagged", "u"))}},
	}, nil)
}

// GGCRTarball is an archive of the runtime and a pause image as
// go-containerregistry's tarball package (and crane, and k3s' airgap
// tooling) write them: manifest.json last, configs named sha256:<hex>,
// layers <hex>.tar.gz.
func GGCRTarball(t testing.TB) []byte {
	t.Helper()
	rt := GGCRImage(t, "amd64", UncompressedRuntimeLayers(t)...)
	pause := GGCRImage(t, "amd64", Tar(t, File("pause", "p")))
	rtTag, _ := name.NewTag(RuntimeRef)
	pauseTag, _ := name.NewTag("rancher/mirrored-pause:3.10")
	p := filepath.Join(t.TempDir(), "ggcr.tar")
	if err := tarball.MultiRefWriteToFile(p, map[name.Reference]v1.Image{rtTag: rt, pauseTag: pause}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Registry starts go-containerregistry's in-process registry on
// loopback, optionally behind basic auth and TLS, and returns its host:port.
func Registry(t testing.TB, user, pass string, useTLS bool) (*httptest.Server, string) {
	t.Helper()
	var h http.Handler = registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	if user != "" {
		inner := h
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			u, p, ok := r.BasicAuth()
			if !ok || u != user || p != pass {
				w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
			inner.ServeHTTP(w, r)
		})
	}
	var srv *httptest.Server
	if useTLS {
		srv = httptest.NewTLSServer(h)
	} else {
		srv = httptest.NewServer(h)
	}
	t.Cleanup(srv.Close)
	return srv, strings.TrimPrefix(strings.TrimPrefix(srv.URL, "http://"), "https://")
}

// PushRuntime writes the runtime image of UncompressedRuntimeLayers to host under repo.
func PushRuntime(t testing.TB, srv *httptest.Server, host, repo string, auth authn.Authenticator) {
	t.Helper()
	ref, err := name.ParseReference(host + "/" + repo)
	if err != nil {
		t.Fatal(err)
	}
	if auth == nil {
		auth = authn.Anonymous
	}
	img := GGCRImage(t, "amd64", UncompressedRuntimeLayers(t)...)
	if err := remote.Write(ref, img, remote.WithAuth(auth), remote.WithTransport(srv.Client().Transport)); err != nil {
		t.Fatal(err)
	}
}

// CheckSandbox fails unless the sandbox holds nothing but dest (and what is
// under it): whatever an archive says, nothing may be written beside it,
// no link under dest may point out of it, no special file may be there,
// and nothing may be setuid, setgid, or writable by group or others.
func CheckSandbox(t testing.TB, sandbox, dest string) {
	t.Helper()
	ents, err := os.ReadDir(sandbox)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if filepath.Join(sandbox, e.Name()) != dest {
			t.Fatalf("written outside the destination: %s", e.Name())
		}
	}
	filepath.Walk(dest, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return nil
		}
		if info.Mode()&os.ModeSymlink != 0 {
			l, _ := os.Readlink(p)
			rel, _ := filepath.Rel(dest, p)
			if leadsOut(dest, rel) {
				t.Fatalf("symlink %s -> %s leads outside the destination when followed", p, l)
			}
		}
		if info.Mode()&(os.ModeDevice|os.ModeNamedPipe|os.ModeSocket) != 0 {
			t.Fatalf("special file %s extracted", p)
		}
		if info.Mode()&os.ModeSymlink == 0 && info.Mode()&(os.ModeSetuid|os.ModeSetgid|0o022) != 0 {
			t.Fatalf("%s has mode %v", p, info.Mode())
		}
		return nil
	})
}

// leadsOut tells whether following rel, a path under dest whose directory
// holds no links, leads out of dest: it goes through the links under dest
// one name at a time, as the kernel would, so that a chain whose every
// link reads as inside ("d -> .", "e -> d/..") is seen for what it is. A
// name that does not exist is taken as a directory; a loop is not a way
// out.
func leadsOut(dest, rel string) bool {
	var cur []string
	if d := filepath.Dir(rel); d != "." {
		cur = strings.Split(d, "/")
	}
	todo := []string{filepath.Base(rel)}
	for hops := 0; len(todo) > 0; {
		c := todo[0]
		todo = todo[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(cur) == 0 {
				return true
			}
			cur = cur[:len(cur)-1]
			continue
		}
		p := filepath.Join(append([]string{dest}, append(cur, c)...)...)
		fi, err := os.Lstat(p)
		if err != nil || fi.Mode()&os.ModeSymlink == 0 {
			cur = append(cur, c)
			continue
		}
		if hops++; hops > 40 {
			return false
		}
		l, err := os.Readlink(p)
		if err != nil {
			return false
		}
		if filepath.IsAbs(l) {
			return true
		}
		todo = append(strings.Split(l, "/"), todo...)
	}
	return false
}
