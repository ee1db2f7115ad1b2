package main

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/klauspost/compress/zstd"
)

// fakeCache lays out what images/build.sh would leave in its cache, with
// tiny scripts standing in for the binaries.
func fakeCache(t *testing.T) (versions, cache string) {
	t.Helper()
	dir := t.TempDir()
	versions = filepath.Join(dir, "versions.env")
	env := `# test
KUBERNETES_VERSION=v1.34.4
CONTAINERD_VERSION=v2.4.2
RUNC_VERSION=v1.4.0
ETCD_VERSION=v3.6.7
CRICTL_VERSION=v1.34.0
CNI_PLUGINS_VERSION=v1.9.0
PAUSE_VERSION=3.10
FLANNEL_VERSION=v0.28.10
COREDNS_VERSION=v1.14.7
FLANNEL_IMAGE=rancher/hardened-flannel:v0.28.10-build20250101
COREDNS_IMAGE=rancher/hardened-coredns:v1.14.7-build20250101
RUNTIME_IMAGE=rancher/rke2-runtime:v1.34.4-rke2r1
KUBERNETES_IMAGE=rancher/hardened-kubernetes:v1.34.4-rke2r1-build20250101
ETCD_IMAGE=rancher/hardened-etcd:v3.6.7-build20250101
PAUSE_IMAGE=rancher/mirrored-pause:3.10
CNI_PLUGINS_IMAGE=rancher/hardened-cni-plugins:v1.9.0-build20250101
TESTWORKLOAD_VERSION=v1
TESTWORKLOAD_IMAGE=rke2os/testworkload:v1
`
	if err := os.WriteFile(versions, []byte(env), 0o644); err != nil {
		t.Fatal(err)
	}
	// The charts beside versions.env: ours.
	charts, err := filepath.Abs("../../charts")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(charts, filepath.Join(dir, "charts")); err != nil {
		t.Fatal(err)
	}
	cache = filepath.Join(dir, "cache")
	bins := map[string][]string{
		"kubernetes-v1.34.4": {"kubelet", "kubectl", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy"},
		"containerd-v2.4.2":  {"containerd", "containerd-shim-runc-v2", "ctr"},
		"runc-v1.4.0":        {"runc"},
		"crictl-v1.34.0":     {"crictl"},
		"etcd-v3.6.7":        {"etcd", "etcdctl", "etcdutl"},
		"pause-3.10":         {"pause"},
		"cni-plugins-v1.9.0": {"bridge", "host-local", "loopback", "portmap"},
		"iptables-1.8.9-2-0123456789ab/root/usr/sbin": {"xtables-nft-multi"},
		"flannel-v0.28.10":                            {"flanneld", "flannel", "install-cni"},
		"coredns-v1.14.7":                             {"coredns"},
		"testworkload-v1":                             {"testworkload"},
	}
	for d, names := range bins {
		if err := os.MkdirAll(filepath.Join(cache, d), 0o755); err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			if err := os.WriteFile(filepath.Join(cache, d, n), []byte("#!/bin/sh\necho "+n+"\n"), 0o700); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The unpacked iptables tree: build.sh's alternatives links, and
	// cache/iptables naming the tree of the day.
	if err := os.Symlink("xtables-nft-multi", filepath.Join(cache, "iptables-1.8.9-2-0123456789ab/root/usr/sbin/iptables")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("iptables-1.8.9-2-0123456789ab", filepath.Join(cache, "iptables")); err != nil {
		t.Fatal(err)
	}
	return versions, cache
}

func TestRunIsReproducible(t *testing.T) {
	versions, cache := fakeCache(t)
	epoch := time.Unix(1700000000, 0).UTC()
	var outs, testOuts [2][]byte
	for i := range outs {
		out := filepath.Join(t.TempDir(), "out")
		// Different mtimes on the inputs must not show in the output.
		if i == 1 {
			later := time.Now().Add(time.Hour)
			filepath.Walk(cache, func(p string, _ os.FileInfo, _ error) error { return os.Chtimes(p, later, later) })
		}
		if err := run(versions, cache, out, true, epoch); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(out, zstdName))
		if err != nil {
			t.Fatal(err)
		}
		outs[i] = b
		if testOuts[i], err = os.ReadFile(filepath.Join(out, testZstdName)); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			checkArchive(t, filepath.Join(out, archiveName), epoch)
			list, err := os.ReadFile(filepath.Join(out, listName))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(list), "docker.io/rancher/rke2-runtime:v1.34.4-rke2r1\n") {
				t.Errorf("image list lacks the runtime image:\n%s", list)
			}
		}
	}
	if !bytes.Equal(outs[0], outs[1]) {
		t.Errorf("two runs wrote different archives (%d and %d bytes)", len(outs[0]), len(outs[1]))
	}
	if !bytes.Equal(testOuts[0], testOuts[1]) {
		t.Errorf("two runs wrote different test archives (%d and %d bytes)", len(testOuts[0]), len(testOuts[1]))
	}
}

