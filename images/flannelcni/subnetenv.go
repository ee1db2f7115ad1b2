package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

// subnetEnv is this node's lease as flanneld wrote it to subnet.env.
// An address family is in use when its subnet is valid; parseSubnetEnv
// guarantees that a family's subnet and networks are either both set or both
// unset, so the rest of the plugin can test the subnet alone.
type subnetEnv struct {
	Networks     []netip.Prefix // FLANNEL_NETWORK: the cluster's IPv4 pod CIDR(s)
	Subnet       netip.Prefix   // FLANNEL_SUBNET: this node's IPv4 pod subnet
	IPv6Networks []netip.Prefix // FLANNEL_IPV6_NETWORK
	IPv6Subnet   netip.Prefix   // FLANNEL_IPV6_SUBNET
	MTU          int            // FLANNEL_MTU: the overlay's MTU, for the pods' interfaces
	IPMasq       bool           // FLANNEL_IPMASQ: flanneld masquerades pod traffic itself
}

// loadSubnetEnv reads and parses the subnet.env at path.
func loadSubnetEnv(path string) (*subnetEnv, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			// The usual cause is a pod scheduled before flanneld has come
			// up on this node; say so, since "no such file" alone sends
			// people looking in the wrong place. The runtime retries.
			return nil, fmt.Errorf("flannel: read %s: %w (flannel has not started on this node yet)", path, err)
		}
		return nil, fmt.Errorf("flannel: read %s: %w", path, err)
	}
	defer f.Close()
	return parseSubnetEnv(f, path)
}

// parseSubnetEnv parses KEY=VALUE lines; name is used in error messages only.
// Blank lines and #-comments are skipped, and unknown keys are ignored so
// that a newer flanneld writing more keys does not break pod creation.
func parseSubnetEnv(r io.Reader, name string) (*subnetEnv, error) {
	var (
		env            subnetEnv
		seenMTU, seenM bool
	)
	sc := bufio.NewScanner(r)
	for lineNo := 1; sc.Scan(); lineNo++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, val, ok := strings.Cut(line, "=")
		key, val = strings.TrimSpace(key), strings.TrimSpace(val)
		if !ok || key == "" {
			return nil, fmt.Errorf("flannel: %s line %d: want KEY=VALUE, got %q", name, lineNo, line)
		}
		var err error
		switch key {
		case "FLANNEL_NETWORK":
			env.Networks, err = parsePrefixes(val, false)
		case "FLANNEL_SUBNET":
			env.Subnet, err = parsePrefix(val, false)
		case "FLANNEL_IPV6_NETWORK":
			env.IPv6Networks, err = parsePrefixes(val, true)
		case "FLANNEL_IPV6_SUBNET":
			env.IPv6Subnet, err = parsePrefix(val, true)
		case "FLANNEL_MTU":
			env.MTU, err = strconv.Atoi(val)
			if err == nil && (env.MTU <= 0 || env.MTU > 65535) {
				err = fmt.Errorf("MTU %d out of range", env.MTU)
			}
			seenMTU = true
		case "FLANNEL_IPMASQ":
			env.IPMasq, err = strconv.ParseBool(val)
			seenM = true
		}
		if err != nil {
			return nil, fmt.Errorf("flannel: %s line %d: %s: %w", name, lineNo, key, err)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("flannel: read %s: %w", name, err)
	}

	// A subnet without its network would give pods no route to other
	// nodes' pods, and a network without a subnet nothing to allocate
	// from: both mean a half-written or foreign file, so refuse it.
	var missing []string
	need := func(cond bool, key string) {
		if !cond {
			missing = append(missing, key)
		}
	}
	v4, v6 := env.Subnet.IsValid() || len(env.Networks) > 0, env.IPv6Subnet.IsValid() || len(env.IPv6Networks) > 0
	need(v4 || v6, "FLANNEL_NETWORK or FLANNEL_IPV6_NETWORK")
	need(!v4 || len(env.Networks) > 0, "FLANNEL_NETWORK")
	need(!v4 || env.Subnet.IsValid(), "FLANNEL_SUBNET")
	need(!v6 || len(env.IPv6Networks) > 0, "FLANNEL_IPV6_NETWORK")
	need(!v6 || env.IPv6Subnet.IsValid(), "FLANNEL_IPV6_SUBNET")
	need(seenMTU, "FLANNEL_MTU")
	need(seenM, "FLANNEL_IPMASQ")
	if len(missing) > 0 {
		return nil, fmt.Errorf("flannel: %s: missing %s", name, strings.Join(missing, ", "))
	}
	return &env, nil
}

// parsePrefixes parses a comma-separated CIDR list: flanneld writes one
// network per cluster CIDR when the cluster has several.
func parsePrefixes(s string, ipv6 bool) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		p, err := parsePrefix(strings.TrimSpace(f), ipv6)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// parsePrefix parses one CIDR of the given family and drops its host bits:
// flanneld writes the subnet as the gateway address (10.42.0.1/24), but
// host-local refuses a range whose subnet has host bits set.
func parsePrefix(s string, ipv6 bool) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	if p.Addr().Is6() != ipv6 {
		fam := "IPv4"
		if ipv6 {
			fam = "IPv6"
		}
		return netip.Prefix{}, fmt.Errorf("%s is not an %s CIDR", s, fam)
	}
	return p.Masked(), nil
}
