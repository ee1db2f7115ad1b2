// Package network brings a node's network up from the config's network
// section: loopback, links found by name or MAC (and renamed as cloud-init
// does), MTU, static addresses and routes, DHCPv4 leases kept renewed for as
// long as the node runs, and /etc/resolv.conf. A config without interfaces
// gets what a user expects of a VM image: DHCP on every physical Ethernet
// link that has carrier.
package network

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rke2os/rke2os/internal/durable"

	"github.com/rke2os/rke2os/init/shared/config"
	"github.com/rke2os/rke2os/init/shared/console"
	"github.com/rke2os/rke2os/init/shared/goroutine"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Defaults of the waits in Up.
const (
	// DefaultLinkTimeout bounds the wait for configured links to appear
	// (drivers probe asynchronously): a link the config names that is
	// still missing then is a config mistake, reported at once.
	DefaultLinkTimeout = 15 * time.Second
	// DefaultWaitReport is how often Up says what it still waits for
	// (carrier, a lease) while the network is not up.
	DefaultWaitReport = 30 * time.Second
)

// Option changes how Up works.
type Option func(*options)

type options struct {
	resolvConf     string
	linkTimeout    time.Duration
	carrierTimeout time.Duration // 0: as long as ctx lives
	dhcpTimeout    time.Duration // 0: as long as ctx lives
	waitReport     time.Duration
	log            *slog.Logger

	// Knobs for tests.
	sysfs       string        // where sysfs is mounted
	dhcpTry     time.Duration // first wait for an answer in DISCOVER/REQUEST
	dhcpRetries int           // tries per DISCOVER/REQUEST, the wait doubling
	renewMin    time.Duration // shortest wait for an answer to a renewal
}

// WithResolvConf makes Up write the resolver configuration to path instead
// of /etc/resolv.conf; "" leaves resolv.conf alone.
func WithResolvConf(path string) Option { return func(o *options) { o.resolvConf = path } }

// WithLinkTimeout bounds the wait for configured links to appear.
func WithLinkTimeout(d time.Duration) Option { return func(o *options) { o.linkTimeout = d } }

// WithCarrierTimeout bounds the wait, without configured interfaces, for a
// physical link to report carrier. By default Up waits as long as its
// context lives: a switch port that forwards nothing for a minute, or a
// cable plugged in late, must not end the boot.
func WithCarrierTimeout(d time.Duration) Option { return func(o *options) { o.carrierTimeout = d } }

// WithDHCPTimeout bounds the wait in Up for the first DHCP leases. By
// default Up waits as long as its context lives (a DHCP server that comes
// back after a power cut later than the node).
func WithDHCPTimeout(d time.Duration) Option { return func(o *options) { o.dhcpTimeout = d } }

// WithWaitReport sets how often Up logs what it still waits for.
func WithWaitReport(d time.Duration) Option { return func(o *options) { o.waitReport = d } }

