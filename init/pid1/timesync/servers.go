package timesync

import (
	"net/netip"
	"slices"

	"github.com/rke2os/rke2os/init/shared/config"
)

// Servers returns the servers the node asks for the time: the config's
// servers and pools if it names any, else the NTP servers of the DHCP
// leases (option 42), else none. It is none, too, when the config says
// "enabled: false".
func Servers(c config.NTP, dhcp []netip.Addr) []string {
	if !c.IsEnabled() {
		return nil
	}
	var out []string
	add := func(s string) {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	for _, s := range c.Servers {
		add(s)
	}
	for _, s := range c.Pools {
		add(s)
	}
	if len(out) > 0 {
		return out
	}
	for _, a := range dhcp {
		if a.IsValid() && !a.IsUnspecified() {
			add(a.Unmap().String())
		}
	}
	return out
}
