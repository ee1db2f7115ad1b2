package network

import (
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/rke2os/rke2os/init/shared/config"
)

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

func TestResolvConf(t *testing.T) {
	const header = "# Written by rke2-init from the node config (network.dns) and DHCP leases.\n"
	tests := []struct {
		name    string
		servers [][]netip.Addr
		search  [][]string
		want    string
		dropped []netip.Addr
		empty   bool
	}{{
		name:    "config only",
		servers: [][]netip.Addr{addrs("192.168.122.1")},
		search:  [][]string{{"cluster.example.com"}},
		want:    header + "nameserver 192.168.122.1\nsearch cluster.example.com\n",
	}, {
		name:    "config first, then leases, without duplicates",
		servers: [][]netip.Addr{addrs("10.0.0.53"), addrs("10.0.2.3", "10.0.0.53"), addrs("10.0.2.3")},
		search:  [][]string{{"cfg.example"}, {"lease.example", "CFG.example."}},
		want:    header + "nameserver 10.0.0.53\nnameserver 10.0.2.3\nsearch cfg.example lease.example\n",
	}, {
		name:    "IPv6 resolver",
		servers: [][]netip.Addr{addrs("2001:db8::53", "10.0.0.53")},
		want:    header + "nameserver 2001:db8::53\nnameserver 10.0.0.53\n",
	}, {
		name:    "at most three servers",
		servers: [][]netip.Addr{addrs("10.0.0.1", "10.0.0.2"), addrs("10.0.0.3", "10.0.0.4", "10.0.0.5")},
		want:    header + "nameserver 10.0.0.1\nnameserver 10.0.0.2\nnameserver 10.0.0.3\n",
		dropped: addrs("10.0.0.4", "10.0.0.5"),
	}, {
		name:   "search only",
		search: [][]string{nil, {"a.example", "b.example"}},
		want:   header + "search a.example b.example\n",
	}, {
		name:    "nothing",
		servers: [][]netip.Addr{nil, nil},
		search:  [][]string{nil, {""}},
		want:    header,
		empty:   true,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := mergeDNS(tt.servers, tt.search)
			got, err := r.render()
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("render:\n%s\nwant:\n%s", got, tt.want)
			}
			if !reflect.DeepEqual(r.Dropped, tt.dropped) {
				t.Errorf("dropped %v, want %v", r.Dropped, tt.dropped)
			}
			if r.empty() != tt.empty {
				t.Errorf("empty() = %v, want %v", r.empty(), tt.empty)
			}
		})
	}
}

// TestRenderRefusesControlCharacters checks the writer's own guard: whatever
// reached it (a lease's option, the config, a bug between them), it never
// writes a name that holds a control character or a blank, which would add
// a line of someone else's or split one name into two.
func TestRenderRefusesControlCharacters(t *testing.T) {
	zoned := func(zone string) netip.Addr { return netip.MustParseAddr("fe80::1").WithZone(zone) }
	tests := []struct {
		name string
		r    resolver
	}{
		{"newline in a search domain", resolver{Search: []string{"lab.example", "evil\nnameserver 6.6.6.6"}}},
		{"carriage return in a search domain", resolver{Search: []string{"evil\roptions ndots:15"}}},
		{"NUL in a search domain", resolver{Search: []string{"a\x00b"}}},
		{"DEL in a search domain", resolver{Search: []string{"a\x7fb"}}},
		{"blank in a search domain", resolver{Search: []string{"a b"}}},
		{"tab in a search domain", resolver{Search: []string{"a\tb"}}},
		{"empty search domain", resolver{Search: []string{""}}},
		{"newline in a server's zone", resolver{Servers: []netip.Addr{zoned("eth0\nsearch evil")}}},
		{"blank in a server's zone", resolver{Servers: []netip.Addr{zoned("eth0 x")}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := tt.r.render()
			if err == nil {
				t.Fatalf("rendered:\n%s", out)
			}
			if out != nil {
				t.Errorf("an error and output:\n%s", out)
			}
		})
	}
}

// TestWriteResolvConfRefusesBadNames checks that a refused render leaves the
// file as it was and says why.
func TestWriteResolvConfRefusesBadNames(t *testing.T) {
	path := filepath.Join(t.TempDir(), "resolv.conf")
	const before = "nameserver 10.0.0.1\n"
	if err := os.WriteFile(path, []byte(before), 0o644); err != nil {
		t.Fatal(err)
	}
	s := newState(config.DNS{}, path, slog.New(slog.DiscardHandler))
	s.dns.Search = []string{"evil\nnameserver 6.6.6.6"}
	err := s.writeResolvConf()
	if err == nil || !strings.Contains(err.Error(), "network.dns") || !strings.Contains(err.Error(), `"evil\nnameserver 6.6.6.6"`) {
		t.Errorf("error %v; want one that names network.dns and the name", err)
	}
	if got := readFile(t, path); got != before {
		t.Errorf("resolv.conf changed to:\n%s", got)
	}
}
