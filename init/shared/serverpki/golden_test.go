package serverpki

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/rke2os/rke2os/internal/golden"
	"sigs.k8s.io/yaml"
)

// TestGoldenKubeconfigs: the kubeconfigs as written, with the temporary
// root taken out of their paths (so they read as on a node).
func TestGoldenKubeconfigs(t *testing.T) {
	o := testOptions(t)
	ensure(t, o)
	root := strings.TrimSuffix(o.Paths.DataDir, "/var/lib/rancher/rke2")
	var all bytes.Buffer
	for _, f := range []string{"server/cred/admin.kubeconfig", "server/cred/supervisor.kubeconfig", "server/cred/controller.kubeconfig",
		"server/cred/scheduler.kubeconfig", "server/cred/api-server.kubeconfig", "server/cred/cloud-controller.kubeconfig",
		"agent/kubelet.kubeconfig", "agent/kubeproxy.kubeconfig", "agent/rke2controller.kubeconfig"} {
		b, err := os.ReadFile(filepath.Join(o.Paths.DataDir, f))
		if err != nil {
			t.Fatal(err)
		}
		all.WriteString("# " + f + "\n")
		all.Write(bytes.ReplaceAll(b, []byte(root), nil))
	}
	golden.Check(t, "kubeconfigs.yaml", all.Bytes())
}

// TestGoldenAdminKubeconfig: rke2.yaml inlines the server CA and the
// admin's certificate and key (the data is masked in the golden file, and
// checked against the files here).
func TestGoldenAdminKubeconfig(t *testing.T) {
	o := testOptions(t)
	ensure(t, o)
	b, err := os.ReadFile(filepath.Join(o.Paths.EtcDir, "rke2.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var kc kubeconfig
	if err := yaml.UnmarshalStrict(b, &kc); err != nil {
		t.Fatal(err)
	}
	for data, file := range map[*[]byte]string{
		&kc.Clusters[0].Cluster.CertificateAuthorityData: "server/tls/server-ca.crt",
		&kc.Users[0].User.ClientCertificateData:          "server/tls/client-admin.crt",
		&kc.Users[0].User.ClientKeyData:                  "server/tls/client-admin.key",
	} {
		want, _ := os.ReadFile(filepath.Join(o.Paths.DataDir, file))
		if !bytes.Equal(*data, want) {
			t.Errorf("rke2.yaml does not inline %s", file)
		}
	}
	masked := regexp.MustCompile(`(-data): [A-Za-z0-9+/=]+`).ReplaceAll(b, []byte("$1: MASKED"))
	golden.Check(t, "rke2.yaml", masked)
	// And the same structure from fixed data, unmasked.
	fixed, err := inlineKubeconfig("https://127.0.0.1:6443", []byte("CA\n"), []byte("CERT\n"), []byte("KEY\n"))
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "rke2-fixed.yaml", fixed)
}

// TestGoldenEncryptionConfig: the encryption config's structure, its key
// masked (TestFresh checks the key).
func TestGoldenEncryptionConfig(t *testing.T) {
	o := testOptions(t)
	ensure(t, o)
	b, err := os.ReadFile(filepath.Join(o.Paths.DataDir, "server/cred/encryption-config.json"))
	if err != nil {
		t.Fatal(err)
	}
	secret := regexp.MustCompile(`"secret":"([^"]*)"`)
	m := secret.FindSubmatch(b)
	if m == nil {
		t.Fatalf("no secret in %s", b)
	}
	if k, err := base64.StdEncoding.DecodeString(string(m[1])); err != nil || len(k) != 32 {
		t.Errorf("secret: %d bytes, %v", len(k), err)
	}
	golden.Check(t, "encryption-config.json", secret.ReplaceAll(b, []byte(`"secret":"MASKED"`)))
}