// The test workload is in the test archive, alone, and nowhere else: no
// node image may carry it.
func TestTestImagesApart(t *testing.T) {
	versions, cache := fakeCache(t)
	out := filepath.Join(t.TempDir(), "out")
	epoch := time.Unix(1700000000, 0).UTC()
	if err := run(versions, cache, out, true, epoch); err != nil {
		t.Fatal(err)
	}
	const ref = "rke2os/testworkload:v1"
	plain := func() (io.ReadCloser, error) { return os.Open(filepath.Join(out, archiveName)) }
	mainTags := archiveTags(t, plain)
	if !slices.Contains(mainTags, "rancher/rke2-runtime:v1.34.4-rke2r1") || slices.ContainsFunc(mainTags, func(s string) bool { return strings.Contains(s, "testworkload") }) {
		t.Errorf("main archive holds %v, want RKE2's images and no test image", mainTags)
	}
	zb, err := os.ReadFile(filepath.Join(out, zstdName))
	if err != nil {
		t.Fatal(err)
	}
	if tags := archiveTags(t, zstdOpener(t, zb)); !slices.Equal(tags, mainTags) {
		t.Errorf("main .tar.zst holds %v, its .tar %v", tags, mainTags)
	}
	if list, err := os.ReadFile(filepath.Join(out, listName)); err != nil || strings.Contains(string(list), "testworkload") {
		t.Errorf("main image list: %v\n%s", err, list)
	}

	tb, err := os.ReadFile(filepath.Join(out, testZstdName))
	if err != nil {
		t.Fatal(err)
	}
	opener := zstdOpener(t, tb)
	if tags := archiveTags(t, opener); !slices.Equal(tags, []string{ref}) {
		t.Errorf("test archive holds %v, want only %s", tags, ref)
	}
	if list, err := os.ReadFile(filepath.Join(out, testListName)); err != nil || string(list) != "docker.io/"+ref+"\n" {
		t.Errorf("test image list = %q, %v; want docker.io/%s", list, err, ref)
	}
	if _, err := os.Stat(filepath.Join(out, testArchiveName)); !os.IsNotExist(err) {
		t.Errorf("the test archive's plain .tar was kept: %v", err)
	}
	tag, err := name.NewTag(ref)
	if err != nil {
		t.Fatal(err)
	}
	img, err := tarball.Image(opener, &tag)
	if err != nil {
		t.Fatalf("go-containerregistry cannot read the test archive: %v", err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cfg.Config.Entrypoint, []string{"/testworkload"}) || cfg.Architecture != "amd64" || !cfg.Created.Time.Equal(epoch) {
		t.Errorf("test image config: entrypoint %q, %s, created %v", cfg.Config.Entrypoint, cfg.Architecture, cfg.Created)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers = %d, %v; want 1", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var entries []string
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, hdr.Name)
		if hdr.Name == "testworkload" && (hdr.Typeflag != tar.TypeReg || hdr.Mode != 0o755) {
			t.Errorf("testworkload: type %c mode %o, want a file of mode 0755", hdr.Typeflag, hdr.Mode)
		}
	}
	if !slices.Equal(entries, []string{"testworkload"}) {
		t.Errorf("test image layer holds %v, want only testworkload", entries)
	}
}

// archiveTags lists the tags of a docker-save archive, in its order.
func archiveTags(t *testing.T, opener tarball.Opener) []string {
	t.Helper()
	m, err := tarball.LoadManifest(opener)
	if err != nil {
		t.Fatalf("read manifest.json: %v", err)
	}
	var tags []string
	for _, d := range m {
		tags = append(tags, d.RepoTags...)
	}
	return tags
}

// zstdOpener opens the docker-save archive compressed in zb.
func zstdOpener(t *testing.T, zb []byte) tarball.Opener {
	t.Helper()
	dec, err := zstd.NewReader(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	raw, err := dec.DecodeAll(zb, nil)
	if err != nil {
		t.Fatalf("zstd: %v", err)
	}
	return func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(raw)), nil }
}

