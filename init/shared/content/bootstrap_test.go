package content

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	ct "github.com/rke2os/rke2os/init/shared/content/contenttest"
)

// runtimeKey is DataKey(RuntimeRef("v1.34.4+rke2r1")), worked out by hand:
// printf %s rancher/rke2-runtime:v1.34.4-rke2r1 | sha256sum | cut -c1-12.
const runtimeKey = "v1.34.4-rke2r1-0d52262ea640"

// node is a data directory whose agent/images/ holds links to archives on
// a "medium" beside it, as on a live ISO.
type node struct {
	opts   Options
	medium string
}

func newNode(t *testing.T, archives map[string][]byte) *node {
	t.Helper()
	root := t.TempDir()
	n := &node{medium: filepath.Join(root, "medium"), opts: Options{
		DataDir: filepath.Join(root, "rke2"),
		Version: ct.RuntimeVersion,
		TempDir: filepath.Join(root, "tmp"),
		Log:     slog.New(slog.NewTextHandler(io.Discard, nil)),
	}}
	images := filepath.Join(n.opts.DataDir, "agent", "images")
	for _, d := range []string{n.medium, images, n.opts.TempDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for base, b := range archives {
		p := filepath.Join(n.medium, base)
		if err := os.WriteFile(p, b, 0o444); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(p, filepath.Join(images, base)); err != nil {
			t.Fatal(err)
		}
	}
	return n
}

func (n *node) bootstrap(t *testing.T) (*Result, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return Bootstrap(ctx, n.opts)
}

// mustBootstrap runs Bootstrap and checks what every run leaves: the
// medium and the temporary directory as they were, nothing in data/ but
// the runtime's directory, the bin link pointing into it.
func (n *node) mustBootstrap(t *testing.T) *Result {
	t.Helper()
	before := listDir(t, n.medium)
	res, err := n.bootstrap(t)
	if err != nil {
		t.Fatal(err)
	}
	if res.DataKey != runtimeKey {
		t.Errorf("DataKey = %q, want %q", res.DataKey, runtimeKey)
	}
	dir := filepath.Join(n.opts.DataDir, "data", runtimeKey)
	if res.BinDir != filepath.Join(dir, "bin") || res.ChartsDir != filepath.Join(dir, "charts") {
		t.Errorf("BinDir %q ChartsDir %q", res.BinDir, res.ChartsDir)
	}
	if got := listDir(t, filepath.Join(n.opts.DataDir, "data")); got != runtimeKey {
		t.Errorf("data/ holds %q, want only %s", got, runtimeKey)
	}
	if got := listDir(t, n.medium); got != before {
		t.Errorf("the medium changed: %q, was %q", got, before)
	}
	if got := listDir(t, n.opts.TempDir); got != "" {
		t.Errorf("left in the temporary directory: %q", got)
	}
	if l, err := os.Readlink(filepath.Join(n.opts.DataDir, "bin")); err != nil || l != res.BinDir {
		t.Errorf("bin -> %q (%v), want %s", l, err, res.BinDir)
	}
	marker, err := os.ReadFile(filepath.Join(dir, ".extracted"))
	if err != nil || string(marker) != "index.docker.io/"+ct.RuntimeRef {
		t.Errorf(".extracted = %q, %v", marker, err)
	}
	if fi, err := os.Stat(res.BinDir); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("bin: %v, %v; want mode 0755", fi, err)
	}
	return res
}

// checkNothingLeft checks that a failed Bootstrap left no runtime
// directory, no temporary one and no bin link.
func (n *node) checkNothingLeft(t *testing.T) {
	t.Helper()
	if got := listDir(t, filepath.Join(n.opts.DataDir, "data")); got != "" {
		t.Errorf("data/ holds %q after a failure", got)
	}
	if _, err := os.Lstat(filepath.Join(n.opts.DataDir, "bin")); err == nil {
		t.Error("bin link made after a failure")
	}
	if got := listDir(t, n.opts.TempDir); got != "" {
		t.Errorf("left in the temporary directory: %q", got)
	}
}

