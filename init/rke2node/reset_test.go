package rke2node

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/rke2os/rke2os/init/rke2node/etcdsnap/s3store"
	"github.com/rke2os/rke2os/init/rke2node/pods"
	"github.com/rke2os/rke2os/init/shared/config"
	"github.com/rke2os/rke2os/internal/etcdtest"
)

// fakeEtcdutl stands for etcdutl snapshot restore: it writes the source
// database into the new data directory and records its arguments.
func fakeEtcdutl(t *testing.T, env Env) (args func() string) {
	t.Helper()
	bin := env.Paths.Bin()
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(t.TempDir(), "args")
	script := `#!/bin/sh
echo "$@" > ` + log + `
while [ $# -gt 0 ]; do [ "$1" = --data-dir ] && dir=$2; shift; done
mkdir -p "$dir/member/snap" && echo restored > "$dir/member/snap/db"
`
	if err := os.WriteFile(filepath.Join(bin, "etcdutl"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return func() string { b, _ := os.ReadFile(log); return string(b) }
}

func rke2(t *testing.T, yaml string) config.RKE2Config {
	t.Helper()
	c, err := config.Parse("config.yaml", []byte("rke2:\n"+yaml))
	if err != nil {
		t.Fatal(err)
	}
	return c.RKE2
}

// TestClusterReset: a restore by a snapshot's name, once; the reset-flag
// keeps the keys from resetting again and goes once they are gone.
func TestClusterReset(t *testing.T) {
	ctx := context.Background()
	env := testEnv(t)
	args := fakeEtcdutl(t, env)
	data := env.Paths.Server("db", "etcd")
	snaps := env.Paths.Server("db", "snapshots")
	for _, d := range []string{filepath.Join(data, "member"), snaps} {
		os.MkdirAll(d, 0o700)
	}
	os.WriteFile(filepath.Join(data, "member", "old"), []byte("x"), 0o600)
	os.WriteFile(env.etcdJoinPath(), []byte("{}"), 0o600)
	snap := filepath.Join(snaps, "etcd-snapshot-node1-1796644800")
	if err := os.WriteFile(snap, etcdtest.Snapshot(t, 3), 0o600); err != nil {
		t.Fatal(err)
	}
	rc := rke2(t, "  cluster-reset: true\n  cluster-reset-restore-path: etcd-snapshot-node1-1796644800\n")
	reset, force, err := env.clusterReset(ctx, rc, "node1", "https://10.0.0.1:2380")
	if err != nil || !reset || force {
		t.Fatalf("clusterReset = %v, %v, %v", reset, force, err)
	}
	if a := args(); !strings.Contains(a, "snapshot restore "+snap+" --name node1 --initial-cluster node1=https://10.0.0.1:2380") || strings.Contains(a, "skip-hash") {
		t.Errorf("etcdutl %s", a)
	}
	old, _ := filepath.Glob(filepath.Join(filepath.Dir(data), "etcd-old-*"))
	if len(old) != 1 || !fileExists(filepath.Join(old[0], "member", "old")) {
		t.Errorf("old data %v", old)
	}
	if b, _ := os.ReadFile(filepath.Join(data, "member", "snap", "db")); string(b) != "restored\n" {
		t.Errorf("data dir not the restored one: %q", b)
	}
	if !fileExists(env.resetFlag()) || fileExists(env.etcdJoinPath()) {
		t.Error("reset-flag not written, or the join record not moved aside")
	}

	// The keys left in the config: nothing reset again.
	os.WriteFile(filepath.Join(data, "member", "newer"), []byte("y"), 0o600)
	if reset, _, err := env.clusterReset(ctx, rc, "node1", "https://10.0.0.1:2380"); err != nil || reset {
		t.Fatalf("second boot: %v, %v", reset, err)
	}
	if !fileExists(filepath.Join(data, "member", "newer")) {
		t.Error("the second boot moved the data again")
	}
	// The keys gone: the flag goes.
	if reset, _, err := env.clusterReset(ctx, rke2(t, "  node-name: node1\n"), "node1", ""); err != nil || reset || fileExists(env.resetFlag()) {
		t.Errorf("normal start: %v, %v, flag kept %v", reset, err, fileExists(env.resetFlag()))
	}
	// cluster-reset alone: etcd forced to one member on its own data,
	// which stays where it is; etcdutl is not run.
	os.MkdirAll(filepath.Join(data, "member", "wal"), 0o700)
	before := args()
	reset, force, err = env.clusterReset(ctx, rke2(t, "  cluster-reset: true\n"), "node1", "https://10.0.0.1:2380")
	if err != nil || !reset || !force || args() != before || !fileExists(filepath.Join(data, "member", "newer")) || !fileExists(env.resetFlag()) {
		t.Errorf("reset alone: %v %v %v; etcdutl run %v", reset, force, err, args() != before)
	}
}

func TestClusterResetRefuses(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		yaml, want string
		// boots: the restore is refused, and etcd starts on the data
		// as it is (no error: the node comes up).
		boots bool
	}{
		{"  cluster-reset-restore-path: /var/snap\n", "cluster-reset-restore-path is \"/var/snap\" but rke2.cluster-reset is not true", false},
		{"  cluster-reset: true\n", "this server has no etcd data to reset", false},
		{"  cluster-reset: true\n  cluster-reset-restore-path: on-demand-node1-1796644800\n", "", true},
		{"  cluster-reset: true\n  cluster-reset-restore-path: /var/nothing-here\n", "", true},
		{"  cluster-reset: true\n  cluster-reset-restore-path: CORRUPT\n", "", true},
	} {
		env := testEnv(t)
		fakeEtcdutl(t, env)
		data := env.Paths.Server("db", "etcd")
		os.MkdirAll(filepath.Join(data, "member"), 0o700)
		os.WriteFile(filepath.Join(data, "member", "keep"), []byte("x"), 0o600)
		corrupt := filepath.Join(t.TempDir(), "etcd-snapshot-node1-1796644800")
		b := etcdtest.Snapshot(t, 3)
		b[len(b)/2] ^= 0xff
		os.WriteFile(corrupt, b, 0o600)
		reset, _, err := env.clusterReset(ctx, rke2(t, strings.ReplaceAll(tc.yaml, "CORRUPT", corrupt)), "node1", "https://10.0.0.1:2380")
		if tc.boots && (err != nil || reset) {
			t.Errorf("%s: %v, %v; want the refusal said and a start on the data as it is", tc.yaml, reset, err)
		}
		if !tc.boots && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: %v, want %q", tc.yaml, err, tc.want)
		}
		if ents, _ := os.ReadDir(filepath.Dir(data)); len(ents) != 1 || fileExists(env.resetFlag()) || !fileExists(filepath.Join(data, "member", "keep")) {
			t.Errorf("%s: db holds %v after a refusal", tc.yaml, ents)
		}
	}
}

