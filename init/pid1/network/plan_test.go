package network

import (
	"errors"
	"net"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/rke2os/rke2os/init/shared/config"
)

func mac(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

// links of a typical VM: lo, two virtio NICs, and what a running node adds
// (cni0, flannel.1, a veth).
var vmLinks = []linkInfo{
	{Index: 1, Name: "lo", MAC: net.HardwareAddr{0, 0, 0, 0, 0, 0}, Carrier: true, Up: true},
	{Index: 2, Name: "eth0", MAC: mac("52:54:00:00:00:01"), Physical: true, Carrier: true},
	{Index: 3, Name: "eth1", MAC: mac("52:54:00:00:00:02"), Physical: true},
	{Index: 4, Name: "cni0", MAC: mac("aa:00:00:00:00:04"), Carrier: true, Up: true},
	{Index: 5, Name: "flannel.1", MAC: mac("aa:00:00:00:00:05"), Carrier: true, Up: true},
	{Index: 6, Name: "veth1234", MAC: mac("aa:00:00:00:00:06"), Carrier: true, Up: true},
}

func TestPlanInterfaces(t *testing.T) {
	gw := netip.MustParseAddr("10.0.0.1")
	defaultRoute := route{
		Route:    config.Route{To: netip.MustParsePrefix("0.0.0.0/0"), Via: gw},
		Key:      "gateway4 10.0.0.1",
		Gateway4: true,
	}
	extra := config.Route{To: netip.MustParsePrefix("10.20.0.0/16"), Via: netip.MustParseAddr("10.0.0.254"), Metric: 100}
	addr := netip.MustParsePrefix("10.0.0.10/24")

	tests := []struct {
		name    string
		ifaces  []config.Interface
		links   []linkInfo
		want    []linkPlan
		wantErr string // substring of the joined errors
		noLink  bool   // the error is (also) a missing link, worth waiting for
	}{{
		name:   "by name, static",
		ifaces: []config.Interface{{Name: "eth0", Addresses: []netip.Prefix{addr}, Gateway4: gw, Routes: []config.Route{extra}, MTU: 9000}},
		links:  vmLinks,
		want: []linkPlan{{
			Item: 0, What: "network.interfaces[0] (name eth0)", Index: 2, Name: "eth0", MAC: mac("52:54:00:00:00:01"),
			MTU: 9000, Addresses: []netip.Prefix{addr},
			Routes: []route{defaultRoute, {Route: extra, Key: "routes[0] (to 10.20.0.0/16 via 10.0.0.254)"}},
		}},
	}, {
		name:   "by mac keeps the name",
		ifaces: []config.Interface{{MAC: mac("52:54:00:00:00:02"), DHCP4: true}},
		links:  vmLinks,
		want: []linkPlan{{
			Item: 0, What: "network.interfaces[0] (mac 52:54:00:00:00:02)", Index: 3, Name: "eth1", MAC: mac("52:54:00:00:00:02"),
			DHCP: true, DHCPMetric: 1024,
		}},
	}, {
		name:   "by mac with a name renames",
		ifaces: []config.Interface{{MAC: mac("52:54:00:00:00:02"), Name: "lan0", DHCP4: true}},
		links:  vmLinks,
		want: []linkPlan{{
			Item: 0, What: "network.interfaces[0] (mac 52:54:00:00:00:02, name lan0)", Index: 3, Name: "lan0", From: "eth1",
			MAC: mac("52:54:00:00:00:02"), DHCP: true, DHCPMetric: 1024,
		}},
	}, {
		name:   "mac and name already right: no rename",
		ifaces: []config.Interface{{MAC: mac("52:54:00:00:00:01"), Name: "eth0"}},
		links:  vmLinks,
		want: []linkPlan{{
			Item: 0, What: "network.interfaces[0] (mac 52:54:00:00:00:01, name eth0)", Index: 2, Name: "eth0", MAC: mac("52:54:00:00:00:01"),
		}},
	}, {
		name: "swap names",
		ifaces: []config.Interface{
			{MAC: mac("52:54:00:00:00:01"), Name: "eth1"},
			{MAC: mac("52:54:00:00:00:02"), Name: "eth0"},
		},
		links: vmLinks,
		want: []linkPlan{
			{Item: 0, What: "network.interfaces[0] (mac 52:54:00:00:00:01, name eth1)", Index: 2, Name: "eth1", From: "eth0", MAC: mac("52:54:00:00:00:01")},
			{Item: 1, What: "network.interfaces[1] (mac 52:54:00:00:00:02, name eth0)", Index: 3, Name: "eth0", From: "eth1", MAC: mac("52:54:00:00:00:02")},
		},
	}, {
		name: "DHCP metrics follow config order",
		ifaces: []config.Interface{
			{Name: "eth1", DHCP4: true},
			{Name: "eth0", DHCP4: true},
		},
		links: vmLinks,
		want: []linkPlan{
			{Item: 0, What: "network.interfaces[0] (name eth1)", Index: 3, Name: "eth1", MAC: mac("52:54:00:00:00:02"), DHCP: true, DHCPMetric: 1024},
			{Item: 1, What: "network.interfaces[1] (name eth0)", Index: 2, Name: "eth0", MAC: mac("52:54:00:00:00:01"), DHCP: true, DHCPMetric: 1025},
		},
	}, {
		name: "missing mac names the entry and lists the links",
		ifaces: []config.Interface{
			{Name: "eth0", DHCP4: true},
			{MAC: mac("52:54:00:99:99:99")},
		},
		links: vmLinks[:3],
		want: []linkPlan{
			{Item: 0, What: "network.interfaces[0] (name eth0)", Index: 2, Name: "eth0", MAC: mac("52:54:00:00:00:01"), DHCP: true, DHCPMetric: 1024},
		},
		wantErr: "network.interfaces[1] (mac 52:54:00:99:99:99): no such link; links present: lo eth0 (52:54:00:00:00:01) eth1 (52:54:00:00:00:02)",
		noLink:  true,
	}, {
		name:    "missing name",
		ifaces:  []config.Interface{{Name: "ens3"}},
		links:   vmLinks[:2],
		wantErr: "network.interfaces[0] (name ens3): no such link; links present: lo eth0 (52:54:00:00:00:01)",
		noLink:  true,
	}, {
		name: "two entries, one link",
		ifaces: []config.Interface{
			{Name: "eth0"},
			{MAC: mac("52:54:00:00:00:01")},
		},
		links:   vmLinks,
		want:    []linkPlan{{Item: 0, What: "network.interfaces[0] (name eth0)", Index: 2, Name: "eth0", MAC: mac("52:54:00:00:00:01")}},
		wantErr: "network.interfaces[1] (mac 52:54:00:00:00:01): is the same link (eth0) as network.interfaces[0]; merge the two entries",
	}, {
		name:    "rename onto a link that keeps its name",
		ifaces:  []config.Interface{{MAC: mac("52:54:00:00:00:02"), Name: "eth0"}},
		links:   vmLinks,
		wantErr: "network.interfaces[0] (mac 52:54:00:00:00:02, name eth0): cannot rename eth1 to eth0: eth0 is another link (52:54:00:00:00:01) that no entry renames",
	}, {
		name:   "shared mac: the physical link wins",
		ifaces: []config.Interface{{MAC: mac("52:54:00:00:00:01")}},
		links: append(vmLinks[:3:3],
			linkInfo{Index: 7, Name: "eth0.100", MAC: mac("52:54:00:00:00:01")}),
		want: []linkPlan{{Item: 0, What: "network.interfaces[0] (mac 52:54:00:00:00:01)", Index: 2, Name: "eth0", MAC: mac("52:54:00:00:00:01")}},
	}, {
		name:   "shared mac, no physical link",
		ifaces: []config.Interface{{MAC: mac("aa:00:00:00:00:09")}},
		links: []linkInfo{
			{Index: 8, Name: "br0", MAC: mac("aa:00:00:00:00:09")},
			{Index: 9, Name: "br0.5", MAC: mac("aa:00:00:00:00:09")},
		},
		wantErr: "network.interfaces[0] (mac aa:00:00:00:00:09): several links have this MAC",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := planInterfaces(tt.ifaces, tt.links)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("plans:\n got %+v\nwant %+v", got, tt.want)
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("error: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("error %v, want one containing %q", err, tt.wantErr)
			}
			var missing *errNoLink
			if got := errors.As(err, &missing); got != tt.noLink {
				t.Errorf("missing link: %v, want %v (err %v)", got, tt.noLink, err)
			}
		})
	}
}

func TestPlanAuto(t *testing.T) {
	tests := []struct {
		name  string
		links []linkInfo
		want  []string
	}{
		{"only physical links with carrier", vmLinks, []string{"eth0"}},
		{"name order, metrics in that order", []linkInfo{
			{Index: 3, Name: "ens4", Physical: true, Carrier: true},
			{Index: 2, Name: "ens3", Physical: true, Carrier: true},
			{Index: 4, Name: "ens5", Physical: true},
		}, []string{"ens3", "ens4"}},
		{"none", vmLinks[:1], nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plans := planAuto(tt.links)
			var got []string
			for i, p := range plans {
				got = append(got, p.Name)
				if !p.DHCP || p.DHCPMetric != dhcpMetric+uint32(i) || p.Item != -1 || p.From != "" {
					t.Errorf("plan %d: %+v, want automatic DHCP with metric %d", i, p, dhcpMetric+i)
				}
				if !strings.Contains(p.What, "automatic DHCP") {
					t.Errorf("plan %d names itself %q", i, p.What)
				}
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("links %v, want %v", got, tt.want)
			}
		})
	}
}