func listDir(t *testing.T, dir string) string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return strings.Join(names, " ")
}

// mtimes records the modification time of everything under dirs.
func mtimes(t *testing.T, dirs ...string) map[string]time.Time {
	t.Helper()
	out := map[string]time.Time{}
	for _, d := range dirs {
		filepath.Walk(d, func(p string, info os.FileInfo, err error) error {
			if err == nil {
				out[p] = info.ModTime()
			}
			return nil
		})
	}
	return out
}

// simpleRuntime is the runtime image of the brief: bin/containerd,
// bin/kubelet and charts/x.yaml in one layer.
func simpleRuntime(t testing.TB) [][]byte {
	return [][]byte{ct.Gzip(t, ct.Tar(t, ct.Dir("bin/"), ct.File("bin/containerd", "c"), ct.File("bin/kubelet", "k"),
		ct.Dir("charts/"), ct.File("charts/x.yaml", "kind: HelmChart\n"), ct.File("etc/os-release", "not extracted")))}
}

// withPause is an archive holding a pause image and the runtime of layers.
func withPause(layers [][]byte) []ct.Image {
	return []ct.Image{
		{Tags: []string{"rancher/mirrored-pause:3.10"}, Layers: [][]byte{layers[0]}},
		{Tags: []string{ct.RuntimeRef}, Layers: layers},
	}
}

// TestBootstrap extracts the runtime from archives of every kind, then
// boots again and checks that nothing is rewritten.
func TestBootstrap(t *testing.T) {
	rt := ct.RuntimeLayers(t)
	big := append([][]byte{ct.Tar(t, ct.File("bin/big", strings.Repeat("0123456789abcdef", 1<<17)))}, rt...)
	reversed := func(es []ct.Entry, m []ct.ManifestEntry) ([]ct.Entry, []ct.ManifestEntry) {
		slices.Reverse(es) // the upper layer before the lower: spooled
		return es, m
	}
	for _, tc := range []struct {
		name string
		file string
		data []byte
	}{
		{"plain", "rke2-images.linux-amd64.tar", ct.Archive{Images: withPause(rt)}.Bytes(t)},
		{"gzip", "rke2-images.linux-amd64.tar.gz", ct.Gzip(t, ct.Archive{Images: withPause(rt)}.Bytes(t))},
		{"zstd", "rke2-images.linux-amd64.tar.zst", ct.Zstd(t, ct.Archive{Images: withPause(rt)}.Bytes(t))},
		{"tgz upper case", "IMAGES.TGZ", ct.Gzip(t, ct.Archive{Images: withPause(rt)}.Bytes(t))},
		{"manifest last", "a.tar.zst", ct.Zstd(t, ct.Archive{Images: withPause(rt), ManifestLast: true}.Bytes(t))},
		{"layers before configs", "a.tar", ct.Archive{Images: withPause(rt), LayersFirst: true}.Bytes(t)},
		{"layers out of order", "a.tar.zst", ct.Zstd(t, ct.Archive{Images: withPause(rt), Edit: reversed}.Bytes(t))},
		{"layers out of order, manifest last", "a.tar", ct.Archive{Images: withPause(rt), Edit: reversed, ManifestLast: true}.Bytes(t)},
		{"go-containerregistry tarball", "ggcr.tar", ct.GGCRTarball(t)},
		// Layers larger than what is held in memory before manifest.json:
		// read again in a second pass, and skipped with seeks in a plain tar.
		{"large layers, manifest last", "big.tar", ct.Archive{Images: withPause(big), ManifestLast: true}.Bytes(t)},
		{"large layers out of order, manifest last", "big.tar.gz", ct.Gzip(t, ct.Archive{Images: withPause(big), ManifestLast: true, Edit: reversed}.Bytes(t))},
		{"large layers out of order", "big.tar", ct.Archive{Images: withPause(big), Edit: reversed}.Bytes(t)},
		// The first layer passed over before manifest.json, the next ones
		// after it: read again in the second pass rather than spooled.
		{"large first layer before manifest.json", "big.tar.zst", ct.Zstd(t, ct.Archive{Images: withPause(big), ManifestAfter: 1}.Bytes(t))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newNode(t, map[string][]byte{tc.file: tc.data})
			n.opts.Server = true
			res := n.mustBootstrap(t)
			if res.Skipped || res.Source != filepath.Join(n.opts.DataDir, "agent", "images", tc.file) {
				t.Errorf("Skipped %v Source %q", res.Skipped, res.Source)
			}
			ct.CheckRuntimeTree(t, filepath.Join(n.opts.DataDir, "data", runtimeKey), ".extracted", "bin/big")
			manifests := filepath.Join(n.opts.DataDir, "server", "manifests")
			if res.ChartsWritten != 2 || listDir(t, manifests) != "old rke2-coredns.yaml" {
				t.Errorf("%d charts written: %q", res.ChartsWritten, listDir(t, manifests))
			}

			before := mtimes(t, n.opts.DataDir)
			time.Sleep(10 * time.Millisecond) // a rewrite would show in the mtimes
			again := n.mustBootstrap(t)
			if !again.Skipped || again.Source != "" || again.ChartsWritten != 0 {
				t.Errorf("second boot: Skipped %v Source %q ChartsWritten %d", again.Skipped, again.Source, again.ChartsWritten)
			}
			after := mtimes(t, n.opts.DataDir)
			for p, m := range before {
				if !after[p].Equal(m) {
					t.Errorf("%s rewritten on the second boot", p)
				}
			}
		})
	}
}

