package network

import (
	"bytes"
	"log/slog"
	"net"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/rke2os/rke2os/init/shared/config"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func ack(t *testing.T, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	t.Helper()
	m, err := dhcpv4.New(append([]dhcpv4.Modifier{dhcpv4.WithMessageType(dhcpv4.MessageTypeAck)}, mods...)...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestLeaseFromACK(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	ip := func(s string) net.IP { return net.ParseIP(s).To4() }
	tests := []struct {
		name    string
		mods    []dhcpv4.Modifier
		want    *Lease
		wantErr bool
	}{{
		name: "full lease",
		mods: []dhcpv4.Modifier{
			dhcpv4.WithYourIP(ip("10.0.2.15")),
			dhcpv4.WithNetmask(net.CIDRMask(24, 32)),
			dhcpv4.WithOption(dhcpv4.OptServerIdentifier(ip("10.0.2.2"))),
			dhcpv4.WithLeaseTime(86400),
			dhcpv4.WithRouter(ip("10.0.2.2"), ip("10.0.2.254")),
			dhcpv4.WithDNS(ip("10.0.2.3"), ip("1.1.1.1")),
			dhcpv4.WithDomainSearchList("lab.example", "example"),
			dhcpv4.WithOption(dhcpv4.OptNTPServers(ip("10.0.2.2"), ip("0.0.0.0"), ip("192.0.2.123"))),
			dhcpv4.WithOption(dhcpv4.OptHostName("node-7")),
			dhcpv4.WithGeneric(dhcpv4.OptionInterfaceMTU, []byte{0x05, 0xaa}),
		},
		want: &Lease{
			Address: netip.MustParsePrefix("10.0.2.15/24"), Router: netip.MustParseAddr("10.0.2.2"),
			Server: netip.MustParseAddr("10.0.2.2"), DNS: addrs("10.0.2.3", "1.1.1.1"),
			Search: []string{"lab.example", "example"}, NTP: addrs("10.0.2.2", "192.0.2.123"), Hostname: "node-7", MTU: 1450,
			Duration: 24 * time.Hour, T1: 12 * time.Hour, T2: 21 * time.Hour, Obtained: now,
		},
	}, {
		name: "minimal: classful mask, default lease time, domain name as search",
		mods: []dhcpv4.Modifier{
			dhcpv4.WithYourIP(ip("172.16.5.9")),
			dhcpv4.WithOption(dhcpv4.OptDomainName("corp.example")),
		},
		want: &Lease{
			Address: netip.MustParsePrefix("172.16.5.9/16"), Search: []string{"corp.example"},
			Duration: time.Hour, T1: 30 * time.Minute, T2: 52*time.Minute + 30*time.Second, Obtained: now,
		},
	}, {
		name: "T1 and T2 from the server; a tiny MTU is ignored",
		mods: []dhcpv4.Modifier{
			dhcpv4.WithYourIP(ip("192.168.1.20")),
			dhcpv4.WithLeaseTime(4),
			dhcpv4.WithOption(dhcpv4.Option{Code: dhcpv4.OptionRenewTimeValue, Value: dhcpv4.Duration(1 * time.Second)}),
			dhcpv4.WithOption(dhcpv4.Option{Code: dhcpv4.OptionRebindingTimeValue, Value: dhcpv4.Duration(3 * time.Second)}),
			dhcpv4.WithGeneric(dhcpv4.OptionInterfaceMTU, []byte{0, 10}),
		},
		want: &Lease{
			Address:  netip.MustParsePrefix("192.168.1.20/24"),
			Duration: 4 * time.Second, T1: time.Second, T2: 3 * time.Second, Obtained: now,
		},
	}, {
		name: "T1 and T2 out of order are replaced by the defaults",
		mods: []dhcpv4.Modifier{
			dhcpv4.WithYourIP(ip("192.168.1.20")),
			dhcpv4.WithLeaseTime(100),
			dhcpv4.WithOption(dhcpv4.Option{Code: dhcpv4.OptionRenewTimeValue, Value: dhcpv4.Duration(90 * time.Second)}),
			dhcpv4.WithOption(dhcpv4.Option{Code: dhcpv4.OptionRebindingTimeValue, Value: dhcpv4.Duration(200 * time.Second)}),
		},
		want: &Lease{
			Address:  netip.MustParsePrefix("192.168.1.20/24"),
			Duration: 100 * time.Second, T1: 50 * time.Second, T2: 87500 * time.Millisecond, Obtained: now,
		},
	}, {
		name: "classless routes replace the router option",
		mods: []dhcpv4.Modifier{
			dhcpv4.WithYourIP(ip("10.128.0.5")),
			dhcpv4.WithNetmask(net.CIDRMask(32, 32)),
			dhcpv4.WithLeaseTime(3600),
			dhcpv4.WithRouter(ip("10.128.0.99")),
			dhcpv4.WithOption(dhcpv4.OptClasslessStaticRoute(
				&dhcpv4.Route{Dest: &net.IPNet{IP: ip("10.128.0.1"), Mask: net.CIDRMask(32, 32)}, Router: ip("0.0.0.0")},
				&dhcpv4.Route{Dest: &net.IPNet{IP: ip("0.0.0.0"), Mask: net.CIDRMask(0, 32)}, Router: ip("10.128.0.1")},
			)),
		},
		want: &Lease{
			Address: netip.MustParsePrefix("10.128.0.5/32"), Router: netip.MustParseAddr("10.128.0.1"),
			Routes: []config.Route{
				{To: netip.MustParsePrefix("10.128.0.1/32")},
				{To: netip.MustParsePrefix("0.0.0.0/0"), Via: netip.MustParseAddr("10.128.0.1")},
			},
			Duration: time.Hour, T1: 30 * time.Minute, T2: 52*time.Minute + 30*time.Second, Obtained: now,
		},
	}, {
		name:    "no address",
		mods:    []dhcpv4.Modifier{dhcpv4.WithLeaseTime(3600)},
		wantErr: true,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := leaseFromACK(ack(t, tt.mods...), now, slog.New(slog.DiscardHandler))
			if (err != nil) != tt.wantErr {
				t.Fatalf("error %v, want error %v", err, tt.wantErr)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("lease:\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestInherit(t *testing.T) {
	prev := &Lease{
		Address: netip.MustParsePrefix("10.0.2.15/24"), Router: netip.MustParseAddr("10.0.2.2"),
		Server: netip.MustParseAddr("10.0.2.2"), DNS: addrs("10.0.2.3"), Search: []string{"lab.example"},
		NTP: addrs("10.0.2.123"), Hostname: "node-7", MTU: 1450,
	}
	// A renewal ACK with the address and lease time alone keeps the rest.
	a := ack(t, dhcpv4.WithYourIP(net.ParseIP("10.0.2.15").To4()), dhcpv4.WithLeaseTime(600))
	l, err := leaseFromACK(a, time.Now(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	l.inherit(prev, a)
	want := *prev
	want.Duration, want.T1, want.T2, want.Obtained = l.Duration, l.T1, l.T2, l.Obtained
	if !reflect.DeepEqual(l, &want) {
		t.Errorf("inherited:\n got %+v\nwant %+v", l, &want)
	}

	// What the renewal does say wins.
	a = ack(t, dhcpv4.WithYourIP(net.ParseIP("10.0.2.15").To4()), dhcpv4.WithNetmask(net.CIDRMask(16, 32)), dhcpv4.WithDNS(net.ParseIP("9.9.9.9").To4()))
	l, _ = leaseFromACK(a, time.Now(), slog.New(slog.DiscardHandler))
	l.inherit(prev, a)
	if l.Address.Bits() != 16 || !reflect.DeepEqual(l.DNS, addrs("9.9.9.9")) || l.Router != prev.Router {
		t.Errorf("renewal with new values: %+v", l)
	}
	a = ack(t, dhcpv4.WithYourIP(net.ParseIP("10.0.2.15").To4()), dhcpv4.WithOption(dhcpv4.OptNTPServers(net.ParseIP("10.0.2.124").To4())))
	l, _ = leaseFromACK(a, time.Now(), slog.New(slog.DiscardHandler))
	l.inherit(prev, a)
	if !reflect.DeepEqual(l.NTP, addrs("10.0.2.124")) {
		t.Errorf("renewal with new NTP servers: %v", l.NTP)
	}
}

func TestLeaseClone(t *testing.T) {
	l := &Lease{DNS: addrs("10.0.2.3"), NTP: addrs("10.0.2.123"), Search: []string{"lab.example"},
		Routes: []config.Route{{To: netip.MustParsePrefix("0.0.0.0/0"), Via: netip.MustParseAddr("10.0.2.2")}}}
	c := l.clone()
	if !reflect.DeepEqual(c, l) {
		t.Fatalf("clone %+v, want %+v", c, l)
	}
	c.NTP[0], c.DNS[0], c.Search[0], c.Routes[0].Via = netip.Addr{}, netip.Addr{}, "x", netip.Addr{}
	if l.NTP[0] != netip.MustParseAddr("10.0.2.123") || l.DNS[0] != netip.MustParseAddr("10.0.2.3") || l.Search[0] != "lab.example" || !l.Routes[0].Via.IsValid() {
		t.Errorf("clone shares slices with the lease: %+v", l)
	}
	if (*Lease)(nil).clone() != nil {
		t.Error("clone of nil is not nil")
	}
}

func TestRequestedOptions(t *testing.T) {
	m, err := dhcpv4.New(requestedOptions)
	if err != nil {
		t.Fatal(err)
	}
	if !m.IsOptionRequested(dhcpv4.OptionNTPServers) {
		t.Errorf("the parameter request list %v does not ask for NTP servers (option 42)", m.ParameterRequestList())
	}
}

func TestLeaseRoutes(t *testing.T) {
	type r struct {
		dst, gw string
		scope   netlink.Scope
	}
	tests := []struct {
		name  string
		lease Lease
		want  []r
	}{{
		name:  "router in the subnet",
		lease: Lease{Address: netip.MustParsePrefix("10.0.2.15/24"), Router: netip.MustParseAddr("10.0.2.2")},
		want:  []r{{"0.0.0.0/0", "10.0.2.2", netlink.SCOPE_UNIVERSE}},
	}, {
		name:  "router outside a /32 lease gets a host route",
		lease: Lease{Address: netip.MustParsePrefix("10.128.0.5/32"), Router: netip.MustParseAddr("10.128.0.1")},
		want:  []r{{"10.128.0.1/32", "<nil>", netlink.SCOPE_LINK}, {"0.0.0.0/0", "10.128.0.1", netlink.SCOPE_UNIVERSE}},
	}, {
		name: "classless routes as given",
		lease: Lease{
			Address: netip.MustParsePrefix("10.0.0.5/24"), Router: netip.MustParseAddr("10.0.0.1"),
			Routes: []config.Route{
				{To: netip.MustParsePrefix("10.9.0.0/16"), Via: netip.MustParseAddr("10.0.0.254")},
				{To: netip.MustParsePrefix("0.0.0.0/0"), Via: netip.MustParseAddr("10.0.0.1")},
			},
		},
		want: []r{{"10.9.0.0/16", "10.0.0.254", netlink.SCOPE_UNIVERSE}, {"0.0.0.0/0", "10.0.0.1", netlink.SCOPE_UNIVERSE}},
	}, {
		name:  "no router, no routes",
		lease: Lease{Address: netip.MustParsePrefix("10.0.2.15/24")},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []r
			for _, rt := range leaseRoutes(7, &tt.lease, 1025) {
				got = append(got, r{rt.Dst.String(), rt.Gw.String(), rt.Scope})
				if rt.LinkIndex != 7 || rt.Priority != 1025 || rt.Protocol != unix.RTPROT_DHCP || !rt.Src.Equal(tt.lease.Address.Addr().AsSlice()) {
					t.Errorf("route %v: want link 7, metric 1025, proto dhcp, src %s", rt, tt.lease.Address.Addr())
				}
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("routes %v, want %v", got, tt.want)
			}
		})
	}
}

func TestAddrLifetime(t *testing.T) {
	for d, want := range map[time.Duration]int{
		4 * time.Second:                        4,
		4500 * time.Millisecond:                4,
		24 * time.Hour:                         86400,
		0xffffffff * time.Second:               0, // infinite lease: permanent address
		0:                                      0,
		time.Duration(1<<62) * time.Nanosecond: 0,
	} {
		if got := addrLifetime(d); got != want {
			t.Errorf("addrLifetime(%v) = %d, want %d", d, got, want)
		}
	}
}

// TestLeaseFromACKRefusesBadNames checks that names from the server that are
// not DNS names never reach the lease: a newline in a search domain would
// add lines of the server's choosing to resolv.conf. The rest of the lease
// stays usable.
func TestLeaseFromACKRefusesBadNames(t *testing.T) {
	ip := func(s string) net.IP { return net.ParseIP(s).To4() }
	base := []dhcpv4.Modifier{
		dhcpv4.WithYourIP(ip("10.0.2.15")),
		dhcpv4.WithNetmask(net.CIDRMask(24, 32)),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(ip("10.0.2.2"))),
		dhcpv4.WithDNS(ip("10.0.2.3")),
	}
	tests := []struct {
		name         string
		mods         []dhcpv4.Modifier
		wantSearch   []string
		wantHostname string
		wantWarn     []string // what the warnings say, each
	}{{
		name:       "newline in a search domain",
		mods:       []dhcpv4.Modifier{dhcpv4.WithDomainSearchList("lab.example", "evil\nnameserver 6.6.6.6", "example")},
		wantSearch: []string{"lab.example", "example"},
		wantWarn:   []string{"option=119", `"evil\nnameserver 6.6.6.6"`, "server=10.0.2.2"},
	}, {
		name:       "space in a search domain",
		mods:       []dhcpv4.Modifier{dhcpv4.WithDomainSearchList("a b.example")},
		wantSearch: nil,
		wantWarn:   []string{"option=119", "server=10.0.2.2"},
	}, {
		name:       "newline in the domain name",
		mods:       []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptDomainName("corp.example\noptions ndots:15"))},
		wantSearch: nil,
		wantWarn:   []string{"option=15", "server=10.0.2.2"},
	}, {
		name: "a bad search list falls back to a good domain name",
		mods: []dhcpv4.Modifier{
			dhcpv4.WithDomainSearchList("bad\rname"),
			dhcpv4.WithOption(dhcpv4.OptDomainName("corp.example")),
		},
		wantSearch: []string{"corp.example"},
		wantWarn:   []string{"option=119"},
	}, {
		name:       "control character in the host name",
		mods:       []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptHostName("node-7\x1b[2J"))},
		wantSearch: nil,
		wantWarn:   []string{"option=12", "server=10.0.2.2"},
	}, {
		name:         "good names pass",
		mods:         []dhcpv4.Modifier{dhcpv4.WithDomainSearchList("lab.example"), dhcpv4.WithOption(dhcpv4.OptHostName("node-7.lab.example"))},
		wantSearch:   []string{"lab.example"},
		wantHostname: "node-7.lab.example",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			l, err := leaseFromACK(ack(t, append(slices.Clone(base), tt.mods...)...), time.Now(), slog.New(slog.NewTextHandler(&logs, nil)))
			if err != nil {
				t.Fatalf("the lease was refused: %v", err)
			}
			if !reflect.DeepEqual(l.Search, tt.wantSearch) || l.Hostname != tt.wantHostname {
				t.Errorf("search %q, host name %q; want %q, %q", l.Search, l.Hostname, tt.wantSearch, tt.wantHostname)
			}
			if l.Address != netip.MustParsePrefix("10.0.2.15/24") || !reflect.DeepEqual(l.DNS, addrs("10.0.2.3")) {
				t.Errorf("the rest of the lease was lost: %+v", l)
			}
			for _, w := range tt.wantWarn {
				if !strings.Contains(logs.String(), w) {
					t.Errorf("no warning saying %s:\n%s", w, logs.String())
				}
			}
			if len(tt.wantWarn) == 0 && logs.Len() > 0 {
				t.Errorf("warnings for good names:\n%s", logs.String())
			}
		})
	}
}
