package network

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/vishvananda/netlink"
)

func TestIsPhysical(t *testing.T) {
	sysfs := t.TempDir()
	for _, p := range []string{
		"class/net/eth0/device",
		"class/net/wlan0/device",
		"class/net/wlan0/wireless",
		"class/net/wlp2s0/device",
		"class/net/wlp2s0/phy80211",
		"class/net/veth0",
		"class/net/cni0/bridge",
		"class/net/flannel.1",
		"class/net/lo",
		"class/net/ib0/device",
	} {
		if err := os.MkdirAll(filepath.Join(sysfs, p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name, encap string
		want        bool
	}{
		{"eth0", "ether", true},
		{"wlan0", "ether", false},
		{"wlp2s0", "ether", false},
		{"veth0", "ether", false},
		{"cni0", "ether", false},
		{"flannel.1", "ether", false},
		{"lo", "loopback", false},
		{"ib0", "infiniband", false},
		{"gone0", "ether", false},
	}
	for _, tt := range tests {
		a := &netlink.LinkAttrs{Name: tt.name, EncapType: tt.encap}
		if got := isPhysical(sysfs, a); got != tt.want {
			t.Errorf("isPhysical(%s, %s) = %v, want %v", tt.name, tt.encap, got, tt.want)
		}
	}
}
