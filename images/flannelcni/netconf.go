package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"strings"
)

// Defaults for the config keys of the same names, as upstream flannel has
// them, so existing conflists keep working unchanged.
const (
	defaultSubnetFile = "/run/flannel/subnet.env"
	defaultDataDir    = "/var/lib/cni/flannel"
)

// netConf is the network config the runtime gives the plugin on stdin.
// The free-form parts stay maps: they are handed on to plugins we do not
// know the config of, and must reach them with every key intact.
type netConf struct {
	CNIVersion    string          `json:"cniVersion"`
	Name          string          `json:"name"`
	Type          string          `json:"type"`
	SubnetFile    string          `json:"subnetFile"`
	DataDir       string          `json:"dataDir"`
	Delegate      map[string]any  `json:"delegate"`
	IPAM          map[string]any  `json:"ipam"`
	RuntimeConfig map[string]any  `json:"runtimeConfig"`
	Capabilities  map[string]any  `json:"capabilities"`
	PrevResult    json.RawMessage `json:"prevResult"`
}

// parseNetConf decodes the stdin config and fills in the defaults.
func parseNetConf(data []byte) (*netConf, error) {
	var n netConf
	dec := json.NewDecoder(bytes.NewReader(data))
	// Keep numbers as written: the delegate maps are re-encoded for other
	// plugins, and float64 would mangle large integers.
	dec.UseNumber()
	if err := dec.Decode(&n); err != nil {
		return nil, fmt.Errorf("flannel: parse network config: %w", err)
	}
	if n.SubnetFile == "" {
		n.SubnetFile = defaultSubnetFile
	}
	if n.DataDir == "" {
		n.DataDir = defaultDataDir
	}
	if n.CNIVersion == "" {
		// What the CNI spec says a missing cniVersion means; the delegate
		// must be told explicitly, or it might answer in another version.
		n.CNIVersion = "0.1.0"
	}
	return &n, nil
}

// delegateConfig builds the config of the plugin ADD delegates to from the
// network config and this node's lease. Keys in the user's delegate map win
// over the defaults derived from the lease, except those the plugin must
// control for the result to be right: name and cniVersion (the result is
// returned as the runtime's), ipam (the lease decides the addresses), and
// runtimeConfig/capabilities (the runtime's, per call).
func delegateConfig(n *netConf, env *subnetEnv) (map[string]any, error) {
	d := maps.Clone(n.Delegate)
	if d == nil {
		d = map[string]any{}
	}
	setDefault(d, "type", "bridge")
	typ, ok := d["type"].(string)
	if !ok || typ == "" || strings.ContainsAny(typ, `/\`) {
		return nil, fmt.Errorf("flannel: delegate type %v is not a plugin name", d["type"])
	}
	setDefault(d, "mtu", env.MTU)
	// When flanneld masquerades pod traffic leaving the cluster network,
	// the bridge must not masquerade it again; when flanneld does not, the
	// bridge is the only one left to do it.
	setDefault(d, "ipMasq", !env.IPMasq)
	if typ == "bridge" {
		// The bridge is the pods' gateway to the other nodes, and pods
		// must reach themselves through their own Service IP (hairpin).
		// Other delegate types have neither key.
		setDefault(d, "isGateway", true)
		setDefault(d, "hairpinMode", true)
	}
	d["name"] = n.Name
	d["cniVersion"] = n.CNIVersion
	ipam, err := delegateIPAM(n.IPAM, env)
	if err != nil {
		return nil, err
	}
	d["ipam"] = ipam
	if n.RuntimeConfig != nil {
		d["runtimeConfig"] = n.RuntimeConfig
	}
	if n.Capabilities != nil {
		d["capabilities"] = n.Capabilities
	}
	return d, nil
}

// delegateIPAM builds the delegate's ipam section: the user's ipam map with
// its address ranges replaced by this node's subnet(s) and routes to the
// cluster network(s) appended to any routes the user gave.
func delegateIPAM(user map[string]any, env *subnetEnv) (map[string]any, error) {
	ipam := maps.Clone(user)
	if ipam == nil {
		ipam = map[string]any{}
	}
	setDefault(ipam, "type", "host-local")
	// host-local turns a top-level subnet into an extra range: drop it, or
	// pods could get addresses outside this node's lease.
	delete(ipam, "subnet")

	var ranges []any
	var routes []any
	if raw, ok := ipam["routes"]; ok && raw != nil {
		userRoutes, ok := raw.([]any)
		if !ok {
			return nil, fmt.Errorf("flannel: ipam routes: want a list, got %T", raw)
		}
		routes = append(routes, userRoutes...)
	}
	addFamily := func(subnet netip.Prefix, networks []netip.Prefix) {
		if !subnet.IsValid() {
			return
		}
		ranges = append(ranges, []any{map[string]any{"subnet": subnet.String()}})
		for _, nw := range networks {
			// A route the user already lists would make the delegate's
			// route add fail with "file exists".
			if !hasRoute(routes, nw) {
				routes = append(routes, map[string]any{"dst": nw.String()})
			}
		}
	}
	addFamily(env.Subnet, env.Networks)
	addFamily(env.IPv6Subnet, env.IPv6Networks)
	ipam["ranges"] = ranges
	ipam["routes"] = routes
	return ipam, nil
}

// hasRoute reports whether routes has a route to dst.
func hasRoute(routes []any, dst netip.Prefix) bool {
	for _, r := range routes {
		m, _ := r.(map[string]any)
		s, _ := m["dst"].(string)
		if p, err := netip.ParsePrefix(s); err == nil && p.Masked() == dst {
			return true
		}
	}
	return false
}

// setDefault sets m[key] to val unless m already has key.
func setDefault(m map[string]any, key string, val any) {
	if _, ok := m[key]; !ok {
		m[key] = val
	}
}
