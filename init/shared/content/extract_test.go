package content

import (
	"archive/tar"
	"os"
	"path/filepath"
	"strings"
	"testing"

	ct "github.com/rke2os/rke2os/init/shared/content/contenttest"
)

// imageWithLayers opens an archive holding one runtime image of the given
// layers and returns that image.
func imageWithLayers(t *testing.T, img ct.Image) Image {
	t.Helper()
	img.Tags = []string{ct.RuntimeRef}
	imgs := openImages(t, ct.WriteFile(t, "img.tar", ct.DockerArchive(t, []ct.Image{img}, nil)))
	return find(t, imgs, runtimeName)
}

// hostileLayers are runtime images whose layers try to write outside the
// destination, or hold what has no place in /bin; want is what the error
// says.
func hostileLayers(t *testing.T) []struct {
	name string
	img  ct.Image
	want string
} {
	wrongDiffID := ct.Image{Layers: [][]byte{ct.Gzip(t, ct.Tar(t, ct.File("bin/kubelet", "k")))}, DiffIDs: []string{strings.Repeat("1", 64)}}
	return []struct {
		name string
		img  ct.Image
		want string
	}{
		{"dotdot", ct.Image{Layers: [][]byte{ct.Tar(t, ct.File("bin/../../evil", "x"))}}, `has a ".."`},
		{"absolute", ct.Image{Layers: [][]byte{ct.Tar(t, ct.File("/bin/evil", "x"))}}, "absolute path"},
		{"symlink absolute", ct.Image{Layers: [][]byte{ct.Tar(t, ct.Symlink("bin/sh", "/etc/passwd"))}}, "absolute path"},
		{"symlink escaping", ct.Image{Layers: [][]byte{ct.Tar(t, ct.Symlink("bin/evil", "../../evil"))}}, "outside the extracted files"},
		{"symlink then write through it", ct.Image{Layers: [][]byte{
			ct.Tar(t, ct.Symlink("bin", "../../..")),
			ct.Tar(t, ct.File("bin/evil", "x")),
		}}, "outside the extracted files"},
		// Each link of a chain stays inside when its target is read as
		// text ("d/.." is "."), but followed, d is bin, e is bin/.. (the
		// destination) and f is the destination's parent.
		{"symlink chain", ct.Image{Layers: [][]byte{ct.Tar(t,
			ct.Symlink("bin/d", "."), ct.Symlink("bin/e", "d/.."), ct.Symlink("bin/f", "e/.."),
		)}}, "outside the extracted files"},
		{"symlink chain at the top", ct.Image{Layers: [][]byte{ct.Tar(t,
			ct.Symlink("bin/d", ".."), ct.Symlink("bin/e", "d/bin/d/.."),
		)}}, "outside the extracted files"},
		// The same chain, made outward by a later layer that turns the
		// directory d, which the links went through, into a link.
		{"symlink chain turned outward by a later layer", ct.Image{Layers: [][]byte{
			ct.Tar(t, ct.Dir("bin/d/"), ct.Symlink("bin/e", "d/.."), ct.Symlink("bin/f", "e/..")),
			ct.Tar(t, ct.Symlink("bin/d", ".")),
		}}, "outside the extracted files"},
		{"write through a link turned outward", ct.Image{Layers: [][]byte{
			ct.Tar(t, ct.Dir("bin/d/"), ct.Symlink("bin/e", "d/.."), ct.Symlink("bin/f", "e/..")),
			ct.Tar(t, ct.Symlink("bin/d", "."), ct.File("bin/f/evil", "x")),
		}}, "outside the extracted files"},
		{"dotdot after a name not extracted", ct.Image{Layers: [][]byte{ct.Tar(t, ct.Symlink("bin/x", "nothing/../../.."))}}, "outside the extracted files"},
		{"symlink loop", ct.Image{Layers: [][]byte{ct.Tar(t, ct.Symlink("bin/a", "b/x"), ct.Symlink("bin/b", "a/x"), ct.Symlink("bin/c", "a/.."))}}, "links deep"},
		{"hardlink outside the selection", ct.Image{Layers: [][]byte{ct.Tar(t, ct.File("etc/shadow", "s"), ct.Hardlink("bin/shadow", "etc/shadow"))}}, "not among the extracted paths"},
		{"hardlink escaping", ct.Image{Layers: [][]byte{ct.Tar(t, ct.Hardlink("bin/x", "../../etc/passwd"))}}, `has a ".."`},
		{"char device", ct.Image{Layers: [][]byte{ct.Tar(t, ct.Entry{Name: "bin/null", Type: tar.TypeChar})}}, "character device"},
		{"fifo", ct.Image{Layers: [][]byte{ct.Tar(t, ct.Entry{Name: "bin/fifo", Type: tar.TypeFifo})}}, "FIFO"},
		{"whiteout of nothing", ct.Image{Layers: [][]byte{ct.Tar(t, ct.File("bin/.wh..", ""))}}, "whiteout of nothing"},
		// A compressed layer's diff_id is only known once decompressed:
		// the extraction must fail, and leave nothing, when it is wrong.
		{"compressed diff_id mismatch", wrongDiffID, "uncompressed sha256"},
	}
}

