package config

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path"
	"regexp"
	"strconv"
	"strings"
)

// ValidateFile parses the config file at path and reports every problem in
// it; it is what `rke2-build validate FILE` runs. It checks the file on its
// own: a value it lacks (a token, say) may still come from another source at
// boot, so use (*Config).Validate on the merged config for that.
func ValidateFile(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	_, err = Parse(path, data)
	return err
}

// Validate reports what the merged config lacks for a node of its role
// (defaultRole if it sets none) to boot: an agent needs rke2.server and
// rke2.token, a server joining an existing one (rke2.server set) needs
// rke2.token.
func (c *Config) Validate(defaultRole string) error {
	role := c.Role(defaultRole)
	var errs []error
	switch role {
	case RoleAgent:
		if c.RKE2.Server() == "" {
			errs = append(errs, &Error{Path: "rke2.server", Msg: "is not set; an agent joins a server: set it like \"https://10.0.0.1:9345\""})
		}
		if c.RKE2.Token() == "" {
			errs = append(errs, &Error{Path: "rke2.token", Msg: "is not set; an agent needs the cluster token (the first server's /var/lib/rancher/rke2/server/node-token)"})
		}
	case RoleServer:
		if c.RKE2.Server() != "" && c.RKE2.Token() == "" {
			errs = append(errs, &Error{Path: "rke2.token", Msg: "is not set; a server joining another (rke2.server is set) needs the cluster token"})
		}
	default:
		errs = append(errs, &Error{Path: "role", Msg: fmt.Sprintf("%q is not a role: set role to server or agent, or build the image with a default role", role)})
	}
	return errors.Join(errs...)
}

// SysctlPath returns the /proc/sys file of a sysctl key. As in sysctl(8),
// dots separate the levels and a "/" in a key stands for a dot in a name
// (net.ipv4.conf.eth0/100.rp_filter is the file of link eth0.100).
func SysctlPath(key string) string {
	parts := strings.Split(key, ".")
	for i, p := range parts {
		parts[i] = strings.ReplaceAll(p, "/", ".")
	}
	return "/proc/sys/" + strings.Join(parts, "/")
}

// dnsLabelRe matches one label of a host name (RFC 1123).
var dnsLabelRe = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)

// isDNSName reports whether s is a dot-separated list of RFC 1123 labels of
// at most max characters.
func isDNSName(s string, max int) bool {
	if s == "" || len(s) > max {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if !dnsLabelRe.MatchString(l) {
			return false
		}
	}
	return true
}

// checkHostname checks a host name. Linux keeps at most 64 bytes of it.
func checkHostname(s string) error {
	if !isDNSName(s, 64) {
		return fmt.Errorf("%q is not a host name: use letters, digits and \"-\" in dot-separated labels of up to 63 characters, 64 in all (RFC 1123), like \"node1\"", s)
	}
	return nil
}

// checkDomain checks a DNS search domain.
func checkDomain(s string) error {
	if !isDNSName(s, 253) {
		return fmt.Errorf("%q is not a domain name like \"example.com\"", s)
	}
	return nil
}

// checkFilePath checks that s is an absolute, clean path to a file.
func checkFilePath(s string) error {
	switch {
	case strings.ContainsRune(s, 0):
		return fmt.Errorf("%q contains a NUL byte", s)
	case !strings.HasPrefix(s, "/"):
		return fmt.Errorf("%q is not an absolute path; start it with \"/\", like \"/etc/motd\"", s)
	case s == "/":
		return fmt.Errorf("%q is a directory, not a file", s)
	case path.Clean(s) != s:
		return fmt.Errorf("%q is not a clean path; write it as %q", s, path.Clean(s))
	}
	return nil
}

// canonicalEncoding maps cloud-init's spellings of a write_files encoding to
// "", "base64", "gzip+base64" or "gzip".
func canonicalEncoding(s string) (string, error) {
	switch strings.ToLower(s) {
	case "", "plain", "text/plain":
		return "", nil
	case "b64", "base64":
		return "base64", nil
	case "gz+b64", "gzip+base64", "gz+base64", "gzip+b64":
		return "gzip+base64", nil
	case "gz", "gzip":
		return "gzip", nil
	}
	return "", fmt.Errorf("%q is not an encoding: use plain, b64 (base64) or gz+b64 (gzip+base64)", s)
}

