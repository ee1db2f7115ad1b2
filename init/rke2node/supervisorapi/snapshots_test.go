package supervisorapi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeSnapshots keeps snapshot files in a directory.
type fakeSnapshots struct {
	dir   string
	calls []string
}

func (f *fakeSnapshots) Save(_ context.Context, name string, compress *bool) (SnapshotInfo, error) {
	f.calls = append(f.calls, fmt.Sprintf("save %s %v", name, compress != nil && *compress))
	return SnapshotInfo{Name: name + "-server1-1796644800", Node: "server1", Size: 3}, nil
}

func (f *fakeSnapshots) List(context.Context) ([]SnapshotInfo, error) {
	f.calls = append(f.calls, "list")
	return []SnapshotInfo{{Name: "etcd-snapshot-server1-1796644800", Node: "server1", Size: 3, Created: time.Unix(1796644800, 0).UTC()}}, nil
}

func (f *fakeSnapshots) Delete(_ context.Context, names []string) ([]string, error) {
	f.calls = append(f.calls, "delete "+strings.Join(names, ","))
	if names[0] == "missing" {
		return nil, ErrNoSnapshot
	}
	return names, nil
}

func (f *fakeSnapshots) Prune(_ context.Context, name string) ([]string, error) {
	f.calls = append(f.calls, "prune "+name)
	return nil, nil
}

func (f *fakeSnapshots) Open(name string) (*os.File, error) {
	if name != "etcd-snapshot-server1-1796644800" {
		return nil, ErrNoSnapshot
	}
	return os.Open(filepath.Join(f.dir, name))
}

func snapshotRequest(t *testing.T, s *Server, method, path, body, user, pass string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, req)
	return w
}

// TestSnapshotEndpoints: the server token only; each operation reaches
// the service as asked; what is malformed is refused before it.
func TestSnapshotEndpoints(t *testing.T) {
	s, _ := testServer(t)
	const list = `{"operation":"list"}`
	if w := snapshotRequest(t, s, "POST", SnapshotPath, list, "server", "server-secret"); w.Code != http.StatusServiceUnavailable {
		t.Errorf("before the snapshots are set: %d %s", w.Code, w.Body)
	}
	fs := &fakeSnapshots{dir: t.TempDir()}
	content := []byte("etcd")
	if err := os.WriteFile(filepath.Join(fs.dir, "etcd-snapshot-server1-1796644800"), content, 0o600); err != nil {
		t.Fatal(err)
	}
	s.SetSnapshots(fs)
	for _, tc := range []struct {
		name, user, pass string
		want             int
	}{
		{"agent token", "node", agentSecret, http.StatusUnauthorized},
		{"server secret as a node", "node", "server-secret", http.StatusUnauthorized},
		{"no token", "", "", http.StatusUnauthorized},
		{"server token", "server", "server-secret", http.StatusOK},
	} {
		fs.calls = nil
		for _, ep := range []struct{ method, path, body string }{
			{"POST", SnapshotPath, list},
			{"POST", SnapshotPath, `{"operation":"save","name":["x"]}`},
			{"POST", SnapshotPath, `{"operation":"delete","name":["etcd-snapshot-server1-1796644800"]}`},
			{"GET", SnapshotPath + "/etcd-snapshot-server1-1796644800", ""},
		} {
			if w := snapshotRequest(t, s, ep.method, ep.path, ep.body, tc.user, tc.pass); w.Code != tc.want {
				t.Errorf("%s: %s %s %s: %d %s, want %d", tc.name, ep.method, ep.path, ep.body, w.Code, w.Body, tc.want)
			}
		}
		if tc.want != http.StatusOK && len(fs.calls) != 0 {
			t.Errorf("%s: reached the service: %v", tc.name, fs.calls)
		}
	}

	ok := func(body string) SnapshotResponse {
		t.Helper()
		w := snapshotRequest(t, s, "POST", SnapshotPath, body, "server", "server-secret")
		if w.Code != http.StatusOK {
			t.Fatalf("%s: %d %s", body, w.Code, w.Body)
		}
		resp, err := DecodeSnapshotResponse(w.Body.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	fs.calls = nil
	if r := ok(`{"operation":"save","name":["pre-upgrade"],"compress":true}`); len(r.Snapshots) != 1 || r.Snapshots[0].Name != "pre-upgrade-server1-1796644800" {
		t.Errorf("save answered %+v", r)
	}
	if r := ok(`{"operation":"list"}`); len(r.Snapshots) != 1 || r.Snapshots[0].Size != 3 {
		t.Errorf("list answered %+v", r)
	}
	if r := ok(`{"operation":"prune"}`); r.Snapshots == nil || len(r.Deleted) != 0 {
		t.Errorf("prune answered %+v", r)
	}
	if got := strings.Join(fs.calls, "; "); got != "save pre-upgrade true; list; prune " {
		t.Errorf("calls %q", got)
	}

	for _, tc := range []struct {
		method, path, body string
		want               int
		msg                string
	}{
		{"POST", SnapshotPath, `{"operation":"restore"}`, 400, `snapshot operation "restore": want save, list, delete or prune`},
		{"POST", SnapshotPath, `{"operation":"save","dir":"/etc"}`, 400, `unknown field "dir"`},
		{"POST", SnapshotPath, `{"operation":"list","s3":{}}`, 400, `unknown field "s3"`},
		{"POST", SnapshotPath, `not json`, 400, "snapshot request"},
		{"POST", SnapshotPath, `{"operation":"delete"}`, 400, "name the snapshots to delete"},
		{"POST", SnapshotPath, `{"operation":"save","name":["../../etc/x"]}`, 400, `snapshot name "../../etc/x": a plain name`},
		{"POST", SnapshotPath, `{"operation":"prune","name":[".hidden"]}`, 400, "a plain name"},
		{"POST", SnapshotPath, `{"operation":"save","name":["a","b"]}`, 400, "one name at most"},
		{"POST", SnapshotPath, `{"operation":"delete","name":["missing"]}`, 404, ErrNoSnapshot.Error()},
		{"GET", SnapshotPath + "/other-server2-1796644800", "", 404, ErrNoSnapshot.Error()},
		{"GET", SnapshotPath + "/..%2f..%2fetc%2fpasswd", "", 404, ""},
		{"HEAD", SnapshotPath + "/etcd-snapshot-server1-1796644800", "", 405, ""},
	} {
		w := snapshotRequest(t, s, tc.method, tc.path, tc.body, "server", "server-secret")
		if w.Code != tc.want || !strings.Contains(w.Body.String(), tc.msg) {
			t.Errorf("%s %s %s: %d %q, want %d %q", tc.method, tc.path, tc.body, w.Code, w.Body, tc.want, tc.msg)
		}
	}

	// A fetch: the bytes, and their sha256 in the trailer.
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL+SnapshotPath+"/etcd-snapshot-server1-1796644800", nil)
	req.SetBasicAuth("server", "server-secret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(content)
	if resp.StatusCode != 200 || string(b) != "etcd" || resp.Trailer.Get(SnapshotSHA256Trailer) != hex.EncodeToString(sum[:]) {
		t.Errorf("fetch: %s %q trailer %v", resp.Status, b, resp.Trailer)
	}
}
