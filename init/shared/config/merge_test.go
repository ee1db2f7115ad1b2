package config

import (
	"reflect"
	"strings"
	"testing"
)

func mustParse(t *testing.T, source, doc string) *Config {
	t.Helper()
	c, err := Parse(source, []byte(doc))
	if err != nil {
		t.Fatalf("Parse %s: %v", source, err)
	}
	return c
}

func TestMerge(t *testing.T) {
	baked := mustParse(t, "baked", `
role: agent
on_containerd_exit: reboot
modules: [br_netfilter, overlay]
sysctls: {net.ipv4.ip_forward: "1", vm.max_map_count: "262144"}
write_files:
- {path: /etc/a, content: a}
network:
  interfaces: [{name: eth0, dhcp4: true}]
  dns: {servers: [10.0.0.2], search: [example.com]}
rke2:
  server: https://10.0.0.1:9345
  node-label: [zone=a]
  kube-proxy-arg: [metrics-bind-address=0.0.0.0]
registries:
  mirrors: {docker.io: {endpoint: [https://mirror.example.com]}}
ntp: {enabled: false, servers: [10.0.0.1], pools: [pool.ntp.org]}
debug: {hooks: true}
`)
	cidata := mustParse(t, "cidata", `
hostname: node-7
sysctls: {vm.max_map_count: "524288"}
write_files:
- {path: /etc/b, content: b}
network:
  dns: {servers: [10.0.0.3]}
rke2:
  token: secret
  node-label: [zone=b]
registries:
  mirrors: {quay.io: {endpoint: [https://quay-mirror.example.com]}}
  configs: {mirror.example.com: {auth: {username: u, password: p}}}
ntp: {servers: [10.0.0.5, "ntp.example.com:1123"]}
`)
	cmdline := mustParse(t, "cmdline", `
role: server
rke2: {node-label+: [tier=db]}
ntp: {enabled: true}
debug: {hooks: false, trace: true}
`)
	got := Merge(baked, nil, cidata, cmdline)

	if got.Hostname != "node-7" || got.NodeRole != RoleServer || got.OnContainerdExit != ContainerdExitReboot {
		t.Errorf("scalars: %q %q %q", got.Hostname, got.NodeRole, got.OnContainerdExit)
	}
	if !reflect.DeepEqual(got.Modules, []string{"br_netfilter", "overlay"}) {
		t.Errorf("modules kept from base: %v", got.Modules)
	}
	if len(got.WriteFiles) != 1 || got.WriteFiles[0].Path != "/etc/b" {
		t.Errorf("write_files replaced: %+v", got.WriteFiles)
	}
	if want := map[string]string{"net.ipv4.ip_forward": "1", "vm.max_map_count": "524288"}; !reflect.DeepEqual(got.Sysctls, want) {
		t.Errorf("sysctls merged per key: %v", got.Sysctls)
	}
	if len(got.Network.Interfaces) != 1 || got.Network.Interfaces[0].Name != "eth0" {
		t.Errorf("interfaces kept: %+v", got.Network.Interfaces)
	}
	if len(got.Network.DNS.Servers) != 1 || got.Network.DNS.Servers[0].String() != "10.0.0.3" || !reflect.DeepEqual(got.Network.DNS.Search, []string{"example.com"}) {
		t.Errorf("dns: %+v", got.Network.DNS)
	}
	if got.RKE2.Server() != "https://10.0.0.1:9345" || got.RKE2.Token() != "secret" {
		t.Errorf("rke2 per key: server %q token %q", got.RKE2.Server(), got.RKE2.Token())
	}
	if want := []string{"zone=b", "tier=db"}; !reflect.DeepEqual(got.RKE2.NodeLabels(), want) {
		t.Errorf("node labels: %q, want %q", got.RKE2.NodeLabels(), want)
	}
	if got.RKE2["kube-proxy-arg"] == nil {
		t.Errorf("rke2 lost a base key: %v", got.RKE2)
	}
	if len(got.Registries.Mirrors) != 2 || len(got.Registries.Configs) != 1 {
		t.Errorf("registries: %+v", got.Registries)
	}
	if want := map[string]bool{"hooks": false, "trace": true}; !reflect.DeepEqual(got.Debug, want) {
		t.Errorf("debug: %v", got.Debug)
	}
	if want := []string{"10.0.0.5", "ntp.example.com:1123"}; !got.NTP.IsEnabled() || !reflect.DeepEqual(got.NTP.Servers, want) || !reflect.DeepEqual(got.NTP.Pools, []string{"pool.ntp.org"}) {
		t.Errorf("ntp: enabled %v servers %q pools %q; want enabled, servers %q replaced, pools kept", got.NTP.IsEnabled(), got.NTP.Servers, got.NTP.Pools, want)
	}
	// A source that leaves ntp.enabled out keeps the earlier value.
	if Merge(baked, cidata).NTP.IsEnabled() {
		t.Errorf("ntp.enabled false lost in a merge with a source that does not set it")
	}
	if err := got.Validate("agent"); err != nil {
		t.Errorf("merged config does not validate: %v", err)
	}

	// The inputs are untouched and not shared with the result.
	if baked.Sysctls["vm.max_map_count"] != "262144" || len(baked.RKE2) != 3 || baked.Hostname != "" {
		t.Errorf("Merge modified its base: %+v", baked)
	}
	got.Modules[0] = "changed"
	got.Network.Interfaces[0].Name = "changed"
	got.NTP.Pools[0] = "changed"
	*got.NTP.Enabled = false
	if baked.Modules[0] != "br_netfilter" || baked.Network.Interfaces[0].Name != "eth0" || baked.NTP.Pools[0] != "pool.ntp.org" || !*cmdline.NTP.Enabled {
		t.Errorf("Merge result shares slices with its inputs")
	}
}

func TestMergeNil(t *testing.T) {
	if got := Merge(nil); !reflect.DeepEqual(got, &Config{}) {
		t.Errorf("Merge(nil) = %+v", got)
	}
	c := mustParse(t, "x", "hostname: a\nrke2: {token: t}\n")
	if got := Merge(nil, c); got.Hostname != "a" || got.RKE2.Token() != "t" {
		t.Errorf("Merge(nil, c) = %+v", got)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		doc, defaultRole, want string
	}{
		{"role: server\n", "", ""},
		{"rke2: {token: t}\n", "server", ""},
		{"role: server\nrke2: {server: 'https://10.0.0.1:9345', token: t}\n", "", ""},
		{"role: agent\nrke2: {server: 'https://10.0.0.1:9345', token: t}\n", "", ""},
		{"role: server\nrke2: {server: 'https://10.0.0.1:9345'}\n", "", "config: rke2.token is not set; a server joining another"},
		{"role: agent\nrke2: {token: t}\n", "", "config: rke2.server is not set; an agent joins a server"},
		{"role: agent\n", "", "rke2.token is not set"},
		{"hostname: a\n", "", `config: role "" is not a role`},
	} {
		err := mustParse(t, "x", tc.doc).Validate(tc.defaultRole)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("Validate(%q) of %q = %v, want %q", tc.defaultRole, tc.doc, err, tc.want)
		}
	}
}
