package main

import (
	"encoding/json"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

// v4Env is a typical IPv4 lease, with flanneld masquerading.
var v4Env = &subnetEnv{
	Networks: []netip.Prefix{netip.MustParsePrefix("10.42.0.0/16")},
	Subnet:   netip.MustParsePrefix("10.42.3.0/24"),
	MTU:      1450,
	IPMasq:   true,
}

func TestParseNetConfDefaults(t *testing.T) {
	n, err := parseNetConf([]byte(`{"name":"cbr0","type":"flannel"}`))
	if err != nil {
		t.Fatal(err)
	}
	if n.SubnetFile != "/run/flannel/subnet.env" || n.DataDir != "/var/lib/cni/flannel" || n.CNIVersion != "0.1.0" {
		t.Errorf("defaults: subnetFile %q dataDir %q cniVersion %q", n.SubnetFile, n.DataDir, n.CNIVersion)
	}
	n, err = parseNetConf([]byte(`{"name":"cbr0","type":"flannel","cniVersion":"1.0.0","subnetFile":"/s","dataDir":"/d"}`))
	if err != nil {
		t.Fatal(err)
	}
	if n.SubnetFile != "/s" || n.DataDir != "/d" || n.CNIVersion != "1.0.0" {
		t.Errorf("explicit: subnetFile %q dataDir %q cniVersion %q", n.SubnetFile, n.DataDir, n.CNIVersion)
	}
	if _, err := parseNetConf([]byte(`{"name":`)); err == nil || !strings.HasPrefix(err.Error(), "flannel: parse network config: ") {
		t.Errorf("bad JSON: error %v", err)
	}
}

func TestDelegateConfig(t *testing.T) {
	dual := &subnetEnv{
		Networks:     []netip.Prefix{netip.MustParsePrefix("10.42.0.0/16"), netip.MustParsePrefix("10.43.0.0/16")},
		Subnet:       netip.MustParsePrefix("10.42.3.0/24"),
		IPv6Networks: []netip.Prefix{netip.MustParsePrefix("fd00:42::/56")},
		IPv6Subnet:   netip.MustParsePrefix("fd00:42:0:3::/64"),
		MTU:          1400,
		IPMasq:       false,
	}
	tests := []struct {
		name    string
		conf    string // the network config, as on stdin
		env     *subnetEnv
		want    string // the delegate config; "" when an error is wanted
		wantErr string
	}{{
		name: "defaults, flanneld masquerades",
		conf: `{"cniVersion":"1.0.0","name":"cbr0","type":"flannel"}`,
		env:  v4Env,
		want: `{"cniVersion":"1.0.0","name":"cbr0","type":"bridge","mtu":1450,"ipMasq":false,
			"isGateway":true,"hairpinMode":true,
			"ipam":{"type":"host-local","ranges":[[{"subnet":"10.42.3.0/24"}]],"routes":[{"dst":"10.42.0.0/16"}]}}`,
	}, {
		name: "dual stack, several networks, bridge masquerades",
		conf: `{"cniVersion":"0.4.0","name":"cbr0","type":"flannel"}`,
		env:  dual,
		want: `{"cniVersion":"0.4.0","name":"cbr0","type":"bridge","mtu":1400,"ipMasq":true,
			"isGateway":true,"hairpinMode":true,
			"ipam":{"type":"host-local",
				"ranges":[[{"subnet":"10.42.3.0/24"}],[{"subnet":"fd00:42:0:3::/64"}]],
				"routes":[{"dst":"10.42.0.0/16"},{"dst":"10.43.0.0/16"},{"dst":"fd00:42::/56"}]}}`,
	}, {
		name: "ptp delegate gets no bridge keys",
		conf: `{"cniVersion":"1.0.0","name":"cbr0","type":"flannel","delegate":{"type":"ptp"}}`,
		env:  v4Env,
		want: `{"cniVersion":"1.0.0","name":"cbr0","type":"ptp","mtu":1450,"ipMasq":false,
			"ipam":{"type":"host-local","ranges":[[{"subnet":"10.42.3.0/24"}]],"routes":[{"dst":"10.42.0.0/16"}]}}`,
	}, {
		name: "user delegate keys win, except name, cniVersion and ipam",
		conf: `{"cniVersion":"1.0.0","name":"cbr0","type":"flannel","delegate":{
			"isGateway":false,"hairpinMode":false,"mtu":1300,"ipMasq":true,"forceAddress":true,
			"isDefaultGateway":true,"bridge":"cni0","name":"other","cniVersion":"0.3.1",
			"ipam":{"type":"dhcp"}}}`,
		env: v4Env,
		want: `{"cniVersion":"1.0.0","name":"cbr0","type":"bridge","mtu":1300,"ipMasq":true,
			"isGateway":false,"hairpinMode":false,"forceAddress":true,"isDefaultGateway":true,"bridge":"cni0",
			"ipam":{"type":"host-local","ranges":[[{"subnet":"10.42.3.0/24"}]],"routes":[{"dst":"10.42.0.0/16"}]}}`,
	}, {
		name: "user ipam keys kept, subnet and ranges replaced, no duplicate route",
		conf: `{"cniVersion":"1.0.0","name":"cbr0","type":"flannel","ipam":{
			"type":"host-local","dataDir":"/var/lib/cni/networks2","subnet":"192.168.0.0/24",
			"ranges":[[{"subnet":"192.168.1.0/24"}]],
			"routes":[{"dst":"192.168.100.0/24","gw":"10.42.3.254"},{"dst":"10.42.0.1/16"}]}}`,
		env: v4Env,
		want: `{"cniVersion":"1.0.0","name":"cbr0","type":"bridge","mtu":1450,"ipMasq":false,
			"isGateway":true,"hairpinMode":true,
			"ipam":{"type":"host-local","dataDir":"/var/lib/cni/networks2",
				"ranges":[[{"subnet":"10.42.3.0/24"}]],
				"routes":[{"dst":"192.168.100.0/24","gw":"10.42.3.254"},{"dst":"10.42.0.1/16"}]}}`,
	}, {
		name: "user routes kept, network route appended",
		conf: `{"cniVersion":"1.0.0","name":"cbr0","type":"flannel","ipam":{"routes":[{"dst":"0.0.0.0/0"}]}}`,
		env:  v4Env,
		want: `{"cniVersion":"1.0.0","name":"cbr0","type":"bridge","mtu":1450,"ipMasq":false,
			"isGateway":true,"hairpinMode":true,
			"ipam":{"type":"host-local","ranges":[[{"subnet":"10.42.3.0/24"}]],"routes":[{"dst":"0.0.0.0/0"},{"dst":"10.42.0.0/16"}]}}`,
	}, {
		name: "other ipam type kept",
		conf: `{"cniVersion":"1.0.0","name":"cbr0","type":"flannel","ipam":{"type":"whereabouts"}}`,
		env:  v4Env,
		want: `{"cniVersion":"1.0.0","name":"cbr0","type":"bridge","mtu":1450,"ipMasq":false,
			"isGateway":true,"hairpinMode":true,
			"ipam":{"type":"whereabouts","ranges":[[{"subnet":"10.42.3.0/24"}]],"routes":[{"dst":"10.42.0.0/16"}]}}`,
	}, {
		name: "runtimeConfig and capabilities passed through",
		conf: `{"cniVersion":"1.0.0","name":"cbr0","type":"flannel",
			"capabilities":{"portMappings":true,"bandwidth":true},
			"runtimeConfig":{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}],
				"bandwidth":{"ingressRate":12345678901234567}}}`,
		env: v4Env,
		want: `{"cniVersion":"1.0.0","name":"cbr0","type":"bridge","mtu":1450,"ipMasq":false,
			"isGateway":true,"hairpinMode":true,
			"ipam":{"type":"host-local","ranges":[[{"subnet":"10.42.3.0/24"}]],"routes":[{"dst":"10.42.0.0/16"}]},
			"capabilities":{"portMappings":true,"bandwidth":true},
			"runtimeConfig":{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}],
				"bandwidth":{"ingressRate":12345678901234567}}}`,
	}, {
		name:    "delegate type is a path",
		conf:    `{"cniVersion":"1.0.0","name":"cbr0","type":"flannel","delegate":{"type":"../../bin/sh"}}`,
		env:     v4Env,
		wantErr: "flannel: delegate type ../../bin/sh is not a plugin name",
	}, {
		name:    "delegate type not a string",
		conf:    `{"cniVersion":"1.0.0","name":"cbr0","type":"flannel","delegate":{"type":5}}`,
		env:     v4Env,
		wantErr: "is not a plugin name",
	}, {
		name:    "ipam routes not a list",
		conf:    `{"cniVersion":"1.0.0","name":"cbr0","type":"flannel","ipam":{"routes":{"dst":"0.0.0.0/0"}}}`,
		env:     v4Env,
		wantErr: "flannel: ipam routes: want a list",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := parseNetConf([]byte(tt.conf))
			if err != nil {
				t.Fatal(err)
			}
			d, err := delegateConfig(n, tt.env)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := json.Marshal(d)
			if err != nil {
				t.Fatal(err)
			}
			assertSameJSON(t, got, []byte(tt.want))
		})
	}
}

