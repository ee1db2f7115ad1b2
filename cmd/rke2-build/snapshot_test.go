package main

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rke2os/rke2os/init/rke2node/supervisorapi"
	"github.com/rke2os/rke2os/internal/etcdtest"
)

// fakeSupervisor speaks the supervisor's snapshot wire format over TLS,
// with httptest's certificate (a CA) as the cluster CA, and the secret
// "sekrit" for the user server.
type fakeSupervisor struct {
	*httptest.Server
	token  string // the full server token, pinning the CA
	caFile string
	// files are the snapshots fetch serves; a name's suffix picks what
	// goes wrong: ".badsum" sends a wrong trailer, ".nosum" none,
	// ".short" less than it promised.
	files map[string][]byte
	// pruned is what prune deletes.
	pruned []string

	mu  sync.Mutex
	got []supervisorapi.SnapshotRequest
}

var created = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

func newFakeSupervisor(t *testing.T) *fakeSupervisor {
	f := &fakeSupervisor{files: map[string][]byte{}}
	f.Server = httptest.NewTLSServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.Certificate().Raw})
	sum := sha256.Sum256(ca)
	f.token = "K10" + hex.EncodeToString(sum[:]) + "::server:sekrit"
	f.caFile = filepath.Join(t.TempDir(), "server-ca.crt")
	if err := os.WriteFile(f.caFile, ca, 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fakeSupervisor) requests() []supervisorapi.SnapshotRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.got)
}

func (f *fakeSupervisor) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/cacerts" {
		w.Write(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.Certificate().Raw}))
		return
	}
	if user, pass, _ := r.BasicAuth(); user != "server" || pass != "sekrit" {
		http.Error(w, "Unauthorized", http.StatusUnauthorized)
		return
	}
	if name, ok := strings.CutPrefix(r.URL.Path, supervisorapi.SnapshotPath+"/"); ok && r.Method == http.MethodGet {
		f.fetch(w, name)
		return
	}
	if r.URL.Path != supervisorapi.SnapshotPath || r.Method != http.MethodPost {
		http.Error(w, "Unauthorized", http.StatusUnauthorized)
		return
	}
	var req supervisorapi.SnapshotRequest
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	f.got = append(f.got, req)
	f.mu.Unlock()
	info := func(name string) supervisorapi.SnapshotInfo {
		return supervisorapi.SnapshotInfo{Name: name, Node: "server1", Location: "file:///var/lib/rancher/rke2/server/db/snapshots/" + name,
			Size: 20512, Created: created.In(time.FixedZone("CET", 3600)), Compressed: strings.HasSuffix(name, ".zip")}
	}
	var resp supervisorapi.SnapshotResponse
	switch req.Operation {
	case supervisorapi.SnapshotSave:
		name := "on-demand"
		if len(req.Name) > 0 {
			name = req.Name[0]
		}
		name += "-server1-1796644800"
		if req.Compress != nil && *req.Compress {
			name += ".zip"
		}
		resp.Snapshots = []supervisorapi.SnapshotInfo{info(name)}
	case supervisorapi.SnapshotList:
		resp.Snapshots = []supervisorapi.SnapshotInfo{info("etcd-snapshot-server1-1796644800"), info("on-demand-server1-1796644800.zip")}
	case supervisorapi.SnapshotDelete:
		for _, n := range req.Name {
			if n == "missing" {
				http.Error(w, "snapshot missing: no such snapshot on this server", http.StatusNotFound)
				return
			}
			resp.Deleted = append(resp.Deleted, n)
		}
	case supervisorapi.SnapshotPrune:
		resp.Deleted = f.pruned
	}
	if resp.Snapshots == nil {
		resp.Snapshots = []supervisorapi.SnapshotInfo{}
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(resp)
}

