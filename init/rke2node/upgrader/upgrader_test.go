package upgrader

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
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

	"github.com/rke2os/rke2os/init/rke2node/upgradeapi"
	"github.com/rke2os/rke2os/init/shared/slots"
	"github.com/rke2os/rke2os/internal/artifact"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// fakeSystem is a disk of files: slot B's partition is a file, the ESP's
// state a variable, the reboot a count.
type fakeSystem struct {
	mu      sync.Mutex
	cur     slots.Current
	ok      bool
	state   slots.State
	dev     string // the inactive slot's partition
	size    int64
	corrupt bool // the device keeps another byte than the one written
	reboots int
}

func (f *fakeSystem) Current() (slots.Current, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cur, f.ok, nil
}

func (f *fakeSystem) Slots(slots.Current) (slots.State, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.state, nil
}

func (f *fakeSystem) UpdateSlots(_ slots.Current, change func(slots.State) (slots.State, error)) (slots.State, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	next, err := change(f.state)
	if err != nil {
		return f.state, err
	}
	f.state = next
	return next, nil
}

func (f *fakeSystem) Partition(c slots.Current, s slots.Slot) (string, int64, error) {
	if s == c.Slot {
		return "", 0, fmt.Errorf("asked for the booted slot %s", s)
	}
	return f.dev, f.size, nil
}

func (f *fakeSystem) Open(dev string, write bool) (Device, error) {
	if !write {
		return os.Open(dev)
	}
	d, err := os.OpenFile(dev, os.O_WRONLY, 0)
	if err != nil || !f.corrupt {
		return d, err
	}
	return &corrupting{File: d}, nil
}

func (f *fakeSystem) Reboot() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reboots++
	return nil
}

func (f *fakeSystem) get() (slots.State, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.state, f.reboots
}

// corrupting is a device that keeps one byte wrong.
type corrupting struct {
	*os.File
	done bool
}

func (c *corrupting) Write(p []byte) (int, error) {
	if !c.done && len(p) > 100 {
		c.done = true
		q := bytes.Clone(p)
		q[100] ^= 0x55
		return c.File.Write(q)
	}
	return c.File.Write(p)
}

var epoch = time.Unix(1735689600, 0).UTC()

func testKey(n byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{n}, ed25519.SeedSize))
}

