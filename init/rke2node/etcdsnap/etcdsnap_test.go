package etcdsnap

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

var t0 = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name, node string
		ok         bool
		prefix     string
		zip        bool
	}{
		{"etcd-snapshot-server1-1796644800", "server1", true, "etcd-snapshot", false},
		{"etcd-snapshot-server1-1796644800.zip", "server1", true, "etcd-snapshot", true},
		{"on-demand-my-node-1796644800", "my-node", true, "on-demand", false},
		{"pre-upgrade-x-my-node-1796644800", "my-node", true, "pre-upgrade-x", false},
		{"etcd-snapshot-server2-1796644800", "server1", false, "", false},
		{"etcd-snapshot-server1-17966448", "server1", false, "", false},
		{"etcd-snapshot-server1-abc", "server1", false, "", false},
		{".etcd-snapshot-server1-1796644800.123.part", "server1", false, "", false},
		{"server1-1796644800", "server1", false, "", false},
		{"notes.txt", "server1", false, "", false},
	} {
		f, ok := Parse(tc.name, tc.node)
		if ok != tc.ok || (ok && (f.Prefix != tc.prefix || f.Node != tc.node || f.Compressed != tc.zip || f.Created.Unix() != 1796644800)) {
			t.Errorf("Parse(%q, %q) = %+v, %v; want prefix %q zip %v ok %v", tc.name, tc.node, f, ok, tc.prefix, tc.zip, tc.ok)
		}
	}
}

// FuzzParse: a name read back is the name written.
func FuzzParse(f *testing.F) {
	f.Add("etcd-snapshot-server1-1796644800.zip", "server1")
	f.Add("a-b-c-1796644800", "")
	f.Fuzz(func(t *testing.T, name, node string) {
		p, ok := Parse(name, node)
		if !ok {
			return
		}
		if got := FileName(p.Prefix, p.Node, p.Created, p.Compressed); got != name {
			t.Errorf("Parse(%q, %q) = %+v, written back as %q", name, node, p, got)
		}
	})
}

// startEtcd starts an in-process etcd with some keys, and returns its
// client.
func startEtcd(t *testing.T) *clientv3.Client {
	t.Helper()
	c, _ := startOn(t, t.TempDir(), "s")
	for i := range 20 {
		if _, err := c.Put(context.Background(), fmt.Sprintf("/registry/k%d", i), strings.Repeat("v", 100)); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// TestSave takes snapshots plain and compressed from a real etcd, checks
// them, reads the zip's back, lists and prunes.
func TestSave(t *testing.T) {
	c := startEtcd(t)
	dir := filepath.Join(t.TempDir(), "snapshots")
	ctx := context.Background()
	var files []File
	for i, compress := range []bool{false, true, false, true} {
		f, st, err := Save(ctx, c, Options{Dir: dir, Name: DefaultName, Node: "server1", Compress: compress, Now: t0.Add(time.Duration(i) * time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		if st.TotalKeys < 20 || st.Revision < 21 || st.Size%512 != 0 {
			t.Errorf("status %+v: want the 20 keys, revision 21 or more", st)
		}
		if f.Compressed != compress || f.Name != FileName(DefaultName, "server1", t0.Add(time.Duration(i)*time.Hour), compress) || f.Size == 0 {
			t.Errorf("file %+v", f)
		}
		files = append(files, f)
	}
	// The zip's entry is a snapshot that checks.
	rc, err := Open(files[1])
	if err != nil {
		t.Fatal(err)
	}
	plain := filepath.Join(t.TempDir(), "unzipped")
	b, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(plain, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Check(plain); err != nil {
		t.Errorf("the zip's snapshot: %v", err)
	}
	// Only snapshots in the directory: no temporary file left.
	ents, _ := os.ReadDir(dir)
	if len(ents) != 4 {
		t.Errorf("%d files in the snapshot directory, want 4: %v", len(ents), ents)
	}
	// Another node's, an on-demand one and a stranger are left by the prune.
	for _, n := range []string{"etcd-snapshot-server2-1700000000", "on-demand-server1-1700000000", "notes.txt"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	gone, err := Prune(dir, DefaultName, "server1", 2, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(gone) != 2 || gone[0].Name != files[0].Name || gone[1].Name != files[1].Name {
		t.Errorf("pruned %v, want the two oldest", gone)
	}
	left, err := List(dir, "server1")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range left {
		names = append(names, f.Name)
	}
	want := "on-demand-server1-1700000000 " + files[2].Name + " " + files[3].Name
	if got := strings.Join(names, " "); got != want {
		t.Errorf("left %s, want %s", got, want)
	}
	for _, n := range []string{"etcd-snapshot-server2-1700000000", "notes.txt"} {
		if _, err := os.Stat(filepath.Join(dir, n)); err != nil {
			t.Errorf("%s: %v", n, err)
		}
	}
	// A second snapshot of the same name and second is refused.
	if _, _, err := Save(ctx, c, Options{Dir: dir, Name: DefaultName, Node: "server1", Now: t0.Add(3 * time.Hour)}); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Errorf("the same name again: %v", err)
	}
}

type fakeSource struct {
	data []byte
	err  error // after data
}

func (s fakeSource) Snapshot(context.Context) (io.ReadCloser, error) {
	return io.NopCloser(io.MultiReader(bytes.NewReader(s.data), errReader{s.err})), nil
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	return 0, io.EOF
}

// A stream cut short, or one that is not a snapshot, leaves nothing in
// the directory, and says why.
func TestSaveFails(t *testing.T) {
	c := startEtcd(t)
	rc, err := c.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	good, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	damaged := bytes.Clone(good)
	damaged[len(damaged)/2] ^= 0xff
	for _, tc := range []struct {
		name string
		src  Source
		says string
	}{
		{"cut", fakeSource{good[:len(good)/2], errors.New("connection reset")}, "connection reset"},
		{"short", fakeSource{good[:len(good)-1], nil}, "not an etcd snapshot"},
		{"damaged", fakeSource{damaged, nil}, "damaged"},
		{"not a database", fakeSource{withHash(make([]byte, 4096)), nil}, "the database"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			_, _, err := Save(context.Background(), tc.src, Options{Dir: dir, Name: DefaultName, Node: "n", Compress: true, Now: t0})
			if err == nil || !strings.Contains(err.Error(), tc.says) {
				t.Errorf("error %v, want one saying %q", err, tc.says)
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 0 {
				t.Errorf("left %v", ents)
			}
		})
	}
	for _, bad := range []Options{{Name: "a/b", Node: "n"}, {Name: "x", Node: ".."}, {Name: ".hidden", Node: "n"}} {
		bad.Dir = t.TempDir()
		if _, _, err := Save(context.Background(), c, bad); err == nil || !strings.Contains(err.Error(), "not a file name") {
			t.Errorf("options %+v: %v", bad, err)
		}
	}
}

// withHash appends the sha256 etcd appends.
func withHash(b []byte) []byte {
	h := sha256Sum(b)
	return append(b, h[:]...)
}

func sha256Sum(b []byte) [32]byte { return sha256.Sum256(b) }