// fetch serves a snapshot as the supervisor does: streamed, its sha256
// in a trailer.
func (f *fakeSupervisor) fetch(w http.ResponseWriter, name string) {
	b, ok := f.files[name]
	if !ok {
		http.Error(w, "snapshot "+name+": no such snapshot on this server", http.StatusNotFound)
		return
	}
	if strings.HasSuffix(name, ".short") {
		// The connection ends before the length promised.
		w.Header().Set("Content-Length", strconv.Itoa(len(b)+512))
		w.Write(b)
		return
	}
	w.Header().Set("Trailer", supervisorapi.SnapshotSHA256Trailer)
	w.Write(b)
	sum := sha256.Sum256(b)
	switch {
	case strings.HasSuffix(name, ".nosum"):
		return
	case strings.HasSuffix(name, ".badsum"):
		sum[0] ^= 1
	}
	w.Header().Set(supervisorapi.SnapshotSHA256Trailer, hex.EncodeToString(sum[:]))
}

// runSnapshot runs rke2-build etcd-snapshot with args.
func runSnapshot(args ...string) (exit int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	exit = run(append([]string{"etcd-snapshot"}, args...), &out, &errOut)
	return exit, out.String(), errOut.String()
}

// TestEtcdSnapshot: save, ls, delete and prune send the operation and
// print what the server answers as rke2 etcd-snapshot prints it.
func TestEtcdSnapshot(t *testing.T) {
	f := newFakeSupervisor(t)
	f.pruned = []string{"etcd-snapshot-server1-1796600000", "etcd-snapshot-server1-1796610000"}
	yes := true
	wantJSON, _ := json.MarshalIndent(supervisorapi.SnapshotResponse{Snapshots: []supervisorapi.SnapshotInfo{
		{Name: "etcd-snapshot-server1-1796644800", Node: "server1", Location: "file:///var/lib/rancher/rke2/server/db/snapshots/etcd-snapshot-server1-1796644800", Size: 20512, Created: created.In(time.FixedZone("CET", 3600))},
		{Name: "on-demand-server1-1796644800.zip", Node: "server1", Location: "file:///var/lib/rancher/rke2/server/db/snapshots/on-demand-server1-1796644800.zip", Size: 20512, Created: created.In(time.FixedZone("CET", 3600)), Compressed: true},
	}}, "", "  ")
	for _, tc := range []struct {
		name string
		args []string
		want supervisorapi.SnapshotRequest
		out  string
	}{
		{"save", []string{"save"}, supervisorapi.SnapshotRequest{Operation: "save"}, "Snapshot on-demand-server1-1796644800 saved.\n"},
		{"save a name, compressed", []string{"save", "--name", "pre-upgrade", "--compress"}, supervisorapi.SnapshotRequest{Operation: "save", Name: []string{"pre-upgrade"}, Compress: &yes},
			"Snapshot pre-upgrade-server1-1796644800.zip saved.\n"},
		{"ls", []string{"ls"}, supervisorapi.SnapshotRequest{Operation: "list"},
			// Columns one space wider than their widest cell, as RKE2's
			// tabwriter lays them out; Created in UTC.
			fmt.Sprintf("%-33s%-82s%-6s%s\n", "Name", "Location", "Size", "Created") +
				fmt.Sprintf("%-33s%-82s%-6s%s\n", "etcd-snapshot-server1-1796644800", "file:///var/lib/rancher/rke2/server/db/snapshots/etcd-snapshot-server1-1796644800", "20512", "2026-12-07T12:00:00Z") +
				fmt.Sprintf("%-33s%-82s%-6s%s\n", "on-demand-server1-1796644800.zip", "file:///var/lib/rancher/rke2/server/db/snapshots/on-demand-server1-1796644800.zip", "20512", "2026-12-07T12:00:00Z")},
		{"ls -o json", []string{"ls", "-o", "json"}, supervisorapi.SnapshotRequest{Operation: "list"}, string(wantJSON) + "\n"},
		{"delete", []string{"delete", "a-server1-1796644800", "b-server1-1796644800"}, supervisorapi.SnapshotRequest{Operation: "delete", Name: []string{"a-server1-1796644800", "b-server1-1796644800"}},
			"Snapshot a-server1-1796644800 deleted.\nSnapshot b-server1-1796644800 deleted.\n"},
		{"prune", []string{"prune", "--name", "etcd-snapshot"}, supervisorapi.SnapshotRequest{Operation: "prune", Name: []string{"etcd-snapshot"}},
			"Snapshot etcd-snapshot-server1-1796600000 deleted.\nSnapshot etcd-snapshot-server1-1796610000 deleted.\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(f.requests())
			exit, out, errOut := runSnapshot(append([]string{tc.args[0], "--server", f.URL, "--token", f.token}, tc.args[1:]...)...)
			if exit != 0 || errOut != "" {
				t.Fatalf("exit %d, stderr %q", exit, errOut)
			}
			if out != tc.out {
				t.Errorf("stdout:\n%s\nwant:\n%s", out, tc.out)
			}
			got := f.requests()[before:]
			if len(got) != 1 || got[0].Operation != tc.want.Operation || !slices.Equal(got[0].Name, tc.want.Name) ||
				(got[0].Compress == nil) != (tc.want.Compress == nil) || (got[0].Compress != nil && *got[0].Compress != *tc.want.Compress) {
				t.Errorf("the server got %+v, want %+v", got, tc.want)
			}
		})
	}

	f.pruned = nil
	if exit, out, errOut := runSnapshot("prune", "--server", f.URL, "--token", f.token); exit != 0 || out != "No snapshots pruned.\n" {
		t.Errorf("prune, none: exit %d, stdout %q, stderr %q", exit, out, errOut)
	}
}

