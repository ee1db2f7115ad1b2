package images

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/rke2os/rke2os/builder/content"
)

// TestContainerdImports runs the archive's own containerd (from the
// rke2-runtime image) on a scratch directory and imports the archive into
// it, the way a node imports its airgap images: proof that containerd takes
// the format as written. It needs root, as containerd does.
func TestContainerdImports(t *testing.T) {
	path := archivePath()
	requireBuilt(t, path, "RKE2_REQUIRE_IMAGES", "images/build.sh")
	if os.Geteuid() != 0 {
		t.Skip("containerd needs root")
	}
	if testing.Short() {
		t.Skip("imports about 850 MB")
	}
	v := versions(t)
	s, err := content.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	rt, err := s.FindRuntime(v["RKE2_VERSION"])
	if err != nil {
		s.Close()
		t.Fatal(err)
	}
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	err = content.ExtractPaths(rt, data, []string{"/bin"})
	s.Close()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(data, "bin")
	sock := filepath.Join(dir, "containerd.sock")
	// The CRI plugins are not needed to import and would want a node.
	// The unpack config lets the transfer service unpack what it imports.
	config := `version = 3
root = "` + filepath.Join(dir, "root") + `"
state = "` + filepath.Join(dir, "state") + `"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.cri.v1.runtime", "io.containerd.cri.v1.images"]
[grpc]
  address = "` + sock + `"
[plugins.'io.containerd.transfer.v1.local']
  [[plugins.'io.containerd.transfer.v1.local'.unpack_config]]
    platform = "linux/amd64"
    snapshotter = "native"
`
	cfg := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfg, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	log, err := os.Create(filepath.Join(dir, "containerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	daemon := exec.CommandContext(ctx, filepath.Join(bin, "containerd"), "--config", cfg)
	daemon.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"))
	daemon.Stdout, daemon.Stderr = log, log
	if err := daemon.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		daemon.Process.Signal(os.Interrupt)
		daemon.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(log.Name())
			t.Logf("containerd log:\n%s", b)
		}
	}()
	ctr := func(args ...string) (string, error) {
		out, err := exec.CommandContext(ctx, filepath.Join(bin, "ctr"), append([]string{"-a", sock, "-n", "k8s.io"}, args...)...).CombinedOutput()
		return string(out), err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := ctr("version")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("containerd did not answer in 30s: %v\n%s", err, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	start := time.Now()
	if out, err := ctr("images", "import", "--snapshotter", "native", path); err != nil {
		t.Fatalf("ctr images import: %v\n%s", err, out)
	}
	t.Logf("imported in %v", time.Since(start).Round(time.Millisecond))
	out, err := ctr("images", "ls", "-q")
	if err != nil {
		t.Fatalf("ctr images ls: %v\n%s", err, out)
	}
	var got []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "docker.io/") {
			got = append(got, l)
		}
	}
	var want []string
	for _, k := range []string{"RUNTIME_IMAGE", "KUBERNETES_IMAGE", "ETCD_IMAGE", "PAUSE_IMAGE", "CNI_PLUGINS_IMAGE", "FLANNEL_IMAGE", "COREDNS_IMAGE"} {
		want = append(want, "docker.io/"+v[k])
	}
	sort.Strings(want)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("containerd has %v, want %v", got, want)
	}
}
