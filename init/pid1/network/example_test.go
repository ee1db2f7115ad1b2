package network_test

import (
	"context"
	"log/slog"
	"net/netip"

	"github.com/rke2os/rke2os/init/pid1/network"
	"github.com/rke2os/rke2os/init/shared/config"
)

// The init's network step: Up returns once links, addresses, routes and the
// first leases are in place, however long the cable or the DHCP server takes
// (or at once, with an error, for a config mistake); the DHCP clients keep
// renewing until ctx ends, at shutdown.
func ExampleUp() {
	ctx, stop := context.WithCancel(context.Background())
	defer stop() // at shutdown: the DHCP clients stop renewing

	cfg := config.Network{
		Interfaces: []config.Interface{{Name: "eth0", DHCP4: true}},
		DNS:        config.DNS{Servers: []netip.Addr{netip.MustParseAddr("192.168.122.1")}},
	}
	st, err := network.Up(ctx, cfg)
	// The milestone network-up is logged only here, once the network is up.
	if err != nil {
		slog.Error("network", "err", err)
		return
	}
	slog.Info("network up", "state", st.String(), "node_ip", st.NodeIP(), "dhcp_hostname", st.Hostname())
}