// TestExtractRefusesHostileLayers checks that hostile layers fail the
// extraction and leave nothing behind: no destination, no temporary
// directory, nothing beside them.
func TestExtractRefusesHostileLayers(t *testing.T) {
	for _, tc := range hostileLayers(t) {
		t.Run(tc.name, func(t *testing.T) {
			img := imageWithLayers(t, tc.img)
			parent := filepath.Join(t.TempDir(), "a", "b", "c")
			dest := filepath.Join(parent, "data")
			err := ExtractPaths(img, dest, []string{"/bin"})
			if err == nil {
				t.Fatal("ExtractPaths accepted it")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), "rke2-runtime") {
				t.Errorf("error %q does not name the image", err)
			}
			// Nothing at all under the test's temporary root but the
			// empty parent directories.
			top := filepath.Dir(filepath.Dir(filepath.Dir(parent)))
			filepath.Walk(top, func(p string, info os.FileInfo, err error) error {
				if err == nil && !info.IsDir() {
					t.Errorf("left behind: %s", p)
				}
				return nil
			})
			if ents, _ := os.ReadDir(parent); len(ents) != 0 {
				t.Errorf("left in %s: %v", parent, ents)
			}
		})
	}
}

// files lists the files (not directories) under dir.
func files(dir string) string {
	var got []string
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			got = append(got, rel)
		}
		return nil
	})
	return strings.Join(got, " ")
}

func TestExtractSelection(t *testing.T) {
	img := imageWithLayers(t, ct.Image{Layers: [][]byte{ct.Tar(t,
		ct.File("bin/a", "a"), ct.File("binary", "not under /bin"), ct.File("usr/local/bin/b", "b"),
		ct.Entry{Name: "dev/null", Type: tar.TypeChar}, // outside the selection: ignored
		ct.Entry{Name: "bin/w", Body: "group-writable setuid", Mode: 0o4777},
	)}})
	dest := filepath.Join(t.TempDir(), "out")
	if err := ExtractPaths(img, dest, []string{"bin/", "/usr/local/bin"}); err != nil {
		t.Fatal(err)
	}
	if got := files(dest); got != "bin/a bin/w usr/local/bin/b" {
		t.Errorf("extracted %v", got)
	}
	// Modes are kept as RKE2 keeps them: at most 0755.
	if fi, err := os.Stat(filepath.Join(dest, "bin/w")); err != nil || fi.Mode() != 0o755 {
		t.Errorf("bin/w: %v, %v; want mode 0755", fi.Mode(), err)
	}
	if err := ExtractPaths(img, dest, []string{"/bin"}); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("extracting onto an existing directory: %v", err)
	}
	if err := ExtractPaths(img, dest+"2", []string{"/../etc"}); err == nil {
		t.Error("a prefix with .. was taken")
	}
	if err := ExtractPaths(img, dest+"3", nil); err == nil {
		t.Error("no prefixes was taken")
	}
}

func TestExtractEverything(t *testing.T) {
	img := imageWithLayers(t, ct.Image{Layers: [][]byte{ct.Tar(t, ct.File("a", "1"), ct.File("d/e", "2"))}})
	dest := filepath.Join(t.TempDir(), "all")
	if err := ExtractPaths(img, dest, []string{"/"}); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dest, "d/e")); err != nil || string(b) != "2" {
		t.Errorf("d/e = %q, %v", b, err)
	}
}

