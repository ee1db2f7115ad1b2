package config

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"reflect"
	"strings"
	"testing"
)

// badCase is a document with exactly one problem, and where and what it is.
type badCase struct {
	name string
	doc  string
	line int
	col  int // 0: not checked
	path string
	msg  string // a part of Error.Msg
}

// problems unwraps the *Errors of a joined error.
func problems(t *testing.T, err error) []*Error {
	t.Helper()
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else {
		errs = []error{err}
	}
	var out []*Error
	for _, e := range errs {
		var ce *Error
		if !errors.As(e, &ce) {
			t.Fatalf("error %v (%T) is not a *config.Error", e, e)
		}
		out = append(out, ce)
	}
	return out
}

// runBad parses each case and checks its one error.
func runBad(t *testing.T, cases []badCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse("/etc/test.yaml", []byte(tc.doc))
			if err == nil {
				t.Fatalf("Parse succeeded, want error at %s; got %+v", tc.path, c)
			}
			if c != nil {
				t.Errorf("Parse returned a config with its error")
			}
			ps := problems(t, err)
			if len(ps) != 1 {
				t.Fatalf("got %d errors, want 1:\n%v", len(ps), err)
			}
			e := ps[0]
			if e.Source != "/etc/test.yaml" || e.Line != tc.line || (tc.col != 0 && e.Column != tc.col) || e.Path != tc.path || !strings.Contains(e.Msg, tc.msg) {
				t.Errorf("got %q\n(source %q line %d column %d path %q msg %q)\nwant source /etc/test.yaml line %d column %d path %q msg containing %q",
					err, e.Source, e.Line, e.Column, e.Path, e.Msg, tc.line, tc.col, tc.path, tc.msg)
			}
			want := "config /etc/test.yaml line "
			if !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), tc.path+" ") {
				t.Errorf("message %q does not start with %q and name %q", err, want, tc.path)
			}
		})
	}
}

func TestParseEmpty(t *testing.T) {
	for _, doc := range []string{"", "#cloud-config\n", "# only a comment\n", "~\n", "null\n", "{}\n", "---\n"} {
		c, err := Parse("empty", []byte(doc))
		if err != nil {
			t.Errorf("Parse(%q): %v", doc, err)
			continue
		}
		if !reflect.DeepEqual(c, &Config{}) {
			t.Errorf("Parse(%q) = %+v, want an empty config", doc, c)
		}
	}
}

func TestParseDocument(t *testing.T) {
	runBad(t, []badCase{
		{"list root", "- hostname: a\n", 1, 1, "", "must be a YAML mapping"},
		{"scalar root", "hostname\n", 1, 1, "", "must be a YAML mapping"},
		{"syntax", "a: 1\nb: 2\nc: d: e\n", 3, 0, "", "is not valid YAML: mapping values are not allowed"},
		{"bad indent", "hostname: a\n  role: server\n", 2, 0, "", "is not valid YAML"},
		{"two documents", "hostname: a\n---\nrole: server\n", 2, 1, "", "second YAML document"},
		{"unknown key", "hostname: a\nhostnme: b\n", 2, 1, "hostnme", `did you mean "hostname"?`},
		{"unknown key far", "colour: blue\n", 1, 1, "colour", "known keys are hostname, role"},
		{"duplicate key", "hostname: a\nhostname: b\n", 2, 1, "hostname", "is set twice (first on line 1)"},
		{"runcmd", "runcmd: [reboot]\n", 1, 1, "runcmd", "runs no shell scripts"},
		{"ssh keys", "ssh_authorized_keys: [ssh-ed25519 AAAA]\n", 1, 1, "ssh_authorized_keys", "no SSH server"},
		{"custom tag", "hostname: !vault abc\n", 1, 11, "hostname", "YAML tag !vault"},
		{"mapping key", "? [a, b]\n: c\n", 1, 3, "", "has a key that is a list"},
		{"alias cycle", "hostname: a\nrke2: &r {tls-san: *r}\n", 2, 20, "", "uses the alias *r inside its own anchor"},
		{"billion laughs", laughs(), 1, 1, "", "expands to more than 100000 values"},
	})
	// Two problems at once: the yaml merge key and the unknown key.
	_, err := Parse("x", []byte("base: &b {hostname: a}\n<<: *b\n"))
	if got := len(problems(t, err)); got != 2 {
		t.Errorf("merge key document: got %d errors, want 2: %v", got, err)
	}
}

func TestParseAllErrorsSortedByLine(t *testing.T) {
	doc := `#cloud-config
role: worker
hostname: "-bad-"
write_files:
- path: etc/a
  permissions: rw
sysctls: {net.ipv4.ip_forward: 1, "bad": 1}
`
	_, err := Parse("/etc/x.yaml", []byte(doc))
	ps := problems(t, err)
	var lines []int
	for _, p := range ps {
		lines = append(lines, p.Line)
	}
	if want := []int{2, 3, 5, 6, 7}; !reflect.DeepEqual(lines, want) {
		t.Errorf("error lines %v, want %v:\n%v", lines, want, err)
	}
	want := `config /etc/x.yaml line 6 column 16: write_files[0].permissions "rw" is not an octal mode like "0644"`
	if !strings.Contains(err.Error(), want+"\n") {
		t.Errorf("error does not contain %q:\n%v", want, err)
	}
}

