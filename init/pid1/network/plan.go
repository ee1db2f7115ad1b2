package network

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strings"

	"github.com/rke2os/rke2os/init/shared/config"
)

// dhcpMetric is the metric of the first DHCP interface's routes; the next
// DHCP interfaces get 1025, 1026, ... A static gateway4 keeps metric 0 and so
// wins over any lease's router. Distinct metrics matter: two IPv4 default
// routes with the same metric are the same route to the kernel, and one
// interface's lease would replace the other's.
const dhcpMetric = 1024

// linkInfo is what planning needs to know about one link present.
type linkInfo struct {
	Index int
	Name  string
	MAC   net.HardwareAddr
	// Physical is an Ethernet link backed by a device driver (it has
	// /sys/class/net/<name>/device): not lo, veth, a bridge, cni0 or
	// flannel.1, and not wireless.
	Physical bool
	// Carrier is IFF_LOWER_UP: a cable (or a hypervisor) on the other end.
	Carrier bool
	// Up is IFF_UP: the link was set administratively up.
	Up bool
}

// linkPlan is the work Up does on one link.
type linkPlan struct {
	// Item is the entry's index in network.interfaces, -1 when the config
	// has none and the link was picked automatically.
	Item int
	// What names the entry in errors and logs, like
	// "network.interfaces[1] (mac 52:54:00:12:34:56)".
	What string
	// Index is the kernel's index of the link.
	Index int
	// Name is the name the link has once Up is done.
	Name string
	// From is the link's current name when Up renames it, "" otherwise.
	From string
	// MAC is the link's hardware address.
	MAC net.HardwareAddr
	// MTU is the MTU to set, 0 to leave the link's own.
	MTU       int
	Addresses []netip.Prefix
	// Routes are the static routes: gateway4 as a default route first,
	// then the entry's routes.
	Routes []route
	DHCP   bool
	// DHCPMetric is the metric of the routes a lease brings.
	DHCPMetric uint32
}

// route is a static route and the config key it comes from, for errors.
type route struct {
	config.Route
	Key string
	// Gateway4 marks the default route of the entry's gateway4.
	Gateway4 bool
}

// describe names network.interfaces[i] the way a user finds it in the
// config: by its index and by what it matches on.
func describe(i int, ifc config.Interface) string {
	switch {
	case ifc.MAC != nil && ifc.Name != "":
		return fmt.Sprintf("network.interfaces[%d] (mac %s, name %s)", i, ifc.MAC, ifc.Name)
	case ifc.MAC != nil:
		return fmt.Sprintf("network.interfaces[%d] (mac %s)", i, ifc.MAC)
	default:
		return fmt.Sprintf("network.interfaces[%d] (name %s)", i, ifc.Name)
	}
}

// errNoLink is a config entry whose link is not (yet) present. Drivers probe
// asynchronously, so Up waits a bounded time for it before reporting it.
type errNoLink struct {
	what  string
	links []linkInfo
}

func (e *errNoLink) Error() string {
	return fmt.Sprintf("%s: no such link; links present: %s", e.what, presentLinks(e.links))
}

// presentLinks lists the links for an error message, each with its MAC,
// so that a mistyped name or MAC can be spotted and fixed.
func presentLinks(links []linkInfo) string {
	if len(links) == 0 {
		return "none"
	}
	var parts []string
	for _, l := range links {
		if hasMAC(l.MAC) {
			parts = append(parts, fmt.Sprintf("%s (%s)", l.Name, l.MAC))
		} else {
			parts = append(parts, l.Name)
		}
	}
	return strings.Join(parts, " ")
}

// hasMAC reports whether mac is a real hardware address: lo and tunnels
// have none, or an all-zero one.
func hasMAC(mac net.HardwareAddr) bool {
	return len(mac) > 0 && !bytes.Equal(mac, make(net.HardwareAddr, len(mac)))
}