func TestExtractWhiteoutsAboveThePrefix(t *testing.T) {
	lower := ct.Tar(t, ct.File("bin/a", "a"), ct.File("usr/local/bin/b", "b"))
	for _, tc := range []struct {
		name  string
		upper []byte
		want  string
	}{
		{"opaque root", ct.Tar(t, ct.File(".wh..wh..opq", ""), ct.File("bin/c", "c")), "bin/c"},
		{"whiteout of a parent", ct.Tar(t, ct.File(".wh.usr", "")), "bin/a"},
		{"opaque parent", ct.Tar(t, ct.Dir("usr/"), ct.File("usr/.wh..wh..opq", "")), "bin/a"},
		{"whiteout elsewhere", ct.Tar(t, ct.File("etc/.wh.passwd", "")), "bin/a usr/local/bin/b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := imageWithLayers(t, ct.Image{Layers: [][]byte{lower, tc.upper}})
			dest := filepath.Join(t.TempDir(), "out")
			if err := ExtractPaths(img, dest, []string{"/bin", "/usr/local/bin"}); err != nil {
				t.Fatal(err)
			}
			if got := files(dest); got != tc.want {
				t.Errorf("extracted %v, want %s", got, tc.want)
			}
		})
	}
}

// TestExtractKeepsLinksInside checks that links that stay inside when
// followed are kept, dangling ones too (a link into a path not extracted).
func TestExtractKeepsLinksInside(t *testing.T) {
	img := imageWithLayers(t, ct.Image{Layers: [][]byte{
		ct.Tar(t,
			ct.File("bin/busybox", "bb"), ct.Symlink("bin/sh", "busybox"),
			ct.Symlink("bin/self", "."), ct.Symlink("bin/up", "self/.."),
			ct.Symlink("bin/charts", "../charts"), ct.Symlink("bin/chart", "charts/../charts/a.yaml"),
			ct.Symlink("bin/lib", "../lib/x.so"), // not extracted: dangling
			ct.File("charts/a.yaml", "a"),
		),
		ct.Tar(t, ct.File("bin/self/new", "through a link inside")),
	}})
	dest := filepath.Join(t.TempDir(), "out")
	if err := ExtractPaths(img, dest, []string{"/bin", "/charts"}); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]string{"bin/sh": "bb", "bin/up/charts/a.yaml": "a", "bin/chart": "a", "bin/new": "through a link inside"} {
		if b, err := os.ReadFile(filepath.Join(dest, p)); err != nil || string(b) != want {
			t.Errorf("%s = %q, %v; want %q", p, b, err, want)
		}
	}
	if l, err := os.Readlink(filepath.Join(dest, "bin/lib")); err != nil || l != "../lib/x.so" {
		t.Errorf("bin/lib -> %q, %v", l, err)
	}
}

// TestExtractLayerSizeCap checks that a layer that expands past the cap is
// refused with an error naming it and the cap, compressed or not.
func TestExtractLayerSizeCap(t *testing.T) {
	big := ct.Tar(t, ct.File("bin/big", strings.Repeat("x", 8<<10)))
	for _, tc := range []struct {
		name  string
		layer []byte
	}{{"plain", big}, {"gzip", ct.Gzip(t, big)}} {
		t.Run(tc.name, func(t *testing.T) {
			img := imageWithLayers(t, ct.Image{Layers: [][]byte{tc.layer}})
			x, err := startExtraction(filepath.Join(t.TempDir(), "out"), []string{"/bin"})
			if err != nil {
				t.Fatal(err)
			}
			defer x.abort()
			x.maxLayerSize = 4 << 10
			_, err = x.applyLayer(&img.layers[0])
			if err == nil {
				t.Fatal("a layer over the cap was applied")
			}
			for _, want := range []string{img.layers[0].Where, "4096 bytes"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
			x.maxLayerSize = int64(len(big))
			if _, err := x.applyLayer(&img.layers[0]); err != nil {
				t.Errorf("a layer at the cap: %v", err)
			}
		})
	}
	if DefaultMaxLayerSize < 1<<30 {
		t.Errorf("DefaultMaxLayerSize %d is not well above the runtime layer's 263 MB", DefaultMaxLayerSize)
	}
}