func TestBootstrapServerCopiesCharts(t *testing.T) {
	archive := ct.DockerArchive(t, []ct.Image{{Tags: []string{ct.RuntimeRef}, Layers: simpleRuntime(t)}}, nil)
	agent := newNode(t, map[string][]byte{"rt.tar": archive})
	agent.mustBootstrap(t)
	if _, err := os.Stat(filepath.Join(agent.opts.DataDir, "server")); err == nil {
		t.Error("an agent wrote server/")
	}
	if got := listDir(t, filepath.Join(agent.opts.DataDir, "data", runtimeKey, "bin")); got != "containerd kubelet" {
		t.Errorf("bin holds %q", got)
	}

	server := newNode(t, map[string][]byte{"rt.tar": archive})
	server.opts.Server = true
	server.mustBootstrap(t)
	chart := filepath.Join(server.opts.DataDir, "server", "manifests", "x.yaml")
	if b, err := os.ReadFile(chart); err != nil || string(b) != "kind: HelmChart\n" {
		t.Fatalf("x.yaml = %q, %v", b, err)
	}
	// RKE2 writes its charts over whatever is there at every start (a
	// chart is changed with a HelmChartConfig); a user's own manifest
	// stays, and a replaced chart keeps its mode.
	os.WriteFile(chart, []byte("edited"), 0o600)
	os.Chmod(chart, 0o600)
	os.WriteFile(filepath.Join(server.opts.DataDir, "server", "manifests", "mine.yaml"), []byte("mine"), 0o644)
	res := server.mustBootstrap(t)
	if b, _ := os.ReadFile(chart); string(b) != "kind: HelmChart\n" || res.ChartsWritten != 1 {
		t.Errorf("after an edit: x.yaml = %q, %d written", b, res.ChartsWritten)
	}
	if fi, _ := os.Stat(chart); fi.Mode().Perm() != 0o600 {
		t.Errorf("x.yaml mode %v, want the 0600 it had", fi.Mode())
	}
	if got := listDir(t, filepath.Join(server.opts.DataDir, "server", "manifests")); got != "mine.yaml x.yaml" {
		t.Errorf("manifests: %q", got)
	}
}

