package join

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rke2os/rke2os/init/rke2node/supervisorapi"
)

// TestDialServer: an operator's tool reaches a server's supervisor with
// the server token only, over a CA the token pins or the CA file given;
// what it cannot trust, or a token that is not the server's, is refused
// before the secret is sent, with the fix in the message.
func TestDialServer(t *testing.T) {
	c, rec := wrapCluster(t)
	other := newCluster(t, true)
	ca := c.paths.Server("tls", "server-ca.crt")
	otherCA := other.paths.Server("tls", "server-ca.crt")
	for _, tc := range []struct {
		name, server, token, caFile string
		// want are the words of the refusal; none for a dial that works.
		want []string
	}{
		{"full server token", c.url, c.token, "", nil},
		{"full server token and its CA file", c.url, c.token, ca, nil},
		{"bare secret and the CA file", c.url, "sekrit", ca, nil},
		{"bare secret without a CA", c.url, "sekrit", "", []string{"bare secret", "--ca-file", "/var/lib/rancher/rke2/server/token"}},
		{"another cluster's token", c.url, other.token, "", []string{c.url, "pins", "/var/lib/rancher/rke2/server/token"}},
		{"bare secret and another cluster's CA file", c.url, "sekrit", otherCA, []string{"certificate", "does not sign", otherCA}},
		{"a CA file the token does not pin", c.url, c.token, otherCA, []string{otherCA, "not the CA the token pins"}},
		{"agent's token", c.url, strings.Replace(c.token, "::server:", "::node:", 1), "", []string{"agent's token cannot", "give the server token"}},
		{"a missing CA file", c.url, "sekrit", ca + ".missing", []string{ca + ".missing"}},
		{"not https", strings.Replace(c.url, "https:", "http:", 1), c.token, "", []string{"https://10.0.0.1:9345"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(rec.requests())
			err := dialAndAsk(tc.server, tc.token, tc.caFile)
			got := rec.requests()[before:]
			if tc.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != 1 || !strings.Contains(got[0], "user=server pass=sekrit") {
					t.Errorf("the server got %q, want one request with the server token", got)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %v, want %q in it", err, w)
				}
			}
			if len(got) > 0 {
				t.Errorf("the server got %q from a refused dial", got)
			}
		})
	}
}

// dialAndAsk dials and asks for what only the server token may read.
func dialAndAsk(server, token, caFile string) error {
	ctx := context.Background()
	s, err := DialServer(ctx, server, token, caFile)
	if err != nil {
		return err
	}
	defer s.Close()
	resp, err := s.Do(ctx, http.MethodGet, supervisorapi.Prefix+"/server-bootstrap", nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return errors.New(resp.Status)
	}
	return nil
}

// TestDialServerRedirect: Do refuses a redirect, which would carry the
// token elsewhere, and names the server and where it points.
func TestDialServerRedirect(t *testing.T) {
	thief := &recorder{}
	steal := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { thief.record(r) }))
	defer steal.Close()
	location := steal.URL + "/stolen"
	c := newClusterWrapped(t, true, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == supervisorapi.SnapshotPath {
				http.Redirect(w, r, location, http.StatusTemporaryRedirect)
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	s, err := DialServer(context.Background(), c.url, c.token, "")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	resp, err := s.Do(context.Background(), http.MethodPost, supervisorapi.SnapshotPath, strings.NewReader(`{"operation":"list"}`))
	if err == nil {
		resp.Body.Close()
		t.Fatalf("%s: no error, want the redirect refused", resp.Status)
	}
	if !strings.Contains(err.Error(), "redirect") || !strings.Contains(err.Error(), c.url) || !strings.Contains(err.Error(), location) {
		t.Errorf("err = %v, want the redirect refused, naming the server %s and %s", err, c.url, location)
	}
	if got := thief.requests(); len(got) > 0 {
		t.Errorf("the redirect's target got %q", got)
	}
}

// snapshots are a server's snapshots for TestDialServerSnapshots: one
// file, in dir.
type snapshots struct{ dir string }

func (s snapshots) Save(context.Context, string, *bool) (supervisorapi.SnapshotInfo, error) {
	return supervisorapi.SnapshotInfo{}, errors.New("not here")
}

func (s snapshots) List(context.Context) ([]supervisorapi.SnapshotInfo, error) {
	return []supervisorapi.SnapshotInfo{{Name: "on-demand-server1-1796644800", Node: "server1", Size: 5}}, nil
}

func (s snapshots) Delete(context.Context, []string) ([]string, error) { return nil, nil }
func (s snapshots) Prune(context.Context, string) ([]string, error)    { return nil, nil }

func (s snapshots) Open(name string) (*os.File, error) {
	if name != "on-demand-server1-1796644800" {
		return nil, supervisorapi.ErrNoSnapshot
	}
	return os.Open(filepath.Join(s.dir, name))
}

// TestDialServerSnapshots: the supervisor's own snapshot endpoints answer
// a dialled Supervisor: a list in JSON, a fetch streamed with its sha256
// in the trailer, a snapshot it lacks with 404 and its words.
func TestDialServerSnapshots(t *testing.T) {
	c := newCluster(t, true)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "on-demand-server1-1796644800"), []byte("hello"), 0o600)
	c.server.SetSnapshots(snapshots{dir})
	ctx := context.Background()
	s, err := DialServer(ctx, c.url, c.token, "")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	resp, err := s.Do(ctx, http.MethodPost, supervisorapi.SnapshotPath, strings.NewReader(`{"operation":"list"}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	list, err := supervisorapi.DecodeSnapshotResponse(b)
	if resp.StatusCode != http.StatusOK || err != nil || len(list.Snapshots) != 1 || list.Snapshots[0].Name != "on-demand-server1-1796644800" {
		t.Fatalf("list: %s %q (%v)", resp.Status, b, err)
	}

	resp, err = s.Do(ctx, http.MethodGet, supervisorapi.SnapshotPath+"/on-demand-server1-1796644800", nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	sum := sha256.Sum256([]byte("hello"))
	if err != nil || string(b) != "hello" || resp.Trailer.Get(supervisorapi.SnapshotSHA256Trailer) != hex.EncodeToString(sum[:]) {
		t.Fatalf("fetch: %s %q (%v), trailer %v", resp.Status, b, err, resp.Trailer)
	}

	resp, err = s.Do(ctx, http.MethodGet, supervisorapi.SnapshotPath+"/etcd-snapshot-server1-1796644800", nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(string(b), supervisorapi.ErrNoSnapshot.Error()) {
		t.Fatalf("a snapshot the server lacks: %s %q", resp.Status, b)
	}
}
