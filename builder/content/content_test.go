package content

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ct "github.com/rke2os/rke2os/init/shared/content/contenttest"
)

const runtimeName = "docker.io/" + ct.RuntimeRef

func TestFindRuntimeMissing(t *testing.T) {
	p := ct.WriteFile(t, "a.tar", ct.MixedArchive(t))
	s, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, err = s.FindRuntime("v1.35.0+rke2r1")
	if err == nil {
		t.Fatal("found a runtime that is not there")
	}
	for _, want := range []string{"docker.io/rancher/rke2-runtime:v1.35.0-rke2r1", p, runtimeName} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	// Every spelling of Docker Hub finds it.
	for _, ref := range []string{ct.RuntimeRef, "docker.io/" + ct.RuntimeRef, "index.docker.io/" + ct.RuntimeRef} {
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
	os.WriteFile(filepath.Join(dir, "b-runtime.tar.zst"), ct.Zstd(t, ct.MixedArchive(t)), 0o644)
	other := ct.DockerArchive(t, []ct.Image{{Tags: []string{"rancher/hardened-etcd:v3.6.7-build20250101"}, Layers: [][]byte{ct.Tar(t, ct.File("usr/local/bin/etcd", "e"))}}}, nil)
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

// TestOpenRefuses checks that the set says which archive it refused, and
// why, and leaves no temporary file.
func TestOpenRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"escaping", ct.Tar(t, ct.File("manifest.json", "[]"), ct.File("../evil", "x")), `has a ".."`},
		{"neither docker nor OCI", ct.Zstd(t, ct.Tar(t, ct.File("hello", "x"))), "not an image archive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tmp := t.TempDir()
			p := ct.WriteFile(t, "hostile.tar", tc.data)
			s := NewSet(WithTempDir(tmp))
			err := s.Add(p)
			s.Close()
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), p) {
				t.Errorf("error %v does not say %q and name %s", err, tc.want, p)
			}
			if left, _ := os.ReadDir(tmp); len(left) != 0 {
				t.Errorf("temporary files left: %v", left)
			}
		})
	}
}

func TestOptions(t *testing.T) {
	tmp := t.TempDir()
	p := ct.WriteFile(t, "a.tar.zst", ct.Zstd(t, ct.MixedArchive(t)))
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

func TestSetPull(t *testing.T) {
	srv, host := ct.Registry(t, "", "", false)
	ct.PushRuntime(t, srv, host, ct.RuntimeRef, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := NewSet()
	defer s.Close()
	if err := s.Pull(ctx, nil, host+"/"+ct.RuntimeRef); err != nil {
		t.Fatal(err)
	}
	idx := s.Index()
	if len(idx) != 1 || idx[0].Name != host+"/"+ct.RuntimeRef || !strings.HasPrefix(idx[0].Digest, "sha256:") {
		t.Errorf("index = %+v", idx)
	}
	dest := filepath.Join(t.TempDir(), "data")
	if err := ExtractPaths(s.Images()[0], dest, []string{"/bin", "/charts"}); err != nil {
		t.Fatal(err)
	}
	ct.CheckRuntimeTree(t, dest)
}

// FuzzOpen reads arbitrary bytes as an archive, docker-save or OCI (the OCI
// reading is this package's; the init's fuzzers cover the rest), and
// extracts every image it finds: nothing may be written outside.
func FuzzOpen(f *testing.F) {
	f.Add(ct.MixedArchive(f))
	f.Add(tarDir(f, ociLayout(f)))
	f.Add(ct.Tar(f, ct.File("index.json", `{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"sha256:`+strings.Repeat("0", 64)+`"}]}`)))
	f.Fuzz(func(t *testing.T, data []byte) {
		tmp := t.TempDir()
		s := NewSet(WithTempDir(tmp), WithMaxSize(1<<24))
		defer s.Close()
		if s.Add(ct.WriteFile(t, "fuzz.tar", data)) != nil {
			return
		}
		for _, img := range s.Images() {
			sandbox := t.TempDir()
			dest := filepath.Join(sandbox, "out")
			ExtractPaths(img, dest, []string{"/"})
			ct.CheckSandbox(t, sandbox, dest)
		}
	})
}
