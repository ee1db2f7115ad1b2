package content

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
	ct "github.com/rke2os/rke2os/init/shared/content/contenttest"
)

// ociLayout writes a layout holding the runtime image named by containerd's
// annotation and, behind a multi-platform index named by ref.name, a pause
// image for amd64 and arm64.
func ociLayout(t testing.TB) string {
	dir := filepath.Join(t.TempDir(), "layout")
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	rt := ct.GGCRImage(t, "amd64", ct.UncompressedRuntimeLayers(t)...)
	if err := p.AppendImage(rt, layout.WithAnnotations(map[string]string{
		annotationContainerdName: runtimeName,
		annotationRefName:        "v1.34.4-rke2r1",
	})); err != nil {
		t.Fatal(err)
	}
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex),
		mutate.IndexAddendum{Add: ct.GGCRImage(t, "arm64", ct.Tar(t, ct.File("pause", "arm64"))), Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}},
		mutate.IndexAddendum{Add: ct.GGCRImage(t, "amd64", ct.Tar(t, ct.File("pause", "amd64"))), Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
	)
	if err := p.AppendIndex(idx, layout.WithAnnotations(map[string]string{annotationRefName: "rancher/mirrored-pause:3.10"})); err != nil {
		t.Fatal(err)
	}
	// An image named by a bare tag names no repository: untagged.
	if err := p.AppendImage(ct.GGCRImage(t, "amd64", ct.Tar(t, ct.File("x", "x"))), layout.WithAnnotations(map[string]string{annotationRefName: "latest"})); err != nil {
		t.Fatal(err)
	}
	return dir
}

// tarDir makes a tar of a directory's files, as `tar -C dir -c .` would.
func tarDir(t testing.TB, dir string) []byte {
	var es []ct.Entry
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		b, _ := os.ReadFile(p)
		es = append(es, ct.Entry{Name: rel, Body: string(b), Mode: 0o644})
		return nil
	})
	return ct.Tar(t, es...)
}

func TestOCILayout(t *testing.T) {
	dir := ociLayout(t)
	for _, src := range []string{dir, ct.WriteFile(t, "oci.tar.zst", ct.Zstd(t, tarDir(t, dir)))} {
		t.Run(filepath.Base(src), func(t *testing.T) {
			s, err := Open(src)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			var names []string
			for _, img := range s.Images() {
				names = append(names, img.Name)
				if !strings.HasPrefix(img.Digest, "sha256:") || !strings.HasPrefix(img.ID, "sha256:") {
					t.Errorf("%s: digest %q id %q", img.Name, img.Digest, img.ID)
				}
			}
			if got := strings.Join(names, ","); got != "docker.io/rancher/rke2-runtime:v1.34.4-rke2r1,docker.io/rancher/mirrored-pause:3.10," {
				t.Errorf("names = %s", got)
			}
			rt, err := s.FindRuntime("v1.34.4+rke2r1")
			if err != nil {
				t.Fatal(err)
			}
			dest := filepath.Join(t.TempDir(), "data")
			if err := ExtractPaths(rt, dest, []string{"/bin", "/charts"}); err != nil {
				t.Fatal(err)
			}
			ct.CheckRuntimeTree(t, dest)
			pause, err := s.Find("rancher/mirrored-pause:3.10")
			if err != nil {
				t.Fatal(err)
			}
			if err := ExtractPaths(pause, dest+"-pause", []string{"/"}); err != nil {
				t.Fatal(err)
			}
			if b, _ := os.ReadFile(filepath.Join(dest+"-pause", "pause")); string(b) != "amd64" {
				t.Errorf("pause is %q, want the amd64 one", b)
			}
		})
	}
}

func TestOCILayoutTampered(t *testing.T) {
	dir := ociLayout(t)
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	rt, err := s.FindRuntime("v1.34.4+rke2r1")
	s.Close()
	if err != nil {
		t.Fatal(err)
	}
	// Replace a layer blob with other bytes: a directory is not hashed
	// when opened, so the extraction must catch it.
	m, err := layout.Path(dir).Image(mustHash(t, rt.Digest))
	if err != nil {
		t.Fatal(err)
	}
	ls, _ := m.Layers()
	d, _ := ls[0].Digest()
	if err := os.WriteFile(filepath.Join(dir, "blobs/sha256", d.Hex), ct.Gzip(t, ct.Tar(t, ct.File("bin/kubelet", "evil"))), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rt, _ = s.FindRuntime("v1.34.4+rke2r1")
	dest := filepath.Join(t.TempDir(), "data")
	err = ExtractPaths(rt, dest, []string{"/bin"})
	if err == nil || !strings.Contains(err.Error(), "corrupt or tampered") {
		t.Errorf("tampered layer: %v", err)
	}
	if _, serr := os.Stat(dest); serr == nil {
		t.Error("destination exists after a failed extraction")
	}

	// Tampered metadata is caught when opened.
	os.WriteFile(filepath.Join(dir, "blobs/sha256", strings.TrimPrefix(rt.ID, "sha256:")), []byte(`{"architecture":"amd64"}`), 0o644)
	if s, err := Open(dir); err == nil {
		s.Close()
		t.Error("tampered config accepted")
	} else if !strings.Contains(err.Error(), "corrupt or tampered") {
		t.Errorf("tampered config: %v", err)
	}
}

func TestOCILayoutSymlinkOut(t *testing.T) {
	dir := ociLayout(t)
	// A blob that is a symlink out of the layout must not be read.
	secret := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(secret, []byte("secret"), 0o644)
	idx, _ := layout.Path(dir).ImageIndex()
	im, _ := idx.IndexManifest()
	blob := filepath.Join(dir, "blobs/sha256", im.Manifests[0].Digest.Hex)
	os.Remove(blob)
	if err := os.Symlink(secret, blob); err != nil {
		t.Fatal(err)
	}
	if s, err := Open(dir); err == nil {
		s.Close()
		t.Fatal("a layout with a blob linking outside was accepted")
	} else if !strings.Contains(err.Error(), "escapes") {
		t.Errorf("refused, but not for escaping: %v", err)
	}
}

func mustHash(t *testing.T, s string) v1.Hash {
	h, err := v1.NewHash(s)
	if err != nil {
		t.Fatal(err)
	}
	return h
}
