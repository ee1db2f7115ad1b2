package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
)

// TestMain lets the tests run this very binary as the plugin (when
// FLANNELCNI_TEST_MAIN=1) and as fake delegates (when run under the name of
// one, through a symlink on CNI_PATH), so the round trip needs neither root
// nor a separate build. The name is checked first because the delegate
// inherits the plugin's environment.
func TestMain(m *testing.M) {
	switch filepath.Base(os.Args[0]) {
	case "bridge", "ptp":
		fakeDelegate()
		return
	}
	if os.Getenv("FLANNELCNI_TEST_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// delegateCall is what a fake delegate records of one invocation.
type delegateCall struct {
	Plugin      string          `json:"plugin"`
	Command     string          `json:"command"`
	ContainerID string          `json:"containerID"`
	IfName      string          `json:"ifName"`
	Netns       string          `json:"netns"`
	Stdin       json.RawMessage `json:"stdin"`
}

// fakeDelegate stands in for the bridge (or ptp) plugin: it appends its
// invocation to $FAKE_RECORD, fails when $FAKE_FAIL names the command, and
// answers ADD with an address from the first range it was given.
func fakeDelegate() {
	fail := func(format string, a ...any) {
		// Code 11, not 999, so tests can see the plugin keep the code.
		types.NewError(types.ErrTryAgainLater, fmt.Sprintf(format, a...), "").Print()
		os.Exit(1)
	}
	stdin, err := os.ReadFile("/dev/stdin")
	if err != nil {
		fail("read stdin: %v", err)
	}
	cmd := os.Getenv("CNI_COMMAND")
	rec, err := json.Marshal(delegateCall{
		Plugin: filepath.Base(os.Args[0]), Command: cmd, ContainerID: os.Getenv("CNI_CONTAINERID"),
		IfName: os.Getenv("CNI_IFNAME"), Netns: os.Getenv("CNI_NETNS"), Stdin: stdin,
	})
	if err != nil {
		fail("record: %v", err)
	}
	f, err := os.OpenFile(os.Getenv("FAKE_RECORD"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		fail("record: %v", err)
	}
	fmt.Fprintf(f, "%s\n", rec)
	f.Close()
	if cmd == os.Getenv("FAKE_FAIL") {
		fail("fake %s failure", cmd)
	}
	var conf struct {
		CNIVersion string `json:"cniVersion"`
		IPAM       struct {
			Ranges [][]struct {
				Subnet string `json:"subnet"`
			} `json:"ranges"`
		} `json:"ipam"`
		PrevResult json.RawMessage `json:"prevResult"`
	}
	if err := json.Unmarshal(stdin, &conf); err != nil {
		fail("parse config: %v", err)
	}
	switch cmd {
	case "ADD":
		ip, subnet, err := net.ParseCIDR(conf.IPAM.Ranges[0][0].Subnet)
		if err != nil {
			fail("subnet: %v", err)
		}
		ip[len(ip)-1] += 2
		zero := 0
		res := &current.Result{
			CNIVersion: current.ImplementedSpecVersion,
			Interfaces: []*current.Interface{{Name: "eth0", Sandbox: os.Getenv("CNI_NETNS")}},
			IPs:        []*current.IPConfig{{Interface: &zero, Address: net.IPNet{IP: ip, Mask: subnet.Mask}}},
		}
		out, err := res.GetAsVersion(conf.CNIVersion)
		if err != nil {
			fail("convert result: %v", err)
		}
		out.Print()
	case "CHECK":
		// As bridge does: CHECK is meaningless without ADD's result.
		if len(conf.PrevResult) == 0 {
			fail("Required prevResult missing")
		}
	}
}

// harness is one network set up for the round trip tests.
type harness struct {
	t         *testing.T
	cniPath   string // holds the fake delegates
	dataDir   string // the plugin's dataDir; not created beforehand
	record    string // where the fakes record their calls
	subnetEnv string
}

func newHarness(t *testing.T) *harness {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	h := &harness{
		t:         t,
		cniPath:   filepath.Join(dir, "bin"),
		dataDir:   filepath.Join(dir, "data", "flannel"),
		record:    filepath.Join(dir, "calls.jsonl"),
		subnetEnv: filepath.Join(dir, "subnet.env"),
	}
	if err := os.Mkdir(h.cniPath, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"bridge", "ptp"} {
		if err := os.Symlink(self, filepath.Join(h.cniPath, name)); err != nil {
			t.Fatal(err)
		}
	}
	env := "FLANNEL_NETWORK=10.42.0.0/16\nFLANNEL_SUBNET=10.42.3.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n"
	if err := os.WriteFile(h.subnetEnv, []byte(env), 0o644); err != nil {
		t.Fatal(err)
	}
	return h
}

// conf returns the network config of the harness's network.
func (h *harness) conf(cniVersion, extra string) []byte {
	return fmt.Appendf(nil, `{"cniVersion":%q,"name":"cbr0","type":"flannel","subnetFile":%q,"dataDir":%q%s}`,
		cniVersion, h.subnetEnv, h.dataDir, extra)
}

// run execs the plugin with a CNI command and returns its stdout.
func (h *harness) run(command, containerID string, conf []byte, env ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0])
	cmd.Env = append(os.Environ(), "FLANNELCNI_TEST_MAIN=1",
		"CNI_COMMAND="+command, "CNI_CONTAINERID="+containerID,
		"CNI_NETNS=/var/run/netns/flannelcni-test-absent", "CNI_IFNAME=eth0",
		"CNI_PATH="+h.cniPath, "FAKE_RECORD="+h.record, "FAKE_FAIL=")
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdin = strings.NewReader(string(conf))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%s: %w: %s%s", command, err, out, stderr.String())
	}
	return out, nil
}

