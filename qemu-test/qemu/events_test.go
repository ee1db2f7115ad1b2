package qemu

import (
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rke2os/rke2os/init/shared/console"
)

func TestParseEvent(t *testing.T) {
	for _, tc := range []struct {
		line string
		name string
		kv   map[string]string // nil: the line is refused
	}{
		{`rke2-init event=maintenance t=3.250`, "maintenance", map[string]string{"t": "3.250"}},
		{"rke2-init event=maintenance t=3.250\r", "maintenance", map[string]string{"t": "3.250"}},
		{`rke2-init event=dhcp-lease t=12.500 iface=eth0 item="network.interfaces[0] (name eth0)"`, "dhcp-lease",
			map[string]string{"t": "12.500", "iface": "eth0", "item": "network.interfaces[0] (name eth0)"}},
		{`rke2-init event=join-refused t=1.000 reason="the node name \"agent1\"" status=403`, "join-refused",
			map[string]string{"t": "1.000", "reason": `the node name "agent1"`, "status": "403"}},
		{`rke2-init event=x t=1.000 err="a\nb=c" debug=""`, "x", map[string]string{"t": "1.000", "err": "a\nb=c", "debug": ""}},
		{`rke2-init event=x t=1.000 p=a\b`, "x", map[string]string{"t": "1.000", "p": `a\b`}},

		{`rke2-init milestone=network-up t=7.400`, "", nil},
		{`rke2-init level=INFO msg="state ready" device=/dev/vda5`, "", nil},
		{`rke2-init event=Bad t=1.000`, "", nil},
		{`rke2-init event=x`, "", nil},
		{`rke2-init event=x a=b t=1.000`, "", nil},
		{`rke2-init event=x t=now`, "", nil},
		{`rke2-init event=x t=1.000 a=`, "", nil},
		{`rke2-init event=x t=1.000 a=b  c=d`, "", nil},
		{`rke2-init event=x t=1.000 a=b `, "", nil},
		{`rke2-init event=x t=1.000 a=b=c`, "", nil},
		{`rke2-init event=x t=1.000 a=b"c`, "", nil},
		{`rke2-init event=x t=1.000 a="b`, "", nil},
		{`rke2-init event=x t=1.000 a="b"c`, "", nil},
		{`rke2-init event=x t=1.000 a=1 a=2`, "", nil},
		{`rke2-init event=x t=1.000 two words=1`, "", nil},
		{"rke2-init event=x t=1.000 a=b\tc", "", nil},
		{`rke2-init event=x t=1.000 a=1 !BADKEY=b`, "", nil},
		{`rke2-init event=x t=1.00`, "x", map[string]string{"t": "1.00"}},
	} {
		name, kv, err := ParseEvent(tc.line)
		if tc.kv == nil {
			if err == nil {
				t.Errorf("%q: parsed as %s %v, want refused", tc.line, name, kv)
			}
			continue
		}
		if err != nil || name != tc.name || !maps.Equal(kv, tc.kv) {
			t.Errorf("%q: got %s %v %v, want %s %v", tc.line, name, kv, err, tc.name, tc.kv)
		}
	}
}

// A line written by console.EventLine reads back as what was written.
func FuzzEventRoundTrip(f *testing.F) {
	f.Add("dhcp-lease", "iface", "eth0", "item", "network.interfaces[0] (name eth0)")
	f.Add("x", "reason", `the node name "agent1"`, "err", "a\nb\r")
	f.Add("x", "a", "", "b", "=")
	f.Add("x", "a", "\x00\x7f\u0085", "b", "\xff")
	f.Add("x", "request", "POST /debug/signal?service=kubelet&signal=KILL", "p", `a\b`)
	keyRE := regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	f.Fuzz(func(t *testing.T, name, k1, v1, k2, v2 string) {
		if !eventNameRE.MatchString(name) || !keyRE.MatchString(k1) || !keyRE.MatchString(k2) || k1 == k2 || k1 == "t" || k2 == "t" {
			t.Skip()
		}
		line := console.EventLine(name, 12.345, k1, v1, k2, v2)
		if strings.Contains(line, "\n") {
			t.Fatalf("%q spans lines", line)
		}
		gotName, kv, err := ParseEvent(line)
		if err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		want := map[string]string{"t": "12.345", k1: v1, k2: v2}
		if gotName != name || !maps.Equal(kv, want) {
			t.Fatalf("%q: got %s %q, want %s %q", line, gotName, kv, name, want)
		}
	})
}

