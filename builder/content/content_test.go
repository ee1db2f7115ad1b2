package content

import (
	"archive/tar"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const runtimeRef = "rancher/rke2-runtime:v1.34.4-rke2r1"

func testArchive(t testing.TB) []byte {
	return dockerArchive(t, []timage{
		{tags: []string{runtimeRef}, layers: runtimeLayers(t)},
		{tags: []string{"docker.io/rancher/mirrored-pause:3.10", "index.docker.io/rancher/pause:3.10"}, layers: [][]byte{mkTar(t, file("pause", "p"))}},
		{layers: [][]byte{mkTar(t, file("untagged", "u"))}},
	}, nil)
}

func TestOpenArchiveFormats(t *testing.T) {
	plain := testArchive(t)
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"images.tar", plain},
		{"images.tar.gz", gz(t, plain)},
		{"images.tar.zst", zst(t, plain)},
		// The compression is found by magic number, not by name.
		{"misnamed.tar", zst(t, plain)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tmp := t.TempDir()
			t.Setenv("TMPDIR", tmp)
			p := writeFile(t, tc.name, tc.data)
			s, err := Open(p)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, img := range s.Images() {
				names = append(names, img.Name)
				if !strings.HasPrefix(img.ID, "sha256:") || img.Source != p || img.Digest != "" {
					t.Errorf("image %s: ID %q Source %q Digest %q", img.Name, img.ID, img.Source, img.Digest)
				}
			}
			want := "docker.io/rancher/rke2-runtime:v1.34.4-rke2r1 docker.io/rancher/mirrored-pause:3.10 docker.io/rancher/pause:3.10 "
			if got := strings.Join(names, " "); got != want {
				t.Errorf("names = %q, want %q", got, want)
			}
			img, err := s.FindRuntime("v1.34.4+rke2r1")
			if err != nil {
				t.Fatal(err)
			}
			dest := filepath.Join(t.TempDir(), "data")
			if err := ExtractPaths(img, dest, []string{"/bin", "/charts"}); err != nil {
				t.Fatal(err)
			}
			checkRuntimeTree(t, dest)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			// The decompressed copies are gone with the set.
			if left, _ := os.ReadDir(tmp); len(left) != 0 {
				t.Errorf("temporary files left after Close: %v", left)
			}
		})
	}
}

// checkRuntimeTree checks what runtimeLayers gives once extracted.
func checkRuntimeTree(t *testing.T, dest string) {
	t.Helper()
	want := map[string]string{
		"bin/containerd":           "containerd-new",
		"bin/kubelet":              "kubelet-1",
		"bin/kubectl":              "kubelet-1",
		"bin/runc":                 "-> containerd",
		"charts/old/b.yaml":        "kept",
		"charts/rke2-coredns.yaml": "apiVersion: helm.cattle.io/v1\n",
	}
	got := map[string]string{}
	err := filepath.Walk(dest, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dest, p)
		switch {
		case info.Mode()&os.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			got[rel] = "-> " + l
		case info.Mode().IsRegular():
			b, _ := os.ReadFile(p)
			got[rel] = string(b)
			if rel == "bin/containerd" && info.Mode().Perm() != 0o755 {
				t.Errorf("%s mode %v, want 0755", rel, info.Mode())
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected %s (%q)", k, got[k])
		}
	}
}

func TestFindRuntimeMissing(t *testing.T) {
	p := writeFile(t, "a.tar", testArchive(t))
	s, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, err = s.FindRuntime("v1.35.0+rke2r1")
	if err == nil {
		t.Fatal("found a runtime that is not there")
	}
	for _, want := range []string{"docker.io/rancher/rke2-runtime:v1.35.0-rke2r1", p, "docker.io/rancher/rke2-runtime:v1.34.4-rke2r1"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	// Every spelling of Docker Hub finds it.
	for _, ref := range []string{runtimeRef, "docker.io/" + runtimeRef, "index.docker.io/" + runtimeRef} {
		if _, err := s.Find(ref); err != nil {
			t.Errorf("Find(%q): %v", ref, err)
		}
	}
	if _, err := s.FindRuntime("v1.34.4-rke2r1"); err != nil {
		t.Errorf("a version already in tag form: %v", err)
	}
}

func TestOpenDirectoryOfArchives(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "b-runtime.tar.zst"), zst(t, testArchive(t)), 0o644)
	other := dockerArchive(t, []timage{{tags: []string{"rancher/hardened-etcd:v3.6.7-build20250101"}, layers: [][]byte{mkTar(t, file("usr/local/bin/etcd", "e"))}}}, nil)
	os.WriteFile(filepath.Join(dir, "a-etcd.tar"), other, 0o644)
	os.WriteFile(filepath.Join(dir, "README.txt"), []byte("not an archive"), 0o644)
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	idx := s.Index()
	if len(idx) != 5 {
		t.Fatalf("index has %d entries, want 5 (pause has two tags): %+v", len(idx), idx)
	}
	// Sorted by name; untagged first.
	if idx[0].Name != "" || idx[1].Name != "docker.io/rancher/hardened-etcd:v3.6.7-build20250101" || idx[1].Archive != "a-etcd.tar" {
		t.Errorf("index = %+v", idx)
	}
	b, err := s.IndexJSON()
	if err != nil {
		t.Fatal(err)
	}
	var back []IndexEntry
	if err := json.Unmarshal(b, &back); err != nil || len(back) != 5 || back[4].Archive != "b-runtime.tar.zst" {
		t.Errorf("IndexJSON = %s (%v)", b, err)
	}
}