// calls returns what the fake delegates have recorded so far.
func (h *harness) calls() []delegateCall {
	f, err := os.Open(h.record)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		h.t.Fatal(err)
	}
	defer f.Close()
	var calls []delegateCall
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var c delegateCall
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			h.t.Fatal(err)
		}
		calls = append(calls, c)
	}
	return calls
}

func (h *harness) saved(containerID string) ([]byte, error) {
	return os.ReadFile(filepath.Join(h.dataDir, containerID))
}

func TestAddCheckDelRoundTrip(t *testing.T) {
	tests := []struct {
		cniVersion, extra, plugin, want string
	}{{
		cniVersion: "1.1.0",
		extra:      `,"runtimeConfig":{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}]}`,
		plugin:     "bridge",
		want: `{"cniVersion":"1.1.0","name":"cbr0","type":"bridge","mtu":1450,"ipMasq":false,
			"isGateway":true,"hairpinMode":true,
			"ipam":{"type":"host-local","ranges":[[{"subnet":"10.42.3.0/24"}]],"routes":[{"dst":"10.42.0.0/16"}]},
			"runtimeConfig":{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}]}}`,
	}, {
		cniVersion: "1.0.0",
		extra:      `,"delegate":{"type":"ptp"}`,
		plugin:     "ptp",
		want: `{"cniVersion":"1.0.0","name":"cbr0","type":"ptp","mtu":1450,"ipMasq":false,
			"ipam":{"type":"host-local","ranges":[[{"subnet":"10.42.3.0/24"}]],"routes":[{"dst":"10.42.0.0/16"}]}}`,
	}, {
		cniVersion: "0.4.0",
		plugin:     "bridge",
		want: `{"cniVersion":"0.4.0","name":"cbr0","type":"bridge","mtu":1450,"ipMasq":false,
			"isGateway":true,"hairpinMode":true,
			"ipam":{"type":"host-local","ranges":[[{"subnet":"10.42.3.0/24"}]],"routes":[{"dst":"10.42.0.0/16"}]}}`,
	}, {
		cniVersion: "0.3.1", // no CHECK before 0.4.0
		plugin:     "bridge",
		want: `{"cniVersion":"0.3.1","name":"cbr0","type":"bridge","mtu":1450,"ipMasq":false,
			"isGateway":true,"hairpinMode":true,
			"ipam":{"type":"host-local","ranges":[[{"subnet":"10.42.3.0/24"}]],"routes":[{"dst":"10.42.0.0/16"}]}}`,
	}}
	for _, tt := range tests {
		t.Run(tt.cniVersion+"-"+tt.plugin, func(t *testing.T) {
			h := newHarness(t)
			const id = "c0ffee"
			conf := h.conf(tt.cniVersion, tt.extra)

			out, err := h.run("ADD", id, conf)
			if err != nil {
				t.Fatal(err)
			}
			res, err := version.NewResult(tt.cniVersion, out)
			if err != nil {
				t.Fatalf("ADD printed %s: %v", out, err)
			}
			if res.Version() != tt.cniVersion {
				t.Errorf("result version %s, want %s", res.Version(), tt.cniVersion)
			}
			if !strings.Contains(string(out), "10.42.3.2/24") {
				t.Errorf("ADD result lacks the delegate's address: %s", out)
			}
			calls := h.calls()
			if len(calls) != 1 || calls[0].Plugin != tt.plugin || calls[0].Command != "ADD" ||
				calls[0].ContainerID != id || calls[0].IfName != "eth0" {
				t.Fatalf("delegate calls after ADD: %+v", calls)
			}
			assertSameJSON(t, calls[0].Stdin, []byte(tt.want))
			saved, err := h.saved(id)
			if err != nil {
				t.Fatalf("no saved delegate config after ADD: %v", err)
			}
			assertSameJSON(t, saved, []byte(tt.want))
			assertMode(t, filepath.Join(h.dataDir, id), 0o600)
			assertMode(t, h.dataDir, 0o700|fs.ModeDir)

			if ok, _ := version.GreaterThanOrEqualTo(tt.cniVersion, "0.4.0"); ok {
				// The runtime hands back ADD's result; the delegate
				// must get it, with the rest of the saved config.
				withPrev := append(conf[:len(conf)-1:len(conf)-1], `,"prevResult":`+string(out)+`}`...)
				if _, err := h.run("CHECK", id, withPrev); err != nil {
					t.Fatal(err)
				}
				calls = h.calls()
				if len(calls) != 2 || calls[1].Command != "CHECK" || calls[1].Plugin != tt.plugin {
					t.Fatalf("delegate calls after CHECK: %+v", calls)
				}
				var want map[string]any
				json.Unmarshal([]byte(tt.want), &want)
				var prev any
				json.Unmarshal(out, &prev)
				want["prevResult"] = prev
				wantJSON, _ := json.Marshal(want)
				assertSameJSON(t, calls[1].Stdin, wantJSON)
			}

			n := len(h.calls())
			if _, err := h.run("DEL", id, conf); err != nil {
				t.Fatal(err)
			}
			calls = h.calls()
			if len(calls) != n+1 || calls[n].Command != "DEL" || calls[n].Plugin != tt.plugin || calls[n].ContainerID != id {
				t.Fatalf("delegate calls after DEL: %+v", calls)
			}
			assertSameJSON(t, calls[n].Stdin, []byte(tt.want))
			if _, err := h.saved(id); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("saved delegate config after DEL: %v", err)
			}

			// A second DEL succeeds without bothering the delegate.
			if _, err := h.run("DEL", id, conf); err != nil {
				t.Fatalf("second DEL: %v", err)
			}
			if len(h.calls()) != n+1 {
				t.Errorf("second DEL called the delegate: %+v", h.calls())
			}
		})
	}
}

