package network

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"os"
	"slices"
	"syscall"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/rke2os/rke2os/init/shared/config"
	"github.com/rke2os/rke2os/init/shared/console"
	"github.com/rke2os/rke2os/internal/backoff"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// The client is built on insomniacslk/dhcp's nclient4, the library under
// u-root's pkg/dhclient, rather than on dhclient itself: dhclient only gets
// a lease (it tags requests "PXE UROOT", logs through the global logger and
// configures the address without a lifetime), and the init must also keep
// the lease, which dhclient does not do.

// Lease is a DHCPv4 lease as Up applied it to a link.
type Lease struct {
	// Address is the leased address with the subnet's prefix length.
	Address netip.Prefix
	// Router is the default gateway: the first router option, or the next
	// hop of the default route among the classless routes.
	Router netip.Addr
	// Routes are the classless static routes (option 121); a zero Via is
	// on-link. When present they replace the router option (RFC 3442).
	Routes []config.Route
	// Server is the server that granted the lease (its identifier).
	Server netip.Addr
	// DNS and Search are the resolvers and search domains (option 119, or
	// the domain name, option 15, when there is no search list).
	DNS    []netip.Addr
	Search []string
	// NTP are the time servers (option 42), for the init's clock when the
	// config names none.
	NTP []netip.Addr
	// Hostname is the host name the server suggests. It is reported, not
	// applied: the node's name comes from the config.
	Hostname string
	// MTU is the interface MTU option, 0 if absent. A config mtu wins.
	MTU int
	// Duration is the lease time; T1 and T2 are when renewing (unicast to
	// Server) and rebinding (broadcast to any server) start.
	Duration, T1, T2 time.Duration
	// Obtained is when the server acknowledged the lease, or its last
	// renewal.
	Obtained time.Time
	// Renewals counts the renewals since the lease was first granted.
	Renewals int
}

// Expiry is when the lease ends unless it is renewed.
func (l *Lease) Expiry() time.Time { return l.Obtained.Add(l.Duration) }

// clone returns a deep copy, for State's readers.
func (l *Lease) clone() *Lease {
	if l == nil {
		return nil
	}
	c := *l
	c.Routes = slices.Clone(l.Routes)
	c.DNS = slices.Clone(l.DNS)
	c.Search = slices.Clone(l.Search)
	c.NTP = slices.Clone(l.NTP)
	return &c
}

// transactionIDsFromURandom makes the DHCP library draw its transaction
// IDs from /dev/urandom. By default it polls getrandom(GRND_NONBLOCK) until
// the kernel's CRNG is initialised, which on a machine without a hardware
// RNG (QEMU's default CPU under TCG, no virtio-rng) takes minutes: every
// DISCOVER failed with "could not get random number". A transaction ID only
// matches answers to requests; it need not be secret (RFC 2131 asks for a
// random number, not an unpredictable one), and /dev/urandom never blocks.
// u-root's reader reads the variable once, at its first use.
func transactionIDsFromURandom() {
	if os.Getenv("UROOT_NOHWRNG") == "" {
		os.Setenv("UROOT_NOHWRNG", "1")
	}
}

// defaultLeaseTime stands in for a missing lease time option, which RFC 2131
// requires in an ACK.
const defaultLeaseTime = time.Hour

// requestedOptions asks the server for what leaseFromACK reads.
var requestedOptions = dhcpv4.WithRequestedOptions(
	dhcpv4.OptionSubnetMask,
	dhcpv4.OptionRouter,
	dhcpv4.OptionDomainNameServer,
	dhcpv4.OptionDomainName,
	dhcpv4.OptionDNSDomainSearchList,
	dhcpv4.OptionNTPServers,
	dhcpv4.OptionHostName,
	dhcpv4.OptionInterfaceMTU,
	dhcpv4.OptionClasslessStaticRoute,
	dhcpv4.OptionIPAddressLeaseTime,
	dhcpv4.OptionRenewTimeValue,
	dhcpv4.OptionRebindingTimeValue,
)

