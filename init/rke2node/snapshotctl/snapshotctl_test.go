package snapshotctl

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	kubefake "k8s.io/client-go/kubernetes/fake"

	"github.com/rke2os/rke2os/init/rke2node/crds"
	"github.com/rke2os/rke2os/init/rke2node/supervisorapi"
	"github.com/rke2os/rke2os/init/shared/config"
	"github.com/rke2os/rke2os/internal/etcdtest"
)

type source struct {
	b   []byte
	err error
}

func (s source) Snapshot(context.Context) (io.ReadCloser, error) {
	if s.err != nil {
		return nil, s.err
	}
	return io.NopCloser(bytes.NewReader(s.b)), nil
}

type env struct {
	svc  *Service
	dyn  *dynamicfake.FakeDynamicClient
	kube *kubefake.Clientset
	now  time.Time
}

func newEnv(t *testing.T, src source, set config.EtcdSnapshots) *env {
	t.Helper()
	e := &env{now: time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)}
	e.dyn = dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{crds.ETCDSnapshotFile: "ETCDSnapshotFileList"})
	e.kube = kubefake.NewSimpleClientset()
	e.svc = &Service{Settings: set, Dir: filepath.Join(t.TempDir(), "snapshots"), Node: "server1", Etcd: src,
		Records: &Records{Dyn: e.dyn, Kube: e.kube}, Now: func() time.Time { return e.now }}
	return e
}

func (e *env) records(t *testing.T) map[string]*unstructured.Unstructured {
	t.Helper()
	l, err := e.dyn.Resource(crds.ETCDSnapshotFile).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*unstructured.Unstructured{}
	for i := range l.Items {
		sn, _, _ := unstructured.NestedString(l.Items[i].Object, "spec", "snapshotName")
		out[sn] = &l.Items[i]
	}
	return out
}

func (e *env) events(t *testing.T) []corev1.Event {
	t.Helper()
	l, err := e.kube.CoreV1().Events(metav1.NamespaceDefault).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return l.Items
}

func names(infos []supervisorapi.SnapshotInfo) []string {
	var out []string
	for _, i := range infos {
		out = append(out, i.Name)
	}
	return out
}

