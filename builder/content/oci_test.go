package content

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// ggcrImage builds an image with go-containerregistry from uncompressed
// layer tars; its layers are stored gzipped, as in a registry.
func ggcrImage(t testing.TB, arch string, layers ...[]byte) v1.Image {
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

func uncompressedRuntimeLayers(t testing.TB) [][]byte {
	var out [][]byte
	for _, l := range runtimeLayers(t) {
		out = append(out, decompressForTest(t, l))
	}
	return out
}

// ociLayout writes a layout holding the runtime image named by containerd's
// annotation and, behind a multi-platform index named by ref.name, a pause
// image for amd64 and arm64.
func ociLayout(t *testing.T) string {
	dir := filepath.Join(t.TempDir(), "layout")
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	rt := ggcrImage(t, "amd64", uncompressedRuntimeLayers(t)...)
	if err := p.AppendImage(rt, layout.WithAnnotations(map[string]string{
		annotationContainerdName: "docker.io/" + runtimeRef,
		annotationRefName:        "v1.34.4-rke2r1",
	})); err != nil {
		t.Fatal(err)
	}
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex),
		mutate.IndexAddendum{Add: ggcrImage(t, "arm64", mkTar(t, file("pause", "arm64"))), Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}},
		mutate.IndexAddendum{Add: ggcrImage(t, "amd64", mkTar(t, file("pause", "amd64"))), Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
	)
	if err := p.AppendIndex(idx, layout.WithAnnotations(map[string]string{annotationRefName: "rancher/mirrored-pause:3.10"})); err != nil {
		t.Fatal(err)
	}
	// An image named by a bare tag names no repository: untagged.
	if err := p.AppendImage(ggcrImage(t, "amd64", mkTar(t, file("x", "x"))), layout.WithAnnotations(map[string]string{annotationRefName: "latest"})); err != nil {
		t.Fatal(err)
	}
	return dir
}

// tarDir makes a tar of a directory's files, as `tar -C dir -c .` would.
func tarDir(t *testing.T, dir string) []byte {
	var es []tentry
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		b, _ := os.ReadFile(p)
		es = append(es, tentry{name: rel, body: string(b), mode: 0o644})
		return nil
	})
	return mkTar(t, es...)
}

func TestOCILayout(t *testing.T) {
	dir := ociLayout(t)
	for _, src := range []string{dir, writeFile(t, "oci.tar.zst", zst(t, tarDir(t, dir)))} {
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
			checkRuntimeTree(t, dest)
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
	if err := os.WriteFile(filepath.Join(dir, "blobs/sha256", d.Hex), gz(t, mkTar(t, file("bin/kubelet", "evil"))), 0o644); err != nil {
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

// TestGGCRTarball reads an archive go-containerregistry's tarball package
// wrote (gzipped layers named <hex>.tar.gz, configs named sha256:<hex>),
// as crane and k3s' airgap tooling write them.
func TestGGCRTarball(t *testing.T) {
	rt := ggcrImage(t, "amd64", uncompressedRuntimeLayers(t)...)
	pause := ggcrImage(t, "amd64", mkTar(t, file("pause", "p")))
	rtTag, _ := name.NewTag(runtimeRef)
	pauseTag, _ := name.NewTag("rancher/mirrored-pause:3.10")
	p := filepath.Join(t.TempDir(), "ggcr.tar")
	if err := tarball.MultiRefWriteToFile(p, map[name.Reference]v1.Image{rtTag: rt, pauseTag: pause}); err != nil {
		t.Fatal(err)
	}
	s, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	img, err := s.FindRuntime("v1.34.4+rke2r1")
	if err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(t.TempDir(), "data")
	if err := ExtractPaths(img, dest, []string{"/bin", "/charts"}); err != nil {
		t.Fatal(err)
	}
	checkRuntimeTree(t, dest)
	if len(s.Images()) != 2 {
		t.Errorf("images: %v", s.Index())
	}
}
