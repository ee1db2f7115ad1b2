// Command flannel is the flannel CNI plugin: our own equivalent of
// github.com/flannel-io/cni-plugin. It is built into the flannel image as
// /opt/bin/flannel, copied onto each host as /opt/cni/bin/flannel, and run by
// containerd for every pod sandbox.
//
// It does no networking itself. flanneld leases this node a subnet and writes
// it to /run/flannel/subnet.env; on ADD the plugin turns that lease into the
// config of a "delegate" plugin (bridge with host-local IPAM, by default) and
// runs the delegate. Because DEL and CHECK must undo or verify exactly what
// ADD set up, even after flannel has restarted with a different lease or is
// not running at all, ADD saves the delegate config per container under
// dataDir and DEL/CHECK replay that saved config instead of recomputing it.
package main

import (
	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/version"
)

// pluginVersion is reported in the about string; images/build.sh may set it
// with -X.
var pluginVersion = "rke2os"

func main() {
	// version.All because the delegate (bridge) accepts every version and we
	// only pass configs and results through: the runtime's cniVersion decides.
	skel.PluginMainFuncs(skel.CNIFuncs{
		Add:   cmdAdd,
		Del:   cmdDel,
		Check: cmdCheck,
	}, version.All, "CNI flannel plugin "+pluginVersion)
}