// leaseFromACK reads a lease from a server's ACK; log gets the warnings
// about options it leaves out.
func leaseFromACK(ack *dhcpv4.DHCPv4, now time.Time, log *slog.Logger) (*Lease, error) {
	ip, ok := addr4(ack.YourIPAddr)
	if !ok || ip.IsUnspecified() {
		return nil, fmt.Errorf("the server's ACK holds no address (yiaddr %v)", ack.YourIPAddr)
	}
	bits := classfulBits(ip)
	if m := ack.SubnetMask(); m != nil {
		if ones, size := m.Size(); size == 32 {
			bits = ones
		}
	}
	l := &Lease{Address: netip.PrefixFrom(ip, bits), Obtained: now}
	l.Server, _ = addr4(ack.ServerIdentifier())

	l.Duration = ack.IPAddressLeaseTime(defaultLeaseTime)
	if l.Duration <= 0 {
		l.Duration = defaultLeaseTime
	}
	// RFC 2131 4.4.5: T1 defaults to half the lease, T2 to 7/8 of it.
	l.T2 = ack.IPAddressRebindingTime(l.Duration * 7 / 8)
	if l.T2 <= 0 || l.T2 > l.Duration {
		l.T2 = l.Duration * 7 / 8
	}
	l.T1 = ack.IPAddressRenewalTime(l.Duration / 2)
	if l.T1 <= 0 || l.T1 > l.T2 {
		l.T1 = min(l.Duration/2, l.T2)
	}

	for _, r := range ack.ClasslessStaticRoute() {
		if r == nil || r.Dest == nil {
			continue
		}
		dst, ok := addr4(r.Dest.IP)
		ones, size := r.Dest.Mask.Size()
		if !ok || size != 32 {
			continue
		}
		via, _ := addr4(r.Router)
		if via.IsUnspecified() {
			via = netip.Addr{}
		}
		to := netip.PrefixFrom(dst, ones).Masked()
		l.Routes = append(l.Routes, config.Route{To: to, Via: via})
		if ones == 0 && !l.Router.IsValid() {
			l.Router = via
		}
	}
	if len(l.Routes) == 0 {
		for _, r := range ack.Router() {
			if a, ok := addr4(r); ok && !a.IsUnspecified() {
				l.Router = a
				break
			}
		}
	}
	for _, s := range ack.DNS() {
		if a, ok := addr4(s); ok && !a.IsUnspecified() {
			l.DNS = append(l.DNS, a)
		}
	}
	// A name that is not a DNS name is left out, and the rest of the lease
	// kept: see dnsname.go for why names are checked at all.
	names := func(code dhcpv4.OptionCode, vs []string, max int) []string {
		var ok []string
		for _, v := range vs {
			if isDNSName(v, max) {
				ok = append(ok, v)
				continue
			}
			log.Warn("DHCPv4 option value left out: not a DNS name", "option", code.Code(), "option_name", code.String(),
				"value", v, "server", l.Server, "address", l.Address)
		}
		return ok
	}
	if ds := ack.DomainSearch(); ds != nil {
		l.Search = names(dhcpv4.OptionDNSDomainSearchList, ds.Labels, maxDomainName)
	}
	if d := ack.DomainName(); len(l.Search) == 0 && d != "" {
		l.Search = names(dhcpv4.OptionDomainName, []string{d}, maxDomainName)
	}
	for _, s := range ack.NTPServers() {
		if a, ok := addr4(s); ok && !a.IsUnspecified() && !a.IsMulticast() {
			l.NTP = append(l.NTP, a)
		}
	}
	if h := ack.HostName(); h != "" {
		if ok := names(dhcpv4.OptionHostName, []string{h}, maxHostName); ok != nil {
			l.Hostname = ok[0]
		}
	}
	if v := ack.Options.Get(dhcpv4.OptionInterfaceMTU); len(v) == 2 {
		// 68 is the smallest MTU IPv4 allows; a smaller one is a broken
		// server, not a reason to cut the node off.
		if m := int(binary.BigEndian.Uint16(v)); m >= 68 {
			l.MTU = m
		}
	}
	return l, nil
}

// inherit fills what a renewal's ACK left out from the lease it renews:
// some servers answer a renewal with the lease time alone.
func (l *Lease) inherit(prev *Lease, ack *dhcpv4.DHCPv4) {
	has := ack.Options.Has
	if !has(dhcpv4.OptionSubnetMask) && prev.Address.Addr() == l.Address.Addr() {
		l.Address = prev.Address
	}
	if !has(dhcpv4.OptionRouter) && !has(dhcpv4.OptionClasslessStaticRoute) {
		l.Router, l.Routes = prev.Router, slices.Clone(prev.Routes)
	}
	if !l.Server.IsValid() {
		l.Server = prev.Server
	}
	if !has(dhcpv4.OptionDomainNameServer) {
		l.DNS = slices.Clone(prev.DNS)
	}
	if !has(dhcpv4.OptionDNSDomainSearchList) && !has(dhcpv4.OptionDomainName) {
		l.Search = slices.Clone(prev.Search)
	}
	if !has(dhcpv4.OptionNTPServers) {
		l.NTP = slices.Clone(prev.NTP)
	}
	if !has(dhcpv4.OptionHostName) {
		l.Hostname = prev.Hostname
	}
	if !has(dhcpv4.OptionInterfaceMTU) {
		l.MTU = prev.MTU
	}
}

