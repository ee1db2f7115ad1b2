package content

import (
	"archive/tar"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// imageWithLayers opens an archive holding one runtime image of the given
// layers and returns that image.
func imageWithLayers(t *testing.T, img timage) Image {
	t.Helper()
	img.tags = []string{runtimeRef}
	s, err := Open(writeFile(t, "img.tar", dockerArchive(t, []timage{img}, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	found, err := s.FindRuntime("v1.34.4+rke2r1")
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// TestExtractRefusesHostileLayers checks that layers trying to write
// outside the destination, or holding what has no place in /bin, fail the
// extraction and leave nothing behind: no destination, no temporary
// directory, nothing beside them.
func TestExtractRefusesHostileLayers(t *testing.T) {
	wrongDiffID := timage{layers: [][]byte{gz(t, mkTar(t, file("bin/kubelet", "k")))}, diffIDs: []string{strings.Repeat("1", 64)}}
	for _, tc := range []struct {
		name string
		img  timage
		want string
	}{
		{"dotdot", timage{layers: [][]byte{mkTar(t, file("bin/../../evil", "x"))}}, `has a ".."`},
		{"absolute", timage{layers: [][]byte{mkTar(t, file("/bin/evil", "x"))}}, "absolute path"},
		{"symlink absolute", timage{layers: [][]byte{mkTar(t, tentry{name: "bin/sh", typ: tar.TypeSymlink, link: "/etc/passwd"})}}, "absolute path"},
		{"symlink escaping", timage{layers: [][]byte{mkTar(t, tentry{name: "bin/evil", typ: tar.TypeSymlink, link: "../../evil"})}}, "outside the extracted files"},
		{"symlink then write through it", timage{layers: [][]byte{
			mkTar(t, tentry{name: "bin", typ: tar.TypeSymlink, link: "../../.."}),
			mkTar(t, file("bin/evil", "x")),
		}}, "outside the extracted files"},
		{"hardlink outside the selection", timage{layers: [][]byte{mkTar(t, file("etc/shadow", "s"), tentry{name: "bin/shadow", typ: tar.TypeLink, link: "etc/shadow"})}}, "not among the extracted paths"},
		{"hardlink escaping", timage{layers: [][]byte{mkTar(t, tentry{name: "bin/x", typ: tar.TypeLink, link: "../../etc/passwd"})}}, `has a ".."`},
		{"char device", timage{layers: [][]byte{mkTar(t, tentry{name: "bin/null", typ: tar.TypeChar})}}, "character device"},
		{"fifo", timage{layers: [][]byte{mkTar(t, tentry{name: "bin/fifo", typ: tar.TypeFifo})}}, "FIFO"},
		{"whiteout of nothing", timage{layers: [][]byte{mkTar(t, file("bin/.wh..", ""))}}, "whiteout of nothing"},
		// A compressed layer's diff_id is only known once decompressed:
		// the extraction must fail, and leave nothing, when it is wrong.
		{"compressed diff_id mismatch", wrongDiffID, "uncompressed sha256"},
	} {
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

func TestExtractSelection(t *testing.T) {
	img := imageWithLayers(t, timage{layers: [][]byte{mkTar(t,
		file("bin/a", "a"), file("binary", "not under /bin"), file("usr/local/bin/b", "b"),
		tentry{name: "dev/null", typ: tar.TypeChar}, // outside the selection: ignored
	)}})
	dest := filepath.Join(t.TempDir(), "out")
	if err := ExtractPaths(img, dest, []string{"bin/", "/usr/local/bin"}); err != nil {
		t.Fatal(err)
	}
	var got []string
	filepath.Walk(dest, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			rel, _ := filepath.Rel(dest, p)
			got = append(got, rel)
		}
		return nil
	})
	if strings.Join(got, " ") != "bin/a usr/local/bin/b" {
		t.Errorf("extracted %v", got)
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
	img := imageWithLayers(t, timage{layers: [][]byte{mkTar(t, file("a", "1"), file("d/e", "2"))}})
	dest := filepath.Join(t.TempDir(), "all")
	if err := ExtractPaths(img, dest, []string{"/"}); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dest, "d/e")); err != nil || string(b) != "2" {
		t.Errorf("d/e = %q, %v", b, err)
	}
}

func TestExtractWhiteoutsAboveThePrefix(t *testing.T) {
	lower := mkTar(t, file("bin/a", "a"), file("usr/local/bin/b", "b"))
	for _, tc := range []struct {
		name  string
		upper []byte
		want  string
	}{
		{"opaque root", mkTar(t, file(".wh..wh..opq", ""), file("bin/c", "c")), "bin/c"},
		{"whiteout of a parent", mkTar(t, file(".wh.usr", "")), "bin/a"},
		{"opaque parent", mkTar(t, dir("usr/"), file("usr/.wh..wh..opq", "")), "bin/a"},
		{"whiteout elsewhere", mkTar(t, file("etc/.wh.passwd", "")), "bin/a usr/local/bin/b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := imageWithLayers(t, timage{layers: [][]byte{lower, tc.upper}})
			dest := filepath.Join(t.TempDir(), "out")
			if err := ExtractPaths(img, dest, []string{"/bin", "/usr/local/bin"}); err != nil {
				t.Fatal(err)
			}
			var got []string
			filepath.Walk(dest, func(p string, info os.FileInfo, err error) error {
				if err == nil && !info.IsDir() {
					rel, _ := filepath.Rel(dest, p)
					got = append(got, rel)
				}
				return nil
			})
			if strings.Join(got, " ") != tc.want {
				t.Errorf("extracted %v, want %s", got, tc.want)
			}
		})
	}
}
