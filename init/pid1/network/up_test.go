package network

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rke2os/rke2os/init/shared/config"
	"github.com/rke2os/rke2os/internal/syncbuf"
	"github.com/vishvananda/netlink"
)

// upForTest runs Up with resolv.conf in a temporary directory and a context
// cancelled (and the DHCP clients waited for) at the end of the test.
func upForTest(t *testing.T, cfg config.Network, opts ...Option) (*State, string, error) {
	t.Helper()
	resolv := filepath.Join(t.TempDir(), "resolv.conf")
	ctx, cancel := context.WithCancel(context.Background())
	s, err := Up(ctx, cfg, append([]Option{WithResolvConf(resolv), WithLinkTimeout(3 * time.Second), WithDHCPTimeout(10 * time.Second)}, opts...)...)
	t.Cleanup(func() {
		cancel()
		select {
		case <-s.Done():
		case <-time.After(5 * time.Second):
			t.Errorf("the DHCP clients did not stop within 5s of the context's end")
		}
	})
	return s, resolv, err
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestUpStatic(t *testing.T) {
	if !inOwnNetNS(t) {
		return
	}
	vethTo(t, nil, "eth0", nil, "peer0", netip.Prefix{})
	cfg := config.Network{
		Interfaces: []config.Interface{{
			Name:      "eth0",
			MTU:       1400,
			Addresses: []netip.Prefix{netip.MustParsePrefix("10.199.0.10/24"), netip.MustParsePrefix("fd00:199::10/64")},
			Gateway4:  netip.MustParseAddr("10.199.0.1"),
			Routes: []config.Route{
				{To: netip.MustParsePrefix("10.50.0.0/16"), Via: netip.MustParseAddr("10.199.0.254"), Metric: 100},
				{To: netip.MustParsePrefix("fd00:50::/48"), Via: netip.MustParseAddr("fd00:199::1")},
			},
		}},
		DNS: config.DNS{Servers: addrs("10.199.0.53", "fd00:199::53"), Search: []string{"cluster.example"}},
	}
	s, resolv, err := upForTest(t, cfg)
	if err != nil {
		t.Fatalf("Up: %v", err)
	}

	if lo := linkByName(t, "lo"); lo.Attrs().Flags&net.FlagUp == 0 {
		t.Errorf("lo is down")
	}
	l := linkByName(t, "eth0")
	if l.Attrs().Flags&net.FlagUp == 0 || l.Attrs().MTU != 1400 {
		t.Errorf("eth0: flags %v mtu %d, want up and 1400", l.Attrs().Flags, l.Attrs().MTU)
	}
	as := addrsOn(t, "eth0")
	for _, a := range []string{"10.199.0.10/24", "fd00:199::10/64"} {
		if _, ok := as[a]; !ok {
			t.Errorf("eth0 lacks %s: %v", a, as)
		}
	}
	routes := routesOn(t, "eth0")
	for _, r := range []string{
		"default via 10.199.0.1 metric 0 proto static",
		"10.50.0.0/16 via 10.199.0.254 metric 100 proto static",
		"fd00:50::/48 via fd00:199::1 metric 1024 proto static", // the kernel's default IPv6 metric
	} {
		if !contains(routes, r) {
			t.Errorf("eth0 lacks route %q: %q", r, routes)
		}
	}
	want := "# Written by rke2-init from the node config (network.dns) and DHCP leases.\n" +
		"nameserver 10.199.0.53\nnameserver fd00:199::53\nsearch cluster.example\n"
	if got := readFile(t, resolv); got != want {
		t.Errorf("resolv.conf:\n%s\nwant:\n%s", got, want)
	}

	ifs := s.Interfaces()
	if len(ifs) != 1 {
		t.Fatalf("state: %+v", ifs)
	}
	got := ifs[0]
	if got.Name != "eth0" || got.Item != "network.interfaces[0] (name eth0)" || got.Gateway != cfg.Interfaces[0].Gateway4 ||
		!reflect.DeepEqual(got.Addresses, cfg.Interfaces[0].Addresses) || !reflect.DeepEqual(got.Routes, cfg.Interfaces[0].Routes) ||
		got.MTU != 1400 || got.DHCP || got.Lease != nil {
		t.Errorf("state: %+v", got)
	}
	if ip := s.NodeIP(); ip != netip.MustParseAddr("10.199.0.10") {
		t.Errorf("NodeIP %v, want 10.199.0.10", ip)
	}
	if err := s.Wait(context.Background()); err != nil {
		t.Errorf("Wait without DHCP: %v", err)
	}
	t.Logf("state: %s", s)

	// Up again (a restarted network step) changes nothing and fails nothing.
	if _, _, err := upForTest(t, cfg); err != nil {
		t.Errorf("second Up: %v", err)
	}
	if again := routesOn(t, "eth0"); !reflect.DeepEqual(again, routes) {
		t.Errorf("routes after a second Up:\n%q\nwant\n%q", again, routes)
	}
}

func TestUpDHCP(t *testing.T) {
	if !inOwnNetNS(t) {
		return
	}
	lan := newNetNS(t)
	vethTo(t, lan, "eth0", nil, "p0", netip.MustParsePrefix("10.199.0.1/24"))
	srv := startDHCP(t, lan, "p0", net.IPv4(10, 199, 0, 1).To4(), &testDHCP{
		addr:     net.IPv4(10, 199, 0, 100).To4(),
		lease:    time.Hour,
		router:   net.IPv4(10, 199, 0, 1).To4(),
		dns:      []net.IP{net.IPv4(10, 199, 0, 53).To4()},
		search:   []string{"lease.example"},
		hostname: "node-7",
		mtu:      1450,
	})
	cfg := config.Network{
		Interfaces: []config.Interface{{
			Name:   "eth0",
			DHCP4:  true,
			Routes: []config.Route{{To: netip.MustParsePrefix("10.60.0.0/16"), Via: netip.MustParseAddr("10.199.0.254")}},
		}},
		DNS: config.DNS{Servers: addrs("10.0.0.53"), Search: []string{"cfg.example"}},
	}
	s, resolv, err := upForTest(t, cfg)
	if err != nil {
		t.Fatalf("Up: %v", err)
	}

	if lft, ok := addrsOn(t, "eth0")["10.199.0.100/24"]; !ok || lft <= 0 || lft > 3600 {
		t.Errorf("eth0 addresses %v: want 10.199.0.100/24 with a lifetime of at most the lease's 3600s", addrsOn(t, "eth0"))
	}
	routes := routesOn(t, "eth0")
	for _, r := range []string{
		"default via 10.199.0.1 metric 1024 proto dhcp",
		// A static route whose next hop is on the leased network comes with
		// the lease.
		"10.60.0.0/16 via 10.199.0.254 metric 0 proto static",
	} {
		if !contains(routes, r) {
			t.Errorf("eth0 lacks route %q: %q", r, routes)
		}
	}
	if mtu := linkByName(t, "eth0").Attrs().MTU; mtu != 1450 {
		t.Errorf("eth0 mtu %d, want the lease's 1450", mtu)
	}
	want := "# Written by rke2-init from the node config (network.dns) and DHCP leases.\n" +
		"nameserver 10.0.0.53\nnameserver 10.199.0.53\nsearch cfg.example lease.example\n"
	if got := readFile(t, resolv); got != want {
		t.Errorf("resolv.conf:\n%s\nwant:\n%s", got, want)
	}

	ifc := s.Interfaces()[0]
	l := ifc.Lease
	if l == nil {
		t.Fatalf("no lease in the state: %+v", ifc)
	}
	if l.Address != netip.MustParsePrefix("10.199.0.100/24") || l.Router != netip.MustParseAddr("10.199.0.1") ||
		l.Server != netip.MustParseAddr("10.199.0.1") || l.Hostname != "node-7" || l.MTU != 1450 || l.Duration != time.Hour ||
		!reflect.DeepEqual(l.DNS, addrs("10.199.0.53")) || !reflect.DeepEqual(l.Search, []string{"lease.example"}) {
		t.Errorf("lease: %+v", l)
	}
	if ifc.Gateway != l.Router || ifc.MTU != 1450 || !contains([]string{ifc.Addresses[0].String()}, "10.199.0.100/24") {
		t.Errorf("interface: %+v", ifc)
	}
	if s.Hostname() != "node-7" || s.NodeIP() != netip.MustParseAddr("10.199.0.100") {
		t.Errorf("Hostname %q NodeIP %v", s.Hostname(), s.NodeIP())
	}
	servers, search := s.DNS()
	if !reflect.DeepEqual(servers, addrs("10.0.0.53", "10.199.0.53")) || !reflect.DeepEqual(search, []string{"cfg.example", "lease.example"}) {
		t.Errorf("DNS %v %v", servers, search)
	}
	if err := s.Wait(context.Background()); err != nil {
		t.Errorf("Wait: %v", err)
	}
	if n := len(srv.renewals()); n != 0 {
		t.Errorf("%d renewals of a one-hour lease", n)
	}
	t.Logf("state: %s", s)
}

func TestDHCPRenew(t *testing.T) {
	if !inOwnNetNS(t) {
		return
	}
	lan := newNetNS(t)
	vethTo(t, lan, "eth0", nil, "p0", netip.MustParsePrefix("10.199.0.1/24"))
	srv := startDHCP(t, lan, "p0", net.IPv4(10, 199, 0, 1).To4(), &testDHCP{
		addr:   net.IPv4(10, 199, 0, 100).To4(),
		lease:  4 * time.Second,
		router: net.IPv4(10, 199, 0, 1).To4(),
	})
	s, _, err := upForTest(t, config.Network{Interfaces: []config.Interface{{Name: "eth0", DHCP4: true}}})
	if err != nil {
		t.Fatalf("Up: %v", err)
	}
	first := s.Interfaces()[0].Lease
	if first == nil || first.Duration != 4*time.Second {
		t.Fatalf("first lease: %+v", first)
	}

	// Renewals at T1 (2 s), unicast from the leased address to the server.
	eventually(t, 8*time.Second, "two renewals", func() bool { return len(srv.renewals()) >= 2 })
	for _, r := range srv.renewals() {
		if !r.ciaddr.Equal(net.IPv4(10, 199, 0, 100)) || r.peer != "10.199.0.100:68" {
			t.Errorf("renewal %+v: want ciaddr 10.199.0.100 sent from 10.199.0.100:68", r)
		}
	}
	cur := s.Interfaces()[0].Lease
	if cur == nil || cur.Renewals < 1 || !cur.Obtained.After(first.Obtained) || cur.Address != first.Address {
		t.Errorf("lease after renewals: %+v (first %+v)", cur, first)
	}

	// Past the first lease's expiry the address is still there: each
	// renewal reset the lifetime the kernel would have removed it at.
	time.Sleep(time.Until(first.Expiry().Add(time.Second)))
	lft, ok := addrsOn(t, "eth0")["10.199.0.100/24"]
	if !ok || lft <= 0 || lft > 4 {
		t.Errorf("after the first lease's expiry: addresses %v, want 10.199.0.100/24 with a lifetime of at most 4s", addrsOn(t, "eth0"))
	}
	if !contains(routesOn(t, "eth0"), "default via 10.199.0.1 metric 1024 proto dhcp") {
		t.Errorf("default route gone: %q", routesOn(t, "eth0"))
	}
}

func TestDHCPRebind(t *testing.T) {
	if !inOwnNetNS(t) {
		return
	}
	lan := newNetNS(t)
	vethTo(t, lan, "eth0", nil, "p0", netip.MustParsePrefix("10.199.0.1/24"))
	// The server that granted the lease no longer answers unicast
	// (renewals), but a server still answers broadcasts (rebinding).
	srv := &testDHCP{
		ip:     net.IPv4(10, 199, 0, 1).To4(),
		addr:   net.IPv4(10, 199, 0, 100).To4(),
		lease:  6 * time.Second,
		t1:     time.Second,
		t2:     2 * time.Second,
		router: net.IPv4(10, 199, 0, 1).To4(),
		deaf:   map[string]bool{"10.199.0.1": true},
	}
	srv.listen(t, lan, "p0", srv.ip)
	srv.listen(t, lan, "p0", net.IPv4bcast)
	s, _, err := upForTest(t, config.Network{Interfaces: []config.Interface{{Name: "eth0", DHCP4: true}}})
	if err != nil {
		t.Fatalf("Up: %v", err)
	}
	first := s.Interfaces()[0].Lease
	if first == nil || first.T1 != time.Second || first.T2 != 2*time.Second {
		t.Fatalf("first lease: %+v", first)
	}
	eventually(t, 6*time.Second, "a rebound lease", func() bool {
		l := s.Interfaces()[0].Lease
		return l != nil && l.Renewals >= 1
	})
	var unicast, broadcast int
	for _, r := range srv.renewals() {
		switch r.on {
		case "10.199.0.1":
			unicast++
		case "255.255.255.255":
			broadcast++
			if d := r.at.Sub(first.Obtained); d < first.T2 {
				t.Errorf("a broadcast renewal %v after the lease, before T2 (%v)", d, first.T2)
			}
		}
	}
	if unicast == 0 || broadcast == 0 {
		t.Errorf("renewals %+v: want unicast ones (ignored) until T2, then a broadcast one", srv.renewals())
	}
	if _, ok := addrsOn(t, "eth0")["10.199.0.100/24"]; !ok {
		t.Errorf("the address was dropped: %v", addrsOn(t, "eth0"))
	}
}

func TestDHCPLeaseLost(t *testing.T) {
	if !inOwnNetNS(t) {
		return
	}
	lan := newNetNS(t)
	vethTo(t, lan, "eth0", nil, "p0", netip.MustParsePrefix("10.199.0.1/24"))
	srv := startDHCP(t, lan, "p0", net.IPv4(10, 199, 0, 1).To4(), &testDHCP{
		addr:   net.IPv4(10, 199, 0, 100).To4(),
		lease:  4 * time.Second,
		router: net.IPv4(10, 199, 0, 1).To4(),
		dns:    []net.IP{net.IPv4(10, 199, 0, 53).To4()},
	})
	s, resolv, err := upForTest(t, config.Network{Interfaces: []config.Interface{{Name: "eth0", DHCP4: true}}})
	if err != nil {
		t.Fatalf("Up: %v", err)
	}
	// The server now refuses renewals and hands out another address.
	srv.mu.Lock()
	srv.nak = true
	srv.addr = net.IPv4(10, 199, 0, 101).To4()
	srv.dns = []net.IP{net.IPv4(10, 199, 0, 54).To4()}
	srv.mu.Unlock()

	eventually(t, 10*time.Second, "a new lease after the NAK", func() bool {
		l := s.Interfaces()[0].Lease
		return l != nil && l.Address == netip.MustParsePrefix("10.199.0.101/24")
	})
	as := addrsOn(t, "eth0")
	if _, ok := as["10.199.0.100/24"]; ok {
		t.Errorf("the refused address is still on eth0: %v", as)
	}
	if _, ok := as["10.199.0.101/24"]; !ok {
		t.Errorf("the new address is not on eth0: %v", as)
	}
	if got := readFile(t, resolv); !strings.Contains(got, "nameserver 10.199.0.54\n") || strings.Contains(got, "10.199.0.53") {
		t.Errorf("resolv.conf after the new lease:\n%s", got)
	}
}

func TestUpRenameByMAC(t *testing.T) {
	if !inOwnNetNS(t) {
		return
	}
	a, b, c := mac("52:54:00:12:34:01"), mac("52:54:00:12:34:02"), mac("52:54:00:12:34:03")
	vethTo(t, nil, "veth7", a, "peer7", netip.Prefix{})
	vethTo(t, nil, "eth0", b, "peer8", netip.Prefix{})
	vethTo(t, nil, "eth1", c, "peer9", netip.Prefix{})
	cfg := config.Network{Interfaces: []config.Interface{
		// Renamed as cloud-init does.
		{MAC: a, Name: "lan0", Addresses: []netip.Prefix{netip.MustParsePrefix("10.199.0.10/24")}},
		// Two links swapping names.
		{MAC: b, Name: "eth1", Addresses: []netip.Prefix{netip.MustParsePrefix("10.199.1.10/24")}},
		{MAC: c, Name: "eth0", Addresses: []netip.Prefix{netip.MustParsePrefix("10.199.2.10/24")}},
	}}
	s, _, err := upForTest(t, cfg)
	if err != nil {
		t.Fatalf("Up: %v", err)
	}
	for name, want := range map[string]struct {
		mac  net.HardwareAddr
		addr string
	}{
		"lan0": {a, "10.199.0.10/24"},
		"eth1": {b, "10.199.1.10/24"},
		"eth0": {c, "10.199.2.10/24"},
	} {
		l := linkByName(t, name)
		if l.Attrs().HardwareAddr.String() != want.mac.String() || l.Attrs().Flags&net.FlagUp == 0 {
			t.Errorf("%s: mac %s flags %v, want %s and up", name, l.Attrs().HardwareAddr, l.Attrs().Flags, want.mac)
		}
		if _, ok := addrsOn(t, name)[want.addr]; !ok {
			t.Errorf("%s lacks %s: %v", name, want.addr, addrsOn(t, name))
		}
	}
	if _, err := netlink.LinkByName("veth7"); err == nil {
		t.Errorf("veth7 still exists")
	}
	var names []string
	for _, ifc := range s.Interfaces() {
		names = append(names, ifc.Name)
	}
	if !reflect.DeepEqual(names, []string{"lan0", "eth1", "eth0"}) {
		t.Errorf("state names %v", names)
	}
}

func TestUpWaitsForLinks(t *testing.T) {
	if !inOwnNetNS(t) {
		return
	}
	// A link that never comes: the error names the entry and what is there.
	start := time.Now()
	_, _, err := upForTest(t, config.Network{Interfaces: []config.Interface{{MAC: mac("52:54:00:99:99:99")}}},
		WithLinkTimeout(500*time.Millisecond))
	const want = "network.interfaces[0] (mac 52:54:00:99:99:99): no such link; links present: lo"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("Up: %v, want an error containing %q", err, want)
	}
	if d := time.Since(start); d < 500*time.Millisecond {
		t.Errorf("gave up after %v, before the link timeout", d)
	}

	// A link whose driver probes late is waited for.
	go func() {
		time.Sleep(700 * time.Millisecond)
		netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "eth5", HardwareAddr: mac("52:54:00:99:99:99")}, PeerName: "peer5"})
	}()
	_, _, err = upForTest(t, config.Network{Interfaces: []config.Interface{{
		MAC: mac("52:54:00:99:99:99"), Addresses: []netip.Prefix{netip.MustParsePrefix("10.199.0.10/24")},
	}}}, WithLinkTimeout(5*time.Second))
	if err != nil {
		t.Fatalf("Up with a late link: %v", err)
	}
	if _, ok := addrsOn(t, "eth5")["10.199.0.10/24"]; !ok {
		t.Errorf("eth5: %v", addrsOn(t, "eth5"))
	}
}