// WithLogger sends the package's logs (leases, renewals, renames) to l
// instead of slog's default logger.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// Up brings the network up as cfg says and returns what it did. It brings up
// lo, waits (a bounded time) for the configured links, renames, sets MTU,
// addresses and routes, starts DHCP, writes resolv.conf and waits for the
// first leases. Without configured interfaces it first waits for a physical
// link to get carrier. The waits for carrier and leases last as long as ctx
// (unless an option bounds them), logging about every 30 seconds what is
// still missing: a node must come up by itself once its network does.
//
// The DHCP clients run until ctx is cancelled, renewing their leases; State
// follows them. Up returns a State even with an error: the error joins one
// error per configuration item that failed (each naming it, like
// "network.interfaces[1] (mac 52:54:00:12:34:56): no such link; ..."),
// and what could be configured was.
func Up(ctx context.Context, cfg config.Network, opts ...Option) (*State, error) {
	o := &options{
		resolvConf:  DefaultResolvConf,
		linkTimeout: DefaultLinkTimeout,
		waitReport:  DefaultWaitReport,
		log:         slog.Default(),
		sysfs:       "/sys",
		dhcpTry:     time.Second,
		dhcpRetries: 4,
		renewMin:    500 * time.Millisecond,
	}
	for _, opt := range opts {
		opt(o)
	}
	log := o.log.With("step", "network")
	s := newState(cfg.DNS, o.resolvConf, log)

	var errs []error
	if err := loUp(); err != nil {
		errs = append(errs, err)
	}

	plans, err := waitPlans(ctx, cfg, o)
	if err != nil {
		errs = append(errs, err)
	}
	plans, err = renameLinks(plans)
	if err != nil {
		errs = append(errs, err)
	}

	var dhcp []linkPlan
	for _, p := range plans {
		if p.From != "" {
			log.Info("link renamed", "link", p.Name, "was", p.From, "mac", p.MAC.String(), "item", p.What)
		}
		s.add(p)
		if err := configure(p); err != nil {
			errs = append(errs, err)
		}
		if p.DHCP {
			dhcp = append(dhcp, p)
		}
	}
	if err := s.writeResolvConf(); err != nil {
		errs = append(errs, err)
	}

	if len(dhcp) > 0 {
		transactionIDsFromURandom()
	}
	for _, p := range dhcp {
		c := &dhcpLink{plan: p, o: o, log: log.With("link", p.Name)}
		c.onLease = func(l *Lease, err error) {
			if l != nil && len(p.Routes) > 0 {
				// Static routes through a next hop on the leased network
				// need the lease; they are (re)installed with it.
				if rerr := addRoutes(p); rerr != nil {
					c.log.Error("static routes", "err", rerr)
				}
			}
			s.setLease(p.Index, l, err)
		}
		s.keepDHCP(ctx, c)
	}
	goroutine.Go("dhcp clients' end", func() {
		s.wg.Wait()
		close(s.done)
	})

	if len(dhcp) > 0 {
		if err := s.waitLeases(ctx, o, log); err != nil {
			errs = append(errs, err)
		}
	}
	return s, errors.Join(errs...)
}

// runDHCP is a link's DHCP client, c.run; tests replace it.
var runDHCP = (*dhcpLink).run

// keepDHCP runs c in the background until ctx ends. A panic in it (in a
// renewal, say) is logged and the client starts again from a DISCOVER,
// after a growing wait: a client that stopped would let the lease run out
// under a node that is still up, and ending PID 1 would panic the kernel.
func (s *State) keepDHCP(ctx context.Context, c *dhcpLink) {
	s.wg.Add(1)
	name := "dhcp " + c.plan.Name
	goroutine.Go(name, func() {
		defer s.wg.Done()
		goroutine.Restart(ctx, name, func(ctx context.Context) { runDHCP(c, ctx) })
	})
}

// waitLeases waits for the first lease of every DHCP link, saying about
// every o.waitReport which links still have none and why (no carrier, or
// no answer), until ctx ends or o.dhcpTimeout (if set) passes.
func (s *State) waitLeases(ctx context.Context, o *options, log *slog.Logger) error {
	start := time.Now()
	wctx := ctx
	if o.dhcpTimeout > 0 {
		var cancel context.CancelFunc
		wctx, cancel = context.WithTimeout(ctx, o.dhcpTimeout)
		defer cancel()
	}
	tick := time.NewTicker(o.waitReport)
	defer tick.Stop()
	for {
		select {
		case <-s.ready:
			if d := time.Since(start); d >= o.waitReport {
				log.Info("network: every DHCP link has its lease; the boot goes on", "waited", d.Round(time.Second))
			}
			return nil
		case <-tick.C:
			for _, ifc := range s.pendingLeases() {
				reason, words := leaseWait(ifc.Index)
				waited := time.Since(start).Round(time.Second)
				log.Warn(fmt.Sprintf("network: waiting for a DHCPv4 lease on %s (%s) for %v; the boot goes on once it has one",
					ifc.Name, words, waited),
					"link", ifc.Name, "item", ifc.Item)
				console.Event(console.EventDHCPWaiting, "iface", ifc.Name, "item", ifc.Item, "reason", reason, "waited", waited)
			}
		case <-wctx.Done():
			if ctx.Err() != nil {
				return ctx.Err()
			}
			var errs []error
			for _, ifc := range s.pendingLeases() {
				_, words := leaseWait(ifc.Index)
				errs = append(errs, fmt.Errorf("%s: no DHCPv4 lease on %s within %v (%s); the client keeps asking in the background", ifc.Item, ifc.Name, o.dhcpTimeout, words))
			}
			return errors.Join(errs...)
		}
	}
}