// TestDelUsesSavedConfig checks that DEL replays what ADD saved rather than
// recomputing it: flanneld may be gone, or have a new lease, by then.
func TestDelUsesSavedConfig(t *testing.T) {
	h := newHarness(t)
	conf := h.conf("1.0.0", "")
	if _, err := h.run("ADD", "pod1", conf); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(h.subnetEnv); err != nil {
		t.Fatal(err)
	}
	if _, err := h.run("DEL", "pod1", conf); err != nil {
		t.Fatalf("DEL without subnet.env: %v", err)
	}
	calls := h.calls()
	if len(calls) != 2 {
		t.Fatalf("delegate calls: %+v", calls)
	}
	assertSameJSON(t, calls[1].Stdin, calls[0].Stdin)
}

// TestFailuresKeepSavedConfig checks that a failed delegate ADD or DEL
// leaves the saved config for the runtime's DEL (or retried DEL).
func TestFailuresKeepSavedConfig(t *testing.T) {
	h := newHarness(t)
	conf := h.conf("1.0.0", "")
	out, err := h.run("ADD", "pod1", conf, "FAKE_FAIL=ADD")
	var te types.Error
	if err == nil || json.Unmarshal(out, &te) != nil || te.Code != types.ErrTryAgainLater ||
		te.Msg != "flannel: delegate ADD: fake ADD failure" {
		t.Fatalf("ADD with failing delegate: %v", err)
	}
	if _, err := h.saved("pod1"); err != nil {
		t.Fatalf("saved config gone after failed ADD: %v", err)
	}
	if _, err := h.run("DEL", "pod1", conf, "FAKE_FAIL=DEL"); err == nil || !strings.Contains(err.Error(), "flannel: delegate DEL") {
		t.Fatalf("DEL with failing delegate: %v", err)
	}
	if _, err := h.saved("pod1"); err != nil {
		t.Fatalf("saved config gone after failed DEL: %v", err)
	}
	if _, err := h.run("DEL", "pod1", conf); err != nil {
		t.Fatal(err)
	}
	if _, err := h.saved("pod1"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("saved config after DEL: %v", err)
	}
	if got := len(h.calls()); got != 3 {
		t.Errorf("%d delegate calls, want 3", got)
	}
}