// checkArchive reads the archive with go-containerregistry's own reader, as a
// second opinion on the format, and looks at the runtime image's layer.
func checkArchive(t *testing.T, path string, epoch time.Time) {
	t.Helper()
	tag, err := name.NewTag("rancher/rke2-runtime:v1.34.4-rke2r1")
	if err != nil {
		t.Fatal(err)
	}
	img, err := tarball.ImageFromPath(path, &tag)
	if err != nil {
		t.Fatalf("go-containerregistry cannot read the archive: %v", err)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers = %d, %v; want 1", len(layers), err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Architecture != "amd64" || cfg.OS != "linux" || !cfg.Created.Time.Equal(epoch) {
		t.Errorf("config = %s/%s created %v", cfg.OS, cfg.Architecture, cfg.Created)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	want := map[string]int64{
		"bin/": 0o755, "bin/containerd": 0o755, "bin/containerd-shim-runc-v2": 0o755, "bin/ctr": 0o755,
		"bin/runc": 0o755, "bin/kubelet": 0o755, "bin/kubectl": 0o755, "bin/crictl": 0o755, "bin/etcdutl": 0o755,
		"charts/": 0o755, "charts/rke2-coredns.yaml": 0o644, "charts/rke2-flannel.yaml": 0o644,
	}
	tr := tar.NewReader(rc)
	seen := map[string]bool{}
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if mode, ok := want[hdr.Name]; !ok || hdr.Mode != mode {
			t.Errorf("entry %s mode %o; want %o (known: %v)", hdr.Name, hdr.Mode, mode, ok)
		}
		if hdr.Uid != 0 || hdr.Gid != 0 || !hdr.ModTime.Equal(epoch) {
			t.Errorf("entry %s: uid %d gid %d mtime %v", hdr.Name, hdr.Uid, hdr.Gid, hdr.ModTime)
		}
		dir := hdr.Name[:strings.LastIndex(strings.TrimSuffix(hdr.Name, "/"), "/")+1]
		if dir != "" && !seen[dir] {
			t.Errorf("entry %s comes before its directory %s", hdr.Name, dir)
		}
		seen[hdr.Name] = true
	}
	if len(seen) != len(want) {
		t.Errorf("layer has %d entries, want %d", len(seen), len(want))
	}
}

func TestReadEnv(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    map[string]string
		wantErr string
	}{
		{in: "A=1\n# c\n\nB=x+y\n", want: map[string]string{"A": "1", "B": "x+y"}},
		{in: "A=\"1\"\n", wantErr: "line 1"},
		{in: "A=1\nB=$A\n", wantErr: "line 2"},
		{in: "just words\n", wantErr: "line 1"},
	} {
		p := filepath.Join(t.TempDir(), "v.env")
		os.WriteFile(p, []byte(tc.in), 0o644)
		got, err := readEnv(p)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("readEnv(%q) err = %v, want %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatalf("readEnv(%q): %v", tc.in, err)
		}
		for k, v := range tc.want {
			if got[k] != v {
				t.Errorf("readEnv(%q)[%s] = %q, want %q", tc.in, k, got[k], v)
			}
		}
	}
}

func TestWriteLayerRefusesBadNames(t *testing.T) {
	for _, n := range []string{"", "/bin/x", "../x", "bin/../../x", "bin//x"} {
		if _, _, err := writeLayer(io.Discard, []file{{Name: n, Data: []byte("x"), Mode: 0o644}}, time.Unix(0, 0)); err == nil {
			t.Errorf("writeLayer accepted %q", n)
		}
	}
	dup := []file{{Name: "a", Mode: 0o644}, {Name: "a", Mode: 0o644}}
	if _, _, err := writeLayer(io.Discard, dup, time.Unix(0, 0)); err == nil {
		t.Error("writeLayer accepted a name twice")
	}
}

// kube-proxy's image carries the iptables tree, its alternatives links
// kept as links.
func TestKubernetesImageCarriesIptables(t *testing.T) {
	versions, cache := fakeCache(t)
	out := filepath.Join(t.TempDir(), "out")
	if err := run(versions, cache, out, true, time.Unix(1700000000, 0).UTC()); err != nil {
		t.Fatal(err)
	}
	tag, err := name.NewTag("rancher/hardened-kubernetes:v1.34.4-rke2r1-build20250101")
	if err != nil {
		t.Fatal(err)
	}
	img, err := tarball.ImageFromPath(filepath.Join(out, archiveName), &tag)
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers = %d, %v; want 1", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got := map[string]*tar.Header{}
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got[hdr.Name] = hdr
	}
	if h := got["usr/sbin/iptables"]; h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != "xtables-nft-multi" {
		t.Errorf("usr/sbin/iptables = %+v, want a link to xtables-nft-multi", h)
	}
	if h := got["usr/sbin/xtables-nft-multi"]; h == nil || h.Typeflag != tar.TypeReg || h.Mode != 0o700 {
		t.Errorf("usr/sbin/xtables-nft-multi = %+v, want the file, mode kept", h)
	}
	if got["usr/local/bin/kube-proxy"] == nil {
		t.Error("kube-proxy is missing")
	}
}