// testSlot stands in for a slot image.
func testSlot(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

func makeArtifact(t *testing.T, role string, slot []byte, key ed25519.PrivateKey) []byte {
	t.Helper()
	var buf bytes.Buffer
	m := artifact.Manifest{Role: role, Version: "v1.34.5+rke2r1", Build: "build-2", Created: epoch}
	if err := artifact.Write(&buf, m, bytes.NewReader(slot), key); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

const nodeName = "node1"

// rig is a node with a fake cluster, a fake disk and an artifact server.
type rig struct {
	t      *testing.T
	sys    *fakeSystem
	kc     *fake.Clientset
	files  Files
	slot   []byte
	served []byte
	srv    *httptest.Server

	onServe func() // called as the artifact is served
	resync  time.Duration
	chunked bool // served without a Content-Length

	mu     sync.Mutex
	phases []string
	status []string // every StatusKey value patched
}

func newRig(t *testing.T) *rig {
	t.Helper()
	dir := t.TempDir()
	r := &rig{t: t, slot: testSlot(3<<20 + 12345)}
	r.served = makeArtifact(t, "server", r.slot, testKey(1))
	pub, err := artifact.MarshalPublicKey(testKey(1).Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	r.files = Files{Dir: filepath.Join(dir, "upgrade"), PublicKey: filepath.Join(dir, "upgrade.pub")}
	r.files.Pending = filepath.Join(r.files.Dir, "pending.json")
	r.files.Rollback = filepath.Join(r.files.Dir, "rollback.json")
	// The running image was built when the artifact was: not older.
	r.files.OSRelease = filepath.Join(dir, "os-release")
	writeFile(t, r.files.OSRelease, "NAME=\"rke2os\"\nRKE2OS_BUILD_DATE=\""+epoch.Format(time.RFC3339)+"\"\n")
	if err := os.WriteFile(r.files.PublicKey, pub, 0o644); err != nil {
		t.Fatal(err)
	}
	dev := filepath.Join(dir, "slotB")
	if err := os.WriteFile(dev, make([]byte, 8<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	r.sys = &fakeSystem{cur: slots.Current{Slot: slots.A, Disk: "/dev/vda", ESP: "/dev/vda2"}, ok: true,
		state: slots.State{Good: slots.A}, dev: dev, size: 8 << 20}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path != "/rke2-server.upgrade" {
			http.NotFound(w, req)
			return
		}
		r.mu.Lock()
		b, on := r.served, r.onServe
		r.onServe = nil
		r.mu.Unlock()
		if on != nil {
			on()
		}
		if !r.chunked {
			w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		}
		w.Write(b)
	}))
	t.Cleanup(r.srv.Close)
	r.kc = fake.NewClientset(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodeName}})
	r.kc.PrependReactor("patch", "nodes", func(a k8stesting.Action) (bool, runtime.Object, error) {
		var p struct {
			Metadata struct {
				Annotations map[string]string `json:"annotations"`
			} `json:"metadata"`
		}
		json.Unmarshal(a.(k8stesting.PatchAction).GetPatch(), &p)
		if v, ok := p.Metadata.Annotations[upgradeapi.StatusKey]; ok {
			st, _ := parseStatus(v)
			r.mu.Lock()
			r.phases = append(r.phases, st.Phase)
			r.status = append(r.status, v)
			r.mu.Unlock()
		}
		return false, nil, nil
	})
	return r
}

func (r *rig) request() upgradeapi.Request {
	return upgradeapi.Request{Plan: "p1", Generation: 1,
		Artifact: upgradeapi.Artifact{URL: r.srv.URL + "/rke2-server.upgrade?X-Amz-Signature=secret", SHA256: sum(r.served)}}
}

// annotate sets the Node's annotations.
func (r *rig) annotate(kv map[string]string) {
	r.t.Helper()
	n, err := r.kc.CoreV1().Nodes().Get(context.Background(), nodeName, metav1.GetOptions{})
	if err != nil {
		r.t.Fatal(err)
	}
	if n.Annotations == nil {
		n.Annotations = map[string]string{}
	}
	for k, v := range kv {
		n.Annotations[k] = v
	}
	if _, err := r.kc.CoreV1().Nodes().Update(context.Background(), n, metav1.UpdateOptions{}); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rig) ask(req upgradeapi.Request) {
	b, _ := json.Marshal(req)
	r.annotate(map[string]string{upgradeapi.RequestKey: string(b)})
}

func (r *rig) setStatus(st upgradeapi.NodeStatus) {
	b, _ := json.Marshal(st)
	r.annotate(map[string]string{upgradeapi.StatusKey: string(b)})
}

func (r *rig) nodeStatus() (upgradeapi.NodeStatus, bool) {
	n, err := r.kc.CoreV1().Nodes().Get(context.Background(), nodeName, metav1.GetOptions{})
	if err != nil {
		return upgradeapi.NodeStatus{}, false
	}
	return parseStatus(n.Annotations[upgradeapi.StatusKey])
}

// start runs the upgrader until the test ends.
func (r *rig) start() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		Run(ctx, Config{Files: r.files, NodeName: nodeName, Role: "server", Client: r.kc, System: r.sys,
			Retry: 10 * time.Millisecond, Progress: 5 * time.Millisecond, StallTimeout: 2 * time.Second, Resync: r.resync})
	}()
	r.t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			r.t.Error("Run did not end with its context")
		}
	})
}