// Events and WaitEvent read a console without QEMU: a VM whose console
// file the test writes.
func TestEventsOnConsole(t *testing.T) {
	dir := t.TempDir()
	vm := &VM{console: filepath.Join(dir, "console.log"), done: make(chan struct{})}
	write := func(s string) {
		f, err := os.OpenFile(vm.console, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteString(s); err != nil {
			t.Fatal(err)
		}
	}
	write("[    1.0] kernel line\r\n" +
		"rke2-init milestone=config-loaded t=7.100\r\n" +
		console.EventLine("state-ready", 7.0, "device", "/dev/vda5", "formatted", true) + "\r\n" +
		`rke2-init level=INFO msg="state ready" device=/dev/vda5 formatted=false` + "\n" +
		console.EventLine("state-ready", 8.0, "device", "/dev/vda5", "formatted", false) + "\n" +
		`rke2-init event=state-ready t=9.000 device=/dev/vda5 formatted=false "broken` + "\n" +
		console.EventLine("service", 9.5, "name", "kubelet", "state", "running", "pid", 42) + "\n")

	if got := vm.Events("state-ready"); len(got) != 2 || got[0]["formatted"] != "true" || got[1]["t"] != "8.000" {
		t.Errorf("Events(state-ready) = %v", got)
	}
	if got := vm.Events("state"); len(got) != 0 {
		t.Errorf("Events(state) = %v, want none (a name is matched whole)", got)
	}
	kv, err := vm.WaitEvent("state-ready", map[string]string{"formatted": "false"}, time.Second)
	if err != nil || kv["t"] != "8.000" {
		t.Errorf("WaitEvent formatted=false: %v %v", kv, err)
	}
	if _, err := vm.WaitEvent("state-ready", map[string]string{"device": "/dev/vdb1"}, 300*time.Millisecond); err == nil ||
		!strings.Contains(err.Error(), "no event state-ready device=/dev/vdb1 on the console after 300ms") {
		t.Errorf("WaitEvent for what never comes: %v", err)
	}

	// A line being written is not read until its newline, unless QEMU
	// has exited.
	write(console.EventLine("maintenance", 10, "more", "x"))
	if _, err := vm.WaitEvent("maintenance", map[string]string{"more": "x"}, 300*time.Millisecond); err == nil {
		t.Error("WaitEvent took a line without its newline")
	}
	go func() {
		time.Sleep(200 * time.Millisecond)
		write("y\n")
	}()
	if kv, err := vm.WaitEvent("maintenance", nil, 5*time.Second); err != nil || kv["more"] != "xy" {
		t.Errorf("WaitEvent for a line finished later: %v %v", kv, err)
	}
	// A kernel message that cuts into an event line (as CI saw it) does
	// not hide the event, nor a milestone after it.
	write(console.EventLine("dhcp-lease", 10.5, "iface", "eth0", "item", "eth0 (automatic DHCP)") +
		"[   10.600000] IPv6: ADDRCONF(NETDEV_CHANGE): eth0: link becomes ready\r\n\r\n" +
		"rke2-init milestone=network-up t=10.700\r\n")
	if kv, err := vm.WaitEvent("dhcp-lease", map[string]string{"item": "eth0 (automatic DHCP)"}, 5*time.Second); err != nil || kv["t"] != "10.500" {
		t.Errorf("WaitEvent for a line a kernel message cut into: %v %v", kv, err)
	}
	if got, err := vm.WaitMilestone("network-up", 5*time.Second); err != nil || got != 10.7 || vm.Milestones()["network-up"] != 10.7 {
		t.Errorf("WaitMilestone after a cut line: %v %v", got, err)
	}
	write(console.EventLine("medium-none", 11))
	close(vm.done)
	if _, err := vm.WaitEvent("medium-none", nil, 5*time.Second); err != nil {
		t.Errorf("WaitEvent after QEMU exited, the last line without newline: %v", err)
	}
	if _, err := vm.WaitEvent("power-button", nil, 5*time.Second); err == nil || !strings.Contains(err.Error(), "qemu exited before event power-button") {
		t.Errorf("WaitEvent after QEMU exited: %v", err)
	}
}
