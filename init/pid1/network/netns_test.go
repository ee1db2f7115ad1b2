package network

import (
	"bytes"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// The integration tests run Up for real, against links in network
// namespaces: nothing they do reaches the machine's own network.
//
// Up starts goroutines (the DHCP clients), and Go runs goroutines on any
// thread, while a network namespace entered with setns belongs to one
// thread. So the side under test is a whole process: the test binary runs
// the test again in a child process cloned into a network namespace of its
// own (inOwnNetNS). Inside it, the "network" the node is plugged into (the
// other end of a veth pair, and a DHCP server) lives in a second namespace,
// entered from a locked OS thread only long enough to create its sockets.

// netnsChildEnv names the test a child process runs in its own namespace.
const netnsChildEnv = "RKE2OS_NETWORK_TEST_NETNS"

// inOwnNetNS reports whether this process is the child that runs t in a
// network namespace of its own. In the parent it runs that child, reports
// its output and result, and returns false: the caller returns at once.
// Without root it fails, rather than skips, so that a run that did not test
// the network cannot pass for one that did.
func inOwnNetNS(t *testing.T) bool {
	t.Helper()
	if os.Getenv(netnsChildEnv) == t.Name() {
		return true
	}
	if os.Geteuid() != 0 {
		t.Fatalf("%s needs root to create network namespaces (CAP_SYS_ADMIN, CAP_NET_ADMIN); run the tests as root", t.Name())
	}
	var run []string
	for _, part := range strings.Split(t.Name(), "/") {
		run = append(run, "^"+regexp.QuoteMeta(part)+"$")
	}
	cmd := exec.Command(os.Args[0], "-test.run="+strings.Join(run, "/"), "-test.v", "-test.count=1", "-test.timeout=2m")
	cmd.Env = append(os.Environ(), netnsChildEnv+"="+t.Name())
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	out, err := cmd.CombinedOutput()
	t.Logf("run in a network namespace of its own:\n%s", out)
	if err != nil {
		t.Fatalf("%s in its network namespace: %v", t.Name(), err)
	}
	if !bytes.Contains(out, []byte("--- PASS: "+t.Name())) {
		t.Fatalf("%s did not run in its network namespace", t.Name())
	}
	return false
}

// netNS is a network namespace of the test's own, other than the process's.
type netNS struct {
	ns netns.NsHandle
	h  *netlink.Handle
}

func newNetNS(t *testing.T) *netNS {
	t.Helper()
	n := &netNS{ns: netns.None()}
	n.do(t, func() {
		var err error
		// netns.New unshares CLONE_NEWNET and leaves this thread in it;
		// do moves the thread back.
		if n.ns, err = netns.New(); err != nil {
			t.Fatalf("new network namespace: %v", err)
		}
	})
	t.Cleanup(func() { n.ns.Close() })
	h, err := netlink.NewHandleAt(n.ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	n.h = h
	lo, err := h.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.LinkSetUp(lo); err != nil {
		t.Fatal(err)
	}
	return n
}

// do runs fn on a locked OS thread and then returns that thread to the
// process's namespace; fn may enter n (sockets it creates stay in n). If the
// thread cannot be moved back, it stays locked and dies with its goroutine.
func (n *netNS) do(t *testing.T, fn func()) {
	t.Helper()
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	defer orig.Close()
	ok := false
	defer func() {
		if err := netns.Set(orig); err != nil {
			t.Errorf("back to the test's namespace: %v", err)
			return
		}
		if ok {
			runtime.UnlockOSThread()
		}
	}()
	if n != nil && n.ns.IsOpen() {
		if err := netns.Set(n.ns); err != nil {
			t.Fatalf("enter the test network's namespace: %v", err)
		}
	}
	fn()
	ok = true
}

// vethTo creates a veth pair: name (with mac, if given) in the test's
// namespace, down, as a fresh NIC would be; peer in n (or in the test's
// namespace when n is nil), up, with addr if valid.
func vethTo(t *testing.T, n *netNS, name string, mac net.HardwareAddr, peer string, addr netip.Prefix) {
	t.Helper()
	v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name, HardwareAddr: mac}, PeerName: peer}
	if err := netlink.LinkAdd(v); err != nil {
		t.Fatalf("veth %s-%s: %v", name, peer, err)
	}
	h := netlink.Handle{}
	hp := &h
	if n != nil {
		pl, err := netlink.LinkByName(peer)
		if err != nil {
			t.Fatal(err)
		}
		if err := netlink.LinkSetNsFd(pl, int(n.ns)); err != nil {
			t.Fatal(err)
		}
		hp = n.h
	}
	pl, err := hp.LinkByName(peer)
	if err != nil {
		t.Fatal(err)
	}
	if addr.IsValid() {
		if err := hp.AddrAdd(pl, &netlink.Addr{IPNet: ipNet(addr)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := hp.LinkSetUp(pl); err != nil {
		t.Fatal(err)
	}
}

// testDHCP is a DHCPv4 server (insomniacslk/dhcp's server4) in a test
// namespace, on private addresses that exist only there.
type testDHCP struct {
	ip net.IP // the server's address and identifier

	mu       sync.Mutex
	addr     net.IP // the address it hands out
	lease    time.Duration
	t1, t2   time.Duration // renewal and rebinding times, 0 to leave out
	router   net.IP
	dns      []net.IP
	search   []string
	hostname string
	mtu      uint16
	nak      bool            // refuse renewals
	mute     time.Time       // answer nothing before this time
	deaf     map[string]bool // sockets (by bound address) that drop renewals
	requests []seenRequest
}

// seenRequest is a DHCPREQUEST the server received.
type seenRequest struct {
	ciaddr net.IP
	peer   string // where it came from
	on     string // the server socket's bound address: to tell unicast from broadcast
	at     time.Time
}

// startDHCP serves d on ifname in n, from a socket bound to 0.0.0.0:67.
func startDHCP(t *testing.T, n *netNS, ifname string, ip net.IP, d *testDHCP) *testDHCP {
	t.Helper()
	d.ip = ip
	d.listen(t, n, ifname, net.IPv4zero)
	return d
}

// listen serves d from one more socket, bound to bind:67. A socket bound to
// the server's address gets unicast only, one bound to 255.255.255.255
// broadcasts only.
func (d *testDHCP) listen(t *testing.T, n *netNS, ifname string, bind net.IP) {
	t.Helper()
	on := bind.String()
	var srv *server4.Server
	n.do(t, func() {
		var err error
		srv, err = server4.NewServer(ifname, &net.UDPAddr{IP: bind, Port: dhcpv4.ServerPort},
			func(conn net.PacketConn, peer net.Addr, m *dhcpv4.DHCPv4) { d.handle(on, conn, peer, m) })
		if err != nil {
			t.Fatalf("DHCP server on %s %s: %v", ifname, on, err)
		}
	})
	go srv.Serve()
	t.Cleanup(func() { srv.Close() })
}

func (d *testDHCP) handle(on string, conn net.PacketConn, peer net.Addr, m *dhcpv4.DHCPv4) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if time.Now().Before(d.mute) {
		return
	}
	var typ dhcpv4.MessageType
	switch m.MessageType() {
	case dhcpv4.MessageTypeDiscover:
		typ = dhcpv4.MessageTypeOffer
	case dhcpv4.MessageTypeRequest:
		d.requests = append(d.requests, seenRequest{ciaddr: m.ClientIPAddr, peer: peer.String(), on: on, at: time.Now()})
		typ = dhcpv4.MessageTypeAck
		renewal := !m.ClientIPAddr.IsUnspecified()
		if renewal && d.deaf[on] {
			return
		}
		if renewal && d.nak {
			typ = dhcpv4.MessageTypeNak
		}
	default:
		return
	}
	mods := []dhcpv4.Modifier{
		dhcpv4.WithMessageType(typ),
		dhcpv4.WithServerIP(d.ip),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(d.ip)),
	}
	if typ != dhcpv4.MessageTypeNak {
		mods = append(mods,
			dhcpv4.WithYourIP(d.addr),
			dhcpv4.WithNetmask(net.CIDRMask(24, 32)),
			dhcpv4.WithLeaseTime(uint32(d.lease/time.Second)),
			dhcpv4.WithRouter(d.router),
			dhcpv4.WithDNS(d.dns...),
		)
		if d.t1 > 0 {
			mods = append(mods, dhcpv4.WithOption(dhcpv4.Option{Code: dhcpv4.OptionRenewTimeValue, Value: dhcpv4.Duration(d.t1)}))
		}
		if d.t2 > 0 {
			mods = append(mods, dhcpv4.WithOption(dhcpv4.Option{Code: dhcpv4.OptionRebindingTimeValue, Value: dhcpv4.Duration(d.t2)}))
		}
		if len(d.search) > 0 {
			mods = append(mods, dhcpv4.WithDomainSearchList(d.search...))
		}
		if d.hostname != "" {
			mods = append(mods, dhcpv4.WithOption(dhcpv4.OptHostName(d.hostname)))
		}
		if d.mtu != 0 {
			mods = append(mods, dhcpv4.WithGeneric(dhcpv4.OptionInterfaceMTU, []byte{byte(d.mtu >> 8), byte(d.mtu)}))
		}
	}
	reply, err := dhcpv4.NewReplyFromRequest(m, mods...)
	if err != nil {
		return
	}
	conn.WriteTo(reply.ToBytes(), peer)
}

// renewals are the requests that renewed or rebound a lease (ciaddr set).
func (d *testDHCP) renewals() []seenRequest {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []seenRequest
	for _, r := range d.requests {
		if !r.ciaddr.IsUnspecified() {
			out = append(out, r)
		}
	}
	return out
}

// eventually polls cond until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func linkByName(t *testing.T, name string) netlink.Link {
	t.Helper()
	l, err := netlink.LinkByName(name)
	if err != nil {
		t.Fatalf("link %s: %v", name, err)
	}
	return l
}

// addrsOn lists the addresses on a link with their valid lifetimes.
func addrsOn(t *testing.T, name string) map[string]int {
	t.Helper()
	as, err := netlink.AddrList(linkByName(t, name), netlink.FAMILY_ALL)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, a := range as {
		out[a.IPNet.String()] = a.ValidLft
	}
	return out
}

// routesOn lists the main table's routes of a link as "dst via gw metric N proto P".
func routesOn(t *testing.T, name string) []string {
	t.Helper()
	rs, err := netlink.RouteList(linkByName(t, name), netlink.FAMILY_ALL)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range rs {
		dst := "default"
		if r.Dst != nil {
			dst = r.Dst.String()
			if ones, _ := r.Dst.Mask.Size(); ones == 0 {
				dst = "default"
			}
		}
		s := dst
		if r.Gw != nil {
			s += " via " + r.Gw.String()
		}
		s += " metric " + strconv.Itoa(r.Priority) + " proto " + r.Protocol.String()
		out = append(out, s)
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