// waitPhase waits for the Node to say phase (for req, if not zero).
func (r *rig) waitPhase(phase string) upgradeapi.NodeStatus {
	r.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if st, ok := r.nodeStatus(); ok && st.Phase == phase {
			return st
		}
		if time.Now().After(deadline) {
			st, _ := r.nodeStatus()
			r.t.Fatalf("no %s after 20s; the Node says %+v (phases %v)", phase, st, r.gotPhases())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (r *rig) gotPhases() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.phases...)
}

// waitReboot waits for the reboot request.
func (r *rig) waitReboot() {
	r.t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if _, n := r.sys.get(); n > 0 {
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatal("no reboot after 20s")
		}
	}
}

func (r *rig) device() []byte {
	b, err := os.ReadFile(r.sys.dev)
	if err != nil {
		r.t.Fatal(err)
	}
	return b
}

func (r *rig) downloads() []string {
	m, _ := filepath.Glob(filepath.Join(r.files.Dir, downloadPrefix+"*"))
	return m
}

func (r *rig) writeJSON(p string, v any) {
	r.t.Helper()
	b, _ := json.Marshal(v)
	os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		r.t.Fatal(err)
	}
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// checkUpgraded checks a node that wrote and armed slot B for req and
// asked for a reboot.
func (r *rig) checkUpgraded(req upgradeapi.Request) {
	r.t.Helper()
	r.checkUpgradedFrom(req, "downloading,writing,rebooting")
}

