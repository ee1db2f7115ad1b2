package content

import (
	"archive/tar"
	"os"
	"path/filepath"
	"strings"
	"testing"

	ct "github.com/rke2os/rke2os/init/shared/content/contenttest"
)

// openImages opens an archive and reads its images, closing it with the test.
func openImages(t *testing.T, p string) []Image {
	t.Helper()
	a, err := OpenArchive(p, t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	imgs, err := a.Images()
	if err != nil {
		t.Fatal(err)
	}
	return imgs
}

// find returns the image called name (normalised) among imgs.
func find(t *testing.T, imgs []Image, name string) Image {
	t.Helper()
	for _, img := range imgs {
		if img.Name == name {
			return img
		}
	}
	t.Fatalf("no %s among %d images", name, len(imgs))
	return Image{}
}

const runtimeName = "docker.io/" + ct.RuntimeRef

func TestOpenArchiveFormats(t *testing.T) {
	plain := ct.MixedArchive(t)
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"images.tar", plain},
		{"images.tar.gz", ct.Gzip(t, plain)},
		{"images.tar.zst", ct.Zstd(t, plain)},
		// The compression is found by magic number, not by name.
		{"misnamed.tar", ct.Zstd(t, plain)},
		// manifest.json last, configs named sha256:<hex>, layers <hex>.tar.gz.
		{"ggcr.tar", ct.GGCRTarball(t)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tmp := t.TempDir()
			p := ct.WriteFile(t, tc.name, tc.data)
			a, err := OpenArchive(p, tmp, 0)
			if err != nil {
				t.Fatal(err)
			}
			imgs, err := a.Images()
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, img := range imgs {
				names = append(names, img.Name)
				if !strings.HasPrefix(img.ID, "sha256:") || img.Source != p || img.Digest != "" {
					t.Errorf("image %s: ID %q Source %q Digest %q", img.Name, img.ID, img.Source, img.Digest)
				}
			}
			want := "docker.io/rancher/rke2-runtime:v1.34.4-rke2r1 docker.io/rancher/mirrored-pause:3.10 docker.io/rancher/pause:3.10 "
			if tc.name == "ggcr.tar" {
				want = "docker.io/rancher/mirrored-pause:3.10 docker.io/rancher/rke2-runtime:v1.34.4-rke2r1"
			}
			if got := strings.Join(names, " "); got != want {
				t.Errorf("names = %q, want %q", got, want)
			}
			dest := filepath.Join(t.TempDir(), "data")
			if err := ExtractPaths(find(t, imgs, runtimeName), dest, []string{"/bin", "/charts"}); err != nil {
				t.Fatal(err)
			}
			ct.CheckRuntimeTree(t, dest)
			if err := a.Close(); err != nil {
				t.Fatal(err)
			}
			// The decompressed copy is gone with the archive.
			if left, _ := os.ReadDir(tmp); len(left) != 0 {
				t.Errorf("temporary files left after Close: %v", left)
			}
		})
	}
}