// Directories listed with a mode keep it (sticky, private), a setuid file
// keeps its bit, a directory from two trees is one entry, and parents
// still come first.
func TestWriteLayerDirsAndModes(t *testing.T) {
	type entry struct {
		name string
		typ  byte
		mode int64
	}
	for _, tc := range []struct {
		name    string
		files   []file
		want    []entry
		wantErr string
	}{{
		name: "modes kept",
		files: []file{
			{Name: "tmp", Dir: true, Mode: 0o1777},
			{Name: "usr/local/bin/nnp", Data: []byte("x"), Mode: 0o4755},
			{Name: "root", Dir: true, Mode: 0o700},
			{Name: "uploads", Dir: true, Mode: 0o755},
			{Name: "usr", Dir: true, Mode: 0o755},
			{Name: "usr", Dir: true, Mode: 0o755},
			{Name: "tmp/x", Data: []byte("y"), Mode: 0o644},
			{Name: "bin/sh", Link: "bash"},
		},
		want: []entry{
			{"bin/", tar.TypeDir, 0o755},
			{"bin/sh", tar.TypeSymlink, 0o777},
			{"root/", tar.TypeDir, 0o700},
			{"tmp/", tar.TypeDir, 0o1777},
			{"tmp/x", tar.TypeReg, 0o644},
			{"uploads/", tar.TypeDir, 0o755},
			{"usr/", tar.TypeDir, 0o755},
			{"usr/local/", tar.TypeDir, 0o755},
			{"usr/local/bin/", tar.TypeDir, 0o755},
			{"usr/local/bin/nnp", tar.TypeReg, 0o4755},
		},
	}, {
		name:    "one directory, two modes",
		files:   []file{{Name: "tmp", Dir: true, Mode: 0o1777}, {Name: "tmp", Dir: true, Mode: 0o755}},
		wantErr: "listed twice",
	}, {
		name:    "a directory and a file",
		files:   []file{{Name: "tmp", Dir: true, Mode: 0o1777}, {Name: "tmp", Data: []byte("x"), Mode: 0o644}},
		wantErr: "listed twice",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			_, _, err := writeLayer(&buf, tc.files, time.Unix(0, 0))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("writeLayer: %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []entry
			tr := tar.NewReader(&buf)
			for {
				hdr, err := tr.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, entry{hdr.Name, hdr.Typeflag, hdr.Mode})
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("layer holds\n  %v\nwant\n  %v", got, tc.want)
			}
		})
	}
}

func TestImageConfig(t *testing.T) {
	agnhost := &imageSpec{Ref: "registry.k8s.io/e2e-test-images/agnhost:2.56", Entrypoint: []string{"/agnhost"}, Cmd: []string{"pause"}, ExposedPorts: []string{"80/tcp", "8080/tcp"}}
	for _, tc := range []struct {
		name string
		spec imageSpec
		want v1.Config
	}{{
		name: "nothing set",
		want: v1.Config{Env: []string{defaultPath}},
	}, {
		name: "entrypoint alone, as RKE2's images",
		spec: imageSpec{Entrypoint: []string{"/pause"}},
		want: v1.Config{Env: []string{defaultPath}, Entrypoint: []string{"/pause"}},
	}, {
		name: "everything set",
		spec: imageSpec{
			Entrypoint: []string{"/e"}, Cmd: []string{"httpd-foreground"}, User: "1234",
			Env: []string{"PATH=/usr/local/apache2/bin:/bin", "HTTPD_PREFIX=/usr/local/apache2"}, WorkingDir: "/usr/local/apache2",
			ExposedPorts: []string{"80/tcp"},
		},
		want: v1.Config{
			Entrypoint: []string{"/e"}, Cmd: []string{"httpd-foreground"}, User: "1234",
			Env: []string{"PATH=/usr/local/apache2/bin:/bin", "HTTPD_PREFIX=/usr/local/apache2"}, WorkingDir: "/usr/local/apache2",
			ExposedPorts: map[string]struct{}{"80/tcp": {}},
		},
	}, {
		name: "from a base: its entrypoint, ports added, its command replaced",
		spec: imageSpec{Base: agnhost, Cmd: []string{"test-webserver"}, ExposedPorts: []string{"9376/tcp"}},
		want: v1.Config{
			Env: []string{defaultPath}, Entrypoint: []string{"/agnhost"}, Cmd: []string{"test-webserver"},
			ExposedPorts: map[string]struct{}{"80/tcp": {}, "8080/tcp": {}, "9376/tcp": {}},
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.spec.config(); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("config() = %+v\nwant       %+v", got, tc.want)
			}
		})
	}
}

