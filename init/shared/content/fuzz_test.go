package content

import (
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	ct "github.com/rke2os/rke2os/init/shared/content/contenttest"
)

// readBothWays reads an archive with both readers: the index (every image
// extracted whole) and the single pass of Bootstrap (the runtime's /bin and
// /charts). Neither may write outside its destination, and when both read
// the runtime they must extract the same files.
func readBothWays(t *testing.T, data []byte) {
	tmp := t.TempDir()
	p := filepath.Join(tmp, "fuzz.tar")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	var indexed string
	if a, err := OpenArchive(p, tmp, 1<<24); err == nil {
		imgs, _ := a.Images()
		for _, img := range imgs {
			sandbox := t.TempDir()
			dest := filepath.Join(sandbox, "out")
			ExtractPaths(img, dest, []string{"/"})
			ct.CheckSandbox(t, sandbox, dest)
			if img.Name == runtimeName && indexed == "" {
				rt := filepath.Join(t.TempDir(), "rt")
				if ExtractPaths(img, rt, []string{"/bin", "/charts"}) == nil {
					indexed = treeString(t, rt)
				}
			}
		}
		a.Close()
	}
	sandbox := t.TempDir()
	dest := filepath.Join(sandbox, "out")
	x, err := startExtraction(dest, []string{"/bin", "/charts"})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := extractImage(t.Context(), p, runtimeName, t.TempDir(), x); err != nil {
		x.abort()
		ct.CheckSandbox(t, sandbox, dest)
		return
	}
	if err := x.commit(); err != nil {
		t.Fatal(err)
	}
	ct.CheckSandbox(t, sandbox, dest)
	if streamed := treeString(t, dest); indexed != "" && streamed != indexed {
		t.Fatalf("the two readers disagree:\nindexed  %s\nstreamed %s", indexed, streamed)
	}
}

func treeString(t *testing.T, dir string) string {
	tree := ct.Tree(t, dir)
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(tree)) {
		b.WriteString(k + "=" + tree[k] + ";")
	}
	return b.String()
}

func FuzzReadArchive(f *testing.F) {
	good := ct.MixedArchive(f)
	f.Add(good)
	f.Add(ct.Gzip(f, good))
	f.Add(ct.Zstd(f, good))
	f.Add(ct.Archive{Images: withPause(ct.RuntimeLayers(f)), ManifestLast: true}.Bytes(f))
	f.Add(ct.Tar(f, ct.File("manifest.json", `[{"Config":"c","RepoTags":["`+ct.RuntimeRef+`"],"Layers":["l","l"]}]`), ct.File("c", `{"rootfs":{"type":"layers","diff_ids":["sha256:`+strings.Repeat("0", 64)+`"]}}`), ct.File("l", "")))
	f.Add(ct.Tar(f, ct.File("manifest.json", `[]`), ct.Symlink("a", "b"), ct.Symlink("b", "a")))
	f.Fuzz(func(t *testing.T, data []byte) {
		readBothWays(t, data)
	})
}

// FuzzExtractLayer fuzzes the layer tar itself, wrapped in an archive whose
// config vouches for it, so that every layer the fuzzer finds is extracted.
func FuzzExtractLayer(f *testing.F) {
	for _, l := range ct.RuntimeLayers(f) {
		f.Add(ct.Uncompressed(f, l))
	}
	f.Add(ct.Tar(f, ct.Symlink("bin/x", "../.."), ct.File("bin/x/y", "z")))
	f.Add(ct.Tar(f, ct.Symlink("bin", "."), ct.File("bin/bin/y", "z")))
	f.Add(ct.Tar(f, ct.File("a", "1"), ct.Hardlink("b", "a"), ct.File(".wh.a", ""), ct.Dir("d/"), ct.File("d/.wh..wh..opq", "")))
	f.Add(ct.Tar(f, ct.Symlink("d", "."), ct.Symlink("e", "d/.."), ct.Symlink("f", "e/..")))
	f.Add(ct.Tar(f, ct.Symlink("bin/d", "."), ct.Symlink("bin/e", "d/.."), ct.Symlink("bin/f", "e/.."), ct.File("bin/f/x", "y")))
	f.Add(ct.Tar(f, ct.Dir("bin/d/"), ct.Symlink("bin/e", "d/.."), ct.Symlink("bin/f", "e/.."), ct.Symlink("bin/d", ".")))
	f.Fuzz(func(t *testing.T, layerTar []byte) {
		cfg, _ := json.Marshal(v1.ConfigFile{RootFS: v1.RootFS{Type: "layers", DiffIDs: []v1.Hash{{Algorithm: "sha256", Hex: ct.Sha(layerTar)}}}})
		m, _ := json.Marshal([]ct.ManifestEntry{{Config: "blobs/sha256/" + ct.Sha(cfg), RepoTags: []string{ct.RuntimeRef}, Layers: []string{"blobs/sha256/" + ct.Sha(layerTar)}}})
		readBothWays(t, ct.Tar(t,
			ct.File("manifest.json", string(m)),
			ct.File("blobs/sha256/"+ct.Sha(cfg), string(cfg)),
			ct.File("blobs/sha256/"+ct.Sha(layerTar), string(layerTar))))
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
		for _, remote := range []*Remote{{Registries: r}, {Registries: r, DisableDefaultEndpoint: true}} {
			for _, ref := range []string{"rancher/rke2-runtime:v1", "quay.io/a/b:1", "localhost:5000/x@sha256:" + strings.Repeat("a", 64)} {
				remote.Endpoints(ref)
			}
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

// FuzzDataKey checks that a key, whatever the reference, is one plain
// directory name: it becomes data/<key>/ under the data directory.
func FuzzDataKey(f *testing.F) {
	for _, s := range []string{ct.RuntimeRef, "rancher/rke2-runtime@sha256:" + strings.Repeat("a", 64), "x:v1/..", "x:v..", "x:latest"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ref string) {
		k, err := DataKey(ref)
		if err != nil {
			return
		}
		if k == "" || k == "." || k == ".." || strings.ContainsAny(k, "/\\\x00") || filepath.Base(k) != k {
			t.Fatalf("DataKey(%q) = %q, not a plain directory name", ref, k)
		}
	})
}