func TestSaveListPruneDelete(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, source{b: etcdtest.Snapshot(t, 5)}, config.EtcdSnapshots{Retention: 2, Name: "etcd-snapshot"})
	var saved []string
	for i := range 3 {
		e.now = e.now.Add(time.Minute)
		info, err := e.svc.Save(ctx, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		if info.Node != "server1" || info.Size == 0 || !info.Created.Equal(e.now) || info.Location != "file://"+filepath.Join(e.svc.Dir, info.Name) {
			t.Errorf("save %d: %+v", i, info)
		}
		saved = append(saved, info.Name)
	}
	if saved[0] != "on-demand-server1-1796644860" {
		t.Errorf("first on-demand snapshot named %s", saved[0])
	}
	list, err := e.svc.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Retention 2: the oldest on-demand one is pruned after the third.
	if got := names(list); !slices.Equal(got, saved[1:]) {
		t.Errorf("list %v, want %v", got, saved[1:])
	}
	recs := e.records(t)
	if len(recs) != 2 || recs[saved[0]] != nil {
		t.Errorf("records %v, want those of %v", keys(recs), saved[1:])
	}
	r := recs[saved[2]]
	if r.GetLabels()[LabelStorageNode] != "server1" || r.GetName() != ObjectName("server1", saved[2]) || !strings.HasPrefix(r.GetName(), "local-on-demand-server1-1796644980-") {
		t.Errorf("record %s labels %v", r.GetName(), r.GetLabels())
	}
	if ready, _, _ := unstructured.NestedBool(r.Object, "status", "readyToUse"); !ready {
		t.Error("record not readyToUse")
	}
	if size, _, _ := unstructured.NestedString(r.Object, "status", "size"); size != "16416" && size == "" {
		t.Errorf("size %q", size)
	}

	// A compressed one asked for by name.
	e.now = e.now.Add(time.Minute)
	yes := true
	z, err := e.svc.Save(ctx, "pre-upgrade", &yes)
	if err != nil {
		t.Fatal(err)
	}
	if !z.Compressed || !strings.HasSuffix(z.Name, ".zip") {
		t.Errorf("compressed save %+v", z)
	}

	// Prune of a name keeps its retention; the other names stay.
	gone, err := e.svc.Prune(ctx, "on-demand")
	if err != nil || len(gone) != 0 {
		t.Errorf("prune at retention: %v %v", gone, err)
	}
	e.svc.Settings.Retention = 1
	gone, err = e.svc.Prune(ctx, "on-demand")
	if err != nil || !slices.Equal(gone, saved[1:2]) {
		t.Errorf("prune to 1: %v %v, want %v", gone, err, saved[1:2])
	}

	// Delete: a name of this node's, then refusals that delete nothing.
	del, err := e.svc.Delete(ctx, []string{z.Name})
	if err != nil || !slices.Equal(del, []string{z.Name}) {
		t.Errorf("delete: %v %v", del, err)
	}
	for _, bad := range []string{"../../etc/passwd", "on-demand-server2-1796644980", "on-demand-server1-1796644860", ".", "", "x/on-demand-server1-1796644980"} {
		if _, err := e.svc.Delete(ctx, []string{bad}); !errors.Is(err, supervisorapi.ErrNoSnapshot) {
			t.Errorf("delete %q: %v, want ErrNoSnapshot", bad, err)
		}
		if _, err := e.svc.Open(bad); !errors.Is(err, supervisorapi.ErrNoSnapshot) {
			t.Errorf("open %q: %v, want ErrNoSnapshot", bad, err)
		}
	}
	list, _ = e.svc.List(ctx)
	if got := names(list); !slices.Equal(got, saved[2:]) {
		t.Errorf("after deletes: %v, want %v", got, saved[2:])
	}
	if recs := e.records(t); len(recs) != 1 || recs[saved[2]] == nil {
		t.Errorf("records after deletes %v", keys(recs))
	}
	f, err := e.svc.Open(saved[2])
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	var created int
	for _, ev := range e.events(t) {
		if ev.Reason == "ETCDSnapshotCreated" && ev.Type == corev1.EventTypeNormal && ev.InvolvedObject.Kind == "ETCDSnapshotFile" {
			created++
		}
	}
	if created != 4 {
		t.Errorf("%d ETCDSnapshotCreated events, want 4", created)
	}
}

// TestFailedSnapshot: a failed snapshot leaves no file, a record that
// says why (readyToUse false), a Warning Event; the record goes after a
// day.
func TestFailedSnapshot(t *testing.T) {
	ctx := context.Background()
	for _, src := range []source{{err: errors.New("etcd: connection refused")}, {b: []byte("not a snapshot")}} {
		e := newEnv(t, src, config.EtcdSnapshots{Retention: 5, Name: "etcd-snapshot"})
		if _, err := e.svc.Save(ctx, "", nil); err == nil {
			t.Fatal("saved")
		}
		list, err := e.svc.List(ctx)
		if err != nil || len(list) != 0 {
			t.Errorf("files after a failure: %v %v", list, err)
		}
		ents, _ := os.ReadDir(e.svc.Dir)
		if len(ents) != 0 {
			t.Errorf("left in the directory: %v", ents)
		}
		recs := e.records(t)
		r := recs["on-demand-server1-1796644800"]
		if r == nil {
			t.Fatalf("no record of the failure: %v", keys(recs))
		}
		ready, found, _ := unstructured.NestedBool(r.Object, "status", "readyToUse")
		msg, _, _ := unstructured.NestedString(r.Object, "status", "error", "message")
		if !found || ready || msg == "" {
			t.Errorf("failure record status %v", r.Object["status"])
		}
		evs := e.events(t)
		if len(evs) != 1 || evs[0].Reason != "ETCDSnapshotFailed" || evs[0].Type != corev1.EventTypeWarning || !strings.Contains(evs[0].Message, msg) {
			t.Errorf("events %+v", evs)
		}
		// Kept through a sync for a day, then gone.
		e.svc.reconcile(ctx)
		if len(e.records(t)) != 1 {
			t.Error("failure record gone before its day")
		}
		e.now = time.Now().Add(25 * time.Hour)
		e.svc.reconcile(ctx)
		if len(e.records(t)) != 0 {
			t.Error("failure record kept after its day")
		}
	}
}