// addr4 converts an IPv4 address from the DHCP library.
func addr4(ip net.IP) (netip.Addr, bool) {
	ip4 := ip.To4()
	if ip4 == nil {
		return netip.Addr{}, false
	}
	a, ok := netip.AddrFromSlice(ip4)
	return a, ok
}

// classfulBits is the prefix length of an address's class, the fallback for
// a server that sends no subnet mask.
func classfulBits(a netip.Addr) int {
	switch b := a.As4()[0]; {
	case b < 128:
		return 8
	case b < 192:
		return 16
	default:
		return 24
	}
}

// leaseRoutes are the kernel routes a lease brings, with the lease's address
// as their source so that the node's traffic leaves from it.
func leaseRoutes(index int, l *Lease, metric uint32) []*netlink.Route {
	src := net.IP(l.Address.Addr().AsSlice())
	var out []*netlink.Route
	add := func(to netip.Prefix, via netip.Addr) {
		r := &netlink.Route{
			LinkIndex: index,
			Dst:       ipNet(to.Masked()),
			Src:       src,
			Priority:  int(metric),
			Protocol:  unix.RTPROT_DHCP,
		}
		if via.IsValid() {
			r.Gw = net.IP(via.AsSlice())
		} else {
			r.Scope = netlink.SCOPE_LINK
		}
		out = append(out, r)
	}
	if len(l.Routes) > 0 {
		for _, r := range l.Routes {
			add(r.To, r.Via)
		}
		return out
	}
	if !l.Router.IsValid() {
		return nil
	}
	if !l.Address.Contains(l.Router) {
		// A router outside the leased subnet (clouds hand out /32 leases)
		// is reached on-link, through a host route to it.
		add(netip.PrefixFrom(l.Router, 32), netip.Addr{})
	}
	add(netip.PrefixFrom(netip.IPv4Unspecified(), 0), l.Router)
	return out
}

// addrLifetime is the kernel lifetime of a leased address in seconds: the
// kernel removes the address by itself if the lease is not renewed. 0 is
// forever (an infinite lease).
func addrLifetime(d time.Duration) int {
	s := int64(d / time.Second)
	if s <= 0 || s >= math.MaxUint32 {
		return 0
	}
	return int(s)
}

// dhcpLink keeps one link's DHCPv4 lease: it gets one, applies it, renews
// it at T1, rebinds at T2 and starts over when it is lost, until its context
// is cancelled.
type dhcpLink struct {
	plan linkPlan
	o    *options
	log  *slog.Logger
	// onLease is told of each lease applied (nil when the lease is lost),
	// with the error applying it gave.
	onLease func(l *Lease, err error)
}

// maxBackoff bounds the wait between two attempts to get a lease.
const maxBackoff = 30 * time.Second

// renewMax is the longest wait for an answer to one renewal: RFC 2131
// 4.4.5 halves the time left down to a minimum of 60 seconds.
const renewMax = 60 * time.Second

func (c *dhcpLink) run(ctx context.Context) {
	retry := backoff.Backoff{Initial: time.Second, Max: maxBackoff}
	for ctx.Err() == nil {
		// Without carrier every DISCOVER is lost, and the backoff would
		// delay the first one that could be answered.
		if !c.waitCarrier(ctx) {
			return
		}
		nl, err := c.discover(ctx)
		var l *Lease
		if err == nil {
			l, err = leaseFromACK(nl.ACK, nl.CreationTime, c.log)
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			wait := retry.Next(0)
			c.log.Warn("no DHCPv4 lease yet", "err", err, "retry_in", wait)
			if !backoff.Sleep(ctx, wait) {
				return
			}
			continue
		}
		retry.Reset()
		c.set(nil, l)
		l = c.hold(ctx, nl, l)
		if ctx.Err() != nil {
			// Shutting down: the lease stays on the link, as the node
			// may still need it until it powers off.
			return
		}
		c.drop(l)
		c.onLease(nil, nil)
	}
}

// waitCarrier waits until the link has carrier; it reports whether ctx is
// still live.
func (c *dhcpLink) waitCarrier(ctx context.Context) bool {
	logged := false
	for {
		l, err := netlink.LinkByIndex(c.plan.Index)
		if err != nil || l.Attrs().RawFlags&unix.IFF_LOWER_UP != 0 {
			// A link that vanished is for discover to report.
			return ctx.Err() == nil
		}
		if !logged {
			c.log.Info("waiting for carrier before asking for a DHCPv4 lease")
			logged = true
		}
		if !backoff.Sleep(ctx, pollInterval) {
			return false
		}
	}
}

