package content

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/zstd"
)

// tentry is one entry of a tar built by a test.
type tentry struct {
	name string
	typ  byte // 0 means a regular file
	body string
	link string
	mode int64
}

func file(name, body string) tentry { return tentry{name: name, body: body, mode: 0o755} }
func dir(name string) tentry        { return tentry{name: name, typ: tar.TypeDir, mode: 0o755} }

// mkTar writes entries as a tar, exactly as given: no cleaning, no checks.
func mkTar(t testing.TB, entries ...tentry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		mode := e.mode
		if mode == 0 {
			mode = 0o644
		}
		hdr := &tar.Header{Name: e.name, Typeflag: typ, Mode: mode, Linkname: e.link, ModTime: time.Unix(1700000000, 0), Format: tar.FormatPAX}
		if typ == tar.TypeReg {
			hdr.Size = int64(len(e.body))
		}
		if typ == tar.TypeChar || typ == tar.TypeBlock {
			hdr.Devmajor, hdr.Devminor = 1, 3
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatalf("tar header %q: %v", e.name, err)
		}
		if typ == tar.TypeReg {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func gz(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func zst(t testing.TB, b []byte) []byte {
	t.Helper()
	enc, err := zstd.NewWriter(nil, zstd.WithWindowSize(1<<20))
	if err != nil {
		t.Fatal(err)
	}
	return enc.EncodeAll(b, nil)
}

// timage is an image of a docker-save archive built by a test.
type timage struct {
	tags   []string
	layers [][]byte // as stored: a layer may be compressed
	// diffIDs overrides the config's diff_ids when set.
	diffIDs []string
}

// dockerArchive builds a docker-save archive the way docker 25 does
// (blobs/sha256/<hex>), then lets edit change its entries (or manifest)
// before they are written, to make hostile variants.
func dockerArchive(t testing.TB, imgs []timage, edit func(entries []tentry, manifest []dockerManifestEntry) ([]tentry, []dockerManifestEntry)) []byte {
	t.Helper()
	var entries []tentry
	var manifest []dockerManifestEntry
	seen := map[string]bool{}
	addBlob := func(b []byte) string {
		n := "blobs/sha256/" + sha(b)
		if !seen[n] {
			seen[n] = true
			entries = append(entries, tentry{name: n, body: string(b), mode: 0o644})
		}
		return n
	}
	for _, img := range imgs {
		cfg := v1.ConfigFile{Architecture: "amd64", OS: "linux", RootFS: v1.RootFS{Type: "layers"}}
		d := dockerManifestEntry{RepoTags: img.tags}
		for i, l := range img.layers {
			diff := sha(decompressForTest(t, l))
			if img.diffIDs != nil {
				diff = img.diffIDs[i]
			}
			cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, v1.Hash{Algorithm: "sha256", Hex: diff})
			d.Layers = append(d.Layers, addBlob(l))
		}
		raw, err := json.Marshal(cfg)
		if err != nil {
			t.Fatal(err)
		}
		d.Config = addBlob(raw)
		manifest = append(manifest, d)
	}
	if edit != nil {
		entries, manifest = edit(entries, manifest)
	}
	m, err := json.Marshal(manifest)
	if err != nil {
		t.Fatal(err)
	}
	all := append([]tentry{{name: "manifest.json", body: string(m), mode: 0o644}, dir("blobs/"), dir("blobs/sha256/")}, entries...)
	return mkTar(t, all...)
}

func decompressForTest(t testing.TB, b []byte) []byte {
	t.Helper()
	l := layer{open: openBytes(b), where: "test"}
	s, err := l.tarStream()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var out bytes.Buffer
	if _, err := out.ReadFrom(s.tar); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// writeFile writes b to a new file called name in a temporary directory.
func writeFile(t testing.TB, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// runtimeLayers is a two-layer runtime image: the second layer replaces a
// file, deletes one with a whiteout and clears a directory with an opaque
// whiteout, so extraction must apply them in order.
func runtimeLayers(t testing.TB) [][]byte {
	l1 := mkTar(t,
		dir("bin/"), file("bin/containerd", "containerd-old"), file("bin/kubelet", "kubelet-1"),
		file("bin/gone", "deleted by the next layer"),
		dir("charts/"), dir("charts/old/"), file("charts/old/a.yaml", "hidden by an opaque whiteout"),
		dir("etc/"), file("etc/not-extracted", "x"),
	)
	l2 := mkTar(t,
		dir("bin/"), file("bin/containerd", "containerd-new"), file("bin/.wh.gone", ""),
		tentry{name: "bin/runc", typ: tar.TypeSymlink, link: "containerd"},
		tentry{name: "bin/kubectl", typ: tar.TypeLink, link: "bin/kubelet"},
		dir("charts/old/"), file("charts/old/.wh..wh..opq", ""), file("charts/old/b.yaml", "kept"),
		file("charts/rke2-coredns.yaml", "apiVersion: helm.cattle.io/v1\n"),
	)
	return [][]byte{l1, gz(t, l2)}
}

func openBytes(b []byte) func() (io.ReadCloser, error) {
	return func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
}