func (r *rig) checkUpgradedFrom(req upgradeapi.Request, phases string) {
	r.t.Helper()
	st := r.waitPhase(upgradeapi.PhaseRebooting)
	r.waitReboot()
	if !st.For(req) || st.Slot != "B" {
		r.t.Errorf("status %+v, want rebooting into B for %+v", st, req)
	}
	time.Sleep(50 * time.Millisecond) // nothing more may come
	if got := r.gotPhases(); strings.Join(got, ",") != phases {
		r.t.Errorf("phases %v, want %s", got, phases)
	}
	if dev := r.device(); !bytes.Equal(dev[:len(r.slot)], r.slot) {
		r.t.Error("slot B does not hold the slot image")
	} else if bytes.ContainsFunc(dev[len(r.slot):], func(c rune) bool { return c != 0 }) {
		r.t.Error("bytes after the slot image were written")
	}
	state, reboots := r.sys.get()
	if want := (slots.State{Good: slots.A, Try: slots.B, Tries: slots.DefaultTries}); state != want {
		r.t.Errorf("slots %+v, want %+v", state, want)
	}
	if reboots != 1 {
		r.t.Errorf("%d reboots asked for, want 1", reboots)
	}
	var p Pending
	b, err := os.ReadFile(r.files.Pending)
	if err != nil || json.Unmarshal(b, &p) != nil || p.Request != req || p.Slot != slots.B || p.Build != "build-2" {
		r.t.Errorf("pending %s (%v), want the request and slot B", b, err)
	}
	if d := r.downloads(); len(d) != 0 {
		r.t.Errorf("downloads left: %v", d)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.status {
		if strings.Contains(s, "secret") {
			r.t.Errorf("a status says the URL's query: %s", s)
		}
	}
}

func TestUpgrade(t *testing.T) {
	r := newRig(t)
	r.start()
	time.Sleep(50 * time.Millisecond)
	// Asked once the upgrader watches: the watch brings it.
	req := r.request()
	r.ask(req)
	r.checkUpgraded(req)
}

func TestUpgradeRefused(t *testing.T) {
	for _, tc := range []struct {
		name   string
		setup  func(r *rig, req *upgradeapi.Request)
		reason []string
		wrote  bool // the slot was written (and is not armed)
	}{
		{name: "sha256 mismatch", setup: func(r *rig, req *upgradeapi.Request) { req.SHA256 = sum([]byte("another")) },
			reason: []string{"sha256 " + "", "want " + sum([]byte("another"))}},
		{name: "signed by another key", setup: func(r *rig, req *upgradeapi.Request) {
			r.served = makeArtifact(r.t, "server", r.slot, testKey(2))
			req.SHA256 = sum(r.served)
		}, reason: []string{"signature is not by this upgrade key"}},
		{name: "unsigned", setup: func(r *rig, req *upgradeapi.Request) {
			r.served = unsign(r.t, r.served)
			req.SHA256 = sum(r.served)
		}, reason: []string{"not signed"}},
		{name: "no upgrade key", setup: func(r *rig, req *upgradeapi.Request) { os.Remove(r.files.PublicKey) },
			reason: []string{"carries no upgrade key (built without --secrets)"}},
		{name: "wrong role", setup: func(r *rig, req *upgradeapi.Request) {
			r.served = makeArtifact(r.t, "agent", r.slot, testKey(1))
			req.SHA256 = sum(r.served)
		}, reason: []string{"for agent nodes", "this node is a server"}},
		{name: "older build", setup: func(r *rig, req *upgradeapi.Request) {
			r.files.OSRelease = filepath.Join(r.t.TempDir(), "os-release")
			writeFile(r.t, r.files.OSRelease, "NAME=\"rke2os\"\nRKE2OS_BUILD_DATE=\""+epoch.Add(time.Second).Format(time.RFC3339)+"\"\n")
		}, reason: []string{"(build build-2, RKE2 v1.34.5+rke2r1) was built " + epoch.UTC().Format(time.RFC3339), "before the system this node runs", "rollback protection", "later SOURCE_DATE_EPOCH"}},
		{name: "unreadable build date", setup: func(r *rig, req *upgradeapi.Request) {
			r.files.OSRelease = filepath.Join(r.t.TempDir(), "os-release")
			writeFile(r.t, r.files.OSRelease, "RKE2OS_BUILD_DATE=yesterday\n")
		}, reason: []string{"RKE2OS_BUILD_DATE", "yesterday"}},
		{name: "too large", setup: func(r *rig, req *upgradeapi.Request) { r.sys.size = 1 << 20 },
			reason: []string{fmt.Sprintf("slot image is %d bytes", len(r0slot)), "holds 1048576 bytes", "does not fit"}},
		{name: "slot image altered", setup: func(r *rig, req *upgradeapi.Request) {
			i := bytes.Index(r.served, r.slot[:4096])
			r.served = bytes.Clone(r.served)
			r.served[i+5000] ^= 1
			req.SHA256 = sum(r.served)
		}, reason: []string{"slot.img has sha256", "its signed manifest says", "altered or damaged"}},
		{name: "read back differs", setup: func(r *rig, req *upgradeapi.Request) { r.sys.corrupt = true },
			reason: []string{"read back has sha256", "did not keep what was written"}, wrote: true},
		{name: "no length", setup: func(r *rig, req *upgradeapi.Request) { r.chunked = true },
			reason: []string{"gives no Content-Length"}},
		{name: "the good slot", setup: func(r *rig, req *upgradeapi.Request) { r.sys.state = slots.State{Good: slots.B} },
			reason: []string{"not writing the good slot"}},
		{name: "not found", setup: func(r *rig, req *upgradeapi.Request) { req.URL = r.srv.URL + "/nothing" },
			reason: []string{"404 Not Found"}},
		{name: "booted from the ISO", setup: func(r *rig, req *upgradeapi.Request) { r.sys.ok = false },
			reason: []string{ISOMessage}},
		{name: "trial not confirmed", setup: func(r *rig, req *upgradeapi.Request) {
			r.sys.cur.Trial = true
			r.sys.state = slots.State{Good: slots.B, Try: slots.A, Tries: 1}
		}, reason: []string{"slot A is being tried and not confirmed yet"}},
		{name: "not http", setup: func(r *rig, req *upgradeapi.Request) { req.URL = "ftp://example.com/a.upgrade" },
			reason: []string{"want http:// or https://"}},
		{name: "bad sha256", setup: func(r *rig, req *upgradeapi.Request) { req.SHA256 = "abc" },
			reason: []string{"want 64 hex digits"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t)
			req := r.request()
			tc.setup(r, &req)
			before := r.sys.state
			r.ask(req)
			r.start()
			st := r.waitPhase(upgradeapi.PhaseFailed)
			if !st.For(req) {
				t.Errorf("status %+v is not for %+v", st, req)
			}
			for _, want := range tc.reason {
				if !strings.Contains(st.Reason, want) {
					t.Errorf("reason %q lacks %q", st.Reason, want)
				}
			}
			time.Sleep(50 * time.Millisecond) // nothing more may come
			state, reboots := r.sys.get()
			if state != before || reboots != 0 {
				t.Errorf("slots %+v and %d reboots after a failure; want %+v, none", state, reboots, before)
			}
			if exists(r.files.Pending) {
				t.Error("pending upgrade recorded")
			}
			if d := r.downloads(); len(d) != 0 {
				t.Errorf("downloads left: %v", d)
			}
			if written := !bytes.Equal(r.device(), make([]byte, 8<<20)); written != tc.wrote {
				t.Errorf("slot B written: %v, want %v", written, tc.wrote)
			}
			if got := r.gotPhases(); got[len(got)-1] != upgradeapi.PhaseFailed || strings.Count(strings.Join(got, ","), "failed") != 1 {
				t.Errorf("phases %v: want one failed, last", got)
			}
		})
	}
}