func TestNormalizeName(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{in: "rancher/rke2-runtime:v1", want: "docker.io/rancher/rke2-runtime:v1"},
		{in: "docker.io/rancher/rke2-runtime:v1", want: "docker.io/rancher/rke2-runtime:v1"},
		{in: "index.docker.io/rancher/rke2-runtime:v1", want: "docker.io/rancher/rke2-runtime:v1"},
		{in: "Docker.IO/busybox:1", want: "docker.io/library/busybox:1"},
		{in: "busybox:1", want: "docker.io/library/busybox:1"},
		{in: "registry.example.com:5000/a/b:c", want: "registry.example.com:5000/a/b:c"},
		{in: "localhost:5000/a:1", want: "localhost:5000/a:1"},
		{in: "rancher/x@sha256:" + strings.Repeat("a", 64), want: "docker.io/rancher/x@sha256:" + strings.Repeat("a", 64)},
		{in: "rancher/x", err: "no tag"},
		{in: "localhost:5000/a", err: "no tag"},
		{in: "UPPER/x:1", err: "image name"},
		{in: "", err: "image name"},
	} {
		got, err := NormalizeName(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("NormalizeName(%q) = %q, %v; want error %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("NormalizeName(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

// TestHostileArchives builds archives that try to reach outside, carry what
// an image archive never does, or lie about their contents, and checks that
// Open refuses each with an error naming the problem.
func TestHostileArchives(t *testing.T) {
	good := []timage{{tags: []string{runtimeRef}, layers: [][]byte{mkTar(t, file("bin/kubelet", "k"))}}}
	add := func(extra ...tentry) func([]tentry, []dockerManifestEntry) ([]tentry, []dockerManifestEntry) {
		return func(es []tentry, m []dockerManifestEntry) ([]tentry, []dockerManifestEntry) {
			return append(es, extra...), m
		}
	}
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"dotdot", dockerArchive(t, good, add(file("../evil", "x"))), `"../evil" has a ".."`},
		{"dotdot inside", dockerArchive(t, good, add(file("blobs/../../evil", "x"))), `has a ".."`},
		{"absolute", dockerArchive(t, good, add(file("/etc/evil", "x"))), "absolute path"},
		{"symlink escaping", dockerArchive(t, good, add(tentry{name: "blobs/x", typ: tar.TypeSymlink, link: "../../etc/passwd"})), "outside the archive"},
		{"symlink absolute", dockerArchive(t, good, add(tentry{name: "x", typ: tar.TypeSymlink, link: "/etc/passwd"})), "outside the archive"},
		{"hardlink escaping", dockerArchive(t, good, add(tentry{name: "x", typ: tar.TypeLink, link: "../etc/passwd"})), "outside the archive"},
		{"char device", dockerArchive(t, good, add(tentry{name: "dev/null", typ: tar.TypeChar})), "character device"},
		{"block device", dockerArchive(t, good, add(tentry{name: "dev/sda", typ: tar.TypeBlock})), "block device"},
		{"fifo", dockerArchive(t, good, add(tentry{name: "fifo", typ: tar.TypeFifo})), "FIFO"},
		{"duplicate", dockerArchive(t, good, add(file("manifest.json", "[]"))), "appears twice"},
		{"missing layer", dockerArchive(t, good, func(es []tentry, m []dockerManifestEntry) ([]tentry, []dockerManifestEntry) {
			return es[1:], m // the layer is the first blob
		}), "does not hold"},
		{"missing config", dockerArchive(t, good, func(es []tentry, m []dockerManifestEntry) ([]tentry, []dockerManifestEntry) {
			return es[:1], m
		}), "does not hold"},
		{"layer outside", dockerArchive(t, good, func(es []tentry, m []dockerManifestEntry) ([]tentry, []dockerManifestEntry) {
			m[0].Layers[0] = "../" + m[0].Layers[0]
			return es, m
		}), "not a path inside the archive"},
		{"layer digest mismatch", dockerArchive(t, good, func(es []tentry, m []dockerManifestEntry) ([]tentry, []dockerManifestEntry) {
			es[0].body = string(mkTar(t, file("bin/kubelet", "evil")))
			return es, m
		}), "its name says"},
		{"diff_id mismatch", dockerArchive(t, []timage{{tags: []string{runtimeRef}, layers: good[0].layers, diffIDs: []string{strings.Repeat("0", 64)}}}, nil), "diff_id says"},
		{"config digest mismatch", dockerArchive(t, good, func(es []tentry, m []dockerManifestEntry) ([]tentry, []dockerManifestEntry) {
			es[1].body = strings.Replace(es[1].body, "amd64", "arm64", 1)
			return es, m
		}), "config blobs/sha256/"},
		{"too few diff_ids", dockerArchive(t, good, func(es []tentry, m []dockerManifestEntry) ([]tentry, []dockerManifestEntry) {
			m[0].Layers = append(m[0].Layers, m[0].Layers[0])
			return es, m
		}), "1 diff_ids for 2 layers"},
		{"bad tag", dockerArchive(t, []timage{{tags: []string{"Not A Name"}, layers: good[0].layers}}, nil), "image name"},
		{"no manifest", mkTar(t, file("hello", "x")), "not an image archive"},
		{"empty manifest", mkTar(t, file("manifest.json", "[]")), "lists no images"},
		{"not json", mkTar(t, file("manifest.json", "{")), "manifest.json"},
		{"not a tar", []byte("hello, this is not a tar archive at all, but it is long enough to have a header block? no" + strings.Repeat("x", 600)), "read tar"},
		{"garbage after zstd", append(zst(t, mkTar(t, file("manifest.json", "[]"))), []byte("trailing garbage")...), "decompress"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("TMPDIR", t.TempDir())
			p := writeFile(t, "hostile.tar", tc.data)
			s, err := Open(p)
			if err == nil {
				s.Close()
				t.Fatalf("Open accepted it")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), p) {
				t.Errorf("error %q does not name the archive", err)
			}
			if left, _ := os.ReadDir(os.Getenv("TMPDIR")); len(left) != 0 {
				t.Errorf("temporary files left: %v", left)
			}
		})
	}
}

