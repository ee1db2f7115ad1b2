// Package serverpki makes what an RKE2 server needs before its control
// plane can start, where and as RKE2 keeps it: the CAs and certificates
// under server/tls, the kubeconfigs under server/cred and agent/, the join
// tokens (server/token for servers, server/agent-token for agents), the
// secrets' encryption config, and the admin's rke2.yaml.
//
// Everything is made once and kept. At each run a certificate is issued
// again only when it must be: it expires within 90 days, starts in the
// future (made before the clock was set), names other hosts than the node
// and tls-san now give, or does not match its CA or key. A CA, a key or a
// secret that is there is never replaced: a user's own CA is used as it
// is, and a CA that cannot be read is an error, since it is the cluster's
// identity.
package serverpki

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/rke2os/rke2os/init/shared/layout"
	"github.com/rke2os/rke2os/internal/durable"
)

// Options are the inputs: the node and the config's keys RKE2 reads.
type Options struct {
	// Paths is RKE2's layout: DataDir /var/lib/rancher/rke2 and EtcDir
	// /etc/rancher/rke2 on a node, a temporary tree in tests.
	Paths layout.Paths
	// NodeName and NodeIPs are the node's name and addresses (node-name,
	// node-ip); the serving certificates name them.
	NodeName string
	NodeIPs  []net.IP
	// TLSSANs are the config's tls-san: more names and addresses of the
	// apiserver's certificate.
	TLSSANs []string
	// Token is the config's token: a bare secret or a full K10 token; ""
	// keeps the cluster's, or makes one on the first start.
	Token string
	// AgentToken is the config's agent-token: a bare secret or a full K10
	// token for the user node. "" keeps the agents' own secret, or makes
	// one (DefaultAgentToken, else a new one).
	AgentToken string
	// DefaultAgentToken is the agents' token when neither the config nor
	// the node has one: the baked agent-token of the image.
	DefaultAgentToken string
	// FurtherServer is a server that joins the cluster of the config's
	// server: its passwd, with the agents' secret, is the cluster's
	// (server-bootstrap), and it makes no agent secret of its own, which
	// would be this server's alone.
	FurtherServer bool
	// ServiceCIDR is service-cidr ("" for 10.43.0.0/16); its first address
	// is the kubernetes service's, named by the apiserver's certificate.
	ServiceCIDR string
	// ClusterDomain is cluster-domain ("" for cluster.local).
	ClusterDomain string
	// Kubeconfig is write-kubeconfig ("" for EtcDir/rke2.yaml), and
	// KubeconfigMode write-kubeconfig-mode, octal ("" for 0600).
	Kubeconfig     string
	KubeconfigMode string
}

// Result is what Ensure did. The tokens are secrets: they stay out of the
// JSON form, which rke2-node prints.
type Result struct {
	// Written lists the files made or rewritten, in order; empty when
	// everything was already in place.
	Written []string `json:"written,omitempty"`
	// Warnings are what is kept but wrong, such as a CA that is not valid
	// now (a CA is never replaced).
	Warnings []string `json:"warnings,omitempty"`
	// TokenFile is server/token; CAHash the hash a full token pins the
	// server CA with.
	TokenFile string `json:"token_file"`
	CAHash    string `json:"ca_hash"`
	// Token and AgentToken are the full K10 tokens servers and agents join
	// with.
	Token      string `json:"-"`
	AgentToken string `json:"-"`
}

// APIServerPort is the apiserver's port on the node.
const APIServerPort = 6443