// TestBootstrapRefuses checks that a tampered or hostile runtime fails the
// bootstrap with the archive named, and leaves nothing: no data/<key>, no
// temporary directory, no bin link, and no pull attempted instead.
func TestBootstrapRefuses(t *testing.T) {
	good := simpleRuntime(t)
	type archive struct {
		name string
		data []byte
		want string
	}
	cases := []archive{
		{"layer digest mismatch", ct.DockerArchive(t, withPause(good), func(es []ct.Entry, m []ct.ManifestEntry) ([]ct.Entry, []ct.ManifestEntry) {
			es[0].Body = string(ct.Gzip(t, ct.Tar(t, ct.File("bin/kubelet", "evil"))))
			return es, m
		}), "corrupt or tampered"},
		{"diff_id mismatch", ct.DockerArchive(t, []ct.Image{{Tags: []string{ct.RuntimeRef}, Layers: good, DiffIDs: []string{strings.Repeat("0", 64)}}}, nil), "corrupt or tampered"},
		{"diff_id mismatch, config after the layer", ct.Archive{Images: []ct.Image{{Tags: []string{ct.RuntimeRef}, Layers: good, DiffIDs: []string{strings.Repeat("0", 64)}}}, ManifestLast: true}.Bytes(t), "corrupt or tampered"},
		{"truncated layer", ct.DockerArchive(t, withPause(good), func(es []ct.Entry, m []ct.ManifestEntry) ([]ct.Entry, []ct.ManifestEntry) {
			es[0].Body = es[0].Body[:len(es[0].Body)/2]
			return es, m
		}), "layer"},
	}
	for _, h := range hostileLayers(t) {
		h.img.Tags = []string{ct.RuntimeRef}
		cases = append(cases, archive{"hostile layer: " + h.name, ct.Zstd(t, ct.DockerArchive(t, []ct.Image{h.img}, nil)), h.want})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := newNode(t, map[string][]byte{"rke2-images.tar.zst": tc.data})
			_, err := n.bootstrap(t)
			if err == nil {
				t.Fatal("Bootstrap accepted it")
			}
			for _, want := range []string{tc.want, "rke2-images.tar.zst", "replace the archive"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
			if strings.Contains(err.Error(), "pull") {
				t.Errorf("a bad archive led to a pull: %v", err)
			}
			n.checkNothingLeft(t)
		})
	}
}

