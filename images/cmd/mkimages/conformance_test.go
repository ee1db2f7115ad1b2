package main

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// fakeConformanceCache lays out what images/build.sh conformance-images
// would leave in a cache for images/versions.env, with tiny files standing
// in for the programs and Debian's trees.
func fakeConformanceCache(t *testing.T) (versions, cache string) {
	t.Helper()
	versions = "../../versions.env"
	env, err := readEnv(versions)
	if err != nil {
		t.Fatal(err)
	}
	cache = filepath.Join(t.TempDir(), "cache")
	write := func(p string, mode os.FileMode) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("#!/bin/sh\necho "+filepath.Base(p)+"\n"), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	e2e := filepath.Join(cache, "e2e-test-images-"+env["KUBERNETES_VERSION"])
	for _, n := range []string{"agnhost", "nnp", "migrate", "migrate-if-needed.sh"} {
		write(filepath.Join(e2e, n), 0o755)
	}
	for _, n := range []string{"localhost.crt", "localhost.key", "nautilus.jpg", "data.json"} {
		write(filepath.Join(e2e, n), 0o644)
	}
	write(filepath.Join(cache, "coredns-"+env["COREDNS_VERSION"], "coredns"), 0o755)
	write(filepath.Join(cache, "pause-"+env["PAUSE_VERSION"], "pause"), 0o755)
	write(filepath.Join(cache, "sample-apiserver-"+env["SAMPLE_APISERVER_VERSION"], "sample-apiserver"), 0o755)
	for _, n := range []string{"etcd", "etcdctl", "etcdutl"} {
		write(filepath.Join(cache, "etcd-"+env["E2E_ETCD_VERSION"], n), 0o755)
	}
	// The Debian trees: a shell, /etc/passwd, a sticky /tmp; agnhost's
	// netcat-openbsd and empty /uploads.
	debs := filepath.Join(cache, "e2e-debs-0123456789abcdef")
	for _, tree := range conformanceTrees {
		r := filepath.Join(debs, tree)
		write(filepath.Join(r, "bin/busybox"), 0o755)
		write(filepath.Join(r, "etc/passwd"), 0o644)
		if err := os.Symlink("busybox", filepath.Join(r, "bin/sh")); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(r, "tmp"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(r, "tmp"), 0o777|os.ModeSticky); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(debs, "agnhost/bin/nc.openbsd"), 0o755)
	if err := os.Symlink("nc.openbsd", filepath.Join(debs, "agnhost/bin/nc")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(debs, "agnhost/uploads"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(debs, "agnhost/uploads"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("e2e-debs-0123456789abcdef", filepath.Join(cache, "e2e-debs")); err != nil {
		t.Fatal(err)
	}
	return versions, cache
}

// The conformance archive holds every image of versions.env's E2E_*_IMAGE
// under its own registry's name, each with its upstream config, and
// nothing is written to RKE2's archive or the QEMU tests'.
func TestConformanceArchive(t *testing.T) {
	versions, cache := fakeConformanceCache(t)
	env, err := readEnv(versions)
	if err != nil {
		t.Fatal(err)
	}
	epoch := time.Unix(1700000000, 0).UTC()
	var outs [2][]byte
	var out string
	for i := range outs {
		out = filepath.Join(t.TempDir(), "out")
		if err := runConformance(versions, cache, out, epoch); err != nil {
			t.Fatal(err)
		}
		if outs[i], err = os.ReadFile(filepath.Join(out, conformanceZstdName)); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(outs[0], outs[1]) {
		t.Errorf("two runs wrote different archives (%d and %d bytes)", len(outs[0]), len(outs[1]))
	}
	for _, n := range []string{conformanceArchiveName, archiveName, zstdName, testZstdName, listName, testListName} {
		if _, err := os.Stat(filepath.Join(out, n)); !os.IsNotExist(err) {
			t.Errorf("%s: %v, want it not written", n, err)
		}
	}

	var refs []string
	for _, k := range conformanceRefKeys {
		if !strings.Contains(env[k], "registry.k8s.io/") {
			t.Errorf("versions.env %s=%q, want a registry.k8s.io name", k, env[k])
		}
		refs = append(refs, env[k])
	}
	sort.Strings(refs)
	opener := zstdOpener(t, outs[0])
	if tags := archiveTags(t, opener); !slices.Equal(tags, refs) {
		t.Errorf("archive holds\n  %v\nwant\n  %v", tags, refs)
	}
	list, err := os.ReadFile(filepath.Join(out, conformanceListName))
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.Join(refs, "\n") + "\n"; string(list) != want {
		t.Errorf("image list:\n%s\nwant (the names as they are, no docker.io/):\n%s", list, want)
	}

	image := func(ref string) v1.Image {
		t.Helper()
		tag, err := name.NewTag(ref)
		if err != nil {
			t.Fatal(err)
		}
		img, err := tarball.Image(opener, &tag)
		if err != nil {
			t.Fatalf("%s: %v", ref, err)
		}
		return img
	}
	for _, tc := range []struct {
		key string
		// want holds the config fields set; the others must be empty.
		want   v1.Config
		layers int
	}{
		{"E2E_AGNHOST_IMAGE", v1.Config{Entrypoint: []string{"/agnhost"}, Cmd: []string{"pause"},
			ExposedPorts: portSet("80/tcp", "8080/tcp", "8081/tcp", "9376/tcp", "5000/tcp")}, 1},
		{"E2E_NAUTILUS_IMAGE", v1.Config{Entrypoint: []string{"/agnhost"}, Cmd: []string{"test-webserver"},
			ExposedPorts: portSet("80/tcp", "8080/tcp", "8081/tcp", "9376/tcp", "5000/tcp")}, 2},
		{"E2E_BUSYBOX_IMAGE", v1.Config{Cmd: []string{"sh"}}, 1},
		{"E2E_HTTPD_IMAGE", v1.Config{Cmd: []string{"httpd-foreground"}, WorkingDir: "/usr/local/apache2",
			Env:          []string{"PATH=/usr/local/apache2/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HTTPD_PREFIX=/usr/local/apache2"},
			ExposedPorts: portSet("80/tcp")}, 1},
		{"E2E_NGINX_NEW_IMAGE", v1.Config{Cmd: []string{"nginx", "-g", "daemon off;"}, ExposedPorts: portSet("80/tcp")}, 1},
		{"E2E_NONROOT_IMAGE", v1.Config{User: "1234", Cmd: []string{"/bin/sh"}}, 1},
		{"E2E_JESSIE_DNSUTILS_IMAGE", v1.Config{Cmd: []string{"bash"}}, 1},
		{"E2E_NONEWPRIVS_IMAGE", v1.Config{Cmd: []string{"nnp"}}, 1},
		{"E2E_SAMPLE_APISERVER_IMAGE", v1.Config{Entrypoint: []string{"/sample-apiserver"}}, 1},
		{"E2E_ETCD_IMAGE", v1.Config{WorkingDir: "/", ExposedPorts: portSet("2379/tcp", "2380/tcp", "4001/tcp", "7001/tcp")}, 1},
		{"E2E_PAUSE_IMAGE", v1.Config{Entrypoint: []string{"/pause"}, User: "65535:65535"}, 1},
	} {
		ref := env[tc.key]
		cfg, err := image(ref).ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		want := tc.want
		if want.Env == nil {
			want.Env = []string{defaultPath}
		}
		got := cfg.Config
		if strings.Join(got.Entrypoint, " ") != strings.Join(want.Entrypoint, " ") || strings.Join(got.Cmd, " ") != strings.Join(want.Cmd, " ") ||
			strings.Join(got.Env, " ") != strings.Join(want.Env, " ") || got.User != want.User || got.WorkingDir != want.WorkingDir ||
			!samePorts(got.ExposedPorts, want.ExposedPorts) {
			t.Errorf("%s: config %+v\nwant %+v", ref, got, want)
		}
		if layers, err := image(ref).Layers(); err != nil || len(layers) != tc.layers {
			t.Errorf("%s: %d layers (%v), want %d", ref, len(layers), err, tc.layers)
		}
	}

	// nautilus is built on agnhost's very layer (stored once).
	agnLayers, err := image(env["E2E_AGNHOST_IMAGE"]).Layers()
	if err != nil {
		t.Fatal(err)
	}
	nauLayers, err := image(env["E2E_NAUTILUS_IMAGE"]).Layers()
	if err != nil || len(nauLayers) != 2 {
		t.Fatalf("nautilus layers: %d, %v", len(nauLayers), err)
	}
	if a, n := diffID(t, agnLayers[0]), diffID(t, nauLayers[0]); a != n {
		t.Errorf("nautilus' first layer %s, want agnhost's %s", n, a)
	}
	if got := entries(t, nauLayers[1]); len(got) != 2 || got["nautilus.jpg"] == nil || got["data.json"] == nil {
		t.Errorf("nautilus' own layer holds %v, want nautilus.jpg and data.json", keys(got))
	}

	agn := entries(t, agnLayers[0])
	for n, want := range map[string]struct {
		typ  byte
		mode int64
		link string
	}{
		"agnhost":       {tar.TypeReg, 0o755, ""},
		"agnhost-2":     {tar.TypeSymlink, 0o777, "agnhost"},
		"coredns":       {tar.TypeReg, 0o755, ""},
		"localhost.crt": {tar.TypeReg, 0o644, ""},
		"localhost.key": {tar.TypeReg, 0o644, ""},
		"uploads/":      {tar.TypeDir, 0o755, ""},
		"tmp/":          {tar.TypeDir, 0o1777, ""},
		"bin/nc":        {tar.TypeSymlink, 0o777, "nc.openbsd"},
	} {
		h := agn[n]
		if h == nil || h.Typeflag != want.typ || h.Mode != want.mode || h.Linkname != want.link {
			t.Errorf("agnhost %s = %+v, want %+v", n, h, want)
		}
	}
	nnpLayers, err := image(env["E2E_NONEWPRIVS_IMAGE"]).Layers()
	if err != nil {
		t.Fatal(err)
	}
	if h := entries(t, nnpLayers[0])["usr/local/bin/nnp"]; h == nil || h.Mode != 0o4755 {
		t.Errorf("nonewprivs usr/local/bin/nnp = %+v, want mode 04755 (setuid root)", h)
	}
	etcdLayers, err := image(env["E2E_ETCD_IMAGE"]).Layers()
	if err != nil {
		t.Fatal(err)
	}
	etcd := entries(t, etcdLayers[0])
	for _, n := range []string{"usr/local/bin/etcd", "usr/local/bin/etcdctl", "usr/local/bin/etcdutl", "usr/local/bin/migrate", "usr/local/bin/migrate-if-needed.sh", "bin/sh"} {
		if etcd[n] == nil {
			t.Errorf("etcd image lacks %s", n)
		}
	}
}

// A step of images/build.sh conformance-images not run is named.
func TestConformanceArchiveNeedsItsInputs(t *testing.T) {
	versions, cache := fakeConformanceCache(t)
	env, err := readEnv(versions)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(cache, "e2e-test-images-"+env["KUBERNETES_VERSION"], "agnhost")); err != nil {
		t.Fatal(err)
	}
	err = runConformance(versions, cache, filepath.Join(t.TempDir(), "out"), time.Unix(0, 0))
	if err == nil || !strings.Contains(err.Error(), "conformance-images") {
		t.Errorf("runConformance without agnhost: %v, want an error naming conformance-images", err)
	}
	delete(env, "E2E_PAUSE_IMAGE")
	if _, err := conformanceImageSpecs(env, cache); err == nil || !strings.Contains(err.Error(), "E2E_PAUSE_IMAGE") {
		t.Errorf("conformanceImageSpecs without E2E_PAUSE_IMAGE: %v", err)
	}
}

func portSet(ps ...string) map[string]struct{} {
	m := map[string]struct{}{}
	for _, p := range ps {
		m[p] = struct{}{}
	}
	return m
}

func samePorts(a, b map[string]struct{}) bool {
	if len(a) != len(b) {
		return false
	}
	for p := range a {
		if _, ok := b[p]; !ok {
			return false
		}
	}
	return true
}

// diffID is l's uncompressed digest.
func diffID(t *testing.T, l v1.Layer) string {
	t.Helper()
	h, err := l.DiffID()
	if err != nil {
		t.Fatal(err)
	}
	return h.String()
}

// entries reads a layer's tar headers by name.
func entries(t *testing.T, l v1.Layer) map[string]*tar.Header {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got := map[string]*tar.Header{}
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return got
		}
		if err != nil {
			t.Fatal(err)
		}
		got[hdr.Name] = hdr
	}
}

func keys(m map[string]*tar.Header) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