// TestHostileArchives builds archives that try to reach outside, carry what
// an image archive never does, or lie about their contents, and checks that
// both readers refuse each with an error naming the problem: the index
// (OpenArchive and Images) and the single pass of Bootstrap.
func TestHostileArchives(t *testing.T) {
	good := []ct.Image{{Tags: []string{ct.RuntimeRef}, Layers: [][]byte{ct.Tar(t, ct.File("bin/kubelet", "k"))}}}
	add := func(extra ...ct.Entry) func([]ct.Entry, []ct.ManifestEntry) ([]ct.Entry, []ct.ManifestEntry) {
		return func(es []ct.Entry, m []ct.ManifestEntry) ([]ct.Entry, []ct.ManifestEntry) {
			return append(extra, es...), m
		}
	}
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"dotdot", ct.DockerArchive(t, good, add(ct.File("../evil", "x"))), `"../evil" has a ".."`},
		{"dotdot inside", ct.DockerArchive(t, good, add(ct.File("blobs/../../evil", "x"))), `has a ".."`},
		{"absolute", ct.DockerArchive(t, good, add(ct.File("/etc/evil", "x"))), "absolute path"},
		{"symlink escaping", ct.DockerArchive(t, good, add(ct.Symlink("blobs/x", "../../etc/passwd"))), "outside the archive"},
		{"symlink absolute", ct.DockerArchive(t, good, add(ct.Symlink("x", "/etc/passwd"))), "outside the archive"},
		{"hardlink escaping", ct.DockerArchive(t, good, add(ct.Hardlink("x", "../etc/passwd"))), "outside the archive"},
		{"char device", ct.DockerArchive(t, good, add(ct.Entry{Name: "dev/null", Type: tar.TypeChar})), "character device"},
		{"block device", ct.DockerArchive(t, good, add(ct.Entry{Name: "dev/sda", Type: tar.TypeBlock})), "block device"},
		{"fifo", ct.DockerArchive(t, good, add(ct.Entry{Name: "fifo", Type: tar.TypeFifo})), "FIFO"},
		{"duplicate", ct.DockerArchive(t, good, add(ct.File("blobs/x", "1"), ct.File("blobs/x", "2"))), "appears twice"},
		{"missing layer", ct.DockerArchive(t, good, func(es []ct.Entry, m []ct.ManifestEntry) ([]ct.Entry, []ct.ManifestEntry) {
			return es[1:], m // the layer is the first blob
		}), "does not hold"},
		{"missing config", ct.DockerArchive(t, good, func(es []ct.Entry, m []ct.ManifestEntry) ([]ct.Entry, []ct.ManifestEntry) {
			return es[:1], m
		}), "does not hold"},
		{"layer outside", ct.DockerArchive(t, good, func(es []ct.Entry, m []ct.ManifestEntry) ([]ct.Entry, []ct.ManifestEntry) {
			m[0].Layers[0] = "../" + m[0].Layers[0]
			return es, m
		}), "not a path inside the archive"},
		{"layer digest mismatch", ct.DockerArchive(t, good, func(es []ct.Entry, m []ct.ManifestEntry) ([]ct.Entry, []ct.ManifestEntry) {
			es[0].Body = string(ct.Tar(t, ct.File("bin/kubelet", "evil")))
			return es, m
		}), "corrupt or tampered"},
		{"diff_id mismatch", ct.DockerArchive(t, []ct.Image{{Tags: []string{ct.RuntimeRef}, Layers: good[0].Layers, DiffIDs: []string{strings.Repeat("0", 64)}}}, nil), "corrupt or tampered"},
		{"config digest mismatch", ct.DockerArchive(t, good, func(es []ct.Entry, m []ct.ManifestEntry) ([]ct.Entry, []ct.ManifestEntry) {
			es[1].Body = strings.Replace(es[1].Body, "amd64", "arm64", 1)
			return es, m
		}), "config blobs/sha256/"},
		{"too few diff_ids", ct.DockerArchive(t, good, func(es []ct.Entry, m []ct.ManifestEntry) ([]ct.Entry, []ct.ManifestEntry) {
			m[0].Layers = append(m[0].Layers, m[0].Layers[0])
			return es, m
		}), "1 diff_ids for 2 layers"},
		{"bad tag", ct.DockerArchive(t, []ct.Image{{Tags: []string{"Not A Name"}, Layers: good[0].Layers}}, nil), "image name"},
		{"no manifest", ct.Tar(t, ct.File("hello", "x")), "manifest.json"},
		{"empty manifest", ct.Tar(t, ct.File("manifest.json", "[]")), "lists no images"},
		{"not json", ct.Tar(t, ct.File("manifest.json", "{")), "manifest.json"},
		{"not a tar", []byte("hello, this is not a tar archive at all" + strings.Repeat("x", 600)), "tar"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tmp := t.TempDir()
			p := ct.WriteFile(t, "hostile.tar", tc.data)
			err := readWhole(p, tmp)
			if err == nil {
				t.Fatalf("OpenArchive accepted it")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("OpenArchive: error %q does not say %q", err, tc.want)
			}
			if left, _ := os.ReadDir(tmp); len(left) != 0 {
				t.Errorf("temporary files left: %v", left)
			}
			// The single pass refuses it too, and leaves nothing.
			dest := filepath.Join(t.TempDir(), "out")
			x, err := startExtraction(dest, []string{"/bin"})
			if err != nil {
				t.Fatal(err)
			}
			_, _, err = extractImage(t.Context(), p, runtimeName, tmp, x)
			x.abort()
			if err == nil {
				t.Fatalf("the single pass accepted it")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("single pass: error %q does not say %q", err, tc.want)
			}
			if left, _ := os.ReadDir(filepath.Dir(dest)); len(left) != 0 {
				t.Errorf("left behind: %v", left)
			}
		})
	}
}

