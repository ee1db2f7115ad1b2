package snapshotctl

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rke2os/rke2os/init/rke2node/crds"
	"github.com/rke2os/rke2os/init/shared/config"
	"github.com/rke2os/rke2os/internal/etcdtest"
)

// TestS3PruneSparesOtherNode: server "server1" prunes its
// on-demand copies in a bucket it shares with server "server1-b": the
// prefix "on-demand-server1-" matches server1-b's snapshots too, and
// server1 deletes them.
func TestS3PruneSparesOtherNode(t *testing.T) {
	ctx := context.Background()
	st, _ := fakeBucket(t)
	set := config.EtcdSnapshots{Retention: 2, Name: "etcd-snapshot"}
	b := newEnv(t, source{b: etcdtest.Snapshot(t, 3)}, set)
	b.svc.Node, b.svc.S3 = "server1-b", st
	var bSaved []string
	for range 2 {
		b.now = b.now.Add(time.Minute)
		info, err := b.svc.Save(ctx, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		bSaved = append(bSaved, info.Name)
	}
	a := newEnv(t, source{b: etcdtest.Snapshot(t, 3)}, set)
	a.svc.S3 = st
	a.now = b.now.Add(time.Minute)
	if _, err := a.svc.Save(ctx, "", nil); err != nil {
		t.Fatal(err)
	}
	objs, err := st.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	var in []string
	for _, o := range objs {
		in = append(in, o.Name)
	}
	for _, n := range bSaved {
		if !slices.Contains(in, n) {
			t.Errorf("server1's prune deleted server1-b's %s from S3 (left %v)", n, in)
		}
	}
}

// TestS3PruneNeverDeletesUpload: copies in S3 dated ahead (taken
// while the clock was ahead) sort newest; the S3 prune after an upload
// deletes the copy just uploaded, as the local prune did before 4c423eb.
func TestS3PruneNeverDeletesUpload(t *testing.T) {
	ctx := context.Background()
	st, _ := fakeBucket(t)
	e := newEnv(t, source{b: etcdtest.Snapshot(t, 3)}, config.EtcdSnapshots{Retention: 2, Name: "etcd-snapshot"})
	e.svc.S3 = st
	dir := t.TempDir()
	for i := range 2 {
		p := filepath.Join(dir, fmt.Sprintf("on-demand-server1-%d", e.now.Add(24*time.Hour-time.Duration(i)*time.Hour).Unix()))
		os.WriteFile(p, etcdtest.Snapshot(t, 2), 0o600)
		if _, err := st.Upload(ctx, p, ""); err != nil {
			t.Fatal(err)
		}
	}
	info, err := e.svc.Save(ctx, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := st.List(ctx, info.Name)
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 1 {
		t.Errorf("the upload of %s was pruned from S3 right after it was uploaded", info.Name)
	}
}

// TestRecordsFromBeforeLabelNode: a record written before this
// change (label storage-node only) is no longer listed by Sync: it is
// re-announced at every reconcile, and never deleted once its file goes.
func TestRecordsFromBeforeLabelNode(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, source{b: etcdtest.Snapshot(t, 3)}, config.EtcdSnapshots{Retention: 5, Name: "etcd-snapshot"})
	info, err := e.svc.Save(ctx, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	// Make the record look as the previous version wrote it.
	res := e.dyn.Resource(crds.ETCDSnapshotFile)
	name := ObjectName("server1", info.Name)
	obj, err := res.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	obj.SetLabels(map[string]string{LabelStorageNode: "server1"})
	if _, err := res.Update(ctx, obj, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	before := len(e.events(t))
	e.svc.reconcile(ctx)
	e.svc.reconcile(ctx)
	if n := len(e.events(t)) - before; n != 0 {
		t.Errorf("%d ETCDSnapshotCreated events for a record that exists", n)
	}
	os.Remove(filepath.Join(e.svc.Dir, info.Name))
	e.svc.reconcile(ctx)
	if _, err := res.Get(ctx, name, metav1.GetOptions{}); err == nil {
		t.Errorf("the record of %s stays after its file is gone", info.Name)
	}
}

// TestS3ListOnlyOwn: server1's ls (and its S3 records) take
// x-server1's snapshots in the shared bucket for its own: Parse matches
// the node name as a suffix ("on-demand-x" + "-server1-<time>").
func TestS3ListOnlyOwn(t *testing.T) {
	ctx := context.Background()
	st, _ := fakeBucket(t)
	set := config.EtcdSnapshots{Retention: 2, Name: "etcd-snapshot"}
	x := newEnv(t, source{b: etcdtest.Snapshot(t, 3)}, set)
	x.svc.Node, x.svc.S3 = "x-server1", st
	xi, err := x.svc.Save(ctx, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	a := newEnv(t, source{b: etcdtest.Snapshot(t, 3)}, set)
	a.svc.S3 = st
	list, err := a.svc.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(names(list), xi.Name) {
		t.Errorf("server1 lists x-server1's %s as its own: %v", xi.Name, names(list))
	}
}

// TestDeleteOnlyOwnInS3: Delete is "the named snapshots of this
// node", and find refuses another node's name locally; in S3 any object
// of the folder goes, another server's snapshot or a file that is no
// snapshot at all.
func TestDeleteOnlyOwnInS3(t *testing.T) {
	ctx := context.Background()
	st, _ := fakeBucket(t)
	dir := t.TempDir()
	for _, n := range []string{"on-demand-server2-1796644800", "notes.txt"} {
		p := filepath.Join(dir, n)
		os.WriteFile(p, []byte("x"), 0o600)
		if _, err := st.Upload(ctx, p, ""); err != nil {
			t.Fatal(err)
		}
	}
	e := newEnv(t, source{b: etcdtest.Snapshot(t, 3)}, config.EtcdSnapshots{Retention: 2, Name: "etcd-snapshot"})
	e.svc.S3 = st
	for _, n := range []string{"on-demand-server2-1796644800", "notes.txt"} {
		if del, err := e.svc.Delete(ctx, []string{n}); err == nil {
			t.Errorf("server1 deleted %v from S3", del)
		}
	}
}