func TestUpAutoDHCP(t *testing.T) {
	if !inOwnNetNS(t) {
		return
	}
	lan := newNetNS(t)
	vethTo(t, lan, "eth0", nil, "p0", netip.MustParsePrefix("10.199.0.1/24"))
	startDHCP(t, lan, "p0", net.IPv4(10, 199, 0, 1).To4(), &testDHCP{
		addr:   net.IPv4(10, 199, 0, 100).To4(),
		lease:  time.Hour,
		router: net.IPv4(10, 199, 0, 1).To4(),
		dns:    []net.IP{net.IPv4(10, 199, 0, 53).To4()},
	})
	// A virtual link with carrier, like cni0 or a veth: not picked.
	vethTo(t, nil, "veth9", nil, "peer9", netip.Prefix{})
	netlink.LinkSetUp(linkByName(t, "veth9"))
	// The test's namespace is not the one /sys shows: a fake sysfs says
	// which links have a device behind them.
	sysfs := t.TempDir()
	for _, p := range []string{"class/net/eth0/device", "class/net/veth9", "class/net/peer9"} {
		if err := os.MkdirAll(filepath.Join(sysfs, p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	s, resolv, err := upForTest(t, config.Network{}, func(o *options) { o.sysfs = sysfs })
	if err != nil {
		t.Fatalf("Up: %v", err)
	}
	ifs := s.Interfaces()
	if len(ifs) != 1 || ifs[0].Name != "eth0" || ifs[0].Lease == nil || ifs[0].Lease.Address != netip.MustParsePrefix("10.199.0.100/24") {
		t.Fatalf("state: %+v", ifs)
	}
	if !strings.Contains(ifs[0].Item, "automatic DHCP") {
		t.Errorf("item %q", ifs[0].Item)
	}
	if !contains(routesOn(t, "eth0"), "default via 10.199.0.1 metric 1024 proto dhcp") {
		t.Errorf("routes: %q", routesOn(t, "eth0"))
	}
	if got := readFile(t, resolv); !strings.Contains(got, "nameserver 10.199.0.53\n") {
		t.Errorf("resolv.conf:\n%s", got)
	}
	if _, ok := addrsOn(t, "veth9")["10.199.0.100/24"]; ok {
		t.Errorf("veth9 was configured: %v", addrsOn(t, "veth9"))
	}

	// No physical link at all: a bounded wait, then an error that says why.
	_, _, err = upForTest(t, config.Network{}, func(o *options) { o.sysfs = t.TempDir() }, WithCarrierTimeout(300*time.Millisecond))
	if err == nil || !strings.Contains(err.Error(), "no physical Ethernet link got carrier within 300ms; links present:") {
		t.Errorf("Up without physical links: %v", err)
	}
}

// A DHCP server that answers late (one that comes back after the node, after
// a power cut) does not end the boot: Up waits, says what it waits for, and
// returns once the lease is there.
func TestUpWaitsForLateDHCP(t *testing.T) {
	if !inOwnNetNS(t) {
		return
	}
	lan := newNetNS(t)
	vethTo(t, lan, "eth0", nil, "p0", netip.MustParsePrefix("10.199.0.1/24"))
	const late = 3 * time.Second
	startDHCP(t, lan, "p0", net.IPv4(10, 199, 0, 1).To4(), &testDHCP{
		addr: net.IPv4(10, 199, 0, 100).To4(), lease: time.Hour, router: net.IPv4(10, 199, 0, 1).To4(),
		mute: time.Now().Add(late),
	})
	var logs syncbuf.Buffer
	start := time.Now()
	s, _, err := upForTest(t, config.Network{Interfaces: []config.Interface{{Name: "eth0", DHCP4: true}}},
		WithDHCPTimeout(0), WithWaitReport(time.Second), WithLogger(slog.New(slog.NewTextHandler(&logs, nil))),
		func(o *options) { o.dhcpTry = 200 * time.Millisecond; o.dhcpRetries = 2 })
	if err != nil {
		t.Fatalf("Up: %v", err)
	}
	if d := time.Since(start); d < late {
		t.Errorf("Up returned after %v, before the server answered", d)
	}
	if l := s.Interfaces()[0].Lease; l == nil || l.Address != netip.MustParsePrefix("10.199.0.100/24") {
		t.Errorf("lease %+v", l)
	}
	const want = "waiting for a DHCPv4 lease on eth0 (carrier is up, no DHCP server has answered) for "
	if !strings.Contains(logs.String(), want) {
		t.Errorf("logs lack %q:\n%s", want, logs.String())
	}
}

// Without configured interfaces Up waits for a cable, however late: a link
// without carrier is reported, and DHCP starts once it has carrier.
func TestUpWaitsForCarrier(t *testing.T) {
	if !inOwnNetNS(t) {
		return
	}
	lan := newNetNS(t)
	vethTo(t, lan, "eth0", nil, "p0", netip.MustParsePrefix("10.199.0.1/24"))
	startDHCP(t, lan, "p0", net.IPv4(10, 199, 0, 1).To4(), &testDHCP{
		addr: net.IPv4(10, 199, 0, 100).To4(), lease: time.Hour, router: net.IPv4(10, 199, 0, 1).To4(),
	})
	// The peer down: eth0 has no carrier until the "cable" is plugged in.
	peer, err := lan.h.LinkByName("p0")
	if err != nil {
		t.Fatal(err)
	}
	if err := lan.h.LinkSetDown(peer); err != nil {
		t.Fatal(err)
	}
	const late = 3 * time.Second
	time.AfterFunc(late, func() { lan.h.LinkSetUp(peer) })
	sysfs := t.TempDir()
	if err := os.MkdirAll(filepath.Join(sysfs, "class/net/eth0/device"), 0o755); err != nil {
		t.Fatal(err)
	}
	var logs syncbuf.Buffer
	start := time.Now()
	s, _, err := upForTest(t, config.Network{}, func(o *options) { o.sysfs = sysfs },
		WithWaitReport(time.Second), WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	if err != nil {
		t.Fatalf("Up: %v", err)
	}
	if d := time.Since(start); d < late {
		t.Errorf("Up returned after %v, before the link had carrier", d)
	}
	if ifs := s.Interfaces(); len(ifs) != 1 || ifs[0].Lease == nil {
		t.Errorf("state %+v", ifs)
	}
	const want = "waiting for carrier on a physical Ethernet link for "
	if !strings.Contains(logs.String(), want) || !strings.Contains(logs.String(), "eth0") {
		t.Errorf("logs lack %q:\n%s", want, logs.String())
	}
}

// Up waits only as long as its context: a shutdown ends the wait.
func TestUpWaitEndsWithContext(t *testing.T) {
	if !inOwnNetNS(t) {
		return
	}
	vethTo(t, nil, "eth0", nil, "peer0", netip.Prefix{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	s, err := Up(ctx, config.Network{Interfaces: []config.Interface{{Name: "eth0", DHCP4: true}}},
		WithResolvConf(filepath.Join(t.TempDir(), "resolv.conf")), WithLogger(slog.New(slog.DiscardHandler)))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Up: %v, want the context's end", err)
	}
	select {
	case <-s.Done():
	case <-time.After(5 * time.Second):
		t.Errorf("the DHCP clients did not stop")
	}
}
