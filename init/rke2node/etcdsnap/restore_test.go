package etcdsnap

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	// etcdutl, built from the module by realEtcdutl: the tool a node
	// restores with (at the running etcd's version in the image).
	_ "go.etcd.io/etcd/etcdutl/v3/etcdutl"
	"go.etcd.io/etcd/server/v3/embed"
)

var (
	etcdutlOnce sync.Once
	etcdutlPath string
	etcdutlErr  error
)

// realEtcdutl builds etcdutl from the module go.mod names, once per run.
func realEtcdutl(t *testing.T) string {
	t.Helper()
	etcdutlOnce.Do(func() {
		dir, err := os.MkdirTemp("", "etcdutl")
		if err != nil {
			etcdutlErr = err
			return
		}
		etcdutlPath = filepath.Join(dir, "etcdutl")
		out, err := exec.Command("go", "build", "-o", etcdutlPath, "go.etcd.io/etcd/etcdutl/v3").CombinedOutput()
		if err != nil {
			etcdutlErr = fmt.Errorf("go build etcdutl: %v: %s", err, out)
		}
	})
	if etcdutlErr != nil {
		t.Fatal(etcdutlErr)
	}
	return etcdutlPath
}

// startOn starts an embedded etcd on a data directory as the member
// name, and returns its client and what stops it.
func startOn(t *testing.T, dataDir, name string) (*clientv3.Client, func()) {
	t.Helper()
	ports := make([]url.URL, 2)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = url.URL{Scheme: "http", Host: l.Addr().String()}
		l.Close()
	}
	cfg := embed.NewConfig()
	cfg.Name, cfg.Dir = name, dataDir
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = ports[:1], ports[:1]
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = ports[1:], ports[1:]
	cfg.InitialCluster = name + "=" + ports[0].String()
	cfg.LogLevel, cfg.LogOutputs = "error", []string{"stderr"}
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(time.Minute):
		e.Close()
		t.Fatal("etcd not ready")
	}
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{ports[1].String()}, DialTimeout: 5 * time.Second})
	if err != nil {
		e.Close()
		t.Fatal(err)
	}
	var once sync.Once
	stop := func() { once.Do(func() { c.Close(); e.Close() }) }
	t.Cleanup(stop)
	return c, stop
}

