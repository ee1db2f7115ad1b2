package snapshotctl

import (
	"context"
	"errors"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/rke2os/rke2os/init/rke2node/etcdsnap/s3store"
	"github.com/rke2os/rke2os/init/rke2node/supervisorapi"
	"github.com/rke2os/rke2os/init/shared/config"
	"github.com/rke2os/rke2os/internal/etcdtest"
)

// fakeBucket is an S3 bucket "snaps" of gofakes3 over http, with the
// Store of folder "cluster1" in it.
func fakeBucket(t *testing.T) (*s3store.Store, *httptest.Server) {
	t.Helper()
	backend := s3mem.New()
	if err := backend.CreateBucket("snaps"); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gofakes3.New(backend).Server())
	t.Cleanup(srv.Close)
	st, err := s3store.New(context.Background(), s3store.Config{Endpoint: strings.TrimPrefix(srv.URL, "http://"), Insecure: true,
		AccessKey: "a", SecretKey: "s", Bucket: "snaps", Folder: "cluster1", Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return st, srv
}

// brokenS3 fails every upload.
type brokenS3 struct{ S3 }

func (brokenS3) Upload(context.Context, string, string) (s3store.Object, error) {
	return s3store.Object{}, errors.New("s3 upload: 503 Slow Down")
}

// TestS3: each snapshot is uploaded, its name's copies pruned there too,
// listed and recorded (storage s3), deleted in both places.
func TestS3(t *testing.T) {
	ctx := context.Background()
	st, _ := fakeBucket(t)
	e := newEnv(t, source{b: etcdtest.Snapshot(t, 4)}, config.EtcdSnapshots{Retention: 2, Name: "etcd-snapshot"})
	e.svc.S3 = st
	var saved []string
	for range 3 {
		e.now = e.now.Add(time.Minute)
		info, err := e.svc.Save(ctx, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		saved = append(saved, info.Name)
	}
	objs, err := st.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	var inS3 []string
	for _, o := range objs {
		inS3 = append(inS3, o.Name)
	}
	if !slices.Equal(inS3, saved[1:]) {
		t.Errorf("in S3 %v, want the retention's two %v", inS3, saved[1:])
	}
	list, err := e.svc.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var locations []string
	for _, i := range list {
		locations = append(locations, i.Location)
	}
	if len(list) != 4 || !strings.HasPrefix(locations[2], "s3://snaps/cluster1/on-demand-server1-") {
		t.Errorf("listed %v", locations)
	}
	var s3recs int
	for _, r := range e.records(t) {
		if r.GetLabels()[LabelStorageNode] == StorageS3 && r.GetLabels()[LabelNode] == "server1" && strings.HasPrefix(r.GetName(), "s3-") {
			s3recs++
			if loc, _, _ := unstructured.NestedString(r.Object, "spec", "location"); !strings.HasPrefix(loc, "s3://snaps/cluster1/") {
				t.Errorf("s3 record location %q", loc)
			}
		}
	}
	// records() keys by snapshot name: local and S3 records of a name
	// collide there, so count the S3 ones through their labels.
	if s3recs == 0 {
		t.Error("no S3 record")
	}
	// Delete: both copies.
	if del, err := e.svc.Delete(ctx, []string{saved[2]}); err != nil || !slices.Equal(del, saved[2:]) {
		t.Fatalf("delete: %v %v", del, err)
	}
	objs, _ = st.List(ctx, "")
	if len(objs) != 1 || objs[0].Name != saved[1] {
		t.Errorf("in S3 after the delete: %v", objs)
	}
	if _, err := e.svc.Delete(ctx, []string{saved[0]}); !errors.Is(err, supervisorapi.ErrNoSnapshot) {
		t.Errorf("delete of a pruned one: %v", err)
	}

	// An upload that fails: the local copy stays, the save succeeds, the
	// failure is recorded and said.
	e.svc.S3 = brokenS3{st}
	e.now = e.now.Add(time.Minute)
	info, err := e.svc.Save(ctx, "", nil)
	if err != nil {
		t.Fatalf("save with S3 down: %v", err)
	}
	if f, err := e.svc.Open(info.Name); err != nil {
		t.Errorf("the local copy: %v", err)
	} else {
		f.Close()
	}
	var warned bool
	for _, ev := range e.events(t) {
		warned = warned || (ev.Reason == "ETCDSnapshotFailed" && strings.Contains(ev.Message, "503 Slow Down"))
	}
	if !warned {
		t.Error("no ETCDSnapshotFailed event for the upload")
	}
}
