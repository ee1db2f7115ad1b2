package rke2node

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	ct "github.com/rke2os/rke2os/init/shared/content/contenttest"
	"github.com/rke2os/rke2os/init/shared/layout"
	"github.com/rke2os/rke2os/init/shared/nodesteps"
	"github.com/rke2os/rke2os/init/shared/serverpki"
)

// testEnv is a node tree under a temporary directory, with a release file
// that names the runtime and etcd images.
func testEnv(t *testing.T) Env {
	dir := t.TempDir()
	env := Env{Paths: layout.Paths{DataDir: filepath.Join(dir, "rke2"), EtcDir: filepath.Join(dir, "etc"), RunDir: filepath.Join(dir, "run")},
		Release: filepath.Join(dir, "release.json"), MediumDir: filepath.Join(dir, "medium")}
	rel := `{"rke2_version":"v1.34.4+rke2r1","images":[{"name":"docker.io/rancher/hardened-etcd:v3.6.7-k3s1","id":"sha256:1","archive":"/rke2/agent/images/a.tar"},` +
		`{"name":"docker.io/rancher/hardened-kubernetes:v1.34.4-rke2r1-build20250101","id":"sha256:2","archive":"/rke2/agent/images/a.tar"}]}`
	if err := os.WriteFile(env.Release, []byte(rel), 0o644); err != nil {
		t.Fatal(err)
	}
	return env
}

func run(t *testing.T, env Env, args ...string) (int, map[string]any) {
	t.Helper()
	var out bytes.Buffer
	code := Main(env, args, &out)
	var m map[string]any
	if out.Len() > 0 {
		if err := json.Unmarshal(out.Bytes(), &m); err != nil {
			t.Fatalf("answer %q: %v", out.String(), err)
		}
	}
	return code, m
}