// TestRestore restores real snapshots (plain and zipped) with the real
// etcdutl and starts etcd on the result: the snapshot's keys, not the
// ones written after it, one member; the old data moved aside.
func TestRestore(t *testing.T) {
	etcdutl := realEtcdutl(t)
	c := startEtcd(t)
	ctx := context.Background()
	snaps := filepath.Join(t.TempDir(), "snapshots")
	plain, _, err := Save(ctx, c, Options{Dir: snaps, Name: "s", Node: "n", Now: t0})
	if err != nil {
		t.Fatal(err)
	}
	zipped, _, err := Save(ctx, c, Options{Dir: snaps, Name: "s", Node: "n", Now: t0.Add(time.Hour), Compress: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Put(ctx, "/registry/after-the-snapshot", "x"); err != nil {
		t.Fatal(err)
	}
	for _, f := range []File{plain, zipped} {
		t.Run(f.Name, func(t *testing.T) {
			db := filepath.Join(t.TempDir(), "db")
			data := filepath.Join(db, "etcd")
			if err := os.MkdirAll(filepath.Join(data, "member"), 0o700); err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(data, "member", "old"), []byte("the replaced data"), 0o600)
			now := time.Unix(1796644800, 0)
			moved, err := Restore(ctx, RestoreOptions{Etcdutl: etcdutl, Snapshot: f.Path, DataDir: data, Name: "node1", PeerURL: "http://127.0.0.1:2380", Now: now})
			if err != nil {
				t.Fatal(err)
			}
			if moved != filepath.Join(db, "etcd-old-1796644800") {
				t.Errorf("moved to %q", moved)
			}
			if b, err := os.ReadFile(filepath.Join(moved, "member", "old")); err != nil || string(b) != "the replaced data" {
				t.Errorf("the old data: %q %v", b, err)
			}
			if ents, _ := os.ReadDir(db); len(ents) != 2 {
				t.Errorf("db holds %v, want etcd and etcd-old-*", ents)
			}
			rc, _ := startOn(t, data, "node1")
			resp, err := rc.Get(ctx, "/registry/", clientv3.WithPrefix(), clientv3.WithCountOnly())
			if err != nil || resp.Count != 20 {
				t.Errorf("keys after the restore: %v %v, want the snapshot's 20", resp, err)
			}
			if resp, err := rc.Get(ctx, "/registry/after-the-snapshot"); err != nil || resp.Count != 0 {
				t.Errorf("a key written after the snapshot: %v %v", resp, err)
			}
			ml, err := rc.MemberList(ctx)
			if err != nil || len(ml.Members) != 1 || ml.Members[0].Name != "node1" {
				t.Errorf("members %v %v, want node1 alone", ml, err)
			}
		})
	}
	// Each restore is a cluster of its own: the same snapshot, member
	// name and peer URL restored at another time make another cluster ID
	// and member ID (with etcd's default token they were the same, and
	// the old cluster's).
	ids := map[string]bool{}
	for i, now := range []time.Time{time.Unix(1796644800, 0), time.Unix(1796644801, 0)} {
		data := filepath.Join(t.TempDir(), "db", "etcd")
		if _, err := Restore(ctx, RestoreOptions{Etcdutl: etcdutl, Snapshot: plain.Path, DataDir: data, Name: "node1", PeerURL: "http://127.0.0.1:2380", Now: now}); err != nil {
			t.Fatal(err)
		}
		rc, stop := startOn(t, data, "node1")
		ml, err := rc.MemberList(ctx)
		stop()
		if err != nil || len(ml.Members) != 1 {
			t.Fatalf("restore %d: members %v %v", i, ml, err)
		}
		ids[fmt.Sprintf("cluster %x", ml.Header.ClusterId)] = true
		ids[fmt.Sprintf("member %x", ml.Members[0].ID)] = true
	}
	if len(ids) != 4 {
		t.Errorf("two restores at two times share IDs: %v", ids)
	}
}

// TestRestoreRefuses: a snapshot that is truncated, corrupt or no
// snapshot, or an etcdutl that fails, leaves the data where it is.
func TestRestoreRefuses(t *testing.T) {
	c := startEtcd(t)
	ctx := context.Background()
	good, _, err := Save(ctx, c, Options{Dir: t.TempDir(), Name: "s", Node: "n", Now: t0})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(good.Path)
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	flipped := append([]byte(nil), b...)
	flipped[len(flipped)/2] ^= 0xff
	failing := write("etcdutl-fails", []byte("#!/bin/sh\necho 'Error: no space left on device' >&2\nexit 1\n"))
	os.Chmod(failing, 0o755)
	for _, tc := range []struct {
		name, snapshot, etcdutl, want string
	}{
		{"truncated", write("truncated", b[:len(b)-1000]), "", "not an etcd snapshot"},
		{"corrupt", write("corrupt", flipped), "", "does not match the one etcd appended"},
		{"text", write("notes.txt", []byte("hello")), "", "not an etcd snapshot"},
		{"missing", filepath.Join(dir, "missing"), "", "no such file"},
		{"bad zip", write("bad.zip", []byte("PK\x03\x04 not really")), "", "zip"},
		{"etcdutl fails", good.Path, failing, "no space left on device"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := filepath.Join(t.TempDir(), "db", "etcd")
			os.MkdirAll(data, 0o700)
			os.WriteFile(filepath.Join(data, "keep"), []byte("x"), 0o600)
			etcdutl := tc.etcdutl
			if etcdutl == "" {
				etcdutl = "/nonexistent/etcdutl" // never reached: the check refuses first
			}
			moved, err := Restore(ctx, RestoreOptions{Etcdutl: etcdutl, Snapshot: tc.snapshot, DataDir: data, Name: "node1", PeerURL: "https://127.0.0.1:2380"})
			if err == nil || !strings.Contains(err.Error(), tc.want) || moved != "" {
				t.Fatalf("Restore = %q, %v; want an error with %q", moved, err, tc.want)
			}
			if tc.etcdutl == "" && !strings.Contains(err.Error(), tc.snapshot) {
				t.Errorf("the error does not name the file: %v", err)
			}
			ents, _ := os.ReadDir(filepath.Dir(data))
			if _, serr := os.Stat(filepath.Join(data, "keep")); serr != nil || len(ents) != 1 {
				t.Errorf("the data moved or something was left: %v %v", serr, ents)
			}
		})
	}
}