func TestParseHostnameRole(t *testing.T) {
	c, err := Parse("t", []byte("hostname: node-1.example.com\nrole: agent\non_containerd_exit: reboot\ndebug: {hooks: true, trace: false}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Hostname != "node-1.example.com" || c.NodeRole != RoleAgent || c.Role("server") != "agent" ||
		c.ContainerdExitAction() != ContainerdExitReboot || !reflect.DeepEqual(c.Debug, map[string]bool{"hooks": true, "trace": false}) {
		t.Errorf("got %+v", c)
	}
	c, err = Parse("t", []byte("hostname: ''\nrole:\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Role("server") != "server" || c.ContainerdExitAction() != ContainerdExitRestart || c.Hostname != "" {
		t.Errorf("defaults: got %+v", c)
	}
	runBad(t, []badCase{
		{"hostname underscore", "hostname: my_node\n", 1, 11, "hostname", `"my_node" is not a host name`},
		{"hostname dash", "hostname: -node\n", 1, 11, "hostname", "RFC 1123"},
		{"hostname long", "hostname: " + strings.Repeat("a", 60) + ".example\n", 1, 11, "hostname", "64 in all"},
		{"hostname list", "hostname: [a]\n", 1, 11, "hostname", "must be a single value, not a list"},
		{"role", "role: master\n", 1, 7, "role", `"master" is not a role: use server or agent`},
		{"containerd exit", "on_containerd_exit: panic\n", 1, 21, "on_containerd_exit", `"panic" is not an action: use restart or reboot`},
		{"debug value", "debug: {hooks: maybe}\n", 1, 16, "debug.hooks", `"maybe" is not true or false`},
		{"debug key", "debug: {Hooks!: true}\n", 1, 9, `debug["Hooks!"]`, "is not a debug switch name"},
		{"debug list", "debug: [hooks]\n", 1, 8, "debug", "must be a mapping"},
	})
}

func TestParseWriteFiles(t *testing.T) {
	doc := `write_files:
- path: /etc/motd
  content: |
    hello
- path: /etc/b64
  content: aGVsbG8=
  encoding: b64
  permissions: 0600
  owner: 1000:1000
  append: yes
- path: /usr/local/bin/tool
  content: H4sIAAAAAAAAA8tIzcnJBwCGphA2BQAAAA==
  encoding: gz+b64
  permissions: "4755"
  owner: root
- path: /etc/bin
  content: !!binary aGk=
`
	c, err := Parse("t", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	want := []WriteFile{
		{Path: "/etc/motd", Content: "hello\n", Permissions: "0644", Owner: "root:root"},
		{Path: "/etc/b64", Content: "aGVsbG8=", Encoding: "b64", Permissions: "0600", Owner: "1000:1000", Append: true},
		{Path: "/usr/local/bin/tool", Content: "H4sIAAAAAAAAA8tIzcnJBwCGphA2BQAAAA==", Encoding: "gz+b64", Permissions: "4755", Owner: "root"},
		{Path: "/etc/bin", Content: "hi", Permissions: "0644", Owner: "root:root"},
	}
	if !reflect.DeepEqual(c.WriteFiles, want) {
		t.Fatalf("got %+v\nwant %+v", c.WriteFiles, want)
	}
	for i, wantBytes := range []string{"hello\n", "hello", "hello", "hi"} {
		b, err := c.WriteFiles[i].Decode()
		if err != nil || string(b) != wantBytes {
			t.Errorf("entry %d: Decode = %q, %v; want %q", i, b, err, wantBytes)
		}
	}
	if m, err := c.WriteFiles[2].Mode(); err != nil || m != 0o755|fs.ModeSetuid {
		t.Errorf("Mode = %v, %v; want setuid 0755", m, err)
	}
	if uid, gid, err := c.WriteFiles[1].OwnerIDs(); err != nil || uid != 1000 || gid != 1000 {
		t.Errorf("OwnerIDs = %d, %d, %v", uid, gid, err)
	}
	if uid, gid, err := c.WriteFiles[2].OwnerIDs(); err != nil || uid != 0 || gid != 0 {
		t.Errorf("OwnerIDs(root) = %d, %d, %v", uid, gid, err)
	}
	// Decode names the entry when the content is bad.
	bad := WriteFile{Path: "/etc/bad", Content: "!!!", Encoding: "base64"}
	if _, err := bad.Decode(); err == nil || !strings.Contains(err.Error(), `write_files entry "/etc/bad": is not valid base64`) {
		t.Errorf("Decode of bad base64: %v", err)
	}
	if _, err := (&WriteFile{Path: "/x", Permissions: "9"}).Mode(); err == nil || !strings.Contains(err.Error(), `write_files entry "/x": permissions "9"`) {
		t.Errorf("Mode of bad permissions: %v", err)
	}

	runBad(t, []badCase{
		{"relative path", "write_files:\n- path: etc/motd\n", 2, 9, "write_files[0].path", `"etc/motd" is not an absolute path`},
		{"unclean path", "write_files:\n- path: /etc/../motd\n", 2, 9, "write_files[0].path", `write it as "/motd"`},
		{"root path", "write_files:\n- path: /\n", 2, 9, "write_files[0].path", "is a directory"},
		{"no path", "write_files:\n- content: x\n", 2, 3, "write_files[0]", "has no path"},
		{"empty entry", "write_files:\n-\n", 2, 2, "write_files[0]", "is empty"},
		{"not a list", "write_files: /etc/motd\n", 1, 14, "write_files", "must be a list"},
		{"permissions word", "write_files:\n- path: /a\n  permissions: rw\n", 3, 16, "write_files[0].permissions", `"rw" is not an octal mode like "0644"`},
		{"permissions 8", "write_files:\n- path: /a\n  permissions: '0648'\n", 3, 16, "write_files[0].permissions", "is not an octal mode"},
		{"permissions short", "write_files:\n- path: /a\n  permissions: '44'\n", 3, 16, "write_files[0].permissions", "is not an octal mode"},
		{"owner name", "write_files:\n- path: /a\n  owner: www-data:www-data\n", 3, 10, "write_files[0].owner", "numeric ids or root"},
		{"owner no group", "write_files:\n- path: /a\n  owner: '1000'\n", 3, 10, "write_files[0].owner", `is not "user:group"`},
		{"encoding", "write_files:\n- path: /a\n  encoding: base32\n", 3, 13, "write_files[0].encoding", `"base32" is not an encoding: use plain, b64`},
		{"bad base64", "write_files:\n- path: /a\n  encoding: b64\n  content: 'not base64!'\n", 4, 12, "write_files[0].content", "is not valid base64"},
		{"gzip no content", "write_files:\n- {path: /a, encoding: gz}\n", 2, 3, "write_files[0].content", "is not gzip data"},
		{"bad gzip", "write_files:\n- path: /a\n  encoding: gzip+base64\n  content: aGVsbG8=\n", 4, 12, "write_files[0].content", "is not gzip data"},
		{"append", "write_files:\n- path: /a\n  append: sometimes\n", 3, 11, "write_files[0].append", `"sometimes" is not true or false`},
		{"unknown", "write_files:\n- path: /a\n  mode: '0644'\n", 3, 3, "write_files[0].mode", "is not a known key"},
		{"typo", "write_files:\n- path: /a\n  permission: '0644'\n", 3, 3, "write_files[0].permission", `did you mean "permissions"?`},
		{"defer", "write_files:\n- path: /a\n  defer: true\n", 3, 3, "write_files[0].defer", "is not supported"},
		{"content list", "write_files:\n- path: /a\n  content: [a]\n", 3, 12, "write_files[0].content", "must be a single value"},
		{"bad binary", "write_files:\n- path: /a\n  content: !!binary '***'\n", 3, 12, "write_files[0].content", "!!binary that is not valid base64"},
	})
}

func TestParseSysctlsModules(t *testing.T) {
	c, err := Parse("t", []byte("sysctls:\n  net.ipv4.ip_forward: 1\n  net.ipv4.ip_local_port_range: 1024 65000\n  net.ipv4.conf.eth0/100.rp_filter: '0'\nmodules: [br_netfilter, overlay, nf-conntrack]\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"net.ipv4.ip_forward": "1", "net.ipv4.ip_local_port_range": "1024 65000", "net.ipv4.conf.eth0/100.rp_filter": "0"}
	if !reflect.DeepEqual(c.Sysctls, want) || !reflect.DeepEqual(c.Modules, []string{"br_netfilter", "overlay", "nf-conntrack"}) {
		t.Errorf("got %+v %+v", c.Sysctls, c.Modules)
	}
	if got := SysctlPath("net.ipv4.conf.eth0/100.rp_filter"); got != "/proc/sys/net/ipv4/conf/eth0.100/rp_filter" {
		t.Errorf("SysctlPath = %q", got)
	}
	runBad(t, []badCase{
		{"no dot", "sysctls:\n  ip_forward: 1\n", 2, 3, "sysctls.ip_forward", "is not a sysctl key"},
		{"slashes", "sysctls:\n  net/ipv4/ip_forward: 1\n", 2, 3, `sysctls["net/ipv4/ip_forward"]`, "separate the levels with dots"},
		{"root", "sysctls:\n  network.ip_forward: 1\n", 2, 3, `sysctls["network.ip_forward"]`, "must start with abi, crypto"},
		{"space", "sysctls:\n  'net.ipv4.ip forward': 1\n", 2, 3, `sysctls["net.ipv4.ip forward"]`, "is not a sysctl key"},
		{"empty level", "sysctls:\n  net..ip_forward: 1\n", 2, 3, `sysctls["net..ip_forward"]`, "is not a sysctl key"},
		{"no value", "sysctls:\n  net.ipv4.ip_forward:\n", 2, 23, `sysctls["net.ipv4.ip_forward"]`, "has no value"},
		{"list value", "sysctls:\n  net.ipv4.ip_forward: [1]\n", 2, 24, `sysctls["net.ipv4.ip_forward"]`, "must be a single value"},
		{"multiline value", "sysctls:\n  kernel.pid_max: \"1\\n2\"\n", 2, 19, "sysctls[\"kernel.pid_max\"]", "spans lines"},
		{"not a map", "sysctls: [net.ipv4.ip_forward=1]\n", 1, 10, "sysctls", "must be a mapping"},
		{"module ko", "modules: [overlay.ko]\n", 1, 11, "modules[0]", `give the module name without ".ko"`},
		{"module slash", "modules: [kernel/fs/overlay]\n", 1, 11, "modules[0]", "is not a kernel module name"},
		{"module empty", "modules:\n- overlay\n-\n", 3, 2, "modules[1]", "is empty"},
		{"modules string", "modules: overlay\n", 1, 10, "modules", "must be a list"},
	})
}

func TestParseNetwork(t *testing.T) {
	doc := `network:
  interfaces:
  - name: eth0
    addresses: [10.0.0.5/24, "fd00::5/64"]
    gateway4: 10.0.0.1
    mtu: 9000
    routes:
    - to: 10.20.0.0/16
      via: 10.0.0.254
      metric: 100
    - to: ::/0
      via: fd00::1
  - mac: 52:54:00:AB:CD:EF
    dhcp4: true
  dns:
    servers: [10.0.0.2, "2001:4860:4860::8888"]
    search: [example.com, cluster.example.com]
`
	c, err := Parse("t", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	mac, _ := net.ParseMAC("52:54:00:ab:cd:ef")
	want := Network{
		Interfaces: []Interface{
			{
				Name:      "eth0",
				Addresses: []netip.Prefix{netip.MustParsePrefix("10.0.0.5/24"), netip.MustParsePrefix("fd00::5/64")},
				Gateway4:  netip.MustParseAddr("10.0.0.1"),
				MTU:       9000,
				Routes: []Route{
					{To: netip.MustParsePrefix("10.20.0.0/16"), Via: netip.MustParseAddr("10.0.0.254"), Metric: 100},
					{To: netip.MustParsePrefix("::/0"), Via: netip.MustParseAddr("fd00::1")},
				},
			},
			{MAC: mac, DHCP4: true},
		},
		DNS: DNS{
			Servers: []netip.Addr{netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("2001:4860:4860::8888")},
			Search:  []string{"example.com", "cluster.example.com"},
		},
	}
	if !reflect.DeepEqual(c.Network, want) {
		t.Errorf("got  %+v\nwant %+v", c.Network, want)
	}
	ifc := func(body string) string { return "network:\n  interfaces:\n  - name: eth0\n" + body }
	runBad(t, []badCase{
		{"unknown", "network:\n  interface: []\n", 2, 3, "network.interface", `did you mean "interfaces"?`},
		{"no name", "network:\n  interfaces:\n  - dhcp4: true\n", 3, 5, "network.interfaces[0]", "has neither name nor mac"},
		{"name slash", "network:\n  interfaces:\n  - name: eth/0\n", 3, 11, "network.interfaces[0].name", "is not a network link name"},
		{"name long", "network:\n  interfaces:\n  - name: enp0s31f6abcdefgh\n", 3, 11, "network.interfaces[0].name", "up to 15 characters"},
		{"duplicate name", ifc("  - name: eth0\n"), 4, 11, "network.interfaces[1].name", "already configured on line 3"},
		{"mac", "network:\n  interfaces:\n  - mac: 52:54:00:zz:cd:ef\n", 3, 10, "network.interfaces[0].mac", `is not a MAC address like "52:54:00:12:34:56"`},
		{"dhcp4", ifc("    dhcp4: auto\n"), 4, 12, "network.interfaces[0].dhcp4", `"auto" is not true or false`},
		{"address no prefix", ifc("    addresses: [10.0.0.5]\n"), 4, 17, "network.interfaces[0].addresses[0]", `needs a prefix length, like "10.0.0.5/24"`},
		{"address garbage", ifc("    addresses: [10.0.0.300/24]\n"), 4, 17, "network.interfaces[0].addresses[0]", "is not an address with a prefix length"},
		{"address network", ifc("    addresses: [10.0.0.0/24]\n"), 4, 17, "network.interfaces[0].addresses[0]", `is the network address of 10.0.0.0/24`},
		{"address loopback", ifc("    addresses: [127.0.0.2/8]\n"), 4, 17, "network.interfaces[0].addresses[0]", "is not a host address"},
		{"addresses string", ifc("    addresses: 10.0.0.5/24\n"), 4, 16, "network.interfaces[0].addresses", "must be a list"},
		{"gateway6", ifc("    gateway4: fd00::1\n"), 4, 15, "network.interfaces[0].gateway4", `is not IPv4; for an IPv6 default route add a route with to "::/0"`},
		{"gateway prefix", ifc("    gateway4: 10.0.0.1/24\n"), 4, 15, "network.interfaces[0].gateway4", "has a prefix length"},
		{"gateway garbage", ifc("    gateway4: router\n"), 4, 15, "network.interfaces[0].gateway4", `is not an IPv4 address like "10.0.0.1"`},
		{"mtu small", ifc("    mtu: 20\n"), 4, 10, "network.interfaces[0].mtu", "20 is out of range; use a value from 68 to 65535"},
		{"mtu word", ifc("    mtu: jumbo\n"), 4, 10, "network.interfaces[0].mtu", `"jumbo" is not a whole number`},
		{"route host bits", ifc("    routes: [{to: 10.20.0.1/16, via: 10.0.0.254}]\n"), 4, 19, "network.interfaces[0].routes[0].to", `has host bits set; the network is "10.20.0.0/16"`},
		{"route default", ifc("    routes: [{to: default, via: 10.0.0.254}]\n"), 4, 19, "network.interfaces[0].routes[0].to", `write "0.0.0.0/0"`},
		{"route no prefix", ifc("    routes: [{to: 10.20.0.1, via: 10.0.0.254}]\n"), 4, 19, "network.interfaces[0].routes[0].to", "needs a prefix length"},
		{"route via", ifc("    routes: [{to: 10.20.0.0/16, via: gw}]\n"), 4, 38, "network.interfaces[0].routes[0].via", `"gw" is not an IP address`},
		{"route no via", ifc("    routes: [{to: 10.20.0.0/16}]\n"), 4, 14, "network.interfaces[0].routes[0]", "needs both to and via"},
		{"route family", ifc("    routes: [{to: 10.20.0.0/16, via: 'fd00::1'}]\n"), 4, 14, "network.interfaces[0].routes[0]", "mixes address families"},
		{"route metric", ifc("    routes: [{to: 10.20.0.0/16, via: 10.0.0.254, metric: -1}]\n"), 4, 58, "network.interfaces[0].routes[0].metric", "out of range"},
		{"route key", ifc("    routes: [{dest: 10.20.0.0/16, via: 10.0.0.254}]\n"), 4, 15, "network.interfaces[0].routes[0].dest", "is not a known key"},
		{"dns server", "network:\n  dns:\n    servers: [dns.google]\n", 3, 15, "network.dns.servers[0]", "is not an IP address"},
		{"dns port", "network:\n  dns:\n    servers: ['10.0.0.2:53']\n", 3, 15, "network.dns.servers[0]", "has a port"},
		{"dns search", "network:\n  dns:\n    search: [example_com]\n", 3, 14, "network.dns.search[0]", "is not a domain name"},
		{"dns key", "network:\n  dns:\n    nameservers: []\n", 3, 5, "network.dns.nameservers", "is not a known key"},
	})
}

func TestParseNTP(t *testing.T) {
	doc := `ntp:
  enabled: true
  servers: [10.0.0.1, "ntp.example.com:1123", "fd00::123", "[fd00::1]:123"]
  pools: [pool.ntp.org, 2.debian.pool.ntp.org]
`
	c, err := Parse("t", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	on := true
	want := NTP{
		Enabled: &on,
		Servers: []string{"10.0.0.1", "ntp.example.com:1123", "fd00::123", "[fd00::1]:123"},
		Pools:   []string{"pool.ntp.org", "2.debian.pool.ntp.org"},
	}
	if !reflect.DeepEqual(c.NTP, want) || !c.NTP.IsEnabled() {
		t.Errorf("got  %+v\nwant %+v", c.NTP, want)
	}
	for doc, enabled := range map[string]bool{
		"hostname: a\n":             true, // no ntp section
		"ntp:\n":                    true,
		"ntp: {servers: [a.b]}\n":   true,
		"ntp: {enabled: no}\n":      false,
		"ntp: {enabled: false}\n":   false,
		"ntp: {enabled: true}\n":    true,
		"ntp: {enabled: ~}\n":       true,
		"ntp: {servers: []}\n":      true,
		"ntp: {pools: [a, b, c]}\n": true,
	} {
		if c := mustParse(t, "t", doc); c.NTP.IsEnabled() != enabled {
			t.Errorf("%q: IsEnabled = %v, want %v", doc, c.NTP.IsEnabled(), enabled)
		}
	}
	if !(*NTP)(nil).IsEnabled() {
		t.Error("a nil NTP is not enabled")
	}
	runBad(t, []badCase{
		{"unknown", "ntp:\n  server: [10.0.0.1]\n", 2, 3, "ntp.server", `did you mean "servers"?`},
		{"far unknown", "ntp:\n  iburst: true\n", 2, 3, "ntp.iburst", "known keys are enabled, servers, pools"},
		{"ntp_client", "ntp:\n  ntp_client: chrony\n", 2, 3, "ntp.ntp_client", "there is no NTP client to choose"},
		{"peers", "ntp:\n  peers: [10.0.0.2]\n", 2, 3, "ntp.peers", "list them under servers"},
		{"enabled", "ntp:\n  enabled: sometimes\n", 2, 12, "ntp.enabled", `"sometimes" is not true or false`},
		{"not a mapping", "ntp: [10.0.0.1]\n", 1, 6, "ntp", "must be a mapping"},
		{"servers string", "ntp:\n  servers: 10.0.0.1\n", 2, 12, "ntp.servers", "must be a list"},
		{"server empty", "ntp:\n  servers:\n  - 10.0.0.1\n  -\n", 4, 4, "ntp.servers[1]", "is empty"},
		{"server list", "ntp:\n  servers: [[10.0.0.1]]\n", 2, 13, "ntp.servers[0]", "must be a single value"},
		{"server name", "ntp:\n  servers: [ntp_1.example.com]\n", 2, 13, "ntp.servers[0]", `"ntp_1.example.com" is not an NTP server: give a host name or IP address`},
		{"server url", "ntp:\n  servers: ['ntp://ntp.example.com']\n", 2, 13, "ntp.servers[0]", `is a URL; give the host alone, like "ntp.example.com"`},
		{"port zero", "ntp:\n  servers: ['ntp.example.com:0']\n", 2, 13, "ntp.servers[0]", "has a port outside 1-65535"},
		{"port big", "ntp:\n  servers: ['10.0.0.1:65536']\n", 2, 13, "ntp.servers[0]", "has a port outside 1-65535"},
		{"port word", "ntp:\n  servers: ['10.0.0.1:ntp']\n", 2, 13, "ntp.servers[0]", "has a port outside 1-65535"},
		{"port sign", "ntp:\n  servers: ['10.0.0.1:+123']\n", 2, 13, "ntp.servers[0]", "has a port outside 1-65535"},
		{"port empty", "ntp:\n  servers: ['10.0.0.1:']\n", 2, 13, "ntp.servers[0]", "has a port outside 1-65535"},
		{"ipv6 no brackets", "ntp:\n  servers: ['fd00::1::123']\n", 2, 13, "ntp.servers[0]", "is not an NTP server"},
		{"brackets no port", "ntp:\n  servers: ['[fd00::1]']\n", 2, 13, "ntp.servers[0]", "is not an NTP server"},
		{"zone", "ntp:\n  servers: ['fe80::1%eth0']\n", 2, 13, "ntp.servers[0]", "has an IPv6 zone"},
		{"mapped", "ntp:\n  servers: ['::ffff:10.0.0.1']\n", 2, 13, "ntp.servers[0]", `write "10.0.0.1"`},
		{"unspecified", "ntp:\n  servers: [0.0.0.0]\n", 2, 13, "ntp.servers[0]", "is not a server's address"},
		{"multicast", "ntp:\n  pools: [224.0.1.1]\n", 2, 11, "ntp.pools[0]", "is not a server's address"},
		{"pool name", "ntp:\n  pools: ['pool ntp org']\n", 2, 11, "ntp.pools[0]", "is not an NTP server"},
	})
}

// RKE2 takes a single value where a list is expected: so does the schema.
func TestParseRKE2SingleValues(t *testing.T) {
	c, err := Parse("t", []byte("rke2:\n  tls-san: api.example.com\n  node-label: zone=a\n  node-taint: \"gpu=yes:NoSchedule\"\n  node-ip: 10.0.0.11,fd00::11\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.RKE2.TLSSANs(); len(got) != 1 || got[0] != "api.example.com" {
		t.Errorf("tls-san %q", got)
	}
	if got := c.RKE2.NodeLabels(); len(got) != 1 || got[0] != "zone=a" {
		t.Errorf("node-label %q", got)
	}
	if got := c.RKE2.NodeTaints(); len(got) != 1 || got[0] != "gpu=yes:NoSchedule" {
		t.Errorf("node-taint %q", got)
	}
	if got := c.RKE2.NodeIPs(); len(got) != 2 || got[0] != "10.0.0.11" || got[1] != "fd00::11" {
		t.Errorf("node-ip %q", got)
	}
}

func TestParseRKE2(t *testing.T) {
	doc := `rke2:
  token: K10` + strings.Repeat("ab", 32) + `::server:secret
  server: https://rke2.example.com:9345
  node-name: node-1
  node-label: [topology.kubernetes.io/zone=zone-a, node.kubernetes.io/worker=true, "example.com/gpu="]
  node-label+: [tier=db]
  node-taint: ["dedicated=gpu:NoSchedule", "node-role.kubernetes.io/control-plane:NoSchedule"]
  tls-san: [rke2.example.com, "*.example.com", 10.0.0.10, "fd00::10"]
  cni: flannel
  kube-apiserver-arg: [audit-log-maxage=30]
  etcd-snapshot-retention: 5
  write-kubeconfig-mode: "0644"
  disable-cloud-controller: true
`
	c, err := Parse("t", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	r := c.RKE2
	if !strings.HasPrefix(r.Token(), "K10abab") || r.Server() != "https://rke2.example.com:9345" || r.NodeName() != "node-1" {
		t.Errorf("scalars: %q %q %q", r.Token(), r.Server(), r.NodeName())
	}
	if got, want := r.NodeLabels(), []string{"topology.kubernetes.io/zone=zone-a", "node.kubernetes.io/worker=true", "example.com/gpu=", "tier=db"}; !reflect.DeepEqual(got, want) {
		t.Errorf("NodeLabels = %q, want %q", got, want)
	}
	if got := r.NodeTaints(); len(got) != 2 || got[1] != "node-role.kubernetes.io/control-plane:NoSchedule" {
		t.Errorf("NodeTaints = %q", got)
	}
	if got := r.TLSSANs(); len(got) != 4 {
		t.Errorf("TLSSANs = %q", got)
	}
	if got := r.CNI(); !reflect.DeepEqual(got, []string{"flannel"}) {
		t.Errorf("CNI = %q", got)
	}
	if got := r.String("write-kubeconfig-mode"); got != "0644" {
		t.Errorf("write-kubeconfig-mode = %q", got)
	}
	if len(r) != 12 {
		t.Errorf("got %d rke2 keys, want 12", len(r))
	}
	for _, cni := range []string{"none", "[flannel]", "flannel", "' flannel '"} {
		if _, err := Parse("t", []byte("rke2:\n  cni: "+cni+"\n")); err != nil {
			t.Errorf("cni %s: %v", cni, err)
		}
	}

	runBad(t, []badCase{
		{"key underscore", "rke2:\n  node_label: [a=b]\n", 2, 3, "rke2.node_label", `did you mean "node-label"?`},
		{"key upper", "rke2:\n  Token: x\n", 2, 3, "rke2.Token", "is not an RKE2 option name"},
		{"null value", "rke2:\n  token:\n", 2, 9, "rke2.token", "has no value"},
		{"mapping value", "rke2:\n  kubelet-arg: {max-pods: 200}\n", 2, 16, "rke2.kubelet-arg", "must be a value or a list of values, not a mapping"},
		{"nested list", "rke2:\n  kubelet-arg: [[a]]\n", 2, 17, "rke2.kubelet-arg[0]", "must be a single value, not a list"},
		{"token space", "rke2:\n  token: 'my token'\n", 2, 10, "rke2.token", "contains spaces"},
		{"token K10", "rke2:\n  token: K10abc::server:x\n", 2, 10, "rke2.token", `is not "K10<ca-hash>::<user>:<password>"`},
		{"token list", "rke2:\n  token: [a]\n", 2, 10, "rke2.token", "must be a single value"},
		{"server http", "rke2:\n  server: http://10.0.0.1:9345\n", 2, 11, "rke2.server", `must use https, like "https://10.0.0.1:9345"`},
		{"server no port", "rke2:\n  server: https://10.0.0.1\n", 2, 11, "rke2.server", `needs the port, usually 9345: "https://10.0.0.1:9345"`},
		{"server bare", "rke2:\n  server: 10.0.0.1:9345\n", 2, 11, "rke2.server", "is not an https URL with a port"},
		{"server path", "rke2:\n  server: https://10.0.0.1:9345/v1\n", 2, 11, "rke2.server", "must be just scheme, host and port"},
		{"server port", "rke2:\n  server: https://10.0.0.1:99999\n", 2, 11, "rke2.server", "is not an https URL with a port"},
		{"node-name upper", "rke2:\n  node-name: Node1\n", 2, 14, "rke2.node-name", "is not a Kubernetes node name"},
		{"label no value", "rke2:\n  node-label: [zone]\n", 2, 16, "rke2.node-label[0]", `"zone" is not a label "key=value"`},
		{"label bad key", "rke2:\n  node-label: ['-zone=a']\n", 2, 16, "rke2.node-label[0]", `key "-zone" is not a label key`},
		{"label bad value", "rke2:\n  node-label: ['zone=a b']\n", 2, 16, "rke2.node-label[0]", `value "a b" is not a label value`},
		{"label restricted", "rke2:\n  node-label: [node-role.kubernetes.io/worker=true]\n", 2, 16, "rke2.node-label[0]", "the kubelet would refuse to start"},
		{"label single bad value", "rke2:\n  node-label: zone\n", 2, 15, "rke2.node-label", "is not a label"},
		{"label map", "rke2:\n  node-label: {zone: a}\n", 2, 15, "rke2.node-label", "must be a value or a list"},
		{"label plus", "rke2:\n  node-label+: [zone]\n", 2, 17, "rke2.node-label+[0]", "is not a label"},
		{"taint effect", "rke2:\n  node-taint: ['a=b:NoRun']\n", 2, 16, "rke2.node-taint[0]", `has effect "NoRun"; use NoSchedule, PreferNoSchedule or NoExecute`},
		{"taint no effect", "rke2:\n  node-taint: ['a=b']\n", 2, 16, "rke2.node-taint[0]", `is not a taint "key=value:Effect"`},
		{"taint key", "rke2:\n  node-taint: ['a b=c:NoSchedule']\n", 2, 16, "rke2.node-taint[0]", "is not a label key"},
		{"tls-san", "rke2:\n  tls-san: [https://rke2.example.com]\n", 2, 13, "rke2.tls-san[0]", "is not a host name or IP address"},
		{"node-ip name", "rke2:\n  node-ip: node1.example.com\n", 2, 12, "rke2.node-ip", `"node1.example.com" is not an IP address of this node`},
		{"node-ip second", "rke2:\n  node-ip: [\"10.0.0.1,10.0.0\"]\n", 2, 13, "rke2.node-ip[0]", "is not an IP address of this node"},
		{"node-ip any", "rke2:\n  node-ip: 0.0.0.0\n", 2, 12, "rke2.node-ip", "is not an IP address of this node"},
		{"tls-san empty", "rke2:\n  tls-san:\n  -\n", 3, 4, "rke2.tls-san[0]", "is empty"},
		{"cni unknown", "rke2:\n  cni: weave\n", 2, 8, "rke2.cni", `"weave" is not a CNI RKE2 ships`},
		{"cni multus alone", "rke2:\n  cni: multus\n", 2, 8, "rke2.cni", "needs a primary CNI after it"},
		{"cni multus last", "rke2:\n  cni: [canal, multus]\n", 2, 8, "rke2.cni", "only multus adds to another, and it comes first"},
		{"cni two primaries", "rke2:\n  cni: [canal, cilium]\n", 2, 8, "rke2.cni", "combines CNIs RKE2 cannot"},
		{"cni three", "rke2:\n  cni: [multus, canal, cilium]\n", 2, 8, "rke2.cni", "more than two CNIs"},
		{"cni canal", "rke2:\n  cni: canal\n", 2, 8, "rke2.cni", "canal is a CNI RKE2 ships, but this OS cannot build its images offline and does not carry it: use cni: flannel"},
		{"cni cilium", "rke2:\n  cni: [cilium]\n", 2, 8, "rke2.cni", "cilium is a CNI RKE2 ships, but this OS cannot"},
		{"cni multus", "rke2:\n  cni: multus,flannel\n", 2, 8, "rke2.cni", "multus is a CNI RKE2 ships, but this OS cannot"},
		{"cni mapping", "rke2:\n  cni: {name: canal}\n", 2, 8, "rke2.cni", "must be a CNI name"},
		{"not a map", "rke2: [token]\n", 1, 7, "rke2", "must be a mapping"},
	})
}

func TestParseRegistries(t *testing.T) {
	doc := `registries:
  mirrors:
    docker.io:
      endpoint: [https://mirror.example.com:5000, http://10.0.0.20:5000]
    "*":
      endpoint: [https://mirror.example.com:5000]
      rewrite:
        "^rancher/(.*)": "mirrored/rancher/$1"
  configs:
    mirror.example.com:5000:
      auth: {username: puller, password: s3cret}
      tls: {cert_file: /etc/rancher/rke2/certs/client.crt, key_file: /etc/rancher/rke2/certs/client.key, ca_file: /etc/rancher/rke2/certs/ca.crt}
    "10.0.0.20:5000":
      auth: {auth: cHVsbGVyOnMzY3JldA==}
      tls: {insecure_skip_verify: true}
    "[fd00::20]:5000":
      auth: {identitytoken: abc}
`
	c, err := Parse("t", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	want := Registries{
		Mirrors: map[string]Mirror{
			"docker.io": {Endpoints: []string{"https://mirror.example.com:5000", "http://10.0.0.20:5000"}},
			"*":         {Endpoints: []string{"https://mirror.example.com:5000"}, Rewrites: map[string]string{"^rancher/(.*)": "mirrored/rancher/$1"}},
		},
		Configs: map[string]RegistryConfig{
			"mirror.example.com:5000": {
				Auth: &RegistryAuth{Username: "puller", Password: "s3cret"},
				TLS:  &RegistryTLS{CertFile: "/etc/rancher/rke2/certs/client.crt", KeyFile: "/etc/rancher/rke2/certs/client.key", CAFile: "/etc/rancher/rke2/certs/ca.crt"},
			},
			"10.0.0.20:5000":  {Auth: &RegistryAuth{Auth: "cHVsbGVyOnMzY3JldA=="}, TLS: &RegistryTLS{InsecureSkipVerify: true}},
			"[fd00::20]:5000": {Auth: &RegistryAuth{IdentityToken: "abc"}},
		},
	}
	if !reflect.DeepEqual(c.Registries, want) {
		t.Errorf("got  %+v\nwant %+v", c.Registries, want)
	}
	runBad(t, []badCase{
		{"unknown", "registries:\n  mirror: {}\n", 2, 3, "registries.mirror", `did you mean "mirrors"?`},
		{"mirror url key", "registries:\n  mirrors:\n    https://docker.io: {}\n", 3, 5, `registries.mirrors["https://docker.io"]`, `is a URL; registries are keyed by host, like "docker.io"`},
		{"mirror key", "registries:\n  mirrors:\n    docker.io:\n      endpoints: [https://m.example.com]\n", 4, 7, "registries.mirrors[\"docker.io\"].endpoints", `did you mean "endpoint"?`},
		{"endpoint scheme", "registries:\n  mirrors:\n    docker.io:\n      endpoint: [m.example.com:5000]\n", 4, 18, `registries.mirrors["docker.io"].endpoint[0]`, "is not an http(s) URL"},
		{"endpoint creds", "registries:\n  mirrors:\n    docker.io:\n      endpoint: ['https://u:p@m.example.com']\n", 4, 18, `registries.mirrors["docker.io"].endpoint[0]`, "carries credentials"},
		{"rewrite", "registries:\n  mirrors:\n    docker.io:\n      rewrite: {'(': x}\n", 4, 17, `registries.mirrors["docker.io"].rewrite["("]`, "is not a regular expression"},
		{"config host", "registries:\n  configs:\n    'a b': {}\n", 3, 5, `registries.configs["a b"]`, "is not a registry host"},
		{"config port", "registries:\n  configs:\n    'r.example.com:70000': {}\n", 3, 5, `registries.configs["r.example.com:70000"]`, "port outside 1-65535"},
		{"auth half", "registries:\n  configs:\n    r.example.com:\n      auth: {username: u}\n", 4, 13, `registries.configs["r.example.com"].auth`, "needs username and password together"},
		{"auth b64", "registries:\n  configs:\n    r.example.com:\n      auth: {auth: nocolon}\n", 4, 13, `registries.configs["r.example.com"].auth`, "auth is not base64"},
		{"auth both", "registries:\n  configs:\n    r.example.com:\n      auth: {username: u, password: p, auth: dTpw}\n", 4, 13, `registries.configs["r.example.com"].auth`, "give either username and password or auth, not both"},
		{"auth key", "registries:\n  configs:\n    r.example.com:\n      auth: {user: u}\n", 4, 14, `registries.configs["r.example.com"].auth.user`, "is not a known key"},
		{"tls pair", "registries:\n  configs:\n    r.example.com:\n      tls: {cert_file: /etc/c.crt}\n", 4, 12, `registries.configs["r.example.com"].tls`, "needs cert_file and key_file together"},
		{"tls path", "registries:\n  configs:\n    r.example.com:\n      tls: {ca_file: ca.crt}\n", 4, 22, `registries.configs["r.example.com"].tls.ca_file`, "is not an absolute path"},
		{"tls bool", "registries:\n  configs:\n    r.example.com:\n      tls: {insecure_skip_verify: 1}\n", 4, 35, `registries.configs["r.example.com"].tls.insecure_skip_verify`, "is not true or false"},
	})
}

// TestParseRegistriesFile parses standalone registries.yaml files: what the
// section holds, with the section's checks and key paths from the file's top.
func TestParseRegistriesFile(t *testing.T) {
	golden, err := os.ReadFile("testdata/registries.golden.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse("t", append([]byte("registries:\n"), indent(golden)...))
	if err != nil {
		t.Fatal(err)
	}
	r, err := ParseRegistries("registries.yaml", golden)
	if err != nil || !reflect.DeepEqual(*r, c.Registries) || len(r.Mirrors) != 2 || len(r.Configs) != 2 {
		t.Errorf("ParseRegistries = %+v, %v; want %+v", r, err, c.Registries)
	}
	for _, doc := range []string{"", "# nothing\n", "{}\n", "~\n"} {
		if r, err := ParseRegistries("empty", []byte(doc)); err != nil || r == nil || !reflect.DeepEqual(*r, Registries{}) {
			t.Errorf("ParseRegistries(%q) = %+v, %v; want no mirrors", doc, r, err)
		}
	}
	for _, tc := range []badCase{
		{"unknown", "mirror: {}\n", 1, 1, "mirror", `did you mean "mirrors"?`},
		{"mirror key", "mirrors:\n  docker.io:\n    endpoints: [https://m.example.com]\n", 3, 5, `mirrors["docker.io"].endpoints`, `did you mean "endpoint"?`},
		{"endpoint", "mirrors:\n  localhost:\n    endpoint: [m.example.com:5000]\n", 3, 16, "mirrors.localhost.endpoint[0]", "is not an http(s) URL"},
		{"auth both", "configs:\n  r.example.com:\n    auth: {username: u, password: p, auth: dTpw}\n", 3, 11, `configs["r.example.com"].auth`, "not both"},
		{"not a mapping", "- docker.io\n", 1, 1, "", "must be a mapping"},
		{"two documents", "mirrors: {}\n---\nconfigs: {}\n", 2, 1, "", "starts a second YAML document"},
		{"syntax", "mirrors: [\n", 1, 0, "", "is not valid YAML"},
	} {
		r, err := ParseRegistries("/etc/rancher/rke2/registries.yaml", []byte(tc.doc))
		if err == nil || r != nil {
			t.Errorf("%s: ParseRegistries = %+v, %v; want an error", tc.name, r, err)
			continue
		}
		ps := problems(t, err)
		e := ps[0]
		if len(ps) != 1 || e.Source != "/etc/rancher/rke2/registries.yaml" || e.Line != tc.line || (tc.col != 0 && e.Column != tc.col) || e.Path != tc.path || !strings.Contains(e.Msg, tc.msg) {
			t.Errorf("%s: got %q\n(line %d column %d path %q)\nwant one error at line %d column %d path %q saying %q", tc.name, err, e.Line, e.Column, e.Path, tc.line, tc.col, tc.path, tc.msg)
		}
	}
}

func TestParseAliases(t *testing.T) {
	doc := "x-common: &dns [10.0.0.2]\n"
	if _, err := Parse("t", []byte(doc)); err == nil {
		t.Fatal("unknown key with anchor accepted")
	}
	doc = "network:\n  dns:\n    servers: &s [10.0.0.2]\n    search: [example.com]\nrke2:\n  tls-san: &sans [rke2.example.com]\n  kube-apiserver-arg: *sans\n"
	c, err := Parse("t", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.RKE2ConfigYAML()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "*") || strings.Contains(string(out), "&") {
		t.Errorf("rendered config keeps an alias or anchor:\n%s", out)
	}
}

// laughs is a "billion laughs" document: ten levels of ten aliases each.
func laughs() string {
	var b strings.Builder
	b.WriteString("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i <= 9; i++ {
		fmt.Fprintf(&b, "a%d: &a%d [", i, i)
		for j := 0; j < 10; j++ {
			if j > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "*a%d", i-1)
		}
		b.WriteString("]\n")
	}
	return b.String()
}
