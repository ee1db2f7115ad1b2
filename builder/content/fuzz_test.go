package content

import (
	"archive/tar"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// checkSandbox fails unless the sandbox holds nothing but dest (and what is
// under it): whatever an archive says, nothing may be written beside it.
func checkSandbox(t *testing.T, sandbox, dest string) {
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
			rel, _ := filepath.Rel(dest, filepath.Join(filepath.Dir(p), l))
			if filepath.IsAbs(l) || rel == ".." || strings.HasPrefix(rel, "../") {
				t.Fatalf("symlink %s -> %s points outside the destination", p, l)
			}
		}
		if info.Mode()&(os.ModeDevice|os.ModeNamedPipe|os.ModeSocket) != 0 {
			t.Fatalf("special file %s extracted", p)
		}
		return nil
	})
}

// openAndExtractAll opens an archive and extracts every image whole into a
// fresh sandbox, checking the sandbox after each.
func openAndExtractAll(t *testing.T, data []byte) {
	tmp := t.TempDir()
	p := filepath.Join(tmp, "fuzz.tar")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := Open(p)
	if err != nil {
		return
	}
	defer s.Close()
	for _, img := range s.Images() {
		sandbox := t.TempDir()
		dest := filepath.Join(sandbox, "out")
		ExtractPaths(img, dest, []string{"/"})
		checkSandbox(t, sandbox, dest)
	}
}

func FuzzReadArchive(f *testing.F) {
	good := testArchive(f)
	f.Add(good)
	f.Add(gz(f, good))
	f.Add(zst(f, good))
	f.Add(mkTar(f, file("manifest.json", `[{"Config":"c","RepoTags":["a:1"],"Layers":["l"]}]`), file("c", `{"rootfs":{"type":"layers","diff_ids":["sha256:`+strings.Repeat("0", 64)+`"]}}`), file("l", "")))
	f.Add(mkTar(f, file("manifest.json", `[]`), tentry{name: "a", typ: tar.TypeSymlink, link: "b"}, tentry{name: "b", typ: tar.TypeSymlink, link: "a"}))
	f.Fuzz(func(t *testing.T, data []byte) {
		openAndExtractAll(t, data)
	})
}

// FuzzExtractLayer fuzzes the layer tar itself, wrapped in an archive whose
// config vouches for it, so that every layer the fuzzer finds is extracted.
func FuzzExtractLayer(f *testing.F) {
	for _, l := range runtimeLayers(f) {
		f.Add(decompressForTest(f, l))
	}
	f.Add(mkTar(f, tentry{name: "bin/x", typ: tar.TypeSymlink, link: "../.."}, file("bin/x/y", "z")))
	f.Add(mkTar(f, tentry{name: "bin", typ: tar.TypeSymlink, link: "."}, file("bin/bin/y", "z")))
	f.Add(mkTar(f, file("a", "1"), tentry{name: "b", typ: tar.TypeLink, link: "a"}, file(".wh.a", ""), dir("d/"), file("d/.wh..wh..opq", "")))
	f.Fuzz(func(t *testing.T, layerTar []byte) {
		cfg, _ := json.Marshal(v1.ConfigFile{RootFS: v1.RootFS{Type: "layers", DiffIDs: []v1.Hash{{Algorithm: "sha256", Hex: sha(layerTar)}}}})
		m, _ := json.Marshal([]dockerManifestEntry{{Config: "blobs/sha256/" + sha(cfg), RepoTags: []string{runtimeRef}, Layers: []string{"blobs/sha256/" + sha(layerTar)}}})
		openAndExtractAll(t, mkTar(t,
			file("manifest.json", string(m)),
			file("blobs/sha256/"+sha(cfg), string(cfg)),
			file("blobs/sha256/"+sha(layerTar), string(layerTar))))
	})
}

func FuzzParseRegistries(f *testing.F) {
	f.Add([]byte("mirrors:\n  docker.io:\n    endpoint: [\"https://m:5000\"]\n    rewrite:\n      \"^rancher/(.*)\": \"x/$1\"\nconfigs:\n  m:5000:\n    auth: {username: u, password: p}\n"))
	f.Add([]byte("mirrors:\n  \"*\":\n    endpoint: [\"http://a\"]\n"))
	f.Add([]byte("{}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseRegistries(data, "fuzz")
		if err != nil {
			return
		}
		// A registries.yaml that parses resolves every name without panic.
		for _, ref := range []string{"rancher/rke2-runtime:v1", "quay.io/a/b:1", "localhost:5000/x@sha256:" + strings.Repeat("a", 64)} {
			r.Endpoints(ref)
		}
	})
}

func FuzzNormalizeName(f *testing.F) {
	for _, s := range []string{"rancher/x:1", "index.docker.io/a/b:c", "Docker.IO/x:1", "h:5000/a@sha256:" + strings.Repeat("a", 64), "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ref string) {
		n, err := NormalizeName(ref)
		if err != nil {
			return
		}
		// Normalising is idempotent.
		again, err := NormalizeName(n)
		if err != nil || again != n {
			t.Fatalf("NormalizeName(%q) = %q, then %q, %v", ref, n, again, err)
		}
	})
}