// TestDelegateConfigLeavesInputAlone makes sure the user's maps are copied,
// not edited: the same netConf must give the same delegate config twice.
func TestDelegateConfigLeavesInputAlone(t *testing.T) {
	n, err := parseNetConf([]byte(`{"name":"cbr0","delegate":{"bridge":"cni0"},"ipam":{"subnet":"1.2.3.0/24","routes":[]}}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := delegateConfig(n, v4Env); err != nil {
		t.Fatal(err)
	}
	if len(n.Delegate) != 1 || len(n.IPAM) != 2 || len(n.IPAM["routes"].([]any)) != 0 {
		t.Errorf("input changed: delegate %v ipam %v", n.Delegate, n.IPAM)
	}
}

// assertSameJSON compares two JSON documents by value, so that key order
// and spacing do not matter; numbers are compared as written.
func assertSameJSON(t *testing.T, got, want []byte) {
	t.Helper()
	g, w := decodeJSON(t, got), decodeJSON(t, want)
	if !reflect.DeepEqual(g, w) {
		gi, _ := json.MarshalIndent(g, "", "  ")
		wi, _ := json.MarshalIndent(w, "", "  ")
		t.Errorf("JSON differs\ngot:  %s\nwant: %s", gi, wi)
	}
}

func decodeJSON(t *testing.T, data []byte) any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decode %s: %v", data, err)
	}
	return v
}
