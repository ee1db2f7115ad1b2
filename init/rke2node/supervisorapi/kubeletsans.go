package supervisorapi

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

// A kubelet's serving certificate names what the node may claim as its
// own, nothing it may not: the apiserver dials a kubelet at the Node's
// addresses and checks them against the certificate, and no one else
// should take the certificate for anything else. So it names
//
//   - the node's name, and the host names its Node registered;
//   - the address the request came from, the addresses the caller asks
//     for (rke2-Node-IP) when they are that address or ones its Node
//     registered, and the InternalIP and ExternalIP its Node registered;
//
// never the loopback, an address or name of the apiserver's serving
// certificate (tls-san, the servers' names and addresses, the kubernetes
// service's names and cluster IP), the apiservers' endpoints, or another
// Node's name or address. Asking for one of those is refused (errRefused);
// one that only the source or the registered Node brings is left out, as
// is an address asked for that the caller cannot show to be its own: a
// node behind NAT gets its registered address at its next join.

// errRefused marks a serving certificate request that asks for what the
// node may not have; the supervisor answers 403 with the reason.
var errRefused = errors.New("kubelet serving certificate refused")

func refused(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errRefused, fmt.Sprintf(format, args...))
}

// apiNames are the apiserver's names and addresses, which no kubelet
// certificate may carry.
type apiNames struct {
	dns []string
	ips []net.IP
}

// hasName reports whether name is one of the apiserver's DNS names, or
// matches one of its wildcards, or is the loopback's.
func (a apiNames) hasName(name string) bool {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	if name == "localhost" || strings.HasSuffix(name, ".localhost") {
		return true
	}
	for _, d := range a.dns {
		d = strings.ToLower(d)
		if d == name {
			return true
		}
		if suffix, ok := strings.CutPrefix(d, "*"); ok {
			if label, ok := strings.CutSuffix(name, suffix); ok && label != "" && !strings.Contains(label, ".") {
				return true
			}
		}
	}
	return false
}

func (a apiNames) hasIP(ip net.IP) bool { return slices.ContainsFunc(a.ips, ip.Equal) }

// kubeletRequest is what a serving certificate request asks, once the
// caller has proved its name.
type kubeletRequest struct {
	name      string
	source    net.IP   // the request's source address
	requested []net.IP // rke2-Node-IP
}

// kubeletSANs decides the names and addresses of name's serving
// certificate, given the cluster's Nodes and the apiserver's names (its
// serving certificate's, and its endpoints' addresses). An error wrapping
// errRefused is a request for what the node may not have.
func kubeletSANs(req kubeletRequest, nodes []corev1.Node, api apiNames) ([]string, []net.IP, error) {
	var self *corev1.Node
	var otherNames []string
	var otherIPs []net.IP
	for i := range nodes {
		n := &nodes[i]
		if n.Name == req.name {
			self = n
			continue
		}
		otherNames = append(otherNames, strings.ToLower(n.Name))
		for _, a := range n.Status.Addresses {
			if ip := net.ParseIP(a.Address); ip != nil {
				otherIPs = append(otherIPs, ip)
			} else {
				otherNames = append(otherNames, strings.ToLower(a.Address))
			}
		}
	}
	// whyNotIP says why ip may not be in the certificate, "" if it may.
	whyNotIP := func(ip net.IP) string {
		switch {
		case ip.IsLoopback() || ip.IsUnspecified():
			return fmt.Sprintf("%s is a loopback or unspecified address, which no kubelet certificate names", ip)
		case api.hasIP(ip):
			return fmt.Sprintf("%s is an address of the apiserver (its serving certificate's or endpoints')", ip)
		case slices.ContainsFunc(otherIPs, ip.Equal):
			return fmt.Sprintf("%s is the address of another Node (delete that Node if it is gone)", ip)
		}
		return ""
	}
	whyNotName := func(name string) string {
		switch {
		case api.hasName(name):
			return fmt.Sprintf("%q is a name of the apiserver's serving certificate (tls-san, a server's name, the kubernetes service's)", name)
		case slices.Contains(otherNames, strings.ToLower(name)):
			return fmt.Sprintf("%q is the name of another Node", name)
		}
		return ""
	}
	if why := whyNotName(req.name); why != "" {
		return nil, nil, refused("node %s: %s", req.name, why)
	}
	var registered []net.IP
	dns := []string{req.name}
	if self != nil {
		for _, a := range self.Status.Addresses {
			switch a.Type {
			case corev1.NodeInternalIP, corev1.NodeExternalIP:
				if ip := net.ParseIP(a.Address); ip != nil {
					registered = append(registered, ip)
				}
			case corev1.NodeHostName:
				if len(validation.IsDNS1123Subdomain(a.Address)) == 0 && whyNotName(a.Address) == "" && !slices.Contains(dns, a.Address) {
					dns = append(dns, a.Address)
				}
			}
		}
	}
	var ips []net.IP
	add := func(ip net.IP) {
		if !slices.ContainsFunc(ips, ip.Equal) {
			ips = append(ips, ip)
		}
	}
	for _, ip := range req.requested {
		if why := whyNotIP(ip); why != "" {
			return nil, nil, refused("node %s: %s", req.name, why)
		}
		if (req.source != nil && ip.Equal(req.source)) || slices.ContainsFunc(registered, ip.Equal) {
			add(ip)
		}
	}
	for _, ip := range append([]net.IP{req.source}, registered...) {
		if ip != nil && whyNotIP(ip) == "" {
			add(ip)
		}
	}
	return dns, ips, nil
}

// hostIP is the IP address of a "host:port" (a request's RemoteAddr,
// an apiserver endpoint) or of a bare host, nil if it is none.
func hostIP(addr string) net.IP {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	return net.ParseIP(host)
}