// pendingLeases lists the DHCP links that have not had a lease yet.
func (s *State) pendingLeases() []Interface {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Interface
	for _, ifc := range s.links {
		if ifc.DHCP && !s.leased[ifc.Index] {
			out = append(out, *ifc)
		}
	}
	return out
}

// leaseWait says why a link has no lease yet: no carrier (the cable, the
// switch port) or no answer (the DHCP server), as a word for events
// (link-gone, no-carrier, no-answer) and in plain words.
func leaseWait(index int) (reason, words string) {
	l, err := netlink.LinkByIndex(index)
	switch {
	case err != nil:
		return "link-gone", "the link is gone: " + err.Error()
	case l.Attrs().RawFlags&unix.IFF_LOWER_UP == 0:
		return "no-carrier", "no carrier: check the cable and the switch port"
	default:
		return "no-answer", "carrier is up, no DHCP server has answered"
	}
}

// waitPlans matches the config to the links present, waiting a bounded time
// for links that are not there yet.
func waitPlans(ctx context.Context, cfg config.Network, o *options) ([]linkPlan, error) {
	var plans []linkPlan
	var perr error
	if len(cfg.Interfaces) > 0 {
		err := waitLinks(ctx, o.sysfs, o.linkTimeout, func(links []linkInfo) bool {
			plans, perr = planInterfaces(cfg.Interfaces, links)
			var missing *errNoLink
			return !errors.As(perr, &missing)
		})
		if err != nil && perr == nil {
			perr = err
		}
		return plans, perr
	}

	// No interfaces: DHCP on the physical links that get carrier. Links
	// must be up to report carrier; the first one to have it starts a short
	// grace period for the others. Until one has it, Up waits (and says so):
	// after a power cut the switch often comes back after the node.
	var first time.Time
	var seen []linkInfo
	start, reported := time.Now(), time.Now()
	err := waitLinks(ctx, o.sysfs, o.carrierTimeout, func(links []linkInfo) bool {
		seen = links
		var phys, carrier int
		for _, l := range links {
			if !l.Physical {
				continue
			}
			phys++
			if l.Carrier {
				carrier++
			} else if !l.Up {
				setUpLink(linkPlan{What: l.Name, Index: l.Index, Name: l.Name})
			}
		}
		plans = planAuto(links)
		if carrier > 0 && first.IsZero() {
			first = time.Now()
		}
		if carrier == 0 && time.Since(reported) >= o.waitReport {
			reported = time.Now()
			waited := time.Since(start).Round(time.Second)
			o.log.Warn(fmt.Sprintf("network: waiting for carrier on a physical Ethernet link for %v (links present: %s); "+
				"the boot goes on once a cable is plugged in and the switch port forwards", waited, presentLinks(links)),
				"step", "network")
			console.Event(console.EventCarrierWaiting, "waited", waited, "links", presentLinks(links))
		}
		return carrier > 0 && (carrier == phys || time.Since(first) >= carrierSettle)
	})
	if len(plans) == 0 {
		if err == nil {
			err = fmt.Errorf("the config has no network.interfaces and no physical Ethernet link got carrier within %v; links present: %s", o.carrierTimeout, presentLinks(seen))
		}
		return nil, err
	}
	return plans, nil
}