// failingRegistries sends every pull to a closed port on loopback: tests
// never reach Docker Hub.
func failingRegistries(t *testing.T) *Remote {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	r, err := ParseRegistries([]byte(fmt.Sprintf("mirrors:\n  docker.io:\n    endpoint: [\"http://%s\"]\n", addr)), "registries.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return &Remote{Registries: r, DisableDefaultEndpoint: true}
}

func TestBootstrapMissingRuntime(t *testing.T) {
	old := ct.DockerArchive(t, []ct.Image{{Tags: []string{"rancher/rke2-runtime:v1.33.1-rke2r1"}, Layers: simpleRuntime(t)}}, nil)
	other := ct.DockerArchive(t, []ct.Image{{Tags: []string{"rancher/hardened-etcd:v3.6.7"}, Layers: simpleRuntime(t)}}, nil)
	for _, tc := range []struct {
		name     string
		archives map[string][]byte
		want     []string
	}{
		{"older runtime", map[string][]byte{"rke2-images.linux-amd64.tar.zst": ct.Zstd(t, old), "etcd.tar": other},
			[]string{"(found: rancher/rke2-runtime:v1.33.1-rke2r1 in rke2-images.linux-amd64.tar.zst)"}},
		{"no runtime at all", map[string][]byte{"etcd.tar": other}, []string{"found no rke2-runtime image in etcd.tar"}},
		{"no archives", nil, []string{"found no image archives"}},
		{"no images directory", map[string][]byte{"gone": nil}, []string{"found no image archives"}},
		{"unreadable archive", map[string][]byte{"junk.tar": []byte("not a tar at all"), "etcd.tar": other},
			[]string{"found no rke2-runtime image in etcd.tar; unreadable: junk.tar"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newNode(t, tc.archives)
			if _, ok := tc.archives["gone"]; ok {
				os.RemoveAll(filepath.Join(n.opts.DataDir, "agent"))
			}
			n.opts.Remote = failingRegistries(t)
			_, err := n.bootstrap(t)
			if err == nil {
				t.Fatal("Bootstrap found a runtime that is not there")
			}
			want := append([]string{"no rancher/rke2-runtime:v1.34.4-rke2r1 in " + filepath.Join(n.opts.DataDir, "agent", "images"),
				"the pull failed", "bake the matching archive with rke2-build image --images, or configure a registry"}, tc.want...)
			for _, w := range want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			n.checkNothingLeft(t)
		})
	}
}

// TestBootstrapPullsThroughMirror pulls the runtime from an in-process
// registry on loopback, as a docker.io mirror that renames repositories,
// when no archive holds it.
func TestBootstrapPullsThroughMirror(t *testing.T) {
	srv, host := ct.Registry(t, "u", "p", false)
	ct.PushRuntime(t, srv, host, "mirrored/rancher/rke2-runtime:v1.34.4-rke2r1", &authn.Basic{Username: "u", Password: "p"})
	reg, err := ParseRegistries([]byte(fmt.Sprintf(`
mirrors:
  docker.io:
    endpoint: ["http://%s"]
    rewrite:
      "^rancher/(.*)": "mirrored/rancher/$1"
configs:
  %q:
    auth: {username: u, password: p}
`, host, host)), "registries.yaml")
	if err != nil {
		t.Fatal(err)
	}
	remote := &Remote{Registries: reg, DisableDefaultEndpoint: true}
	// An archive without the runtime is passed over.
	n := newNode(t, map[string][]byte{"etcd.tar": ct.DockerArchive(t, []ct.Image{{Tags: []string{"rancher/hardened-etcd:v3.6.7"}, Layers: simpleRuntime(t)}}, nil)})
	n.opts.Remote = remote
	n.opts.Server = true
	res := n.mustBootstrap(t)
	if !strings.Contains(res.Source, host+"/mirrored/rancher/rke2-runtime") {
		t.Errorf("Source = %q", res.Source)
	}
	ct.CheckRuntimeTree(t, filepath.Join(n.opts.DataDir, "data", runtimeKey), ".extracted")
	// The archive is there: containerd is not asked to pull the runtime.
	if _, err := os.Stat(filepath.Join(n.opts.DataDir, "agent", "images", "runtime-image.txt")); err == nil {
		t.Error("runtime-image.txt written beside an archive")
	}
	if again := n.mustBootstrap(t); !again.Skipped {
		t.Error("the second boot pulled again")
	}

	// Without archives, containerd is asked to pull it too, as RKE2 does.
	bare := newNode(t, nil)
	bare.opts.Remote = remote
	bare.mustBootstrap(t)
	b, err := os.ReadFile(filepath.Join(bare.opts.DataDir, "agent", "images", "runtime-image.txt"))
	if err != nil || string(b) != "index.docker.io/"+ct.RuntimeRef+"\n" {
		t.Errorf("runtime-image.txt = %q, %v", b, err)
	}
}

// TestBootstrapRedoesUnfinished checks that a runtime directory without its
// marker (an extraction cut short by RKE2, or by a power cut) is extracted
// again, and that a bin directory or stale link is replaced.
func TestBootstrapRedoesUnfinished(t *testing.T) {
	n := newNode(t, map[string][]byte{"rt.tar": ct.DockerArchive(t, []ct.Image{{Tags: []string{ct.RuntimeRef}, Layers: simpleRuntime(t)}}, nil)})
	dir := filepath.Join(n.opts.DataDir, "data", runtimeKey)
	os.MkdirAll(filepath.Join(dir, "bin"), 0o755)
	os.MkdirAll(filepath.Join(dir, "charts"), 0o755)
	os.WriteFile(filepath.Join(dir, "bin", "containerd"), []byte("half"), 0o755)
	os.MkdirAll(filepath.Join(n.opts.DataDir, "bin"), 0o755)
	res := n.mustBootstrap(t)
	if res.Skipped {
		t.Error("an unfinished extraction was taken as done")
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "bin", "containerd")); string(b) != "c" {
		t.Errorf("containerd = %q", b)
	}
	// A link to an older runtime is moved to this one.
	os.Remove(filepath.Join(n.opts.DataDir, "bin"))
	os.Symlink("/var/lib/rancher/rke2/data/v1.33.1-rke2r1-000000000000/bin", filepath.Join(n.opts.DataDir, "bin"))
	if res := n.mustBootstrap(t); !res.Skipped {
		t.Error("not skipped")
	}
}