func TestUsage(t *testing.T) {
	env := testEnv(t)
	for _, args := range [][]string{nil, {"dance"}, {nodesteps.StepEtcd, "--no-such-flag"}} {
		if code, _ := run(t, env, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
}

// The content step extracts the runtime from an archive in the images
// directory, and skips it the second time, as RKE2 does.
func TestContent(t *testing.T) {
	env := testEnv(t)
	archive := ct.DockerArchive(t, []ct.Image{{Tags: []string{ct.RuntimeRef}, Layers: ct.RuntimeLayers(t)}}, nil)
	os.MkdirAll(env.Paths.Images(), 0o755)
	os.WriteFile(filepath.Join(env.Paths.Images(), "rke2-images.linux-amd64.tar"), archive, 0o644)
	for i, skipped := range []bool{false, true} {
		code, m := run(t, env, nodesteps.StepContent, "--server")
		if code != 0 || m["skipped"] != skipped || !strings.HasPrefix(m["data_key"].(string), "v1.34.4-rke2r1-") {
			t.Fatalf("run %d: exit %d, answer %v", i, code, m)
		}
		ct.CheckRuntimeTree(t, filepath.Join(env.Paths.DataDir, "data", m["data_key"].(string)), ".extracted")
	}
}

// A step that fails answers its error in plain words and exits 1.
func TestFailureAnswer(t *testing.T) {
	env := testEnv(t)
	os.Remove(env.Release)
	code, m := run(t, env, nodesteps.StepContent)
	if code != 1 || !strings.Contains(m["error"].(string), "rebuild it with the airgap images") {
		t.Fatalf("exit %d, answer %v", code, m)
	}
	env = testEnv(t)
	os.MkdirAll(env.Paths.Images(), 0o755)
	code, m = run(t, env, nodesteps.StepContent)
	if code != 1 || !strings.Contains(m["error"].(string), "rke2-runtime") {
		t.Fatalf("no archive: exit %d, answer %v", code, m)
	}
}

// The etcd step writes the certificates and the static pod once; the
// same node asks again and nothing changes.
func TestEtcd(t *testing.T) {
	env := testEnv(t)
	for i, changed := range []bool{true, false} {
		code, m := run(t, env, nodesteps.StepEtcd, "--node-name=node1", "--node-ip=10.0.2.15")
		if code != 0 || m["changed"] != changed || m["manifest"] != env.Paths.EtcdManifest() {
			t.Fatalf("run %d: exit %d, answer %v", i, code, m)
		}
	}
	b, err := os.ReadFile(env.Paths.EtcdManifest())
	if err != nil || !strings.Contains(string(b), "rancher/hardened-etcd:v3.6.7-k3s1") || !strings.Contains(string(b), "10.0.2.15") {
		t.Fatalf("manifest: %v\n%s", err, b)
	}
	// The server's PKI came with it, once: keys and kubeconfigs 0600.
	for _, f := range []string{"server/tls/server-ca.key", "server/tls/client-admin.key", "server/cred/admin.kubeconfig",
		"server/cred/encryption-config.json", "server/token", "server/agent-token", "agent/kubelet.kubeconfig"} {
		fi, err := os.Lstat(filepath.Join(env.Paths.DataDir, f))
		if err != nil {
			t.Errorf("%s: %v", f, err)
		} else if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", f, fi.Mode().Perm())
		}
	}
	if code, m := run(t, env, nodesteps.StepEtcd, "--node-name=node1", "--node-ip=10.0.2.15"); code != 0 || m["pki_written"] != 0.0 {
		t.Errorf("third run: exit %d, answer %v: the PKI was written again", code, m)
	}
	if code, m := run(t, env, nodesteps.StepEtcd); code != 1 || !strings.Contains(m["error"].(string), "no node name") {
		t.Fatalf("no node name: exit %d, answer %v", code, m)
	}
}

// A server image's baked secrets become the node's where it has none: the
// etcd step keeps the baked server CA and tokens. A node with its own CA
// keeps it.
func TestEtcdBakedSecrets(t *testing.T) {
	env := testEnv(t)
	env.Secrets = filepath.Join(t.TempDir(), "secrets")
	if err := serverpki.GenerateSecrets(env.Secrets); err != nil {
		t.Fatal(err)
	}
	bakedCA, _ := os.ReadFile(filepath.Join(env.Secrets, "tls", "server-ca.crt"))
	bakedToken, _ := os.ReadFile(filepath.Join(env.Secrets, "token"))
	bakedAgentToken, _ := os.ReadFile(filepath.Join(env.Secrets, "agent-token"))
	if code, m := run(t, env, nodesteps.StepEtcd, "--node-name=node1", "--node-ip=10.0.2.15"); code != 0 {
		t.Fatalf("exit %d, answer %v", code, m)
	}
	if got, _ := os.ReadFile(env.Paths.Server("agent-token")); string(got) != string(bakedAgentToken) {
		t.Errorf("server/agent-token %q, want the baked %q", got, bakedAgentToken)
	}
	if got, _ := os.ReadFile(env.Paths.Server("tls", "server-ca.crt")); !bytes.Equal(got, bakedCA) {
		t.Error("server-ca.crt is not the baked one")
	}
	if got, _ := os.ReadFile(env.Paths.Server("token")); string(got) != string(bakedToken) {
		t.Errorf("server/token %q, want the baked %q", got, bakedToken)
	}
	if fi, err := os.Stat(env.Paths.Server("tls", "etcd", "peer-ca.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("etcd/peer-ca.key: %v", err)
	}

	// A node that made its own CA before the image had secrets keeps it.
	own := testEnv(t)
	if code, m := run(t, own, nodesteps.StepEtcd, "--node-name=node1", "--node-ip=10.0.2.15"); code != 0 {
		t.Fatalf("exit %d, answer %v", code, m)
	}
	ownCA, _ := os.ReadFile(own.Paths.Server("tls", "server-ca.crt"))
	own.Secrets = env.Secrets
	code, m := run(t, own, nodesteps.StepEtcd, "--node-name=node1", "--node-ip=10.0.2.15")
	if code != 0 || m["pki_written"] != 0.0 || !strings.Contains(fmt.Sprint(m["warnings"]), "keeps its own CA") {
		t.Fatalf("exit %d, answer %v", code, m)
	}
	if got, _ := os.ReadFile(own.Paths.Server("tls", "server-ca.crt")); !bytes.Equal(got, ownCA) {
		t.Error("the node's own server-ca.crt was replaced by the baked one")
	}
}

// The baked token is a default: on a first boot the config's token wins
// over it, as the README promises. (The etcd step installed the baked
// token file as if it were the node's own state, then refused the
// config's: the node stopped in maintenance mode.) A node with state of
// its own keeps it: another config token is refused, and nothing is
// overwritten.
func TestEtcdBakedSecretsConfigTokens(t *testing.T) {
	env := testEnv(t)
	env.Secrets = filepath.Join(t.TempDir(), "secrets")
	if err := serverpki.GenerateSecrets(env.Secrets); err != nil {
		t.Fatal(err)
	}
	caFile, _ := os.ReadFile(filepath.Join(env.Secrets, "tls", "server-ca.crt"))
	hash, err := serverpki.CAHash(caFile)
	if err != nil {
		t.Fatal(err)
	}
	writeConfig(t, env, "token: config-server-secret\nagent-token: config-agent-secret\n")
	if code, m := run(t, env, nodesteps.StepEtcd, "--node-name=node1", "--node-ip=10.0.2.15"); code != 0 {
		t.Fatalf("first boot: exit %d, answer %v", code, m)
	}
	for f, want := range map[string]string{"token": "K10" + hash + "::server:config-server-secret\n", "agent-token": "K10" + hash + "::node:config-agent-secret\n"} {
		if got, _ := os.ReadFile(env.Paths.Server(f)); string(got) != want {
			t.Errorf("server/%s %q, want the config's %q", f, got, want)
		}
	}

	// The node's own state now: another token in the config is refused.
	before := map[string][]byte{}
	for _, f := range []string{"token", "agent-token", "cred/passwd"} {
		before[f], _ = os.ReadFile(env.Paths.Server(f))
	}
	writeConfig(t, env, "token: another-secret\n")
	code, m := run(t, env, nodesteps.StepEtcd, "--node-name=node1", "--node-ip=10.0.2.15")
	if code != 1 || !strings.Contains(fmt.Sprint(m["error"]), "not this cluster's") {
		t.Fatalf("another token: exit %d, answer %v", code, m)
	}
	for f, b := range before {
		if got, _ := os.ReadFile(env.Paths.Server(f)); !bytes.Equal(got, b) {
			t.Errorf("server/%s was overwritten", f)
		}
	}
}

// writeConfig writes RKE2's config.yaml as the init renders it.
func writeConfig(t *testing.T, env Env, yaml string) {
	t.Helper()
	if err := os.MkdirAll(env.Paths.EtcDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(env.Paths.EtcDir, "config.yaml"), []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
}
