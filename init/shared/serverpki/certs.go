package serverpki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/rke2os/rke2os/init/shared/layout"
	"github.com/rke2os/rke2os/init/shared/pki"
)

// The groups the certificates name (k8s.io/apiserver's
// user.SystemPrivilegedGroup and user.NodesGroup).
const (
	groupMasters = "system:masters"
	groupNodes   = "system:nodes"
)

// caSet is the cluster's certificate authorities, each made once and kept.
type caSet struct {
	server, client, requestHeader, etcdServer, etcdPeer *pki.CA
	// kubeletServing signs the kubelets' serving certificates, and the
	// apiserver trusts it, and only it, for kubelets. It is not the server
	// CA, which agents trust for the apiserver they reach at 127.0.0.1
	// through their load balancer: a kubelet's key must not be able to
	// stand in for the apiserver.
	kubeletServing *pki.CA
}

// ensureCA loads the CA whose files are path+".crt"/".key", or makes one
// named cn if neither exists. A CA is the cluster's identity: one that is
// half there, unreadable, corrupt or whose key does not match is an error,
// never replaced, so that a mistake cannot silently fork the cluster.
func (b *builder) ensureCA(path, cn string) (*pki.CA, error) {
	crt, key := path+".crt", path+".key"
	crtExists, err := exists(crt)
	if err != nil {
		return nil, err
	}
	keyExists, err := exists(key)
	if err != nil {
		return nil, err
	}
	switch {
	case crtExists && !keyExists:
		return nil, fmt.Errorf("%s exists but its key %s does not: restore the key (a CA is never replaced)", crt, key)
	case keyExists && !crtExists:
		return nil, fmt.Errorf("%s exists but its certificate %s does not: restore the certificate, or remove the key to make a new CA", key, crt)
	}
	if err := mkdirs(filepath.Dir(crt)); err != nil {
		return nil, err
	}
	ca, err := pki.EnsureCA(crt, key, cn)
	if err != nil {
		return nil, err
	}
	if !crtExists {
		b.wrote(crt, key)
		return ca, nil
	}
	if !publicKeyMatches(ca.Key, ca.Cert) {
		return nil, fmt.Errorf("%s is not the key of %s: restore the matching pair (a CA is never replaced)", key, crt)
	}
	// Kept all the same: what it signs is refused until the clock agrees.
	switch now := time.Now(); {
	case now.Before(ca.Cert.NotBefore):
		b.warn("%s is valid only from %s: what it signs is refused until then (was the clock ahead when it was made?)", crt, ca.Cert.NotBefore.UTC().Format(time.RFC3339))
	case now.After(ca.Cert.NotAfter):
		b.warn("%s expired on %s: renew it (a CA is never replaced)", crt, ca.Cert.NotAfter.UTC().Format(time.RFC3339))
	}
	return ca, nil
}

// clusterCAs are the cluster's CAs in the order they are made: their files
// below server/ (without .crt and .key) and the names k3s gives them (the
// kubelet serving CA is rke2os's own: k3s signs kubelets' serving
// certificates with the server CA). A CA added later is made by the first
// server that starts without it, and a cluster's secrets made before it
// (rke2-build secrets) may lack it.
var clusterCAs = []struct {
	rel, cn    string
	addedLater bool
}{
	{"tls/server-ca", "rke2-server-ca", false},
	{"tls/client-ca", "rke2-client-ca", false},
	{"tls/request-header-ca", "rke2-request-header-ca", false},
	{"tls/etcd/server-ca", "etcd-server-ca", false},
	{"tls/etcd/peer-ca", "etcd-peer-ca", false},
	{"tls/kubelet-serving-ca", "rke2os-kubelet-serving-ca", true},
}

func (b *builder) ensureCAs() (*caSet, error) {
	var cas caSet
	for i, ca := range []**pki.CA{&cas.server, &cas.client, &cas.requestHeader, &cas.etcdServer, &cas.etcdPeer, &cas.kubeletServing} {
		c := clusterCAs[i]
		p := b.paths.Server(filepath.FromSlash(c.rel))
		got, err := b.ensureCA(p, c.cn)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Base(p), err)
		}
		*ca = got
	}
	return &cas, nil
}

// signingCA writes name.nochain.crt: the CA's own certificate, without the
// chain a CA signed by a root carries, for the controller-manager's signer
// (which wants exactly one certificate).
func (b *builder) signingCA(name string, ca *pki.CA) error {
	p := b.paths.Server("tls", name+".nochain.crt")
	return b.writeFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw}), 0o644)
}

// cert is one leaf certificate: where it goes and what it says.
type cert struct {
	path string // without .crt/.key
	ca   *pki.CA
	leaf pki.Leaf
}

