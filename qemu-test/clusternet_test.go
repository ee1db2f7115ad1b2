package qemutest

import (
	"fmt"
	"net"
)

// The cluster's private network, a vde_switch of the test's own: the
// server is .10, agents follow. Each machine also has QEMU's user-mode
// NIC (the default route, the host's port forwards), whose address is
// the same on every machine: node-ip names the private one.
const (
	clusterNet = "192.168.76."
	serverIP   = clusterNet + "10"
)

// clusterMAC is the private NIC's MAC address of the machine at ip.
func clusterMAC(ip string) string {
	v4 := net.ParseIP(ip).To4()
	return fmt.Sprintf("52:54:00:76:00:%02x", v4[3])
}

// clusterNetwork is the network section of a cluster machine at ip,
// followed by rest (its rke2 section).
func clusterNetwork(ip, rest string) string {
	return fmt.Sprintf(`network:
  interfaces:
    - name: eth0
      dhcp4: true
    - name: eth1
      mac: "%s"
      addresses: [%s/24]
debug:
  logs: true
  cpu: true
%s`, clusterMAC(ip), ip, rest)
}