// TestSchedule runs the schedule for real, every second, retention 2.
func TestSchedule(t *testing.T) {
	e := newEnv(t, source{b: etcdtest.Snapshot(t, 5)}, config.EtcdSnapshots{Cron: "@every 1s", Retention: 2, Name: "etcd-snapshot", Compress: true})
	e.svc.Now = nil
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- e.svc.Run(ctx) }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		list, err := e.svc.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) == 2 && len(e.records(t)) == 2 && prunedOne(e.events(t)) {
			for _, f := range list {
				if !strings.HasPrefix(f.Name, "etcd-snapshot-server1-") || !f.Compressed {
					t.Errorf("scheduled snapshot %+v", f)
				}
			}
			break
		}
		if len(list) > 2 {
			t.Fatalf("retention 2, %d files", len(list))
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 60 s: files %v, records %v", names(list), keys(e.records(t)))
		}
		time.Sleep(200 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// prunedOne: a record was deleted (a third snapshot pruned the first).
func prunedOne(evs []corev1.Event) bool { return len(evs) >= 3 }

func TestRunBadCron(t *testing.T) {
	e := newEnv(t, source{}, config.EtcdSnapshots{Cron: "every day", Retention: 2, Name: "x"})
	if err := e.svc.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "etcd-snapshot-schedule-cron") {
		t.Errorf("Run = %v", err)
	}
}

func TestObjectName(t *testing.T) {
	for _, tc := range []struct{ node, file string }{
		{"server1", "etcd-snapshot-server1-1796644800"},
		{"server1", "etcd-snapshot-server1-1796644800.zip"},
		{"Server_1", "My_Snap-Server_1-1796644800"},
		{"n", strings.Repeat("a", 300) + "-n-1796644800"},
	} {
		n := ObjectName(tc.node, tc.file)
		if len(n) > 253 || n != strings.ToLower(n) || strings.ContainsAny(n, "_ ") || !strings.HasPrefix(n, "local-") {
			t.Errorf("ObjectName(%q, %q) = %q", tc.node, tc.file, n)
		}
	}
	if ObjectName("a", "x-a-1796644800") == ObjectName("b", "x-a-1796644800") {
		t.Error("two nodes' names collide")
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// TestSaveNeverPrunesItself: snapshots named with a later time
// than now (taken while the node's clock was ahead, then corrected by
// NTP; a VM restored from a checkpoint) sort as the newest, so the
// prune that follows a save deletes the snapshot just taken, and the
// save still answers "saved": the operator's fresh backup is gone.
func TestSaveNeverPrunesItself(t *testing.T) {
	e := newEnv(t, source{b: etcdtest.Snapshot(t, 3)}, config.EtcdSnapshots{Retention: 2, Name: "etcd-snapshot", Cron: "0 */12 * * *"})
	if err := os.MkdirAll(e.svc.Dir, 0o700); err != nil {
		t.Fatal(err)
	}
	snap := etcdtest.Snapshot(t, 2)
	for i := range 2 {
		// Taken yesterday while the clock was a day ahead.
		name := fmt.Sprintf("on-demand-server1-%d", e.now.Add(24*time.Hour-time.Duration(i)*time.Hour).Unix())
		if err := os.WriteFile(filepath.Join(e.svc.Dir, name), snap, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	info, err := e.svc.Save(context.Background(), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(e.svc.Dir, info.Name)); err != nil {
		t.Errorf("Save answered %s saved, but it is gone: %v", info.Name, err)
	}
}