// TestEtcdSnapshotToken: the token comes from --token, --token-file or
// $RKE2_TOKEN, the flag first; a bare secret needs --ca-file; a token the
// server refuses is a failure that says which token to give.
func TestEtcdSnapshotToken(t *testing.T) {
	f := newFakeSupervisor(t)
	tokenFile := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tokenFile, []byte(f.token+"\n"), 0o600)
	wrong := strings.Replace(f.token, "sekrit", "guess", 1)
	for _, tc := range []struct {
		name   string
		env    string
		args   []string
		exit   int
		inErr  []string
		notErr string
	}{
		{"--token-file", "", []string{"--token-file", tokenFile}, 0, nil, ""},
		{"$RKE2_TOKEN", f.token, nil, 0, nil, ""},
		{"--token wins over $RKE2_TOKEN", wrong, []string{"--token", f.token}, 0, nil, ""},
		{"bare secret and --ca-file", "", []string{"--token", "sekrit", "--ca-file", f.caFile}, 0, nil, ""},
		{"bare secret without --ca-file", "", []string{"--token", "sekrit"}, 1, []string{"--ca-file", "/var/lib/rancher/rke2/server/token"}, ""},
		{"a token the server refuses", "", []string{"--token", wrong}, 1, []string{"refused the token", "401", "give the server token", f.URL}, "guess"},
		{"an agent's token", "", []string{"--token", strings.Replace(f.token, "::server:", "::node:", 1)}, 1, []string{"agent's token cannot", "give the server token"}, ""},
		{"--token and --token-file", "", []string{"--token", f.token, "--token-file", tokenFile}, 2, []string{"not both"}, ""},
		{"an empty --token-file", "", []string{"--token-file", os.DevNull}, 2, []string{os.DevNull, "empty"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("RKE2_TOKEN", tc.env)
			exit, out, errOut := runSnapshot(append([]string{"ls", "--server", f.URL}, tc.args...)...)
			if exit != tc.exit {
				t.Fatalf("exit %d, want %d; stdout %q, stderr %q", exit, tc.exit, out, errOut)
			}
			if exit == 0 && !strings.HasPrefix(out, "Name ") {
				t.Errorf("stdout %q, want the table", out)
			}
			for _, w := range tc.inErr {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr %q, want %q in it", errOut, w)
				}
			}
			if tc.notErr != "" && strings.Contains(errOut, tc.notErr) {
				t.Errorf("stderr %q shows the secret %q", errOut, tc.notErr)
			}
		})
	}
}