// issue writes c unless the certificate there is still good. pki's check
// covers the CA, the names, the validity and the clock; the group, the
// usages and the key are checked here, and a certificate that fails them
// is removed so that pki makes it again.
func (b *builder) issue(c cert) error {
	crt, key := c.path+".crt", c.path+".key"
	if !leafKeepable(crt, key, c.leaf) {
		if err := os.Remove(crt); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%s: %w", filepath.Base(c.path), err)
		}
	}
	if err := mkdirs(filepath.Dir(crt)); err != nil {
		return err
	}
	wrote, err := c.ca.Issue(crt, key, c.leaf)
	if err != nil {
		return fmt.Errorf("%s: %w", filepath.Base(c.path), err)
	}
	if wrote {
		b.wrote(crt, key)
	}
	return nil
}

// leafKeepable reports whether nothing but pki's own checks stands between
// the certificate at crt and keeping it: it names l's groups, has l's
// usages, and key is its key (a power cut between writing the key and the
// certificate leaves a new key beside the old certificate).
func leafKeepable(crt, key string, l pki.Leaf) bool {
	c, err := readCert(crt)
	if err != nil {
		return true // missing or unreadable: pki makes it again anyway
	}
	k, err := readKey(key)
	if err != nil || !publicKeyMatches(k, c) {
		return false
	}
	if !sameSet(c.Subject.Organization, l.Org) {
		return false
	}
	var usage []x509.ExtKeyUsage
	if l.Server {
		usage = append(usage, x509.ExtKeyUsageServerAuth)
	}
	if l.Client {
		usage = append(usage, x509.ExtKeyUsageClientAuth)
	}
	return sameSet(c.ExtKeyUsage, usage)
}

func sameSet[T comparable](a, b []T) bool {
	return !slices.ContainsFunc(a, func(x T) bool { return !slices.Contains(b, x) }) &&
		!slices.ContainsFunc(b, func(x T) bool { return !slices.Contains(a, x) })
}

func publicKeyMatches(k crypto.Signer, c *x509.Certificate) bool {
	pub, ok := k.Public().(interface{ Equal(crypto.PublicKey) bool })
	return ok && pub.Equal(c.PublicKey)
}

func readCert(p string) (*x509.Certificate, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%s: no PEM certificate", p)
	}
	return x509.ParseCertificate(block.Bytes)
}

