package node

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run go test -update to write it)", err)
	}
	if string(got) != string(want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it):\n%s", name, got)
	}
}

func TestContainerdConfig(t *testing.T) {
	b, err := ContainerdConfig(ContainerdOptions{Paths: DefaultPaths, SandboxImage: "index.docker.io/rancher/mirrored-pause:3.10",
		BinDir: "/var/lib/rancher/rke2/data/v1.34.4-rke2r1-0123456789ab/bin"})
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "containerd-config.toml", b)
	if _, err := ContainerdConfig(ContainerdOptions{Paths: DefaultPaths}); err == nil {
		t.Error("a config without a sandbox image was accepted")
	}
}

func TestHostsTOML(t *testing.T) {
	got := HostsTOML(map[string]Mirror{
		"docker.io": {Endpoints: []string{"https://mirror.example.com:5000"}, Rewrite: map[string]string{"^rancher/(.*)": "mirrored/$1"}},
		"*":         {Endpoints: []string{"https://all.example.com"}},
	})
	golden(t, "hosts-docker.io.toml", got["docker.io"])
	golden(t, "hosts-default.toml", got["_default"])
}

func TestKubeletConfig(t *testing.T) {
	for _, standalone := range []bool{true, false} {
		o := KubeletOptions{Paths: DefaultPaths, NodeName: "node1", NodeIP: "10.0.2.15", Standalone: standalone}
		b, err := KubeletConfig(o)
		if err != nil {
			t.Fatal(err)
		}
		name := "kubelet-standalone.yaml"
		if !standalone {
			name = "kubelet-cluster.yaml"
		}
		golden(t, name, b)
		args := strings.Join(KubeletArgs(o), " ")
		if strings.Contains(args, "--kubeconfig") == standalone {
			t.Errorf("standalone=%v: args %s", standalone, args)
		}
	}
}

func TestStaticPod(t *testing.T) {
	dir := t.TempDir()
	cert := filepath.Join(dir, "server.crt")
	os.WriteFile(cert, []byte("cert one"), 0o600)
	pods := filepath.Join(dir, "pod-manifests")
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "etcd", Namespace: "kube-system"},
		Spec: corev1.PodSpec{HostNetwork: true, Containers: []corev1.Container{{Name: "etcd", Image: "rancher/hardened-etcd:v3.6.7",
			Command: []string{"etcd"}, Args: []string{"--cert-file=" + cert, "--data-dir=/var/lib/x"}}}}}
	changed, err := StaticPod(pods, pod)
	if err != nil || !changed {
		t.Fatalf("first write: changed=%v err=%v", changed, err)
	}
	first, _ := os.ReadFile(filepath.Join(pods, "etcd.yaml"))
	for _, want := range []string{"mountPath: " + cert, "readOnly: true", "name: FILE_HASH", "type: File"} {
		if !strings.Contains(string(first), want) {
			t.Errorf("manifest lacks %q:\n%s", want, first)
		}
	}
	// Identical content: not rewritten (the kubelet would restart the pod).
	if changed, err := StaticPod(pods, pod); err != nil || changed {
		t.Fatalf("second write: changed=%v err=%v", changed, err)
	}
	// A changed certificate changes FILE_HASH, and so the manifest.
	os.WriteFile(cert, []byte("cert two"), 0o600)
	if changed, err := StaticPod(pods, pod); err != nil || !changed {
		t.Fatalf("after cert change: changed=%v err=%v", changed, err)
	}
	// Nothing but the manifest is left in the kubelet's directory.
	ents, _ := os.ReadDir(pods)
	if len(ents) != 1 {
		t.Errorf("pod-manifests holds %d files, want 1", len(ents))
	}
}

func TestEtcdPod(t *testing.T) {
	dir := t.TempDir()
	paths := Paths{DataDir: filepath.Join(dir, "rke2"), EtcDir: filepath.Join(dir, "etc"), RunDir: filepath.Join(dir, "run")}
	o := EtcdOptions{Paths: paths, Image: "rancher/hardened-etcd:v3.6.7-build20250101", NodeName: "node1", NodeIP: "10.0.2.15"}
	if err := EtcdCerts(o); err != nil {
		t.Fatal(err)
	}
	// Golden: the pod as written with paths under DefaultPaths; the certs
	// (and so FILE_HASH) differ per run, so the golden uses no files.
	o2 := o
	o2.Paths = DefaultPaths
	b, err := yamlOf(EtcdPod(o2))
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "etcd-pod.yaml", b)
	changed, err := StaticPod(paths.PodManifests(), EtcdPod(o))
	if err != nil || !changed {
		t.Fatalf("write: %v %v", changed, err)
	}
	m, _ := os.ReadFile(paths.EtcdManifest())
	for _, crt := range []string{"server-client.crt", "server-ca.crt", "peer-server-client.key"} {
		if !strings.Contains(string(m), "mountPath: "+paths.EtcdTLS(crt)) {
			t.Errorf("etcd manifest does not mount %s read-only", crt)
		}
	}
}

// An archive linked from the boot medium takes its digest from the
// release file; any other archive is hashed.
func TestArchiveDigest(t *testing.T) {
	dir := t.TempDir()
	medium := filepath.Join(dir, "medium.tar")
	other := filepath.Join(dir, "other.tar")
	os.WriteFile(medium, []byte("medium"), 0o644)
	os.WriteFile(other, []byte("other"), 0o644)
	link := filepath.Join(dir, "images", "medium.tar")
	os.MkdirAll(filepath.Dir(link), 0o755)
	if err := os.Symlink(medium, link); err != nil {
		t.Fatal(err)
	}
	known := map[string]string{medium: "sha256:from-release"}
	for _, tc := range []struct{ path, want string }{
		{link, "sha256:from-release"},
		{medium, "sha256:from-release"},
		// sha256("other")
		{other, "sha256:d9298a10d1b0735837dc4bd85dac641b0f3cef27a47e5d53a54f2f3f5b2fcffa"},
	} {
		got, err := archiveDigest(tc.path, known)
		if err != nil || got != tc.want {
			t.Errorf("archiveDigest(%s) = %q, %v; want %q", tc.path, got, err, tc.want)
		}
	}
	if _, err := archiveDigest(filepath.Join(dir, "missing.tar"), known); err == nil {
		t.Error("a missing archive has a digest")
	}
}
