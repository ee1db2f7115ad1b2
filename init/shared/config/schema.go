// Package config is the one node config schema of rke2os: the builder
// validates configs with it at build time and the init parses them with it at
// boot.
//
// A config is a cloud-init-style YAML document. It comes from up to three
// sources, merged in this order, later wins: the file baked into the image,
// the NoCloud "cidata" volume (user-data and meta-data) and the kernel command
// line (rke2.config=<base64 YAML>). Parsing is strict: an unknown key or a bad
// value is an error naming the source, the line, the key path and the fix,
// because a node that boots with a silently ignored typo is harder to debug
// than one that refuses to boot and says why.
package config

import (
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Node roles, the values of the role key.
const (
	RoleServer = "server"
	RoleAgent  = "agent"
)

// Actions for on_containerd_exit: what the init does when containerd dies.
const (
	ContainerdExitRestart = "restart"
	ContainerdExitReboot  = "reboot"
)

// Defaults applied to write_files entries that leave the key out.
const (
	DefaultPermissions = "0644"
	DefaultOwner       = "root:root"
)

// Config is one parsed node config, or the merge of several. The comment of
// each field names its YAML key. The zero value is an empty config.
type Config struct {
	// Hostname is "hostname": the node's host name (RFC 1123).
	Hostname string
	// NodeRole is "role": "server", "agent" or "" for the image's default.
	// Read it through Role.
	NodeRole string
	// WriteFiles is "write_files": files written at boot before RKE2 starts.
	WriteFiles []WriteFile
	// Sysctls is "sysctls": kernel parameters, key like net.ipv4.ip_forward.
	Sysctls map[string]string
	// Modules is "modules": kernel modules to load, in order.
	Modules []string
	// Network is "network": links, addresses, routes and DNS.
	Network Network
	// RKE2 is "rke2": the content of /etc/rancher/rke2/config.yaml.
	RKE2 RKE2Config
	// Registries is "registries": the content of
	// /etc/rancher/rke2/registries.yaml.
	Registries Registries
	// NTP is "ntp": the time servers the node sets its clock from.
	NTP NTP
	// OnContainerdExit is "on_containerd_exit": "restart", "reboot" or "" for
	// restart. Read it through ContainerdExitAction.
	OnContainerdExit string
	// Debug is "debug": switches for test hooks, like {hooks: true}.
	Debug map[string]bool
	// Join is "join": how a node that joins a cluster trusts its server.
	Join Join
	// Install is "install": install the system from the ISO onto a disk,
	// at a boot from the ISO; nil when the config has no install section.
	Install *Install
}

// What the node does once an install is done (install.after).
const (
	InstallReboot   = "reboot"
	InstallPowerOff = "poweroff"
)

// Install is the "install" section: a node booted from the ISO writes the
// system onto a disk (the raw image's partitions and system slot, the
// config it booted with), then reboots into it. Exactly one of Device and
// Disk is set.
type Install struct {
	// Device is "device": the disk's path, like /dev/vda.
	Device string
	// Disk is "disk": the first disk (in /sys/block order, not the boot
	// medium's, nor a removable, read-only, loop, RAM, CD or zram one)
	// that matches every criterion given.
	Disk *DiskSelector
	// Wipe is "wipe": install onto a disk that holds something. Without
	// it such a disk is refused, and nothing is written.
	Wipe bool
	// After is "after": InstallReboot (the default, also for "") or
	// InstallPowerOff. Read it through AfterAction.
	After string
}

// AfterAction is what the node does once the install is done:
// InstallReboot unless the config says poweroff.
func (in *Install) AfterAction() string {
	if in == nil || in.After == "" {
		return InstallReboot
	}
	return in.After
}

// DiskSelector is "install.disk": criteria a disk must all meet, as
// Talos' diskSelector has them.
type DiskSelector struct {
	// MinSize is "min_size": the least size in bytes (given like 8GiB,
	// 8G or 8GB; see ParseSize); 0 for any.
	MinSize int64
	// Model is "model": a glob on the disk's model (sysfs' device/model),
	// like "QEMU*"; "" for any.
	Model string
	// Serial is "serial": a glob on the disk's serial number; "" for any.
	Serial string
}

// Role returns the node's role: the config's role if it sets one, else
// defaultRole (the image's default).
func (c *Config) Role(defaultRole string) string {
	if c == nil || c.NodeRole == "" {
		return defaultRole
	}
	return c.NodeRole
}

// ContainerdExitAction returns what the init does when containerd exits:
// ContainerdExitRestart (the default) or ContainerdExitReboot.
func (c *Config) ContainerdExitAction() string {
	if c == nil || c.OnContainerdExit == "" {
		return ContainerdExitRestart
	}
	return c.OnContainerdExit
}

// KeyTrustOnFirstUse is the key path of Join.TrustOnFirstUse, for the
// messages that name it.
const KeyTrustOnFirstUse = "join.trust_on_first_use"

// Join is the "join" section. RKE2 has no such keys: they are rke2os's
// own, about what RKE2 leaves to the token.
type Join struct {
	// TrustOnFirstUse is "trust_on_first_use": a further server (role
	// server with rke2.server set) given a bare secret as its token, which
	// pins no CA, trusts the CA the server presents at its first join
	// instead of refusing to join; nil when the key is left out, which
	// means false. Every later join is pinned to the CA it took. An agent
	// trusts on first use whatever this says, as RKE2's agents do: it
	// takes no cluster keys. Read it through TrustsOnFirstUse.
	TrustOnFirstUse *bool
}

// TrustsOnFirstUse reports whether a further server with a bare secret
// trusts the CA its server presents at its first join: false unless the
// config says "join: {trust_on_first_use: true}".
func (c *Config) TrustsOnFirstUse() bool {
	return c != nil && c.Join.TrustOnFirstUse != nil && *c.Join.TrustOnFirstUse
}

// WriteFile is one entry of write_files, named as in cloud-init.
type WriteFile struct {
	// Path is "path": absolute and clean.
	Path string
	// Content is "content", still encoded as Encoding says.
	Content string
	// Encoding is "encoding": "" or "plain" (text as is), "b64" or "base64",
	// "gz+b64" or "gzip+base64" (and cloud-init's other spellings), or
	// "gz"/"gzip" for gzip data given as a YAML !!binary.
	Encoding string
	// Permissions is "permissions": an octal mode string, "0644" by default.
	Permissions string
	// Owner is "owner": "user:group" with numeric ids or root, "root:root"
	// by default. Names other than root are refused: the init has no
	// /etc/passwd to look them up in at boot.
	Owner string
	// Append is "append": add to the end of an existing file instead of
	// replacing it.
	Append bool
}

// maxFileSize bounds a decoded write_files entry, so that a gzip bomb in a
// config cannot exhaust the memory of a node at boot.
const maxFileSize = 64 << 20

// Decode returns the file's bytes, decoded as its encoding says.
func (f *WriteFile) Decode() ([]byte, error) {
	b, err := decodeContent(f.Content, f.Encoding)
	if err != nil {
		return nil, fmt.Errorf("write_files entry %q: %w", f.Path, err)
	}
	return b, nil
}

// Mode returns the file mode of Permissions (DefaultPermissions if empty),
// with the setuid, setgid and sticky bits mapped to their fs.FileMode flags.
func (f *WriteFile) Mode() (fs.FileMode, error) {
	p := f.Permissions
	if p == "" {
		p = DefaultPermissions
	}
	m, err := parseMode(p)
	if err != nil {
		return 0, fmt.Errorf("write_files entry %q: permissions %w", f.Path, err)
	}
	return m, nil
}

// OwnerIDs returns the numeric uid and gid of Owner (DefaultOwner if empty).
func (f *WriteFile) OwnerIDs() (uid, gid int, err error) {
	o := f.Owner
	if o == "" {
		o = DefaultOwner
	}
	uid, gid, err = parseOwner(o)
	if err != nil {
		return 0, 0, fmt.Errorf("write_files entry %q: owner %w", f.Path, err)
	}
	return uid, gid, nil
}

// Network is the "network" section.
type Network struct {
	// Interfaces is "interfaces": one entry per link to configure.
	Interfaces []Interface
	// DNS is "dns": resolvers and search domains.
	DNS DNS
}

// Interface configures one network link, found by name or by MAC address.
type Interface struct {
	// Name is "name": the kernel's link name, like eth0. With MAC set too,
	// the link with that MAC is renamed to Name, as cloud-init does.
	Name string
	// MAC is "mac": the link's hardware address.
	MAC net.HardwareAddr
	// DHCP4 is "dhcp4": get an IPv4 lease.
	DHCP4 bool
	// Addresses is "addresses": static addresses with their prefix length.
	Addresses []netip.Prefix
	// Gateway4 is "gateway4": the IPv4 default gateway.
	Gateway4 netip.Addr
	// Routes is "routes": extra static routes.
	Routes []Route
	// MTU is "mtu", 0 for the link's default.
	MTU int
}

// Route is one static route of an interface.
type Route struct {
	// To is "to": the destination network.
	To netip.Prefix
	// Via is "via": the next hop.
	Via netip.Addr
	// Metric is "metric", 0 if not set.
	Metric uint32
}

// DNS is the "network.dns" section, written to /etc/resolv.conf.
type DNS struct {
	// Servers is "servers": resolver addresses.
	Servers []netip.Addr
	// Search is "search": search domains.
	Search []string
}

// NTP is the "ntp" section, with the keys of cloud-init's ntp module that
// mean something here: enabled, servers and pools. The init asks the servers
// itself (package timesync) before it makes any certificate, since a
// certificate made while the clock is years off is not valid once it is
// right; without servers or pools here it asks those the DHCP lease names.
type NTP struct {
	// Enabled is "enabled": nil when the key is left out, which means true.
	// Read it through IsEnabled.
	Enabled *bool
	// Servers is "servers": host names or IP addresses, each with an
	// optional port (123 by default), like "10.0.0.1", "ntp.example.com:123"
	// or "[fd00::1]:123".
	Servers []string
	// Pools is "pools": names that stand for several servers, like
	// "pool.ntp.org", spelled as Servers; each address a pool resolves to
	// counts as a server.
	Pools []string
}

// IsEnabled reports whether the node sets its clock from NTP: true unless
// the config says "enabled: false".
func (n *NTP) IsEnabled() bool {
	return n == nil || n.Enabled == nil || *n.Enabled
}

// RKE2Config is the "rke2" section: the content of RKE2's
// /etc/rancher/rke2/config.yaml, any key RKE2 accepts, kept as the YAML
// nodes that were written (scalars keep their text and quoting) so that
// rendering it changes nothing RKE2 would read differently. The keys the init
// understands itself are validated when parsed and read through the
// accessors below.
type RKE2Config map[string]*yaml.Node

// String returns the text of a scalar key, "" if the key is absent or not a
// scalar.
func (r RKE2Config) String(key string) string {
	n := r[key]
	if n == nil || n.Kind != yaml.ScalarNode || n.ShortTag() == "!!null" {
		return ""
	}
	return n.Value
}

// Strings returns the values of a list key followed by those of its "key+"
// form (RKE2's append syntax, applied after the plain key). A scalar counts
// as a list of one.
func (r RKE2Config) Strings(key string) []string {
	var out []string
	for _, k := range []string{key, key + "+"} {
		n := r[k]
		if n == nil {
			continue
		}
		switch n.Kind {
		case yaml.ScalarNode:
			if n.ShortTag() != "!!null" {
				out = append(out, n.Value)
			}
		case yaml.SequenceNode:
			for _, c := range n.Content {
				if c.Kind == yaml.ScalarNode {
					out = append(out, c.Value)
				}
			}
		}
	}
	return out
}

// Token returns "token", the cluster's shared secret.
func (r RKE2Config) Token() string { return r.String("token") }

// Server returns "server", the URL of the server to join, like
// https://10.0.0.1:9345; "" on a first server.
func (r RKE2Config) Server() string { return r.String("server") }

// NodeName returns "node-name", "" to use the host name.
func (r RKE2Config) NodeName() string { return r.String("node-name") }

// NodeLabels returns "node-label" (and "node-label+"), each "key=value".
func (r RKE2Config) NodeLabels() []string { return r.Strings("node-label") }

// NodeTaints returns "node-taint" (and "node-taint+"), each
// "key=value:Effect".
func (r RKE2Config) NodeTaints() []string { return r.Strings("node-taint") }

// NodeIPs returns "node-ip" (and "node-ip+"), comma-separated values
// split as RKE2 does: the addresses the kubelet advertises.
func (r RKE2Config) NodeIPs() []string { return r.commaList("node-ip") }

// TLSSANs returns "tls-san" (and "tls-san+"): extra names and addresses of
// the server certificate.
func (r RKE2Config) TLSSANs() []string { return r.Strings("tls-san") }

// CNI returns the CNI selection of "cni", with comma-separated values split
// as RKE2 does; nil means the default (flannel here, canal in RKE2).
func (r RKE2Config) CNI() []string { return r.commaList("cni") }

// commaList is Strings(key) with each value split at its commas, as RKE2
// reads its StringSlice flags; empty items are dropped.
func (r RKE2Config) commaList(key string) []string {
	var out []string
	for _, v := range r.Strings(key) {
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
	}
	return out
}

// Registries is the "registries" section: the content of RKE2's
// /etc/rancher/rke2/registries.yaml, with RKE2's keys and meaning. It is the
// one Go form of registries.yaml in rke2os: the init writes it for RKE2,
// and package content pulls images through it. ParseRegistries reads a
// standalone file.
type Registries struct {
	// Mirrors is "mirrors": a registry name (like docker.io or
	// registry.example.com:5000, or "*" for every registry without an entry
	// of its own) to the mirrors to try before the registry itself.
	Mirrors map[string]Mirror `yaml:"mirrors,omitempty"`
	// Configs is "configs": an endpoint's host[:port] to its credentials
	// and TLS.
	Configs map[string]RegistryConfig `yaml:"configs,omitempty"`
}

// Mirror lists the endpoints that serve a registry's images.
type Mirror struct {
	// Endpoints is "endpoint": http(s) URLs tried in order.
	Endpoints []string `yaml:"endpoint,omitempty"`
	// Rewrites is "rewrite": regular expression -> replacement applied to
	// repository names ("^rancher/(.*)" -> "mirrored/rancher/$1") when
	// pulling from an endpoint of the mirror; the registry itself gets the
	// original name.
	Rewrites map[string]string `yaml:"rewrite,omitempty"`
}

// RegistryConfig holds the credentials and TLS settings of one registry.
type RegistryConfig struct {
	// Auth is "auth": credentials, nil for none.
	Auth *RegistryAuth `yaml:"auth,omitempty"`
	// TLS is "tls": client certificate, CA and verification, nil for the
	// defaults.
	TLS *RegistryTLS `yaml:"tls,omitempty"`
}

// RegistryAuth holds registry credentials.
type RegistryAuth struct {
	// Username and Password are "username" and "password", set together.
	Username string `yaml:"username,omitempty"`
	Password string `yaml:"password,omitempty"`
	// Auth is "auth": base64 of "username:password", as in Docker's
	// config.json.
	Auth string `yaml:"auth,omitempty"`
	// IdentityToken is "identitytoken" (RKE2's spelling): an OAuth refresh token.
	IdentityToken string `yaml:"identitytoken,omitempty"`
}

// RegistryTLS holds the client certificate, CA and verification setting used
// to reach a registry.
type RegistryTLS struct {
	// CertFile and KeyFile are "cert_file" and "key_file": the client
	// certificate and its key, absolute paths on the node, set together.
	CertFile string `yaml:"cert_file,omitempty"`
	KeyFile  string `yaml:"key_file,omitempty"`
	// CAFile is "ca_file": the CA bundle that signs the registry's
	// certificate.
	CAFile string `yaml:"ca_file,omitempty"`
	// InsecureSkipVerify is "insecure_skip_verify": do not verify the
	// registry's certificate.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify,omitempty"`
}

// parseMode parses an octal mode string like "0644", "644", "1777" or
// "0o755". At least three digits are required: "44" is more likely a typo
// than a mode.
func parseMode(s string) (fs.FileMode, error) {
	t := strings.TrimPrefix(s, "0o")
	v, err := strconv.ParseUint(t, 8, 32)
	if err != nil || len(t) < 3 || len(t) > 5 || v > 0o7777 {
		return 0, fmt.Errorf("%q is not an octal mode like \"0644\"", s)
	}
	m := fs.FileMode(v & 0o777)
	if v&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if v&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if v&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	return m, nil
}

// parseOwner parses "user:group" where each is a numeric id or root, or
// "root" alone.
func parseOwner(s string) (uid, gid int, err error) {
	if s == "root" {
		return 0, 0, nil
	}
	u, g, ok := strings.Cut(s, ":")
	if !ok {
		return 0, 0, fmt.Errorf("%q is not \"user:group\" like \"root:root\" or \"1000:1000\"", s)
	}
	uid, err1 := parseID(u)
	gid, err2 := parseID(g)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("%q must use numeric ids or root, like \"root:root\" or \"1000:1000\" (there is no /etc/passwd to look names up in at boot)", s)
	}
	return uid, gid, nil
}

// parseID parses a numeric user or group id, or "root".
func parseID(s string) (int, error) {
	if s == "root" {
		return 0, nil
	}
	if s == "" || len(s) > 10 || strings.TrimLeft(s, "0123456789") != "" {
		return 0, fmt.Errorf("%q is not a numeric id", s)
	}
	v, err := strconv.ParseUint(s, 10, 32)
	// 4294967295 is (uid_t)-1, which chown reads as "leave unchanged".
	if err != nil || v == 1<<32-1 {
		return 0, fmt.Errorf("%q is not a valid id", s)
	}
	return int(v), nil
}