// readKey reads the first private key of a PEM file (service.key may hold
// several: the current one first, then older ones still trusted).
func readKey(p string) (crypto.Signer, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	_, k, err := firstKey(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return k, nil
}

func firstKey(b []byte) (*pem.Block, crypto.Signer, error) {
	for rest := b; ; {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			return nil, nil, errors.New("no PEM private key")
		}
		var k any
		var err error
		switch block.Type {
		case "EC PRIVATE KEY":
			k, err = x509.ParseECPrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			k, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		case "PRIVATE KEY":
			k, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		default:
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		s, ok := k.(crypto.Signer)
		if !ok {
			return nil, nil, fmt.Errorf("a %T is not a signing key", k)
		}
		return block, s, nil
	}
}

// ensureKey makes an ECDSA P-256 key at p unless one is there. An existing
// file that holds no key is an error, never replaced: service.key signs the
// cluster's service account tokens.
func (b *builder) ensureKey(p string) error {
	if ok, err := exists(p); err != nil {
		return err
	} else if ok {
		if _, err := readKey(p); err != nil {
			return fmt.Errorf("%w (restore it, or remove it to make a new one)", err)
		}
		return nil
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return err
	}
	return b.writeFile(p, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600)
}

// serviceAccountKeys makes service.key and service.current.key, the first
// key of service.key alone: the apiserver verifies tokens with every key of
// service.key and the controller-manager signs with the current one, so a
// rotated key can be appended and old tokens stay valid.
func (b *builder) serviceAccountKeys() error {
	p := b.paths.Server("tls", "service.key")
	if err := b.ensureKey(p); err != nil {
		return fmt.Errorf("service.key: %w", err)
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return fmt.Errorf("service.key: %w", err)
	}
	block, _, err := firstKey(data)
	if err != nil {
		return fmt.Errorf("service.key: %w", err)
	}
	if err := b.writeFile(b.paths.Server("tls", "service.current.key"), pem.EncodeToMemory(block), 0o600); err != nil {
		return fmt.Errorf("service.current.key: %w", err)
	}
	return nil
}

// etcdCerts are etcd's certificates: they name the addresses etcd listens
// on (see pods.EtcdPod), loopback and nodeIP. They are the ones the etcd
// step makes (pods.EtcdCerts), so that running both re-issues neither's
// (TestEtcdCertsAgree holds them together).
func etcdCerts(p layout.Paths, cas *caSet, nodeName string, nodeIP net.IP) []cert {
	ips := []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")}
	if nodeIP != nil {
		ips = append(ips, nodeIP)
	}
	dns := []string{"localhost", nodeName}
	return []cert{
		{p.Server("tls", "etcd", "server-client"), cas.etcdServer, pki.Leaf{CN: "etcd-server", DNS: dns, IPs: ips, Server: true, Client: true}},
		{p.Server("tls", "etcd", "client"), cas.etcdServer, pki.Leaf{CN: "etcd-client", Client: true}},
		{p.Server("tls", "etcd", "peer-server-client"), cas.etcdPeer, pki.Leaf{CN: "etcd-peer", DNS: dns, IPs: ips, Server: true, Client: true}},
	}
}

// controlPlaneCerts are the server's certificates under server/tls, with
// the CNs and groups the apiserver's RBAC bootstrap policy expects.
func controlPlaneCerts(p layout.Paths, cas *caSet, apiDNS []string, apiIPs []net.IP) []cert {
	tls := func(name string) string { return p.Server("tls", name) }
	client := func(name, cn string, org ...string) cert {
		return cert{tls(name), cas.client, pki.Leaf{CN: cn, Org: org, Client: true}}
	}
	return []cert{
		client("client-admin", "system:admin", groupMasters),
		client("client-supervisor", "system:rke2-supervisor", groupMasters),
		client("client-controller", "system:kube-controller-manager"),
		client("client-scheduler", "system:kube-scheduler"),
		client("client-kube-apiserver", "system:apiserver", groupMasters),
		client("client-kube-proxy", "system:kube-proxy"),
		client("client-rke2-controller", "system:rke2-controller"),
		client("client-rke2-cloud-controller", "rke2-cloud-controller-manager"),
		{tls("client-auth-proxy"), cas.requestHeader, pki.Leaf{CN: "system:auth-proxy", Client: true}},
		{tls("serving-kube-apiserver"), cas.server, pki.Leaf{CN: "kube-apiserver", DNS: apiDNS, IPs: apiIPs, Server: true}},
		// The controller-manager's and scheduler's own serving
		// certificates (their /healthz on the loopback), as k3s makes them
		// under tls/<component>/ rather than letting each make its own.
		{p.Server("tls", "kube-controller-manager", "kube-controller-manager"), cas.server, pki.Leaf{CN: "kube-controller-manager", DNS: loopbackDNS, IPs: loopbackIPs, Server: true}},
		{p.Server("tls", "kube-scheduler", "kube-scheduler"), cas.server, pki.Leaf{CN: "kube-scheduler", DNS: loopbackDNS, IPs: loopbackIPs, Server: true}},
	}
}

// loopbackDNS and loopbackIPs name the loopback, where the controller-
// manager and the scheduler serve.
var (
	loopbackDNS = []string{"localhost"}
	loopbackIPs = []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")}
)

// agentCerts are this node's own kubelet, kube-proxy and rke2 controller
// certificates under agent/, which an RKE2 agent gets from the supervisor
// and a server's agent gets from its own. The kubelet's serving
// certificate is the kubelet serving CA's and names the node alone, no
// loopback: the apiserver reaches a kubelet at the Node's addresses.
func agentCerts(p layout.Paths, cas *caSet, nodeName string, nodeIPs []net.IP) []cert {
	return []cert{
		{p.Agent("client-kubelet"), cas.client, pki.Leaf{CN: "system:node:" + nodeName, Org: []string{groupNodes}, Client: true}},
		{p.Agent("serving-kubelet"), cas.kubeletServing, pki.Leaf{CN: nodeName, DNS: []string{nodeName}, IPs: dedupIPs(nodeIPs), Server: true}},
		{p.Agent("client-kube-proxy"), cas.client, pki.Leaf{CN: "system:kube-proxy", Client: true}},
		{p.Agent("client-rke2-controller"), cas.client, pki.Leaf{CN: "system:rke2-controller", Client: true}},
	}
}

// apiServerSANs are the names of serving-kube-apiserver, in k3s's order:
// the in-cluster service names, then the tls-san values, loopback, the
// node's name and addresses, and the service's cluster IP.
func apiServerSANs(clusterDomain string, tlsSANs []string, nodeName string, nodeIPs []net.IP, serviceIP net.IP) ([]string, []net.IP) {
	dns := []string{"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc." + clusterDomain}
	var ips []net.IP
	sans := append(slices.Clone(tlsSANs), "127.0.0.1", "::1", "localhost", nodeName)
	for _, ip := range nodeIPs {
		sans = append(sans, ip.String())
	}
	sans = append(sans, serviceIP.String())
	for _, s := range sans {
		if ip := net.ParseIP(s); ip != nil {
			ips = append(ips, ip)
		} else if !slices.Contains(dns, s) {
			dns = append(dns, s)
		}
	}
	return dns, dedupIPs(ips)
}

func dedupIPs(ips []net.IP) []net.IP {
	var out []net.IP
	for _, ip := range ips {
		if !slices.ContainsFunc(out, ip.Equal) {
			out = append(out, ip)
		}
	}
	return out
}