// discover gets a new lease: DISCOVER, OFFER, REQUEST, ACK, through a raw
// socket, as the link has no address yet.
func (c *dhcpLink) discover(ctx context.Context) (*nclient4.Lease, error) {
	client, err := nclient4.New(c.plan.Name,
		nclient4.WithHWAddr(c.plan.MAC),
		nclient4.WithTimeout(c.o.dhcpTry),
		nclient4.WithRetry(c.o.dhcpRetries))
	if err != nil {
		return nil, err
	}
	defer client.Close()
	return client.Request(ctx, requestedOptions)
}

// hold renews the lease until it is lost or ctx is cancelled, and returns
// the last lease applied.
func (c *dhcpLink) hold(ctx context.Context, nl *nclient4.Lease, l *Lease) *Lease {
	for {
		if !backoff.Until(ctx, l.Obtained.Add(l.T1)) {
			return l
		}
		next, nnl, err := c.extend(ctx, nl, l)
		if err != nil {
			if ctx.Err() == nil {
				c.log.Warn("DHCPv4 lease lost; asking for a new one", "address", l.Address, "err", err)
			}
			return l
		}
		c.set(l, next)
		l, nl = next, nnl
	}
}

// extend renews the lease: unicast to its server until T2 (RENEWING), then
// broadcast to any server until it expires (REBINDING).
func (c *dhcpLink) extend(ctx context.Context, nl *nclient4.Lease, l *Lease) (*Lease, *nclient4.Lease, error) {
	phases := []struct {
		broadcast bool
		until     time.Time
	}{
		{false, l.Obtained.Add(l.T2)},
		{true, l.Expiry()},
	}
	if !l.Server.IsValid() {
		phases = phases[1:] // no server to unicast to
	}
	var last error
	for _, ph := range phases {
		for {
			left := time.Until(ph.until)
			if left <= 0 {
				break
			}
			wait := min(max(left/2, c.o.renewMin), renewMax, left)
			start := time.Now()
			nnl, err := c.exchange(ctx, nl, l.Server, ph.broadcast, wait)
			if err == nil {
				next, err := leaseFromACK(nnl.ACK, nnl.CreationTime, c.log)
				if err == nil {
					next.inherit(l, nnl.ACK)
					next.Renewals = l.Renewals + 1
					return next, nnl, nil
				}
				last = err
			} else {
				if ctx.Err() != nil {
					return nil, nil, ctx.Err()
				}
				var nak *nclient4.ErrNak
				if errors.As(err, &nak) {
					return nil, nil, fmt.Errorf("the server refused to extend it: %w", err)
				}
				last = err
			}
			c.log.Debug("DHCPv4 renewal got no answer", "broadcast", ph.broadcast, "err", last)
			// An error that came back at once must not turn into a busy loop.
			if !backoff.Until(ctx, start.Add(wait)) {
				return nil, nil, ctx.Err()
			}
		}
	}
	return nil, nil, fmt.Errorf("it expired: no server answered its renewal (last error: %v)", last)
}

// exchange sends one renewal request for the lease, unicast to server or
// broadcast, from a UDP socket on the link (the link has its address now),
// and waits up to wait for the answer.
func (c *dhcpLink) exchange(ctx context.Context, cur *nclient4.Lease, server netip.Addr, broadcast bool, wait time.Duration) (*nclient4.Lease, error) {
	dest := &net.UDPAddr{IP: net.IPv4bcast, Port: dhcpv4.ServerPort}
	match := nclient4.IsMessageType(dhcpv4.MessageTypeAck, dhcpv4.MessageTypeNak)
	if !broadcast {
		dest = &net.UDPAddr{IP: net.IP(server.AsSlice()), Port: dhcpv4.ServerPort}
		match = nclient4.IsAll(nclient4.IsCorrectServer(dest.IP), match)
	}
	conn, err := listenDHCP(ctx, c.plan.Name)
	if err != nil {
		return nil, err
	}
	client, err := nclient4.NewWithConn(conn, c.plan.MAC,
		nclient4.WithTimeout(wait), nclient4.WithRetry(1), nclient4.WithServerAddr(dest))
	if err != nil {
		conn.Close()
		return nil, err
	}
	defer client.Close()
	xid, err := dhcpv4.GenerateTransactionID()
	if err != nil {
		return nil, err
	}
	req, err := dhcpv4.NewRenewFromAck(cur.ACK, dhcpv4.WithTransactionID(xid), requestedOptions)
	if err != nil {
		return nil, err
	}
	resp, err := client.SendAndRead(ctx, dest, req, match)
	if err != nil {
		return nil, err
	}
	if resp.MessageType() == dhcpv4.MessageTypeNak {
		return nil, &nclient4.ErrNak{Offer: cur.Offer, Nak: resp}
	}
	return &nclient4.Lease{Offer: cur.Offer, ACK: resp, CreationTime: time.Now()}, nil
}

