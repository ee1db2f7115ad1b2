package network

import (
	"net"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// FuzzLeaseFromACK feeds server answers, which come from the network and are
// not to be trusted, to leaseFromACK: it must not panic, and a lease it
// returns must be one the renewal loop can keep.
func FuzzLeaseFromACK(f *testing.F) {
	seed, _ := dhcpv4.New(
		dhcpv4.WithMessageType(dhcpv4.MessageTypeAck),
		dhcpv4.WithYourIP(net.IPv4(10, 0, 2, 15)),
		dhcpv4.WithNetmask(net.CIDRMask(24, 32)),
		dhcpv4.WithLeaseTime(3600),
		dhcpv4.WithRouter(net.IPv4(10, 0, 2, 2)),
		dhcpv4.WithDNS(net.IPv4(10, 0, 2, 3)),
		dhcpv4.WithDomainSearchList("lab.example"),
		dhcpv4.WithOption(dhcpv4.OptNTPServers(net.IPv4(10, 0, 2, 2), net.IPv4(192, 0, 2, 123))),
		dhcpv4.WithOption(dhcpv4.OptClasslessStaticRoute(&dhcpv4.Route{
			Dest: &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}, Router: net.IPv4(10, 0, 2, 2),
		})),
	)
	f.Add(seed.ToBytes())
	now := time.Unix(1700000000, 0)
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := dhcpv4.FromBytes(b)
		if err != nil {
			return
		}
		l, err := leaseFromACK(m, now)
		if err != nil {
			return
		}
		if !l.Address.Addr().Is4() || l.Address.Bits() < 0 || l.Address.Bits() > 32 {
			t.Fatalf("address %v", l.Address)
		}
		if l.Duration <= 0 || l.T1 <= 0 || l.T1 > l.T2 || l.T2 > l.Duration {
			t.Fatalf("times: lease %v T1 %v T2 %v", l.Duration, l.T1, l.T2)
		}
		for _, a := range l.NTP {
			if !a.Is4() || a.IsUnspecified() || a.IsMulticast() {
				t.Fatalf("ntp server %v", a)
			}
		}
		for _, r := range l.Routes {
			if !r.To.IsValid() || r.To != r.To.Masked() {
				t.Fatalf("route %+v", r)
			}
		}
		leaseRoutes(2, l, dhcpMetric)
		addrLifetime(l.Duration)
	})
}