// decodeContent decodes write_files content as enc says.
func decodeContent(content, enc string) ([]byte, error) {
	e, err := canonicalEncoding(enc)
	if err != nil {
		return nil, err
	}
	switch e {
	case "base64":
		b, err := decodeBase64(content)
		if err != nil {
			return nil, fmt.Errorf("is not valid base64 (encoding %q): %v; encode the file with \"base64 -w0 FILE\"", enc, err)
		}
		return b, nil
	case "gzip+base64":
		b, err := decodeBase64(content)
		if err != nil {
			return nil, fmt.Errorf("is not valid base64 (encoding %q): %v; encode the file with \"gzip -c FILE | base64 -w0\"", enc, err)
		}
		return gunzip(b, enc)
	case "gzip":
		return gunzip([]byte(content), enc)
	}
	return []byte(content), nil
}

// decodeBase64 decodes standard base64, padded or not. Like cloud-init
// (Python's b64decode) it skips line breaks and spaces, so a block scalar
// of wrapped base64 works.
func decodeBase64(s string) ([]byte, error) {
	s = strings.Map(func(r rune) rune {
		switch r {
		case ' ', '\t', '\n', '\r':
			return -1
		}
		return r
	}, s)
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		if b2, err2 := base64.RawStdEncoding.DecodeString(s); err2 == nil {
			return b2, nil
		}
		return nil, err
	}
	return b, nil
}

// gunzip decompresses b, refusing more than maxFileSize bytes of output.
func gunzip(b []byte, enc string) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("is not gzip data (encoding %q): %v; encode the file with \"gzip -c FILE | base64 -w0\"", enc, err)
	}
	out, err := io.ReadAll(io.LimitReader(zr, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("is not valid gzip data (encoding %q): %v", enc, err)
	}
	if len(out) > maxFileSize {
		return nil, fmt.Errorf("decompresses to more than %d MiB; put large files into the image instead", maxFileSize>>20)
	}
	return out, nil
}

// sysctlRoots are the directories of /proc/sys; a key starts with one.
var sysctlRoots = map[string]bool{"abi": true, "crypto": true, "debug": true, "dev": true, "fs": true, "kernel": true, "net": true, "sunrpc": true, "user": true, "vm": true}

// sysctlPartRe matches one level of a sysctl key; "/" stands for a dot in a
// name, as in sysctl(8).
var sysctlPartRe = regexp.MustCompile(`^[A-Za-z0-9_@:+/-]+$`)

// checkSysctlKey checks a sysctl key like net.ipv4.ip_forward.
func checkSysctlKey(s string) error {
	bad := fmt.Errorf("%q is not a sysctl key: use dot-separated names of letters, digits, \"_\" and \"-\", like \"net.ipv4.ip_forward\"", s)
	if len(s) > 256 {
		return bad
	}
	parts := strings.Split(s, ".")
	if len(parts) < 2 {
		if strings.Contains(s, "/") {
			return fmt.Errorf("%q is not a sysctl key: separate the levels with dots, like \"net.ipv4.ip_forward\"", s)
		}
		return bad
	}
	for _, p := range parts {
		if !sysctlPartRe.MatchString(p) || strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") || strings.Contains(p, "//") {
			return bad
		}
	}
	if !sysctlRoots[parts[0]] {
		return fmt.Errorf("%q is not a sysctl key: it must start with abi, crypto, debug, dev, fs, kernel, net, sunrpc, user or vm, like \"net.ipv4.ip_forward\"", s)
	}
	return nil
}

// checkSysctlValue checks the value written to a sysctl file.
func checkSysctlValue(s string) error {
	switch {
	case s == "":
		return errors.New("is empty; give it a value like \"1\"")
	case len(s) > 4096:
		return errors.New("is longer than a sysctl value can be (4096 bytes)")
	case strings.ContainsAny(s, "\n\r\x00"):
		return fmt.Errorf("%q spans lines; a sysctl value is one line", s)
	}
	return nil
}