// r0slot is the rigs' slot image.
var r0slot = testSlot(3<<20 + 12345)

// unsign drops an artifact's signature entry.
func unsign(t *testing.T, art []byte) []byte {
	t.Helper()
	var m artifact.Manifest
	var body []byte
	// The manifest is the first entry: 512-byte header, then its bytes.
	size := 0
	fmt.Sscanf(strings.TrimRight(string(art[124:136]), "\x00 "), "%o", &size)
	body = art[512 : 512+size]
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	manifestEnd := 512 + (size+511)/512*512
	sigEnd := manifestEnd + 512 + 512 // the signature's header and its 64 bytes, padded
	return append(bytes.Clone(art[:manifestEnd]), art[sigEnd:]...)
}

func TestNewRequestAfterAnswer(t *testing.T) {
	// A request answered already is left alone; a new generation of the
	// plan is a new request.
	r := newRig(t)
	old := r.request()
	old.Generation = 1
	r.ask(old)
	r.setStatus(upgradeapi.NodeStatus{Plan: old.Plan, Generation: old.Generation, SHA256: old.SHA256, Phase: upgradeapi.PhaseFailed})
	r.start()
	time.Sleep(100 * time.Millisecond)
	if got := r.gotPhases(); len(got) != 0 {
		t.Fatalf("an answered request was carried out again: %v", got)
	}
	req := old
	req.Generation = 2
	r.ask(req)
	r.checkUpgraded(req)
}

func TestRequestChangedBeforeReboot(t *testing.T) {
	// The plan changes while the node downloads: the slot is written but
	// not armed, the old request is answered failed, the new one carried
	// out.
	r := newRig(t)
	old := r.request()
	req := old
	req.Generation = 2
	r.onServe = func() { r.ask(req) }
	r.ask(old)
	r.start()
	r.checkUpgradedFrom(req, "downloading,writing,failed,downloading,writing,rebooting")
	r.mu.Lock()
	defer r.mu.Unlock()
	if st, _ := parseStatus(r.status[2]); !st.For(old) || !strings.Contains(st.Reason, "no longer asks for this upgrade") {
		t.Errorf("the old request's answer: %+v", st)
	}
}