// RKE2's images keep the config bytes they had before imageSpec grew the
// e2e test images' fields: the archive's bytes do not change.
func TestNewImageConfigAsBefore(t *testing.T) {
	epoch := time.Unix(1700000000, 0).UTC()
	l, err := layerFile(filepath.Join(t.TempDir(), "layer.tar"), []file{{Name: "pause", Data: []byte("x"), Mode: 0o755}}, epoch)
	if err != nil {
		t.Fatal(err)
	}
	// The config as newImage wrote it before.
	before := func(entrypoint []string) []byte {
		cfg := &v1.ConfigFile{
			Architecture: "amd64",
			OS:           "linux",
			Created:      v1.Time{Time: epoch},
			Config:       v1.Config{Env: []string{defaultPath}, Entrypoint: entrypoint},
			RootFS:       v1.RootFS{Type: "layers"},
		}
		img, err := mutate.ConfigFile(empty.Image, cfg)
		if err != nil {
			t.Fatal(err)
		}
		img, err = mutate.Append(img, mutate.Addendum{
			Layer:   l,
			History: v1.History{Created: v1.Time{Time: epoch}, CreatedBy: "rke2os images/cmd/mkimages"},
		})
		if err != nil {
			t.Fatal(err)
		}
		raw, err := img.RawConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	for _, ep := range [][]string{nil, {"/pause"}} {
		s := imageSpec{Ref: "rancher/mirrored-pause:3.10", Entrypoint: ep}
		img, err := newImage([]v1.Layer{l}, s.config(), epoch)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := img.RawConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if want := before(ep); !bytes.Equal(raw, want) {
			t.Errorf("entrypoint %q: config\n  %s\nwant\n  %s", ep, raw, want)
		}
	}
}

func TestFullName(t *testing.T) {
	for in, want := range map[string]string{
		"rancher/rke2-runtime:v1.34.4-rke2r1":          "docker.io/rancher/rke2-runtime:v1.34.4-rke2r1",
		"rke2os/testworkload:v1":                       "docker.io/rke2os/testworkload:v1",
		"registry.k8s.io/pause:3.10.1":                 "registry.k8s.io/pause:3.10.1",
		"registry.k8s.io/e2e-test-images/agnhost:2.56": "registry.k8s.io/e2e-test-images/agnhost:2.56",
		"localhost/x:1":                                "localhost/x:1",
		"registry.local:5000/x:1":                      "registry.local:5000/x:1",
		"docker.io/library/busybox:1.37.0":             "docker.io/library/busybox:1.37.0",
	} {
		if got := fullName(in); got != want {
			t.Errorf("fullName(%q) = %q, want %q", in, got, want)
		}
	}
}

// rootTree keeps what a tree of Debian's packages has: empty directories,
// the sticky /tmp, a private /root, a setuid file, links as links.
func TestRootTree(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []struct {
		name string
		mode os.FileMode
	}{{"tmp", 0o777 | os.ModeSticky}, {"root", 0o700}, {"uploads", 0o755}, {"usr", 0o755}, {"usr/bin", 0o755}} {
		if err := os.MkdirAll(filepath.Join(dir, d.name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(dir, d.name), d.mode); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "usr/bin/nnp"), []byte("x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, "usr/bin/nnp"), 0o755|os.ModeSetuid); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../usr/bin/nnp", filepath.Join(dir, "uploads/nnp")); err != nil {
		t.Fatal(err)
	}
	files, err := rootTree(dir)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, f := range files {
		switch {
		case f.Dir:
			got[f.Name] = fmt.Sprintf("dir %o", f.Mode)
		case f.Link != "":
			got[f.Name] = "link " + f.Link
		default:
			got[f.Name] = fmt.Sprintf("file %o", f.Mode)
		}
	}
	want := map[string]string{
		"tmp": "dir 1777", "root": "dir 700", "uploads": "dir 755", "usr": "dir 755", "usr/bin": "dir 755",
		"usr/bin/nnp": "file 4755", "uploads/nnp": "link ../usr/bin/nnp",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("rootTree = %v\nwant       %v", got, want)
	}
}