// moduleNameRe matches a kernel module name (MODULE_NAME_LEN is 56 with the
// NUL).
var moduleNameRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,55}$`)

// checkModuleName checks a kernel module name.
func checkModuleName(s string) error {
	if strings.HasSuffix(s, ".ko") || strings.Contains(s, ".ko.") {
		return fmt.Errorf("%q is a file name; give the module name without \".ko\", like \"br_netfilter\"", s)
	}
	if !moduleNameRe.MatchString(s) {
		return fmt.Errorf("%q is not a kernel module name like \"br_netfilter\"", s)
	}
	return nil
}

// checkLinkName checks a network link name as the kernel's dev_valid_name
// does: under IFNAMSIZ (16) bytes, not "." or "..", no "/", ":" or spaces.
func checkLinkName(s string) error {
	ok := s != "" && len(s) < 16 && s != "." && s != ".."
	for _, r := range s {
		if r <= ' ' || r >= 0x7f || r == '/' || r == ':' {
			ok = false
		}
	}
	if !ok {
		return fmt.Errorf("%q is not a network link name: up to 15 characters without \"/\", \":\" or spaces, like \"eth0\"", s)
	}
	return nil
}

// parseMAC parses an Ethernet (EUI-48) address.
func parseMAC(s string) (net.HardwareAddr, error) {
	mac, err := net.ParseMAC(s)
	if err != nil || len(mac) != 6 {
		return nil, fmt.Errorf("%q is not a MAC address like \"52:54:00:12:34:56\"", s)
	}
	return mac, nil
}

// family names an address's family for messages.
func family(a netip.Addr) string {
	if a.Is4() {
		return "IPv4"
	}
	return "IPv6"
}

// parseInterfaceAddress parses a static address with its prefix length.
func parseInterfaceAddress(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		if a, err := netip.ParseAddr(s); err == nil {
			bits := 24
			if a.Is6() {
				bits = 64
			}
			return netip.Prefix{}, fmt.Errorf("%q needs a prefix length, like \"%s/%d\"", s, s, bits)
		}
		return netip.Prefix{}, fmt.Errorf("%q is not an address with a prefix length, like \"10.0.0.5/24\" or \"fd00::5/64\"", s)
	}
	a := p.Addr()
	switch {
	case a.Is4In6():
		return netip.Prefix{}, fmt.Errorf("%q is an IPv4-mapped IPv6 address; write the IPv4 address, like \"%s/%d\"", s, a.Unmap(), max(p.Bits()-96, 0))
	case a.IsUnspecified(), a.IsMulticast(), a.IsLoopback():
		return netip.Prefix{}, fmt.Errorf("%q is not a host address (it is unspecified, loopback or multicast)", s)
	case a.Is4() && p.Bits() < 31 && p.Bits() > 0 && a == p.Masked().Addr():
		return netip.Prefix{}, fmt.Errorf("%q is the network address of %s, not a host in it; use a host address like \"%s/%d\"", s, p.Masked(), p.Masked().Addr().Next(), p.Bits())
	}
	return p, nil
}

// parseGateway4 parses an IPv4 gateway address.
func parseGateway4(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	switch {
	case err != nil:
		if _, perr := netip.ParsePrefix(s); perr == nil {
			return netip.Addr{}, fmt.Errorf("%q has a prefix length; a gateway is a plain address, like \"10.0.0.1\"", s)
		}
		return netip.Addr{}, fmt.Errorf("%q is not an IPv4 address like \"10.0.0.1\"", s)
	case !a.Is4():
		return netip.Addr{}, fmt.Errorf("%q is not IPv4; for an IPv6 default route add a route with to \"::/0\"", s)
	case a.IsUnspecified(), a.IsMulticast(), a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return netip.Addr{}, fmt.Errorf("%q is not a host address; give the router's address, like \"10.0.0.1\"", s)
	}
	return a, nil
}

// parseRouteDest parses a route's destination network.
func parseRouteDest(s string) (netip.Prefix, error) {
	if s == "default" {
		return netip.Prefix{}, fmt.Errorf("%q is not a network; write \"0.0.0.0/0\" (or \"::/0\" for IPv6)", s)
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		if _, err := netip.ParseAddr(s); err == nil {
			return netip.Prefix{}, fmt.Errorf("%q needs a prefix length, like \"10.20.0.0/16\" (or \"%s/32\" for one host)", s, s)
		}
		return netip.Prefix{}, fmt.Errorf("%q is not a network like \"10.20.0.0/16\"", s)
	}
	if p.Addr().Is4In6() {
		return netip.Prefix{}, fmt.Errorf("%q is an IPv4-mapped IPv6 network; write it as IPv4", s)
	}
	if p.Masked() != p {
		return netip.Prefix{}, fmt.Errorf("%q has host bits set; the network is %q", s, p.Masked().String())
	}
	return p, nil
}

// parseNextHop parses a route's next hop.
func parseNextHop(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	switch {
	case err != nil:
		return netip.Addr{}, fmt.Errorf("%q is not an IP address like \"10.0.0.254\"", s)
	case a.Zone() != "":
		return netip.Addr{}, fmt.Errorf("%q has a zone; leave it out, the route's interface is the zone", s)
	case a.Is4In6():
		return netip.Addr{}, fmt.Errorf("%q is an IPv4-mapped IPv6 address; write %q", s, a.Unmap().String())
	case a.IsUnspecified(), a.IsMulticast(), a.IsLoopback():
		return netip.Addr{}, fmt.Errorf("%q is not a router's address", s)
	}
	return a, nil
}

// parseDNSServer parses a resolver address.
func parseDNSServer(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	switch {
	case err != nil:
		if ap, err := netip.ParseAddrPort(s); err == nil {
			return netip.Addr{}, fmt.Errorf("%q has a port; resolv.conf takes a plain address, like %q", s, ap.Addr().String())
		}
		return netip.Addr{}, fmt.Errorf("%q is not an IP address like \"10.0.0.2\"", s)
	case a.Is4In6():
		return netip.Addr{}, fmt.Errorf("%q is an IPv4-mapped IPv6 address; write %q", s, a.Unmap().String())
	case a.IsUnspecified(), a.IsMulticast():
		return netip.Addr{}, fmt.Errorf("%q is not a resolver's address", s)
	}
	return a, nil
}

// checkNTPServer checks an entry of ntp.servers or ntp.pools: a host name
// or IP address with an optional port. An IPv6 address with a port is
// written in brackets, as in a URL.
func checkNTPServer(s string) error {
	bad := fmt.Errorf("%q is not an NTP server: give a host name or IP address, with an optional port, like \"pool.ntp.org\", \"10.0.0.1:123\" or \"[fd00::1]:123\"", s)
	if u, err := url.Parse(s); err == nil && u.Scheme != "" && u.Host != "" {
		return fmt.Errorf("%q is a URL; give the host alone, like %q", s, u.Host)
	}
	host := s
	if _, err := netip.ParseAddr(s); err != nil && strings.ContainsAny(s, ":[]") {
		h, port, err := net.SplitHostPort(s)
		if err != nil {
			return bad
		}
		if n, err := strconv.Atoi(port); err != nil || strings.Trim(port, "0123456789") != "" || n < 1 || n > 65535 {
			return fmt.Errorf("%q has a port outside 1-65535; leave it out for NTP's 123", s)
		}
		host = h
	}
	if a, err := netip.ParseAddr(host); err == nil {
		switch {
		case a.Zone() != "":
			return fmt.Errorf("%q has an IPv6 zone; give a global or unique local address", s)
		case a.Is4In6():
			return fmt.Errorf("%q is an IPv4-mapped IPv6 address; write %q", s, a.Unmap().String())
		case a.IsUnspecified(), a.IsMulticast():
			return fmt.Errorf("%q is not a server's address", s)
		}
		return nil
	}
	if !isDNSName(host, 253) {
		return bad
	}
	return nil
}

// checkToken checks an RKE2 token without echoing it: errors end up on the
// console and in build logs.
func checkToken(s string) error {
	if s == "" {
		return errors.New("is empty; give the cluster token or leave the key out")
	}
	if len(s) > 1024 {
		return errors.New("is longer than 1024 characters; is it the token?")
	}
	for _, r := range s {
		if r <= ' ' || r == 0x7f {
			return errors.New("contains spaces or control characters; copy the token without line breaks")
		}
	}
	rest, secure := strings.CutPrefix(s, "K10")
	if !secure {
		return nil
	}
	// A secure token is K10<sha256 of the CA, hex>::<user>:<password>.
	bad := errors.New("starts like a secure token (K10) but is not \"K10<ca-hash>::<user>:<password>\"; copy it whole from the first server's /var/lib/rancher/rke2/server/node-token")
	hash, creds, ok := strings.Cut(rest, "::")
	if !ok {
		return bad
	}
	if len(hash) != 64 || strings.Trim(strings.ToLower(hash), "0123456789abcdef") != "" {
		return bad
	}
	user, pass, ok := strings.Cut(creds, ":")
	if !ok || user == "" || pass == "" {
		return bad
	}
	return nil
}

// checkServerURL checks rke2.server: https with an explicit port.
func checkServerURL(s string) error {
	u, err := url.Parse(s)
	bad := fmt.Errorf("%q is not an https URL with a port, like \"https://10.0.0.1:9345\"", s)
	if err != nil || u.Host == "" || u.Opaque != "" {
		return bad
	}
	switch {
	case u.Scheme != "https":
		return fmt.Errorf("%q must use https, like \"https://%s:9345\"", s, u.Hostname())
	case u.User != nil || u.RawQuery != "" || u.Fragment != "" || (u.Path != "" && u.Path != "/"):
		return fmt.Errorf("%q must be just scheme, host and port, like \"https://%s:9345\"", s, u.Hostname())
	case u.Port() == "":
		return fmt.Errorf("%q needs the port, usually 9345: \"https://%s:9345\"", s, u.Host)
	}
	if port, err := strconv.Atoi(u.Port()); err != nil || port < 1 || port > 65535 {
		return bad
	}
	if !isHost(u.Hostname()) {
		return bad
	}
	return nil
}

// isHost reports whether s is an IP address or a DNS name.
func isHost(s string) bool {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Zone() == ""
	}
	return isDNSName(s, 253)
}

// subdomainRe matches a Kubernetes DNS-1123 subdomain (lowercase).
var subdomainRe = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)

// checkNodeName checks a Kubernetes node name.
func checkNodeName(s string) error {
	if len(s) > 253 || !subdomainRe.MatchString(s) {
		return fmt.Errorf("%q is not a Kubernetes node name: use lowercase letters, digits, \"-\" and \".\", like \"node-1\"", s)
	}
	return nil
}

// labelNameRe matches the name part of a label key and a label value.
var labelNameRe = regexp.MustCompile(`^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$`)

// checkLabelKey checks a Kubernetes label or taint key: [prefix/]name.
func checkLabelKey(k string) error {
	prefix, name, hasPrefix := strings.Cut(k, "/")
	if !hasPrefix {
		prefix, name = "", k
	}
	if hasPrefix && (len(prefix) > 253 || !subdomainRe.MatchString(prefix)) {
		return fmt.Errorf("key %q has a prefix that is not a lowercase DNS name, like \"example.com/role\"", k)
	}
	if len(name) > 63 || !labelNameRe.MatchString(name) {
		return fmt.Errorf("key %q is not a label key: up to 63 letters, digits, \"-\", \"_\" or \".\", starting and ending with a letter or digit, like \"example.com/role\"", k)
	}
	return nil
}

// checkLabelValue checks a Kubernetes label or taint value.
func checkLabelValue(v string) error {
	if v != "" && (len(v) > 63 || !labelNameRe.MatchString(v)) {
		return fmt.Errorf("value %q is not a label value: up to 63 letters, digits, \"-\", \"_\" or \".\", starting and ending with a letter or digit", v)
	}
	return nil
}

// kubeletLabels are the kubernetes.io labels the kubelet may set on its own
// node; it refuses to start with any other label in the kubernetes.io or
// k8s.io namespaces (NodeRestriction).
var kubeletLabels = map[string]bool{
	"kubernetes.io/hostname":                   true,
	"kubernetes.io/arch":                       true,
	"kubernetes.io/os":                         true,
	"beta.kubernetes.io/arch":                  true,
	"beta.kubernetes.io/os":                    true,
	"beta.kubernetes.io/instance-type":         true,
	"node.kubernetes.io/instance-type":         true,
	"topology.kubernetes.io/region":            true,
	"topology.kubernetes.io/zone":              true,
	"failure-domain.beta.kubernetes.io/region": true,
	"failure-domain.beta.kubernetes.io/zone":   true,
}

// checkLabel checks a node-label entry "key=value".
func checkLabel(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok {
		return fmt.Errorf("%q is not a label \"key=value\", like \"topology.kubernetes.io/zone=zone-a\"", s)
	}
	if err := checkLabelKey(k); err != nil {
		return fmt.Errorf("%q: %v", s, err)
	}
	if err := checkLabelValue(v); err != nil {
		return fmt.Errorf("%q: %v", s, err)
	}
	if prefix, _, has := strings.Cut(k, "/"); has && !kubeletLabels[k] {
		restricted := prefix == "kubernetes.io" || strings.HasSuffix(prefix, ".kubernetes.io") || prefix == "k8s.io" || strings.HasSuffix(prefix, ".k8s.io")
		allowed := false
		for _, ns := range []string{"kubelet.kubernetes.io", "node.kubernetes.io"} {
			if prefix == ns || strings.HasSuffix(prefix, "."+ns) {
				allowed = true
			}
		}
		if restricted && !allowed {
			return fmt.Errorf("%q is in a kubernetes.io namespace the kubelet may not set, and the kubelet would refuse to start; use node.kubernetes.io/ or your own prefix, or set it with kubectl after the node joins", s)
		}
	}
	return nil
}

// checkTaint checks a node-taint entry "key=value:Effect" (or "key:Effect").
func checkTaint(s string) error {
	kv, effect, ok := cutLast(s, ":")
	if !ok {
		return fmt.Errorf("%q is not a taint \"key=value:Effect\", like \"dedicated=gpu:NoSchedule\"", s)
	}
	switch effect {
	case "NoSchedule", "PreferNoSchedule", "NoExecute":
	default:
		return fmt.Errorf("%q has effect %q; use NoSchedule, PreferNoSchedule or NoExecute", s, effect)
	}
	k, v, _ := strings.Cut(kv, "=")
	if err := checkLabelKey(k); err != nil {
		return fmt.Errorf("%q: %v", s, err)
	}
	if err := checkLabelValue(v); err != nil {
		return fmt.Errorf("%q: %v", s, err)
	}
	return nil
}

// cutLast slices s around the last sep.
func cutLast(s, sep string) (before, after string, found bool) {
	if i := strings.LastIndex(s, sep); i >= 0 {
		return s[:i], s[i+len(sep):], true
	}
	return s, "", false
}

// checkSAN checks a tls-san entry: an IP address or a DNS name, which may
// start with "*.".
func checkSAN(s string) error {
	if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
		return nil
	}
	if isDNSName(strings.TrimPrefix(s, "*."), 253) {
		return nil
	}
	return fmt.Errorf("%q is not a host name or IP address for the server certificate, like \"rke2.example.com\" or \"10.0.0.10\"", s)
}

// checkNodeIP checks a node-ip entry: IP addresses, comma-separated as
// RKE2 takes them (one per family on a dual-stack node).
func checkNodeIP(s string) error {
	for _, f := range strings.Split(s, ",") {
		if a, err := netip.ParseAddr(strings.TrimSpace(f)); err != nil || a.Zone() != "" || a.IsUnspecified() {
			return fmt.Errorf("%q is not an IP address of this node, like \"10.0.0.11\" (or \"10.0.0.11,fd00::11\" on a dual-stack node)", s)
		}
	}
	return nil
}

// primaryCNIs are the CNIs RKE2 ships; multus may come before one of them.
var primaryCNIs = map[string]bool{"canal": true, "calico": true, "cilium": true, "flannel": true, "none": true}

// checkCNI checks a CNI selection as RKE2 does: one primary CNI, or multus
// followed by one.
func checkCNI(names []string) error {
	for i := range names {
		names[i] = strings.TrimSpace(names[i])
		if n := names[i]; n != "multus" && !primaryCNIs[n] {
			return fmt.Errorf("%q is not a CNI RKE2 ships: use canal, calico, cilium, flannel or none (with multus first to add Multus)", n)
		}
	}
	switch {
	case len(names) == 0:
		return errors.New("is empty; name a CNI like canal")
	case len(names) > 2:
		return fmt.Errorf("%v has more than two CNIs; RKE2 takes one, or multus and one, like [multus, canal]", names)
	case len(names) == 1 && names[0] == "multus":
		return errors.New("[multus] needs a primary CNI after it, like [multus, canal]")
	case len(names) == 2 && (names[0] != "multus" || names[1] == "multus"):
		return fmt.Errorf("%v combines CNIs RKE2 cannot: only multus adds to another, and it comes first, like [multus, canal]", names)
	}
	for _, n := range names {
		if !builtCNIs[n] {
			return fmt.Errorf("%s is a CNI RKE2 ships, but this OS cannot build its images offline and does not carry it: use cni: flannel (the default here), or cni: none and install your own CNI", n)
		}
	}
	return nil
}

// builtCNIs are the CNIs this OS carries: flannel, built from source, or
// none (the user brings one).
var builtCNIs = map[string]bool{"flannel": true, "none": true}

// registryHostRe matches a registry host[:port]: a name, an IPv4 address or
// a bracketed IPv6 address.
var registryHostRe = regexp.MustCompile(`^([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?$`)

// checkRegistryHost checks a registries key: "*" or a registry host[:port].
func checkRegistryHost(s string) error {
	if s == "*" {
		return nil
	}
	if strings.Contains(s, "://") {
		u, _ := url.Parse(s)
		if u != nil && u.Host != "" {
			return fmt.Errorf("%q is a URL; registries are keyed by host, like %q", s, u.Host)
		}
	}
	m := registryHostRe.FindStringSubmatch(s)
	if m == nil {
		return fmt.Errorf("%q is not a registry host like \"registry.example.com:5000\" (or \"*\")", s)
	}
	host := strings.Trim(m[1], "[]")
	if a, err := netip.ParseAddr(host); !(err == nil && a.Zone() == "") && !isDNSName(host, 253) {
		return fmt.Errorf("%q is not a registry host like \"registry.example.com:5000\" (or \"*\")", s)
	}
	if m[2] != "" {
		if port, _ := strconv.Atoi(m[2][1:]); port < 1 || port > 65535 {
			return fmt.Errorf("%q has a port outside 1-65535", s)
		}
	}
	return nil
}

// checkMirrorName checks a registries.mirrors key: "*" or a registry name.
func checkMirrorName(s string) error { return checkRegistryHost(s) }

// checkEndpoint checks a mirror endpoint URL.
func checkEndpoint(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || !isHost(u.Hostname()) {
		return fmt.Errorf("%q is not an http(s) URL like \"https://mirror.example.com:5000\"", s)
	}
	if u.User != nil {
		return fmt.Errorf("%q carries credentials; put them under registries.configs[%q].auth", u.Redacted(), u.Host)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%q has a query or fragment; give the registry's base URL", s)
	}
	return nil
}

// checkRewrite checks a mirror rewrite pattern: containerd compiles it with
// Go's regexp.
func checkRewrite(s string) error {
	if _, err := regexp.Compile(s); err != nil {
		return fmt.Errorf("%q is not a regular expression: %v", s, err)
	}
	return nil
}

// checkAuth checks registry credentials without echoing secrets.
func checkAuth(a *RegistryAuth) error {
	if a.Auth != "" && (a.Username != "" || a.Password != "") {
		return errors.New("gives auth and username or password; give either username and password or auth, not both")
	}
	if (a.Username == "") != (a.Password == "") {
		return errors.New("needs username and password together")
	}
	if a.Auth != "" {
		b, err := base64.StdEncoding.DecodeString(a.Auth)
		if err != nil || !bytes.Contains(b, []byte(":")) {
			return errors.New("auth is not base64 of \"user:password\"; make it with \"printf user:password | base64 -w0\"")
		}
	}
	return nil
}
