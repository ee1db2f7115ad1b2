package timesync

import (
	"net/netip"
	"reflect"
	"testing"

	"github.com/rke2os/rke2os/init/shared/config"
)

func TestServers(t *testing.T) {
	off := false
	dhcp := []netip.Addr{netip.MustParseAddr("10.0.2.2"), {}, netip.MustParseAddr("10.0.2.2"), netip.MustParseAddr("::ffff:10.0.2.3")}
	for _, tc := range []struct {
		name string
		ntp  config.NTP
		dhcp []netip.Addr
		want []string
	}{
		{"config first", config.NTP{Servers: []string{"10.0.0.1", "ntp.example.com:123"}, Pools: []string{"pool.ntp.org", "10.0.0.1"}}, dhcp,
			[]string{"10.0.0.1", "ntp.example.com:123", "pool.ntp.org"}},
		{"pools alone", config.NTP{Pools: []string{"pool.ntp.org"}}, dhcp, []string{"pool.ntp.org"}},
		{"else DHCP", config.NTP{}, dhcp, []string{"10.0.2.2", "10.0.2.3"}},
		{"none", config.NTP{}, nil, nil},
		{"disabled", config.NTP{Enabled: &off, Servers: []string{"10.0.0.1"}}, dhcp, nil},
	} {
		if got := Servers(tc.ntp, tc.dhcp); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: Servers = %q, want %q", tc.name, got, tc.want)
		}
	}
}
