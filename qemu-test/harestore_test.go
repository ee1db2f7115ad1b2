//go:build hatest

package qemutest

// The two-server restore runs on its own (make ha-restore-test): two
// servers under TCG, booted four times between them, take longer than
// CI's budget leaves.

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rke2os/rke2os/init/rke2node/supervisorapi"
	"github.com/rke2os/rke2os/init/shared/console"
	"github.com/rke2os/rke2os/qemu-test/qemu"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// TestHARestore: the two servers of an HA cluster; a snapshot taken on
// the first, then the cluster changed; the first restored from it
// (cluster-reset). The second, whose member the restored cluster does
// not hold, sees it by itself, reboots, sets its old data aside and joins
// again as a learner, with no hand on it: both are voters of the
// restored cluster, which holds what the snapshot held and not what came
// after. Then both are powered off and started at once, as after a power
// cut: each waits for the other's etcd, and the cluster comes back.
func TestHARestore(t *testing.T) {
	servers, secrets, token := haServers(t, 2)
	s1, s2 := servers[0], servers[1]
	ctx := context.Background()
	start := time.Now()
	s1.vm = qemu.Start(t, s1.cfg)
	waitNodeReady(t, s1.vm)
	s2.vm = qemu.Start(t, s2.cfg)
	waitJoinedServer(t, s2.vm)
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("two servers node-ready after %s", time.Since(start).Round(time.Second))
	waitVoters(t, s1, secrets, token, 2)

	mustCreate(t, s1.kc, "before-the-snapshot")
	snapshot := haSnapshot(t, s1, secrets)
	mustCreate(t, s2.kc, "after-the-snapshot")

	// The first restored; the second runs on.
	powerOffInOrder(t, s1.vm)
	s1.cfg.Extra = s1.seed("  cluster-reset: true\n  cluster-reset-restore-path: " + snapshot + "\n")
	restored := time.Now()
	s1.vm = qemu.Start(t, s1.cfg)
	ev, err := s1.vm.WaitEvent(console.EventClusterReset, nil, nodeTimeout)
	if err != nil || ev["outcome"] != "restored" || !strings.Contains(ev["moved_to"], "/db/etcd-old-") {
		t.Fatalf("cluster-reset on server1: %v %v; errors: %v", ev, err, s1.vm.Errors())
	}
	waitNodeReady(t, s1.vm)
	t.Logf("server1 restored, node-ready after %s", time.Since(restored).Round(time.Second))

	// The second sees it is out of the restored cluster and reboots
	// (QEMU runs with -no-reboot: it exits, and the test starts it).
	ev, err = s2.vm.WaitEvent(console.EventEtcdRejoin, map[string]string{"outcome": "rebooting"}, nodeTimeout)
	if err != nil || !strings.Contains(ev["reason"], "was restored from a snapshot") {
		t.Fatalf("server2 did not see the restore: %v %v; errors: %v", ev, err, s2.vm.Errors())
	}
	t.Logf("server2 rebooting to rejoin after %s: %s", time.Since(restored).Round(time.Second), ev["reason"])
	if err := s2.vm.WaitExit(5 * time.Minute); err != nil {
		t.Fatalf("server2 did not reboot: %v; errors: %v", err, s2.vm.Errors())
	}
	s2.vm = qemu.Start(t, s2.cfg)
	ev, err = s2.vm.WaitEvent(console.EventEtcdRejoin, map[string]string{"outcome": "rejoining"}, nodeTimeout)
	if err != nil || !strings.Contains(ev["moved_to"], "/db/etcd-old-") {
		t.Fatalf("server2's rejoin: %v %v; errors: %v", ev, err, s2.vm.Errors())
	}
	waitJoinedServer(t, s2.vm)
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("server2 rejoined, node-ready %s after the restore: %v", time.Since(restored).Round(time.Second), s2.vm.Milestones())
	waitVoters(t, s1, secrets, token, 2)
	for _, s := range servers {
		nodeReady(t, ctx, s1.kc, s.name)
		wantRestored(t, s)
	}

	// Both off, both on at once.
	for _, s := range servers {
		powerOffInOrder(t, s.vm)
	}
	cold := time.Now()
	for _, s := range servers {
		s.vm = qemu.Start(t, s.cfg)
	}
	waitNodeReady(t, s1.vm)
	waitNodeReady(t, s2.vm)
	t.Logf("cold start of both: node-ready after %s", time.Since(cold).Round(time.Second))
	waitVoters(t, s1, secrets, token, 2)
	wantRestored(t, s2)
	if n := len(s2.vm.Events(console.EventEtcdRejoin)); n != 0 {
		t.Errorf("server2 at the cold start: %d etcd-rejoin events, want none", n)
	}
	for _, s := range servers {
		powerOffInOrder(t, s.vm)
	}
}

func mustCreate(t *testing.T, kc kubernetes.Interface, name string) {
	t.Helper()
	poll(t, "ConfigMap "+name+" created", 3*time.Minute, func() error {
		_, err := kc.CoreV1().ConfigMaps("default").Create(context.Background(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			return nil
		}
		return err
	})
}

// wantRestored waits for the cluster, read through s, to be as the
// snapshot holds it.
func wantRestored(t *testing.T, s *haServer) {
	t.Helper()
	ctx := context.Background()
	poll(t, "the restored cluster through "+s.name, 5*time.Minute, func() error {
		if _, err := s.kc.CoreV1().ConfigMaps("default").Get(ctx, "before-the-snapshot", metav1.GetOptions{}); err != nil {
			return fmt.Errorf("before-the-snapshot: %v", err)
		}
		if _, err := s.kc.CoreV1().ConfigMaps("default").Get(ctx, "after-the-snapshot", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("after-the-snapshot: %v, want not found", err)
		}
		return nil
	})
}

// haSnapshot saves a snapshot of s's etcd on demand, as a workstation
// does (rke2-build etcd-snapshot save), and answers its name.
func haSnapshot(t *testing.T, s *haServer, secrets string) string {
	t.Helper()
	run := func(args ...string) string {
		full := append([]string{"etcd-snapshot", args[0], "--server", s.supervisor, "--token-file", filepath.Join(secrets, "token")}, args[1:]...)
		b, err := exec.Command(filepath.Join(buildEnv(t, "RKE2_BIN"), "rke2-build"), full...).CombinedOutput()
		if err != nil {
			t.Fatalf("rke2-build %s: %v\n%s", strings.Join(full, " "), err, b)
		}
		return string(b)
	}
	run("save", "--name", "ha-restore")
	resp, err := supervisorapi.DecodeSnapshotResponse([]byte(run("ls", "-o", "json")))
	if err != nil {
		t.Fatal(err)
	}
	names := snapshotNames(resp.Snapshots, "ha-restore")
	if len(names) != 1 {
		t.Fatalf("snapshots named ha-restore: %v", names)
	}
	return names[0]
}