// TestEndForceNewCluster: the flag leaves etcd's pod once, the rest of
// the pod as it was.
func TestEndForceNewCluster(t *testing.T) {
	env := testEnv(t)
	rc := rke2(t, "  node-name: node1\n")
	o := pods.EtcdOptions{Paths: env.Paths, Image: "rancher/hardened-etcd:v3.6.7", NodeName: "node1", NodeIP: "10.0.0.1", ForceNewCluster: true}
	if _, err := env.staticPod(rc, pods.EtcdPod(o)); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(env.Paths.EtcdManifest()); !strings.Contains(string(b), "--force-new-cluster") {
		t.Fatalf("the forced pod lacks the flag:\n%s", b)
	}
	if ended, err := env.endForceNewCluster(rc); err != nil || !ended {
		t.Fatalf("endForceNewCluster = %v, %v", ended, err)
	}
	o.ForceNewCluster = false
	want, _ := os.ReadFile(env.Paths.EtcdManifest())
	if _, err := env.staticPod(rc, pods.EtcdPod(o)); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(env.Paths.EtcdManifest()); string(got) != string(want) {
		t.Errorf("the pod without the flag differs from the unforced one:\n%s\nwant\n%s", got, want)
	}
	if ended, err := env.endForceNewCluster(rc); err != nil || ended {
		t.Errorf("second call: %v, %v", ended, err)
	}
}

// TestClusterResetFromS3: a snapshot's name not on the disk is fetched
// from the bucket the etcd-s3 keys name, checked, restored.
func TestClusterResetFromS3(t *testing.T) {
	ctx := context.Background()
	backend := s3mem.New()
	if err := backend.CreateBucket("snaps"); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gofakes3.New(backend).Server())
	defer srv.Close()
	endpoint := strings.TrimPrefix(srv.URL, "http://")
	st, err := s3store.New(ctx, s3store.Config{Endpoint: endpoint, Insecure: true, AccessKey: "a", SecretKey: "s", Bucket: "snaps", Folder: "c1"})
	if err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(t.TempDir(), "etcd-snapshot-node1-1796644800")
	os.WriteFile(src, etcdtest.Snapshot(t, 3), 0o600)
	if _, err := st.Upload(ctx, src, "node1"); err != nil {
		t.Fatal(err)
	}
	env := testEnv(t)
	args := fakeEtcdutl(t, env)
	keys := "  etcd-s3: true\n  etcd-s3-endpoint: " + endpoint + "\n  etcd-s3-insecure: true\n  etcd-s3-bucket: snaps\n  etcd-s3-folder: c1\n  etcd-s3-access-key: a\n  etcd-s3-secret-key: s\n  cluster-reset: true\n"
	reset, _, err := env.clusterReset(ctx, rke2(t, keys+"  cluster-reset-restore-path: etcd-snapshot-node1-1796644800\n"), "node1", "https://10.0.0.1:2380")
	if err != nil || !reset {
		t.Fatalf("clusterReset = %v, %v", reset, err)
	}
	local := filepath.Join(env.Paths.Server("db", "snapshots"), "etcd-snapshot-node1-1796644800")
	if !strings.Contains(args(), "snapshot restore "+local+" ") {
		t.Errorf("etcdutl %s", args())
	}
	os.Remove(env.resetFlag())
	reset, _, err = env.clusterReset(ctx, rke2(t, keys+"  cluster-reset-restore-path: etcd-snapshot-node1-1796640000\n"), "node1", "https://10.0.0.1:2380")
	if err != nil || reset {
		t.Errorf("a name in neither place: %v %v, want refused and a start on the data as it is", reset, err)
	}
}
