package pods

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rke2os/rke2os/internal/golden"

	"github.com/rke2os/rke2os/init/shared/layout"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

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
	paths := layout.Paths{DataDir: filepath.Join(dir, "rke2"), EtcDir: filepath.Join(dir, "etc"), RunDir: filepath.Join(dir, "run")}
	o := EtcdOptions{Paths: paths, Image: "rancher/hardened-etcd:v3.6.7-build20250101", NodeName: "node1", NodeIP: "10.0.2.15"}
	if err := EtcdCerts(o); err != nil {
		t.Fatal(err)
	}
	// Golden: the pod as written with paths under DefaultPaths; the certs
	// (and so FILE_HASH) differ per run, so the golden uses no files.
	o2 := o
	o2.Paths = layout.DefaultPaths
	b, err := yamlOf(EtcdPod(o2))
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "etcd-pod.yaml", b)
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