// Ensure makes or checks everything, in RKE2's order: CAs, keys and
// certificates, kubeconfigs, tokens, the encryption config.
func Ensure(o Options) (*Result, error) {
	in, err := o.check()
	if err != nil {
		return nil, err
	}
	b := &builder{paths: o.Paths}
	cas, err := b.ensureCAs()
	if err != nil {
		return nil, err
	}
	if err := b.signingCA("server-ca", cas.server); err != nil {
		return nil, fmt.Errorf("server-ca.nochain.crt: %w", err)
	}
	if err := b.signingCA("client-ca", cas.client); err != nil {
		return nil, fmt.Errorf("client-ca.nochain.crt: %w", err)
	}
	if err := b.signingCA("kubelet-serving-ca", cas.kubeletServing); err != nil {
		return nil, fmt.Errorf("kubelet-serving-ca.nochain.crt: %w", err)
	}
	if err := b.serviceAccountKeys(); err != nil {
		return nil, err
	}
	// The keys k3s hands to agents too old to send a certificate request.
	for _, k := range []string{"client-kubelet.key", "serving-kubelet.key"} {
		if err := b.ensureKey(o.Paths.Server("tls", k)); err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
	}
	var nodeIP net.IP
	if len(o.NodeIPs) > 0 {
		nodeIP = o.NodeIPs[0]
	}
	apiDNS, apiIPs := apiServerSANs(in.clusterDomain, o.TLSSANs, o.NodeName, o.NodeIPs, in.serviceIP)
	certs := controlPlaneCerts(o.Paths, cas, apiDNS, apiIPs)
	certs = append(certs, etcdCerts(o.Paths, cas, o.NodeName, nodeIP)...)
	certs = append(certs, agentCerts(o.Paths, cas, o.NodeName, o.NodeIPs)...)
	for _, c := range certs {
		if err := b.issue(c); err != nil {
			return nil, err
		}
	}
	// The agent's copies of the CAs, which an agent downloads from a server.
	for _, ca := range []string{"server-ca.crt", "client-ca.crt"} {
		if err := b.copyFile(o.Paths.Server("tls", ca), o.Paths.Agent(ca), 0o644); err != nil {
			return nil, fmt.Errorf("agent %s: %w", ca, err)
		}
	}
	if err := b.kubeconfigs(in.server); err != nil {
		return nil, err
	}
	if err := b.adminKubeconfig(in.kubeconfig, in.server, in.kubeconfigMode); err != nil {
		return nil, err
	}
	res, err := b.tokens(in)
	if err != nil {
		return nil, err
	}
	if err := b.encryptionConfigs(); err != nil {
		return nil, err
	}
	if err := b.ipsecPSK(); err != nil {
		return nil, err
	}
	res.Written, res.Warnings = b.written, b.warnings
	return res, nil
}

// inputs are Options checked and defaulted.
type inputs struct {
	token, agentToken, agentDefault *Token
	furtherServer                   bool
	serviceIP                       net.IP
	clusterDomain                   string
	server                          string // the apiserver's URL on the node
	kubeconfig                      string
	kubeconfigMode                  os.FileMode
}

// check refuses bad options before anything is written.
func (o Options) check() (*inputs, error) {
	in := &inputs{clusterDomain: o.ClusterDomain, kubeconfig: o.Kubeconfig, kubeconfigMode: 0o600, furtherServer: o.FurtherServer}
	if !filepath.IsAbs(o.Paths.DataDir) || !filepath.IsAbs(o.Paths.EtcDir) {
		return nil, fmt.Errorf("server PKI: data dir %q and etc dir %q must be absolute paths", o.Paths.DataDir, o.Paths.EtcDir)
	}
	if o.NodeName == "" {
		return nil, errors.New("server PKI: no node name")
	}
	if strings.HasPrefix(o.NodeName, "*") || !validDNSName(o.NodeName) {
		return nil, fmt.Errorf("node name %q is not a DNS name like node-1 (the serving certificates name it)", o.NodeName)
	}
	for _, s := range o.TLSSANs {
		if net.ParseIP(s) == nil && !validDNSName(s) {
			return nil, fmt.Errorf("tls-san %q is neither an IP address nor a DNS name like api.example.com or *.example.com", s)
		}
	}
	if o.Token != "" {
		t, err := secretFor("token", o.Token, "server")
		if err != nil {
			return nil, err
		}
		in.token = &t
	}
	if o.AgentToken != "" {
		t, err := secretFor("agent-token", o.AgentToken, "node")
		if err != nil {
			return nil, err
		}
		in.agentToken = &t
	}
	if o.DefaultAgentToken != "" {
		t, err := secretFor("the baked agent-token", o.DefaultAgentToken, "node")
		if err != nil {
			return nil, err
		}
		in.agentDefault = &t
	}
	cidr := o.ServiceCIDR
	if cidr == "" {
		cidr = "10.43.0.0/16"
	}
	cidr, _, _ = strings.Cut(cidr, ",") // the apiserver's service is in the first range
	_, n, err := net.ParseCIDR(strings.TrimSpace(cidr))
	if err != nil {
		return nil, fmt.Errorf("service-cidr %q is not a CIDR like 10.43.0.0/16", cidr)
	}
	in.serviceIP = slices.Clone(n.IP)
	in.serviceIP[len(in.serviceIP)-1]++
	if !n.Contains(in.serviceIP) {
		return nil, fmt.Errorf("service-cidr %q has no room for the kubernetes service", cidr)
	}
	in.server = fmt.Sprintf("https://127.0.0.1:%d", APIServerPort)
	if n.IP.To4() == nil {
		in.server = fmt.Sprintf("https://[::1]:%d", APIServerPort)
	}
	if in.clusterDomain == "" {
		in.clusterDomain = "cluster.local"
	}
	if in.kubeconfig == "" {
		in.kubeconfig = filepath.Join(o.Paths.EtcDir, "rke2.yaml")
	}
	if o.KubeconfigMode != "" {
		m, err := strconv.ParseUint(o.KubeconfigMode, 8, 32)
		if err != nil || m > 0o777 {
			return nil, fmt.Errorf("write-kubeconfig-mode %q is not an octal mode like \"0600\" or \"0644\"", o.KubeconfigMode)
		}
		in.kubeconfigMode = os.FileMode(m)
	}
	return in, nil
}