// TestEtcdSnapshotUsage: a command used wrongly is exit 2, with the flag
// or argument named and the fix, before anything is sent.
func TestEtcdSnapshotUsage(t *testing.T) {
	f := newFakeSupervisor(t)
	t.Setenv("RKE2_TOKEN", "")
	conn := []string{"--server", f.URL, "--token", f.token}
	for _, tc := range []struct {
		name  string
		args  []string
		exit  int
		inOut string
		inErr []string
	}{
		{"help", []string{"--help"}, 0, "rke2-build etcd-snapshot fetch", nil},
		{"a command's help", []string{"fetch", "--help"}, 0, "-output FILE", nil},
		{"no command", nil, 2, "", []string{"name a command", "--help"}},
		{"unknown command", []string{"restore"}, 2, "", []string{`"restore"`, "save, ls, delete, prune or fetch"}},
		{"unknown flag", append([]string{"save", "--retention", "3"}, conn...), 2, "", []string{"-retention", "see rke2-build etcd-snapshot save --help"}},
		{"no --server", []string{"ls", "--token", f.token}, 2, "", []string{"give --server https://ADDR:9345"}},
		{"no token", []string{"ls", "--server", f.URL}, 2, "", []string{"--token", "--token-file", "RKE2_TOKEN"}},
		{"-o yaml", append([]string{"ls", "-o", "yaml"}, conn...), 2, "", []string{`-o "yaml"`, "table or json"}},
		{"delete, no names", append([]string{"delete"}, conn...), 2, "", []string{"name the snapshots to delete"}},
		{"delete a path", append(append([]string{"delete"}, conn...), "../etc/passwd"), 2, "", []string{`"../etc/passwd"`, "plain file name"}},
		{"delete ..", append(append([]string{"delete"}, conn...), ".."), 2, "", []string{`".."`, "plain file name"}},
		{"flags after the names", []string{"delete", "x", "--server", f.URL}, 2, "", []string{`"--server"`, "flags before the names"}},
		{"save a path", append([]string{"save", "--name", "a/b"}, conn...), 2, "", []string{`--name "a/b"`}},
		{"fetch two", append(append([]string{"fetch"}, conn...), "a", "b"), 2, "", []string{"name one snapshot"}},
		{"ls with an argument", append(append([]string{"ls"}, conn...), "x"), 2, "", []string{`unexpected argument "x"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(f.requests())
			exit, out, errOut := runSnapshot(tc.args...)
			if exit != tc.exit || !strings.Contains(out, tc.inOut) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want exit %d", exit, out, errOut, tc.exit)
			}
			for _, w := range tc.inErr {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr %q, want %q in it", errOut, w)
				}
			}
			if got := f.requests()[before:]; len(got) > 0 {
				t.Errorf("the server got %+v", got)
			}
		})
	}
}

// TestEtcdSnapshotFetch: fetch keeps a snapshot only whole, as the server
// hashed it, and a sound etcd database; anything else leaves no file at
// the output and says why. It never replaces a file.
func TestEtcdSnapshotFetch(t *testing.T) {
	f := newFakeSupervisor(t)
	good := etcdtest.Snapshot(t, 1)
	damaged := slices.Clone(good)
	damaged[100] ^= 1 // etcd's own sha256 no longer matches
	const name = "on-demand-server1-1796644800"
	f.files[name] = good
	f.files[name+".zip"] = zipOf(t, name, good)
	f.files[name+".damaged.zip"] = zipOf(t, name, damaged)
	f.files[name+".badsum"] = good
	f.files[name+".nosum"] = good
	f.files[name+".short"] = good
	f.files[name+".damaged"] = damaged
	sum := sha256.Sum256(good)
	conn := []string{"--server", f.URL, "--token", f.token}

	for _, tc := range []struct {
		name   string
		fetch  string
		output func(dir string) string // --output; "" for none (the current directory)
		exit   int
		inErr  []string
	}{
		{"into the current directory", name, nil, 0, nil},
		{"into a directory", name, func(dir string) string { return dir }, 0, nil},
		{"as a file", name, func(dir string) string { return filepath.Join(dir, "backup.db") }, 0, nil},
		{"compressed", name + ".zip", nil, 0, nil},
		{"compressed, its database damaged", name + ".damaged.zip", nil, 1, []string{"not a sound etcd snapshot"}},
		{"a wrong sha256", name + ".badsum", nil, 1, []string{"damaged on the way", hex.EncodeToString(sum[:]), "nothing was kept"}},
		{"no sha256", name + ".nosum", nil, 1, []string{"no sha256", supervisorapi.SnapshotSHA256Trailer, "nothing was kept"}},
		{"a short body", name + ".short", nil, 1, []string{"broke off after", "nothing was kept"}},
		{"a damaged database", name + ".damaged", nil, 1, []string{"not a sound etcd snapshot", "sha256", "the server's copy is damaged", "nothing was kept"}},
		{"a snapshot the server does not have", "gone-server1-1796644800", nil, 1, []string{"404 Not Found", "no such snapshot on this server"}},
		{"a missing directory", name, func(dir string) string { return filepath.Join(dir, "none", "x") }, 2, []string{filepath.Join("none", "x"), "does not exist", "give another --output"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			t.Chdir(dir)
			args := append(slices.Clone(conn), tc.fetch)
			out := tc.fetch
			if tc.output != nil {
				o := tc.output(dir)
				args = append([]string{"--output", o}, args...)
				out = o
				if fi, err := os.Stat(o); err == nil && fi.IsDir() {
					out = filepath.Join(o, tc.fetch)
				}
			}
			exit, stdout, errOut := runSnapshot(append([]string{"fetch"}, args...)...)
			if exit != tc.exit {
				t.Fatalf("exit %d, want %d; stdout %q, stderr %q", exit, tc.exit, stdout, errOut)
			}
			for _, w := range tc.inErr {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr %q, want %q in it", errOut, w)
				}
			}
			got, err := os.ReadFile(out)
			if tc.exit != 0 {
				if err == nil {
					t.Errorf("%s was left behind", out)
				}
				if ents, _ := os.ReadDir(dir); len(ents) > 0 {
					t.Errorf("%s holds %v after a failed fetch", dir, ents)
				}
				return
			}
			want := f.files[tc.fetch]
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("%s: %d bytes (%v), want the %d bytes served", out, len(got), err, len(want))
			}
			ws := sha256.Sum256(want)
			if line := "Snapshot " + tc.fetch + " fetched to " + out + " (" + strconv.Itoa(len(want)) + " bytes, sha256 " + hex.EncodeToString(ws[:]) + ").\n"; stdout != line {
				t.Errorf("stdout %q, want %q", stdout, line)
			}
			if ents, _ := os.ReadDir(filepath.Dir(out)); len(ents) != 1 {
				t.Errorf("%s holds %v, want the snapshot alone", filepath.Dir(out), ents)
			}
			// Again: the file is there, and is not replaced.
			exit, _, errOut = runSnapshot(append([]string{"fetch"}, args...)...)
			if exit != 2 || !strings.Contains(errOut, out+" exists") || !strings.Contains(errOut, "remove it, or give another --output") {
				t.Errorf("again: exit %d, stderr %q; want 2 and the file named with the fix", exit, errOut)
			}
			if again, _ := os.ReadFile(out); !bytes.Equal(again, want) {
				t.Error("the second fetch changed the file")
			}
		})
	}
}

// zipOf is a zip with one entry, name, holding b: a compressed snapshot.
func zipOf(t *testing.T, name string, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, err := zw.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(b)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