// configure sets one link up with its MTU, static addresses and routes.
func configure(p linkPlan) error {
	l, err := setUpLink(p)
	if err != nil {
		return err
	}
	errs := []error{addAddresses(p, l)}
	if err := addRoutes(p); err != nil && !(p.DHCP && isUnreachable(err)) {
		// On a DHCP link a next hop may only be reachable once the lease
		// is there; the routes are installed again with each lease.
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// State is what Up configured, kept current by the DHCP clients. It is safe
// for concurrent use.
type State struct {
	mu         sync.Mutex
	links      []*Interface
	dns        config.DNS
	resolvConf string
	written    []byte // resolv.conf as last written
	log        *slog.Logger
	leased     map[int]bool  // DHCP links (by index) that had a lease
	pending    int           // DHCP links still without their first lease
	ready      chan struct{} // closed when pending reaches 0
	wg         sync.WaitGroup
	done       chan struct{}
}

// Interface is one configured link.
type Interface struct {
	// Name is the link's name (after a rename); Index is its kernel index.
	Name  string
	Index int
	// Item names the config entry, like "network.interfaces[0] (name eth0)".
	Item string
	MAC  net.HardwareAddr
	// MTU is the configured MTU, or the lease's, 0 for the link's default.
	MTU int
	// Addresses are the static addresses, then the leased one.
	Addresses []netip.Prefix
	// Gateway is gateway4, or the lease's router.
	Gateway netip.Addr
	// Routes are the configured routes.
	Routes []config.Route
	// DHCP is dhcp4; Lease is the lease in force, nil before the first
	// one and after one is lost.
	DHCP  bool
	Lease *Lease
	// LeaseErr is the error applying the last lease gave, if any.
	LeaseErr error
}

func newState(dns config.DNS, resolvConf string, log *slog.Logger) *State {
	return &State{
		dns:        dns,
		resolvConf: resolvConf,
		log:        log,
		leased:     map[int]bool{},
		ready:      make(chan struct{}),
		done:       make(chan struct{}),
	}
}

// add records a planned link.
func (s *State) add(p linkPlan) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ifc := &Interface{Name: p.Name, Index: p.Index, Item: p.What, MAC: p.MAC, MTU: p.MTU, Addresses: p.Addresses, DHCP: p.DHCP}
	for _, r := range p.Routes {
		if r.Gateway4 {
			ifc.Gateway = r.Via
			continue
		}
		ifc.Routes = append(ifc.Routes, r.Route)
	}
	s.links = append(s.links, ifc)
	if p.DHCP {
		s.pending++
	}
}

// setLease records a link's lease (nil: lost) and rewrites resolv.conf if
// the resolvers changed.
func (s *State) setLease(index int, l *Lease, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ifc := range s.links {
		if ifc.Index == index {
			ifc.Lease, ifc.LeaseErr = l.clone(), err
		}
	}
	if werr := s.writeResolvConfLocked(); werr != nil {
		s.log.Error("resolv.conf", "err", werr)
	}
	// Ready only once resolv.conf has the lease's resolvers: what runs
	// after Up (image pulls) resolves names.
	if l != nil && !s.leased[index] {
		s.leased[index] = true
		s.pending--
		if s.pending == 0 {
			close(s.ready)
		}
	}
}

// Interfaces returns a copy of the configured links, in config order.
func (s *State) Interfaces() []Interface {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Interface, 0, len(s.links))
	for _, ifc := range s.links {
		c := *ifc
		c.Addresses = slices.Clone(ifc.Addresses)
		c.Routes = slices.Clone(ifc.Routes)
		c.Lease = ifc.Lease.clone()
		if c.Lease != nil {
			c.Addresses = append(c.Addresses, c.Lease.Address)
			if !c.Gateway.IsValid() {
				c.Gateway = c.Lease.Router
			}
			if c.MTU == 0 {
				c.MTU = c.Lease.MTU
			}
		}
		out = append(out, c)
	}
	return out
}