// planInterfaces matches each entry of network.interfaces to a link present
// and says what to do with it. An entry that cannot be planned is left out
// and its error returned (joined), so that one bad entry does not keep the
// others' links down; *errNoLink among them means waiting may help.
func planInterfaces(ifaces []config.Interface, links []linkInfo) ([]linkPlan, error) {
	var plans []linkPlan
	var errs []error
	used := map[int]int{} // link index -> entry
	names := map[string]int{}
	nDHCP := 0
	for i, ifc := range ifaces {
		what := describe(i, ifc)
		l, err := findLink(what, ifc, links)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if j, dup := used[l.Index]; dup {
			errs = append(errs, fmt.Errorf("%s: is the same link (%s) as network.interfaces[%d]; merge the two entries", what, l.Name, j))
			continue
		}
		p := linkPlan{
			Item:      i,
			What:      what,
			Index:     l.Index,
			Name:      l.Name,
			MAC:       l.MAC,
			MTU:       ifc.MTU,
			Addresses: ifc.Addresses,
			DHCP:      ifc.DHCP4,
		}
		if ifc.Name != "" && ifc.Name != l.Name {
			p.From, p.Name = l.Name, ifc.Name
		}
		if j, dup := names[p.Name]; dup {
			errs = append(errs, fmt.Errorf("%s: link name %s is also given by network.interfaces[%d]; give each link its own name", what, p.Name, j))
			continue
		}
		if ifc.Gateway4.IsValid() {
			p.Routes = append(p.Routes, route{
				Route:    config.Route{To: netip.PrefixFrom(netip.IPv4Unspecified(), 0), Via: ifc.Gateway4},
				Key:      "gateway4 " + ifc.Gateway4.String(),
				Gateway4: true,
			})
		}
		for j, r := range ifc.Routes {
			p.Routes = append(p.Routes, route{Route: r, Key: fmt.Sprintf("routes[%d] (to %s via %s)", j, r.To, r.Via)})
		}
		if p.DHCP {
			p.DHCPMetric = dhcpMetric + uint32(nDHCP)
			nDHCP++
		}
		used[l.Index] = i
		names[p.Name] = i
		plans = append(plans, p)
	}

	// A rename must not take the name of a link that keeps it. A link that
	// is itself renamed away frees its name (eth0 <-> eth1 swaps work).
	renamedAway := map[int]bool{}
	for _, p := range plans {
		if p.From != "" {
			renamedAway[p.Index] = true
		}
	}
	var kept []linkPlan
	for _, p := range plans {
		if p.From != "" {
			if o := linkNamed(links, p.Name); o != nil && o.Index != p.Index && !renamedAway[o.Index] {
				errs = append(errs, fmt.Errorf("%s: cannot rename %s to %s: %s is another link (%s) that no entry renames; rename that one too (an entry with its mac and a new name) or pick another name", p.What, p.From, p.Name, p.Name, o.MAC))
				continue
			}
		}
		kept = append(kept, p)
	}
	return kept, errors.Join(errs...)
}

// findLink finds the link of one entry: by MAC when it has one (cloud-init's
// match), else by name.
func findLink(what string, ifc config.Interface, links []linkInfo) (*linkInfo, error) {
	if ifc.MAC == nil {
		if l := linkNamed(links, ifc.Name); l != nil {
			return l, nil
		}
		return nil, &errNoLink{what: what, links: links}
	}
	var found []*linkInfo
	for i := range links {
		if bytes.Equal(links[i].MAC, ifc.MAC) {
			found = append(found, &links[i])
		}
	}
	if len(found) > 1 {
		// VLANs, bonds and macvlans share their parent's MAC; the entry
		// means the physical link.
		var phys []*linkInfo
		for _, l := range found {
			if l.Physical {
				phys = append(phys, l)
			}
		}
		found = phys
		if len(found) != 1 {
			return nil, fmt.Errorf("%s: several links have this MAC and not exactly one of them is a physical device; links present: %s", what, presentLinks(links))
		}
	}
	if len(found) == 0 {
		return nil, &errNoLink{what: what, links: links}
	}
	return found[0], nil
}

func linkNamed(links []linkInfo, name string) *linkInfo {
	for i := range links {
		if links[i].Name == name {
			return &links[i]
		}
	}
	return nil
}

// planAuto is the plan for a config without interfaces, what a user expects
// of a VM image: DHCP on every physical Ethernet link that has carrier, in
// name order (the first gets the preferred default route).
func planAuto(links []linkInfo) []linkPlan {
	var picked []linkInfo
	for _, l := range links {
		if l.Physical && l.Carrier {
			picked = append(picked, l)
		}
	}
	sort.Slice(picked, func(i, j int) bool { return picked[i].Name < picked[j].Name })
	var plans []linkPlan
	for i, l := range picked {
		plans = append(plans, linkPlan{
			Item:       -1,
			What:       l.Name + " (automatic DHCP: the config has no network.interfaces)",
			Index:      l.Index,
			Name:       l.Name,
			MAC:        l.MAC,
			DHCP:       true,
			DHCPMetric: dhcpMetric + uint32(i),
		})
	}
	return plans
}
