package rke2node

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rke2os/rke2os/init/rke2node/pods"
)

// TestForceNewClusterSurvivesRerun: cluster-reset alone writes
// reset-flag before etcd has ever run with --force-new-cluster. The etcd
// step run again before etcd-healthy (PID 1 re-runs it after a clock
// step; or a reboot/power loss before the kubelet started etcd) finds the
// flag, skips, and rewrites etcd's pod without --force-new-cluster: etcd
// then starts with its old membership (no quorum) and the reset is lost,
// while the console says the server was reset.
func TestForceNewClusterSurvivesRerun(t *testing.T) {
	ctx := context.Background()
	env := testEnv(t)
	fakeEtcdutl(t, env)
	data := env.Paths.Server("db", "etcd")
	if err := os.MkdirAll(filepath.Join(data, "member", "wal"), 0o700); err != nil {
		t.Fatal(err)
	}
	rc := rke2(t, "  cluster-reset: true\n")
	o := pods.EtcdOptions{Paths: env.Paths, Image: "rancher/hardened-etcd:v3.6.7", NodeName: "node1", NodeIP: "10.0.0.1"}
	step := func() bool {
		t.Helper()
		_, force, err := env.clusterReset(ctx, rc, "node1", o.PeerURL())
		if err != nil {
			t.Fatal(err)
		}
		o.ForceNewCluster = force
		if _, err := env.staticPod(rc, pods.EtcdPod(o)); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(env.Paths.EtcdManifest())
		return strings.Contains(string(b), "--force-new-cluster")
	}
	if !step() {
		t.Fatal("first etcd step: no --force-new-cluster")
	}
	// etcd has not answered yet (endForceNewCluster not run): the step again.
	if !step() {
		t.Error("etcd step re-run before etcd-healthy dropped --force-new-cluster: the reset is lost")
	}
}