// Wait blocks until every DHCP link has had its first lease, or ctx ends.
// Without DHCP links it returns at once.
func (s *State) Wait(ctx context.Context) error {
	s.mu.Lock()
	pending := s.pending
	s.mu.Unlock()
	if pending == 0 {
		return nil
	}
	select {
	case <-s.ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Done is closed once the DHCP clients have stopped, after the context
// given to Up is cancelled.
func (s *State) Done() <-chan struct{} { return s.done }

// NodeIP is the address the node is best reached at, for the kubelet's
// node-ip: the first IPv4 address of the first link with a gateway, else
// the first IPv4 address of any link; zero when there is none.
func (s *State) NodeIP() netip.Addr {
	var fallback netip.Addr
	for _, ifc := range s.Interfaces() {
		for _, a := range ifc.Addresses {
			if !a.Addr().Is4() {
				continue
			}
			if ifc.Gateway.IsValid() {
				return a.Addr()
			}
			if !fallback.IsValid() {
				fallback = a.Addr()
			}
		}
	}
	return fallback
}

// Hostname is the host name the first lease that has one suggests, "" if
// none does. Up does not apply it.
func (s *State) Hostname() string {
	for _, ifc := range s.Interfaces() {
		if ifc.Lease != nil && ifc.Lease.Hostname != "" {
			return ifc.Lease.Hostname
		}
	}
	return ""
}

// DNS returns the resolvers and search domains resolv.conf holds: the
// config's first, then the leases'.
func (s *State) DNS() (servers []netip.Addr, search []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.resolverLocked()
	return r.Servers, r.Search
}

// String summarises the state in one line for the console, like
// "eth0 10.0.2.15/24 via 10.0.2.2 (dhcp, lease 24h0m0s); dns 10.0.2.3".
func (s *State) String() string {
	var parts []string
	for _, ifc := range s.Interfaces() {
		var b strings.Builder
		b.WriteString(ifc.Name)
		for _, a := range ifc.Addresses {
			b.WriteString(" " + a.String())
		}
		if ifc.Gateway.IsValid() {
			b.WriteString(" via " + ifc.Gateway.String())
		}
		switch {
		case ifc.Lease != nil:
			fmt.Fprintf(&b, " (dhcp, lease %v)", ifc.Lease.Duration)
		case ifc.DHCP:
			b.WriteString(" (dhcp, no lease yet)")
		}
		parts = append(parts, b.String())
	}
	servers, _ := s.DNS()
	if len(servers) > 0 {
		var ds []string
		for _, a := range servers {
			ds = append(ds, a.String())
		}
		parts = append(parts, "dns "+strings.Join(ds, " "))
	}
	if len(parts) == 0 {
		return "no interfaces"
	}
	return strings.Join(parts, "; ")
}

func (s *State) resolverLocked() resolver {
	servers := [][]netip.Addr{s.dns.Servers}
	search := [][]string{s.dns.Search}
	for _, ifc := range s.links {
		if ifc.Lease != nil {
			servers = append(servers, ifc.Lease.DNS)
			search = append(search, ifc.Lease.Search)
		}
	}
	return mergeDNS(servers, search)
}

func (s *State) writeResolvConf() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.writeResolvConfLocked()
}

// writeResolvConfLocked writes resolv.conf when its content changed. With
// nothing to write (no config DNS, no lease DNS) the image's file is left
// alone.
func (s *State) writeResolvConfLocked() error {
	if s.resolvConf == "" {
		return nil
	}
	r := s.resolverLocked()
	if r.empty() {
		return nil
	}
	data, err := r.render()
	if err != nil {
		return fmt.Errorf("network.dns: %w", err)
	}
	if bytes.Equal(data, s.written) {
		return nil
	}
	if len(r.Dropped) > 0 {
		s.log.Warn("more than 3 DNS servers; resolvers use the first 3 only", "dropped", r.Dropped)
	}
	if err := durable.WriteFile(s.resolvConf, data, 0o644); err != nil {
		return fmt.Errorf("network.dns: %w", err)
	}
	s.written = data
	return nil
}