// listenDHCP opens the client's UDP port on one link. It binds 0.0.0.0
// rather than the leased address so that a server's broadcast answer (a
// NAK) arrives too; the device binding keeps links apart.
func listenDHCP(ctx context.Context, ifname string) (net.PacketConn, error) {
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			s := int(fd)
			if serr = unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); serr != nil {
				return
			}
			if serr = unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_BROADCAST, 1); serr != nil {
				return
			}
			serr = unix.BindToDevice(s, ifname)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	return lc.ListenPacket(ctx, "udp4", fmt.Sprintf(":%d", dhcpv4.ClientPort))
}

// set applies a lease (replacing prev, nil for a new one) and reports it.
func (c *dhcpLink) set(prev, l *Lease) {
	err := c.apply(prev, l)
	if err != nil {
		c.log.Error("applying the DHCPv4 lease", "err", err)
	}
	switch {
	case prev == nil:
		c.log.Info("DHCPv4 lease", "address", l.Address, "router", l.Router, "dns", l.DNS,
			"search", l.Search, "hostname", l.Hostname, "ntp", l.NTP, "lease", l.Duration, "server", l.Server, "item", c.plan.What)
		console.Event(console.EventDHCPLease, "iface", c.plan.Name, "address", l.Address, "item", c.plan.What)
	case prev.Address != l.Address:
		c.log.Info("DHCPv4 lease renewed with a new address", "address", l.Address, "was", prev.Address, "lease", l.Duration)
	default:
		c.log.Info("DHCPv4 lease renewed", "address", l.Address, "lease", l.Duration, "renewals", l.Renewals, "server", l.Server)
	}
	c.onLease(l, err)
}

// apply puts a lease on the link: MTU, address (with the lease's lifetime)
// and routes, removing what prev had that l does not.
func (c *dhcpLink) apply(prev, l *Lease) error {
	p := c.plan
	link, err := netlink.LinkByIndex(p.Index)
	if err != nil {
		return fmt.Errorf("%s: link %s: %w", p.What, p.Name, err)
	}
	var errs []error
	if l.MTU > 0 && p.MTU == 0 && link.Attrs().MTU != l.MTU {
		if err := netlink.LinkSetMTU(link, l.MTU); err != nil {
			errs = append(errs, fmt.Errorf("%s: set the lease's mtu %d on %s: %w", p.What, l.MTU, p.Name, err))
		}
	}
	if prev != nil && prev.Address != l.Address {
		c.drop(prev)
	}
	lft := addrLifetime(l.Duration)
	if err := netlink.AddrReplace(link, &netlink.Addr{IPNet: ipNet(l.Address), ValidLft: lft, PreferedLft: lft}); err != nil {
		errs = append(errs, fmt.Errorf("%s: leased address %s on %s: %w", p.What, l.Address, p.Name, err))
	}
	routes := leaseRoutes(p.Index, l, p.DHCPMetric)
	if prev != nil && prev.Address == l.Address {
		for _, old := range leaseRoutes(p.Index, prev, p.DHCPMetric) {
			if !slices.ContainsFunc(routes, func(r *netlink.Route) bool { return sameRoute(r, old) }) {
				netlink.RouteDel(old)
			}
		}
	}
	for _, r := range routes {
		if err := netlink.RouteReplace(r); err != nil {
			errs = append(errs, fmt.Errorf("%s: leased route to %s via %s on %s: %w", p.What, r.Dst, r.Gw, p.Name, err))
		}
	}
	return errors.Join(errs...)
}

// drop removes a lost lease's routes and address from the link.
func (c *dhcpLink) drop(l *Lease) {
	for _, r := range leaseRoutes(c.plan.Index, l, c.plan.DHCPMetric) {
		netlink.RouteDel(r) // gone already if the address expired
	}
	if link, err := netlink.LinkByIndex(c.plan.Index); err == nil {
		netlink.AddrDel(link, &netlink.Addr{IPNet: ipNet(l.Address)})
	}
}

func sameRoute(a, b *netlink.Route) bool {
	return a.Dst.String() == b.Dst.String() && a.Gw.Equal(b.Gw)
}