func TestDoneAfterReboot(t *testing.T) {
	r := newRig(t)
	req := r.request()
	r.ask(req)
	r.setStatus(upgradeapi.NodeStatus{Plan: req.Plan, Generation: req.Generation, SHA256: req.SHA256, Phase: upgradeapi.PhaseRebooting, Slot: "B"})
	r.writeJSON(r.files.Pending, Pending{Request: req, Slot: slots.B, Build: "build-2", Version: "v1.34.5+rke2r1"})
	// Booted B as a trial, which confirmSlot made the good slot.
	r.sys.cur = slots.Current{Slot: slots.B, Trial: true}
	r.sys.state = slots.State{Good: slots.B}
	r.start()
	st := r.waitPhase(upgradeapi.PhaseDone)
	if !st.For(req) || st.Slot != "B" || !strings.Contains(st.Reason, "build-2") {
		t.Errorf("status %+v", st)
	}
	time.Sleep(50 * time.Millisecond)
	if exists(r.files.Pending) {
		t.Error("pending upgrade kept after done")
	}
	if got := r.gotPhases(); strings.Join(got, ",") != "done" {
		t.Errorf("phases %v, want done alone", got)
	}
}

func TestTrialNotConfirmed(t *testing.T) {
	// Booted the new slot, but confirmSlot did not confirm it: nothing to
	// say yet, nothing to do; the trial's deadline decides.
	r := newRig(t)
	req := r.request()
	r.ask(req)
	r.setStatus(upgradeapi.NodeStatus{Plan: req.Plan, Generation: req.Generation, SHA256: req.SHA256, Phase: upgradeapi.PhaseRebooting, Slot: "B"})
	r.writeJSON(r.files.Pending, Pending{Request: req, Slot: slots.B})
	r.sys.cur = slots.Current{Slot: slots.B, Trial: true}
	r.sys.state = slots.State{Good: slots.A, Try: slots.B, Tries: 1}
	r.start()
	time.Sleep(200 * time.Millisecond)
	if got := r.gotPhases(); len(got) != 0 {
		t.Errorf("phases %v during a trial, want none", got)
	}
	if !exists(r.files.Pending) {
		t.Error("pending upgrade dropped during its trial")
	}
}

func TestRolledBack(t *testing.T) {
	r := newRig(t)
	req := r.request()
	r.ask(req)
	r.setStatus(upgradeapi.NodeStatus{Plan: req.Plan, Generation: req.Generation, SHA256: req.SHA256, Phase: upgradeapi.PhaseRebooting, Slot: "B"})
	r.writeJSON(r.files.Pending, Pending{Request: req, Slot: slots.B, Build: "build-2", Version: "v1.34.5+rke2r1"})
	r.writeJSON(r.files.Rollback, slots.Rollback{Tried: slots.B, Good: slots.A, Tries: 2, At: epoch})
	r.start()
	st := r.waitPhase(upgradeapi.PhaseRolledBack)
	for _, want := range []string{"slot B", "build-2", "2 boots", "slot A again"} {
		if !strings.Contains(st.Reason, want) {
			t.Errorf("reason %q lacks %q", st.Reason, want)
		}
	}
	if !st.For(req) || st.Slot != "B" {
		t.Errorf("status %+v", st)
	}
	time.Sleep(50 * time.Millisecond)
	if exists(r.files.Pending) || exists(r.files.Rollback) {
		t.Error("records kept after the rollback was said")
	}
	if got := r.gotPhases(); strings.Join(got, ",") != "rolled-back" {
		t.Errorf("phases %v, want rolled-back alone (not carried out again)", got)
	}
	evs, err := r.kc.CoreV1().Events(metav1.NamespaceDefault).List(context.Background(), metav1.ListOptions{})
	if err != nil || len(evs.Items) != 1 {
		t.Fatalf("events %v, %v; want one", evs, err)
	}
	ev := evs.Items[0]
	if ev.Reason != "UpgradeRolledBack" || ev.Type != corev1.EventTypeWarning || ev.InvolvedObject.Kind != "Node" || ev.InvolvedObject.Name != nodeName || !strings.Contains(ev.Message, "slot B") {
		t.Errorf("event %+v", ev)
	}
	if _, reboots := r.sys.get(); reboots != 0 {
		t.Error("rebooted after a rollback")
	}
}

