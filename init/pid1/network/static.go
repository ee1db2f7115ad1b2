package network

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/rke2os/rke2os/init/shared/config"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// addAddresses puts the static addresses on a link. AddrReplace makes a
// second Up (or an address already there) harmless.
func addAddresses(p linkPlan, l netlink.Link) error {
	var errs []error
	for j, a := range p.Addresses {
		if err := netlink.AddrReplace(l, &netlink.Addr{IPNet: ipNet(a)}); err != nil {
			errs = append(errs, fmt.Errorf("%s: addresses[%d] %s on %s: %w", p.What, j, a, p.Name, err))
		}
	}
	return errors.Join(errs...)
}

// addRoutes installs the static routes of a link: gateway4 as the default
// route, then the routes list.
func addRoutes(p linkPlan) error {
	var errs []error
	for _, r := range p.Routes {
		if err := netlink.RouteReplace(staticRoute(p.Index, r.Route)); err != nil {
			errs = append(errs, fmt.Errorf("%s: %s: %w", p.What, r.Key, err))
		}
	}
	return errors.Join(errs...)
}

// staticRoute is the kernel route of a configured route.
func staticRoute(index int, r config.Route) *netlink.Route {
	return &netlink.Route{
		LinkIndex: index,
		Dst:       ipNet(r.To.Masked()),
		Gw:        net.IP(r.Via.AsSlice()),
		Priority:  int(r.Metric),
		Protocol:  unix.RTPROT_STATIC,
	}
}

// ipNet converts a prefix, keeping its host bits (an interface address).
func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// isUnreachable reports whether a route failed because its next hop is not
// on any connected network (yet: a DHCP link gets its network with the
// lease).
func isUnreachable(err error) bool {
	return errors.Is(err, unix.ENETUNREACH)
}