func TestBootstrapSkipsBrokenArchive(t *testing.T) {
	n := newNode(t, map[string][]byte{
		"a-junk.tar.gz":   []byte("not gzip"),
		"b-runtime.tar":   ct.DockerArchive(t, []ct.Image{{Tags: []string{ct.RuntimeRef}, Layers: simpleRuntime(t)}}, nil),
		".hidden.tar":     []byte("dotfiles are not read"),
		"notes.txt":       []byte("not an archive"),
		"c-other.tar.zst": ct.Zstd(t, ct.DockerArchive(t, []ct.Image{{Tags: []string{"rancher/x:1"}, Layers: simpleRuntime(t)}}, nil)),
	})
	res := n.mustBootstrap(t)
	if filepath.Base(res.Source) != "b-runtime.tar" {
		t.Errorf("Source = %q", res.Source)
	}
}

func TestBootstrapCancelled(t *testing.T) {
	n := newNode(t, map[string][]byte{"rt.tar": ct.DockerArchive(t, []ct.Image{{Tags: []string{ct.RuntimeRef}, Layers: simpleRuntime(t)}}, nil)})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Bootstrap(ctx, n.opts); err == nil || !strings.Contains(err.Error(), "context canceled") {
		t.Errorf("a cancelled bootstrap: %v", err)
	}
	n.checkNothingLeft(t)
}

func TestBootstrapOptions(t *testing.T) {
	if _, err := Bootstrap(context.Background(), Options{DataDir: t.TempDir()}); err == nil {
		t.Error("no version was taken")
	}
	if _, err := Bootstrap(context.Background(), Options{DataDir: t.TempDir(), Version: "dev"}); err == nil || !strings.Contains(err.Error(), "release tag") {
		t.Errorf("a version that is no release: %v", err)
	}
}

func TestArchives(t *testing.T) {
	n := newNode(t, map[string][]byte{
		"b.tar.zst": []byte("x"), "a.TAR": []byte("x"), "c.tgz": []byte("x"), "d.tar.gz": []byte("x"), "e.tzst": []byte("x"),
		"list.txt": []byte("x"), "f.tar.lz4": []byte("x"), ".g.tar": []byte("x"),
	})
	images := filepath.Join(n.opts.DataDir, "agent", "images")
	os.MkdirAll(filepath.Join(images, "sub.tar"), 0o755)
	os.WriteFile(filepath.Join(images, "sub.tar", "h.tar"), []byte("x"), 0o644)
	got, err := Archives(images)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range got {
		names = append(names, filepath.Base(p))
	}
	if s := strings.Join(names, " "); s != ".g.tar a.TAR b.tar.zst c.tgz d.tar.gz e.tzst" {
		t.Errorf("Archives = %s", s)
	}
	if got, err := Archives(filepath.Join(images, "missing")); err != nil || got != nil {
		t.Errorf("a missing directory: %v, %v", got, err)
	}
	// The runtime is looked for below too, dotfiles left out, as RKE2 does.
	rt, err := runtimeArchives(images)
	if err != nil {
		t.Fatal(err)
	}
	if len(rt) != 6 || filepath.Base(rt[5]) != "h.tar" {
		t.Errorf("runtimeArchives = %v", rt)
	}
}

func TestArchiveDigest(t *testing.T) {
	data := []byte("an archive")
	p := ct.WriteFile(t, "a.tar", data)
	d, err := ArchiveDigest(p)
	if err != nil || d != "sha256:"+ct.Sha(data) {
		t.Errorf("ArchiveDigest = %q, %v", d, err)
	}
	if _, err := ArchiveDigest(p + ".missing"); err == nil || !strings.Contains(err.Error(), p) {
		t.Errorf("a missing archive: %v", err)
	}
}