// readWhole opens an archive, reads its images and extracts each, as the
// builder checks what it bakes.
func readWhole(p, tmp string) error {
	a, err := OpenArchive(p, tmp, 0)
	if err != nil {
		return err
	}
	defer a.Close()
	imgs, err := a.Images()
	if err != nil {
		return err
	}
	for _, img := range imgs {
		if err := ExtractPaths(img, filepath.Join(tmp, "x"), []string{"/"}); err != nil {
			return err
		}
		os.RemoveAll(filepath.Join(tmp, "x"))
	}
	return nil
}

// TestArchiveLinksInside checks that links inside an archive that stay
// inside it work, as older docker save wrote them for shared layers.
func TestArchiveLinksInside(t *testing.T) {
	l := ct.Tar(t, ct.File("bin/kubelet", "k"))
	data := ct.DockerArchive(t, []ct.Image{{Tags: []string{"rancher/c:1"}, Layers: [][]byte{l}}}, func(es []ct.Entry, m []ct.ManifestEntry) ([]ct.Entry, []ct.ManifestEntry) {
		es = append(es,
			ct.Dir("legacy/"),
			ct.Symlink("legacy/layer.tar", "../"+m[0].Layers[0]),
			ct.Hardlink("legacy/hard.tar", m[0].Layers[0]))
		m = append(m, ct.ManifestEntry{Config: m[0].Config, RepoTags: []string{"rancher/a:1"}, Layers: []string{"legacy/layer.tar"}},
			ct.ManifestEntry{Config: m[0].Config, RepoTags: []string{ct.RuntimeRef}, Layers: []string{"legacy/hard.tar"}})
		return es, m
	})
	p := ct.WriteFile(t, "links.tar", data)
	imgs := openImages(t, p)
	for _, ref := range []string{"docker.io/rancher/a:1", runtimeName} {
		dest := filepath.Join(t.TempDir(), "x")
		if err := ExtractPaths(find(t, imgs, ref), dest, []string{"/bin"}); err != nil {
			t.Fatalf("%s: %v", ref, err)
		}
		if b, _ := os.ReadFile(filepath.Join(dest, "bin/kubelet")); string(b) != "k" {
			t.Errorf("%s: kubelet = %q", ref, b)
		}
	}
	// The single pass follows them too.
	dest := filepath.Join(t.TempDir(), "y")
	x, err := startExtraction(dest, []string{"/bin"})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := extractImage(t.Context(), p, runtimeName, t.TempDir(), x); err != nil {
		t.Fatal(err)
	}
	if err := x.commit(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dest, "bin/kubelet")); string(b) != "k" {
		t.Errorf("single pass: kubelet = %q", b)
	}
}

func TestOpenArchiveMaxSize(t *testing.T) {
	tmp := t.TempDir()
	p := ct.WriteFile(t, "a.tar.zst", ct.Zstd(t, ct.MixedArchive(t)))
	if a, err := OpenArchive(p, tmp, 1000); err == nil {
		a.Close()
		t.Error("an archive over the size limit was read")
	} else if !strings.Contains(err.Error(), "limit of 1000 bytes") {
		t.Errorf("over the size limit: %v", err)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("left in the temp dir: %v", left)
	}
	trailing := append(ct.Zstd(t, ct.Tar(t, ct.File("manifest.json", "[]"))), []byte("trailing garbage")...)
	if a, err := OpenArchive(ct.WriteFile(t, "b.tar.zst", trailing), tmp, 0); err == nil {
		a.Close()
		t.Error("garbage after the zstd stream was taken")
	}
}