// TestArchiveLinksInside checks that links inside an archive that stay
// inside it work, as older docker save wrote them for shared layers.
func TestArchiveLinksInside(t *testing.T) {
	l := mkTar(t, file("bin/kubelet", "k"))
	data := dockerArchive(t, []timage{{tags: []string{runtimeRef}, layers: [][]byte{l}}}, func(es []tentry, m []dockerManifestEntry) ([]tentry, []dockerManifestEntry) {
		es = append(es,
			dir("legacy/"),
			tentry{name: "legacy/layer.tar", typ: tar.TypeSymlink, link: "../" + m[0].Layers[0]},
			tentry{name: "legacy/hard.tar", typ: tar.TypeLink, link: m[0].Layers[0]})
		m = append(m, dockerManifestEntry{Config: m[0].Config, RepoTags: []string{"rancher/a:1"}, Layers: []string{"legacy/layer.tar"}},
			dockerManifestEntry{Config: m[0].Config, RepoTags: []string{"rancher/b:1"}, Layers: []string{"legacy/hard.tar"}})
		return es, m
	})
	s, err := Open(writeFile(t, "links.tar", data))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, ref := range []string{"rancher/a:1", "rancher/b:1"} {
		img, err := s.Find(ref)
		if err != nil {
			t.Fatal(err)
		}
		dest := filepath.Join(t.TempDir(), "x")
		if err := ExtractPaths(img, dest, []string{"/bin"}); err != nil {
			t.Fatalf("%s: %v", ref, err)
		}
		if b, _ := os.ReadFile(filepath.Join(dest, "bin/kubelet")); string(b) != "k" {
			t.Errorf("%s: kubelet = %q", ref, b)
		}
	}
}

func TestOptions(t *testing.T) {
	tmp := t.TempDir()
	data := zst(t, testArchive(t))
	p := writeFile(t, "a.tar.zst", data)
	s := NewSet(WithTempDir(tmp))
	if err := s.Add(p); err != nil {
		t.Fatal(err)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 1 {
		t.Errorf("want the one decompressed copy in the temp dir, got %v", left)
	}
	s.Close()
	// A compressed archive larger than the limit once decompressed.
	s = NewSet(WithTempDir(tmp), WithMaxSize(1000))
	if err := s.Add(p); err == nil || !strings.Contains(err.Error(), "limit of 1000 bytes") {
		t.Errorf("over the size limit: %v", err)
	}
	s.Close()
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("left in the temp dir: %v", left)
	}
}