func TestResumeAfterPowerCut(t *testing.T) {
	// Slot B was written and the upgrade recorded, then the power went
	// before the reboot: the node booted A again, with B possibly armed.
	// The request is carried out again from the start.
	r := newRig(t)
	req := r.request()
	r.ask(req)
	r.setStatus(upgradeapi.NodeStatus{Plan: req.Plan, Generation: req.Generation, SHA256: req.SHA256, Phase: upgradeapi.PhaseWriting, Slot: "B"})
	r.writeJSON(r.files.Pending, Pending{Request: req, Slot: slots.B})
	os.WriteFile(filepath.Join(r.files.Dir, downloadPrefix+"123.upgrade"), []byte("cut short"), 0o600)
	r.start()
	r.checkUpgraded(req)
}

func TestParseRequest(t *testing.T) {
	good := `{"plan":"p","generation":3,"url":"https://example.com/a.upgrade","sha256":"` + strings.Repeat("ab", 32) + `"}`
	if r, err := ParseRequest(good); err != nil || r.Plan != "p" || r.Generation != 3 {
		t.Errorf("ParseRequest(good) = %+v, %v", r, err)
	}
	for _, bad := range []string{``, `{`, `[]`, `{"plan":"p"}`,
		`{"plan":"","url":"https://e/a","sha256":"` + strings.Repeat("ab", 32) + `"}`,
		`{"plan":"p","url":"file:///etc/passwd","sha256":"` + strings.Repeat("ab", 32) + `"}`,
		`{"plan":"p","url":"https:///a","sha256":"` + strings.Repeat("ab", 32) + `"}`,
		`{"plan":"p","url":"https:e","sha256":"` + strings.Repeat("ab", 32) + `"}`,
		`{"plan":"p","url":"https://e/a","sha256":"` + strings.Repeat("zz", 32) + `"}`,
	} {
		if _, err := ParseRequest(bad); err == nil {
			t.Errorf("ParseRequest(%s) accepted", bad)
		}
	}
	if got := redact("https://user:pw@example.com/a.upgrade?sig=s#f"); got != "https://example.com/a.upgrade" {
		t.Errorf("redact = %s", got)
	}
}

func FuzzParseRequest(f *testing.F) {
	f.Add(`{"plan":"p","generation":3,"url":"https://example.com/a.upgrade","sha256":"` + strings.Repeat("ab", 32) + `"}`)
	f.Add(`{"plan":"p","url":"http://[::1]:80/a?x=1","sha256":"` + strings.Repeat("AB", 32) + `"}`)
	f.Add(`{"plan":"p","url":"https://u:p@h/","sha256":""}`)
	f.Add(`{"plan":1}`)
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRequest(s)
		if err != nil {
			return
		}
		if u := strings.ToLower(r.URL); !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
			t.Errorf("accepted URL %q", r.URL)
		}
		if b, err := hex.DecodeString(r.SHA256); err != nil || len(b) != 32 {
			t.Errorf("accepted sha256 %q", r.SHA256)
		}
		if r.Plan == "" {
			t.Error("accepted an empty plan")
		}
		// What the node accepted reads the same again.
		b, _ := json.Marshal(r)
		if again, err := ParseRequest(string(b)); err != nil || again != r {
			t.Errorf("%s read again: %+v, %v", b, again, err)
		}
		_ = redact(r.URL)
	})
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// An upgrade asked for while the upgrader watches its Node outlives the
// watch: a download longer than the watch's timeout is not cut off (it
// was, said as a shutdown, and started over at every watch).
func TestUpgradeOutlivesTheWatch(t *testing.T) {
	r := newRig(t)
	r.resync = 100 * time.Millisecond // the watch ends after 200 ms
	r.onServe = func() { time.Sleep(time.Second) }
	r.start()
	time.Sleep(50 * time.Millisecond) // watching
	req := r.request()
	r.ask(req)
	st := r.waitPhase(upgradeapi.PhaseRebooting)
	if !st.For(req) {
		t.Errorf("status %+v is not for %+v", st, req)
	}
	if got := r.gotPhases(); slices.Contains(got, upgradeapi.PhaseFailed) {
		t.Errorf("phases %v: the upgrade failed on its way", got)
	}
}
