package network

import (
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// FuzzLeaseFromACK feeds server answers, which come from the network and are
// not to be trusted, to leaseFromACK: it must not panic, and a lease it
// returns must be one the renewal loop can keep, with DNS names only.
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
	hostile, _ := dhcpv4.New(
		dhcpv4.WithMessageType(dhcpv4.MessageTypeAck),
		dhcpv4.WithYourIP(net.IPv4(10, 0, 2, 15)),
		dhcpv4.WithDomainSearchList("lab.example", "evil\nnameserver 6.6.6.6"),
		dhcpv4.WithOption(dhcpv4.OptDomainName("corp.example\noptions ndots:15")),
		dhcpv4.WithOption(dhcpv4.OptHostName("node-7\x1b[2J")),
	)
	f.Add(hostile.ToBytes())
	now := time.Unix(1700000000, 0)
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := dhcpv4.FromBytes(b)
		if err != nil {
			return
		}
		l, err := leaseFromACK(m, now, slog.New(slog.DiscardHandler))
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
		for _, d := range l.Search {
			if !isDNSName(d, maxDomainName) {
				t.Fatalf("search domain %q", d)
			}
		}
		if l.Hostname != "" && !isDNSName(l.Hostname, maxHostName) {
			t.Fatalf("host name %q", l.Hostname)
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

// FuzzRenderResolvConf checks that, whatever names reach it, resolv.conf
// holds the header and nameserver and search lines only, and exactly the
// servers and domains it was given: no name can add a line or split into
// two.
func FuzzRenderResolvConf(f *testing.F) {
	f.Add("10.0.2.3", "fe80::1%eth0", "lab.example", "example")
	f.Add("10.0.2.3", "", "evil\nnameserver 6.6.6.6", "x")
	f.Add("fe80::1%eth0\nsearch evil", "1.1.1.1", "a\roptions ndots:15", "")
	f.Add("::1", "fe80::1%a b", "a b", "c\x00d")
	f.Fuzz(func(t *testing.T, s1, s2, d1, d2 string) {
		var servers []netip.Addr
		for _, s := range []string{s1, s2} {
			if a, err := netip.ParseAddr(s); err == nil {
				servers = append(servers, a)
			}
		}
		r := mergeDNS([][]netip.Addr{servers}, [][]string{{d1, d2}})
		out, err := r.render()
		if err != nil {
			if out != nil {
				t.Fatalf("an error (%v) and output %q", err, out)
			}
			return
		}
		var gotServers, gotSearch []string
		lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
		if !strings.HasSuffix(string(out), "\n") || lines[0] != resolvHeader {
			t.Fatalf("not a header and whole lines: %q", out)
		}
		for _, line := range lines[1:] {
			if strings.ContainsFunc(line, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
				t.Fatalf("control character in line %q", line)
			}
			keyword, rest, _ := strings.Cut(line, " ")
			switch keyword {
			case "nameserver":
				gotServers = append(gotServers, rest)
			case "search":
				if gotSearch != nil {
					t.Fatalf("two search lines in %q", out)
				}
				gotSearch = strings.Fields(rest)
			case "options":
			default:
				t.Fatalf("line %q in %q", line, out)
			}
		}
		var wantServers []string
		for _, a := range r.Servers {
			wantServers = append(wantServers, a.String())
		}
		if !slices.Equal(gotServers, wantServers) || !slices.Equal(gotSearch, r.Search) {
			t.Fatalf("%q holds servers %q and search %q; want %q and %q", out, gotServers, gotSearch, wantServers, r.Search)
		}
	})
}

// FuzzIsDNSName checks that a name isDNSName takes is one resolv.conf and a
// log line can hold as it is: letters, digits, hyphens and dots only, within
// the limit, and a word of its own in resolv.conf.
func FuzzIsDNSName(f *testing.F) {
	for _, s := range []string{"lab.example", "lab.example.", "a\nnameserver 6.6.6.6", "a b", "-a", "a..b", "\x00", strings.Repeat("a", 64)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !isDNSName(s, maxDomainName) {
			return
		}
		if len(s) > maxDomainName+1 || strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.") != "" {
			t.Fatalf("isDNSName took %q", s)
		}
		if err := checkResolvWord("search domain", s); err != nil {
			t.Fatalf("isDNSName took %q, which resolv.conf refuses: %v", s, err)
		}
		if isDNSName(s, maxHostName) && len(strings.TrimSuffix(s, ".")) > maxHostName {
			t.Fatalf("isDNSName took %q as a host name", s)
		}
	})
}