// TestAddWithoutLease runs cmdAdd in process: without subnet.env it must
// say why, save nothing and run no delegate.
func TestAddWithoutLease(t *testing.T) {
	h := newHarness(t)
	os.Remove(h.subnetEnv)
	err := cmdAdd(&skel.CmdArgs{ContainerID: "pod1", Netns: "/x", IfName: "eth0", Path: h.cniPath, StdinData: h.conf("1.0.0", "")})
	var te *types.Error
	if !errors.As(err, &te) || te.Code != types.ErrTryAgainLater ||
		!strings.Contains(err.Error(), "flannel has not started on this node yet") ||
		!strings.Contains(err.Error(), h.subnetEnv) {
		t.Fatalf("error = %#v, want a try-again-later naming the file", err)
	}
	if _, err := os.Stat(h.dataDir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("dataDir created: %v", err)
	}
	if calls := h.calls(); len(calls) != 0 {
		t.Errorf("delegate called: %+v", calls)
	}
}

func TestCheckWithoutAdd(t *testing.T) {
	h := newHarness(t)
	err := cmdCheck(&skel.CmdArgs{ContainerID: "pod1", StdinData: h.conf("1.0.0", "")})
	if err == nil || !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), filepath.Join(h.dataDir, "pod1")) {
		t.Fatalf("error = %v", err)
	}
}

func TestSaveDelegateConf(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "flannel")
	for _, conf := range []string{`{"a":1}`, `{"b":2}`} { // the second replaces the first
		if err := saveDelegateConf(dir, "pod1", []byte(conf)); err != nil {
			t.Fatal(err)
		}
		if got, err := os.ReadFile(filepath.Join(dir, "pod1")); err != nil || string(got) != conf {
			t.Fatalf("saved %q, %v; want %q", got, err, conf)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("temporary files left behind: %v", ents)
	}
	for _, id := range []string{"", ".", "..", "../pod1", "a/b"} {
		if err := saveDelegateConf(dir, id, nil); err == nil {
			t.Errorf("container ID %q accepted", id)
		}
	}
}

func assertMode(t *testing.T, path string, want fs.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode() != want {
		t.Errorf("%s has mode %v, want %v", path, fi.Mode(), want)
	}
}