// validDNSName accepts host names and wildcards: letters, digits, '-',
// '.', a leading "*.", at most 253 characters.
func validDNSName(s string) bool {
	name := strings.TrimPrefix(s, "*.")
	if name == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}

// tokens writes server/cred/passwd, server/token, server/agent-token and
// server/node-token, a link to agent-token (the file RKE2 gives agents).
// The server's secret is the config's, else the cluster's, else a new
// one; a config token that is not the cluster's is an error, since the
// cluster's bootstrap data is encrypted with it and joined nodes hold it.
// The agents' secret is agentSecret's.
func (b *builder) tokens(in *inputs) (*Result, error) {
	p := b.paths
	cfg := in.token
	caFile, err := os.ReadFile(p.Server("tls", "server-ca.crt"))
	if err != nil {
		return nil, fmt.Errorf("token: %w", err)
	}
	hash, err := CAHash(caFile)
	if err != nil {
		return nil, fmt.Errorf("token: server-ca.crt: %w", err)
	}
	for _, t := range []*Token{cfg, in.agentToken, in.agentDefault} {
		if t != nil && t.CAHash != "" && t.CAHash != hash {
			return nil, fmt.Errorf("token: the token pins CA sha256 %s, but this cluster's CA (%s) hashes to %s: a full K10 token belongs to the cluster whose CA it names; give the bare secret (after \"::<user>:\") to start a new cluster, or restore that cluster's CA", t.CAHash, p.Server("tls", "server-ca.crt"), hash)
		}
	}
	passwdPath, tokenPath := p.Server("cred", "passwd"), p.Server("token")
	users := passwd{}
	ok, err := exists(passwdPath)
	if err == nil && ok {
		users, err = readPasswd(passwdPath)
	}
	if err != nil {
		return nil, fmt.Errorf("token: %s: %w (it holds the cluster's token: restore it)", passwdPath, err)
	}
	stored := users["server"].secret
	if _, err := ParseToken(stored); stored != "" && err != nil {
		return nil, fmt.Errorf("token: %s: the server's secret: %w (restore the file)", passwdPath, err)
	}
	if stored == "" {
		// passwd lost but server/token kept: its secret is the one joined
		// nodes hold.
		if data, err := os.ReadFile(tokenPath); err == nil {
			if t, err := ParseToken(string(data)); err == nil && t.Username == "server" {
				stored = t.Password
			}
		}
	}
	secret := stored
	switch {
	case cfg != nil && stored != "" && cfg.Password != stored:
		return nil, fmt.Errorf("token: the config's token is not this cluster's (%s): a cluster's token cannot be changed by the config; remove token: or set it to the cluster's", tokenPath)
	case cfg != nil:
		secret = cfg.Password
	case secret == "":
		if secret, err = randomSecret(16); err != nil {
			return nil, err
		}
	}
	agentSecret, shared, err := b.agentSecret(in, users["node"].secret, secret, hash)
	if err != nil {
		return nil, err
	}
	users["server"] = passwdEntry{secret: secret, role: "rke2:server"}
	users["node"] = passwdEntry{secret: agentSecret, role: "rke2:agent"}
	if err := b.writeFile(passwdPath, users.bytes(), 0o600); err != nil {
		return nil, fmt.Errorf("token: %w", err)
	}
	res := &Result{TokenFile: tokenPath, CAHash: hash,
		Token: Token{CAHash: hash, Username: "server", Password: secret}.String()}
	if err := b.writeFile(tokenPath, []byte(res.Token+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("token: %w", err)
	}
	agentPath := p.Server("agent-token")
	if shared {
		res.AgentToken = res.Token
		err = b.symlink(tokenPath, agentPath)
	} else {
		res.AgentToken = Token{CAHash: hash, Username: "node", Password: agentSecret}.String()
		err = b.writeFile(agentPath, []byte(res.AgentToken+"\n"), 0o600)
	}
	if err != nil {
		return nil, fmt.Errorf("agent-token: %w", err)
	}
	if err := b.symlink(agentPath, p.Server("node-token")); err != nil {
		return nil, fmt.Errorf("node-token: %w", err)
	}
	return res, nil
}

// agentSecret is the secret agents join with, one of their own: RKE2
// gives them the server's unless agent-token is set, and with it every
// agent, and every agent image, can take the cluster's CA keys from
// server-bootstrap. It is, in order: the config's agent-token; the node's
// own (passwd's, else server/agent-token's); on a further server, the
// server's until the cluster's first server has made one (server-bootstrap
// then gives it: shared is true, and agent-token links to token, as it did
// before agents had a secret of their own); the image's baked agent-token;
// a new one. So a data dir from before agent secrets gets one at its next
// start. An agent-token file that cannot be read stops the start rather
// than be replaced: agents may hold it.
func (b *builder) agentSecret(in *inputs, stored, server, hash string) (secret string, shared bool, err error) {
	if in.agentToken != nil {
		return in.agentToken.Password, false, nil
	}
	if stored != "" && stored != server {
		return stored, false, nil
	}
	own, err := b.ownAgentSecret(hash)
	if err != nil {
		return "", false, err
	}
	switch {
	case own == server:
		b.warn("%s holds the server's secret: agents that hold it can take the cluster's CA keys; remove the file to have an agent token made, or set agent-token", b.paths.Server("agent-token"))
		return own, false, nil
	case own != "":
		return own, false, nil
	case in.furtherServer:
		b.warn("the cluster gives its agents no token of their own yet, and agents join with the server token: its first server makes one when it starts this version (server-bootstrap then hands it to this server), or set agent-token")
		return server, true, nil
	case in.agentDefault != nil:
		return in.agentDefault.Password, false, nil
	}
	s, err := randomSecret(16)
	return s, false, err
}

// ownAgentSecret is the secret of the node's server/agent-token, "" when
// it has none: no file, or the link to server/token agent-token was before
// agents had a secret of their own. A file that cannot be read, is no
// token or pins another CA is an error.
func (b *builder) ownAgentSecret(hash string) (string, error) {
	p := b.paths.Server("agent-token")
	fail := func(err error) (string, error) {
		return "", fmt.Errorf("agent-token: %w (agents may hold it: restore the file, or remove it to have a new agent token made)", err)
	}
	fi, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return fail(err)
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		if target, err := os.Readlink(p); err == nil && target == b.paths.Server("token") {
			return "", nil
		}
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return fail(err)
	}
	t, err := ParseToken(string(data))
	if err != nil {
		return fail(fmt.Errorf("%s: %w", p, err))
	}
	if t.CAHash != "" && t.CAHash != hash {
		return fail(fmt.Errorf("%s pins CA sha256 %s, not this cluster's %s", p, t.CAHash, hash))
	}
	return t.Password, nil
}

// builder writes the files and remembers which it wrote.
type builder struct {
	paths    layout.Paths
	written  []string
	warnings []string
}

func (b *builder) wrote(paths ...string) { b.written = append(b.written, paths...) }

func (b *builder) warn(format string, args ...any) {
	b.warnings = append(b.warnings, fmt.Sprintf(format, args...))
}

// writeFile writes data durably (durable.WriteFile) unless p already
// holds it with mode; directories it makes are private (0700).
func (b *builder) writeFile(p string, data []byte, mode os.FileMode) error {
	return b.writeFileIn(p, data, mode, 0o700)
}

func (b *builder) writeFileIn(p string, data []byte, mode, dirMode os.FileMode) error {
	if cur, err := os.ReadFile(p); err == nil && bytes.Equal(cur, data) {
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		if fi.Mode().Perm() == mode && fi.Mode().IsRegular() {
			return nil
		}
		if fi.Mode().IsRegular() {
			b.wrote(p)
			return os.Chmod(p, mode)
		}
	}
	if err := os.MkdirAll(filepath.Dir(p), dirMode); err != nil {
		return err
	}
	if fi, err := os.Lstat(p); err == nil && !fi.Mode().IsRegular() {
		// A symlink (agent-token was one) is replaced, not written through.
		if err := os.Remove(p); err != nil {
			return err
		}
	}
	if err := durable.WriteFile(p, data, mode); err != nil {
		return err
	}
	b.wrote(p)
	return nil
}

func (b *builder) copyFile(src, dst string, mode os.FileMode) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return b.writeFile(dst, data, mode)
}

// symlink makes link point at target, replacing whatever else is there, by
// a rename so that the link is never missing.
func (b *builder) symlink(target, link string) error {
	if cur, err := os.Readlink(link); err == nil && cur == target {
		return nil
	}
	if err := durable.Symlink(target, link); err != nil {
		return err
	}
	b.wrote(link)
	return nil
}

// mkdirs makes dir and its parents private (0700), as k3s makes
// server/tls and server/cred.
func mkdirs(dir string) error { return os.MkdirAll(dir, 0o700) }

// exists reports whether p is there; an error other than its absence (a
// directory that cannot be read) is returned, and so is a symlink to
// nothing: a CA linked to a medium that is not mounted is not absent, and
// must not be replaced by a new one.
func exists(p string) (bool, error) {
	fi, err := os.Lstat(p)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if fi.Mode()&os.ModeSymlink != 0 {
		if _, err := os.Stat(p); err != nil {
			return false, fmt.Errorf("%s is a symlink to nothing: %w", p, err)
		}
	}
	return true, nil
}
