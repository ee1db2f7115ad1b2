// Package join is a node's side of joining a cluster, as RKE2's agent
// does it: it fetches the cluster CA from the supervisor (port 9345) and
// checks it against the hash the token pins before it sends anything
// else, then asks for its kubelet's and kube-proxy's certificates with
// certificate requests (the private keys stay on the node) and writes
// them, the CAs and the kubeconfigs where RKE2 keeps them under agent/.
package join

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/rke2os/rke2os/init/rke2node/supervisorapi"
	"github.com/rke2os/rke2os/init/shared/config"
	"github.com/rke2os/rke2os/init/shared/console"
	"github.com/rke2os/rke2os/init/shared/layout"
	"github.com/rke2os/rke2os/init/shared/serverpki"
	"github.com/rke2os/rke2os/internal/backoff"
	"github.com/rke2os/rke2os/internal/durable"
)

// Options are a joining node's inputs.
type Options struct {
	// Server is the supervisor's URL, like https://10.0.0.1:9345.
	Server string
	// Token is RKE2's token: K10<CA hash>::<user>:<secret>, or a bare
	// secret (the CA is then trusted on first use).
	Token    string
	NodeName string
	NodeIPs  []net.IP
	// Password is the node's password (/etc/rancher/node/password).
	Password string
	Paths    layout.Paths
	// APIServer is where the node's kubeconfigs point: its local load
	// balancer in front of the cluster's apiservers.
	APIServer string
	// TrustOnFirstUse lets Bootstrap trust the CA the server presents
	// when the token is a bare secret and the node has no CA recorded
	// (the config's join.trust_on_first_use). Join always does on an
	// agent's first join, as RKE2's agents do.
	TrustOnFirstUse bool
}

// State is what a join learnt, kept at agent/join.json for the node's
// later steps (its load balancer, kube-proxy's cluster CIDR).
type State struct {
	Server     string                    `json:"server"`
	CAHash     string                    `json:"ca_hash"`
	Config     supervisorapi.AgentConfig `json:"config"`
	APIServers []string                  `json:"apiservers"`
}

// StatePath is where Join keeps its State.
func StatePath(p layout.Paths) string { return p.Agent("join.json") }

// ReadState reads the State of the last join.
func ReadState(p layout.Paths) (*State, error) {
	b, err := os.ReadFile(StatePath(p))
	if err != nil {
		return nil, err
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%s: %w", StatePath(p), err)
	}
	return &s, nil
}

// PermanentError is a refusal that asking again will not change: a
// wrong token, a CA that is not the token's, a name taken by another node.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent marks the error as one a wait should not retry.
func (e *PermanentError) Permanent() bool { return true }

func permanent(format string, args ...any) error {
	return &PermanentError{fmt.Errorf(format, args...)}
}

// client talks to one supervisor with the node's credentials.
type client struct {
	base       *url.URL
	http       *http.Client
	user, pass string
	o          Options
}

// Join joins the node through o.Server once: it fails with a
// PermanentError for a refusal, with another error for what may pass
// (the server not up yet, not ready, unreachable).
func Join(ctx context.Context, o Options) (*State, error) {
	c, hash, err := connect(ctx, o, "node", agentTrust)
	if err != nil {
		return nil, err
	}
	defer c.http.CloseIdleConnections()

	if _, err := c.get(ctx, supervisorapi.Prefix+"/readyz"); err != nil {
		return nil, err
	}
	st := &State{Server: o.Server, CAHash: hash}
	b, err := c.get(ctx, supervisorapi.Prefix+"/config")
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &st.Config); err != nil {
		return nil, fmt.Errorf("%s/config: %w", supervisorapi.Prefix, err)
	}
	p := o.Paths
	for _, f := range []struct{ path, file string }{{"/client-ca.crt", "client-ca.crt"}, {"/server-ca.crt", "server-ca.crt"}} {
		b, err := c.get(ctx, supervisorapi.Prefix+f.path)
		if err != nil {
			return nil, err
		}
		if err := writeFile(p.Agent(f.file), b, 0o644); err != nil {
			return nil, err
		}
	}
	ips := make([]string, len(o.NodeIPs))
	for i, ip := range o.NodeIPs {
		ips[i] = ip.String()
	}
	for _, crt := range []struct{ endpoint, name string }{
		{"/client-kubelet.crt", "client-kubelet"},
		{"/serving-kubelet.crt", "serving-kubelet"},
		{"/client-kube-proxy.crt", "client-kube-proxy"},
	} {
		if err := c.certificate(ctx, supervisorapi.Prefix+crt.endpoint, p.Agent(crt.name), strings.Join(ips, ",")); err != nil {
			return nil, err
		}
	}
	for _, k := range []struct{ path, cert string }{
		{p.Agent("kubelet.kubeconfig"), p.Agent("client-kubelet")},
		{p.Agent("kubeproxy.kubeconfig"), p.Agent("client-kube-proxy")},
	} {
		data, err := serverpki.FileKubeconfig(o.APIServer, p.Agent("server-ca.crt"), k.cert+".crt", k.cert+".key")
		if err == nil {
			err = writeFile(k.path, data, 0o600)
		}
		if err != nil {
			return nil, err
		}
	}
	if b, err = c.get(ctx, supervisorapi.Prefix+"/apiservers"); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &st.APIServers); err != nil {
		return nil, fmt.Errorf("%s/apiservers: %w", supervisorapi.Prefix, err)
	}
	data, _ := json.MarshalIndent(st, "", "  ")
	if err := writeFile(StatePath(p), append(data, '\n'), 0o600); err != nil {
		return nil, err
	}
	return st, nil
}

// connect checks the server's CA against the token, or against what an
// earlier join recorded (see trust), and returns a client that trusts
// that CA only and sends the token's credentials (user, if the token is a
// bare secret).
func connect(ctx context.Context, o Options, user string, recorded func(Options) (trust, error)) (*client, string, error) {
	u, err := url.Parse(o.Server)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, "", permanent("server %q is not a URL like https://10.0.0.1:9345", o.Server)
	}
	tok, err := serverpki.ParseToken(o.Token)
	if err != nil {
		return nil, "", permanent("token: %w", err)
	}
	if tok.Bootstrap {
		return nil, "", permanent("token: bootstrap tokens (abcdef.0123456789abcdef) are not supported: use the server's node-token")
	}
	if tok.Username != "" {
		user = tok.Username
	}
	if user != "node" && user != "server" {
		return nil, "", permanent("token: user %q is neither node nor server", user)
	}
	tr := trust{}
	if tok.CAHash == "" {
		if tr, err = recorded(o); err != nil {
			return nil, "", err
		}
		if tr.hash == "" && !tr.firstUse {
			return nil, "", permanent("token: it is a bare secret, which pins no CA, and a server joining a cluster takes the cluster's keys from the server it trusts: "+
				"give the full K10 token from the first server's /var/lib/rancher/rke2/server/token, or set %s: true in the node's config to trust the CA the server presents at this first join", config.KeyTrustOnFirstUse)
		}
	}
	ca, err := fetchCA(ctx, u)
	if err != nil {
		return nil, "", err
	}
	switch {
	case tok.CAHash != "" && tok.CAHash != ca.Hash:
		console.Event(console.EventJoinCAMismatch, "server", o.Server, "ca", ca.Hash, "pinned", tok.CAHash, "by", "token")
		return nil, "", permanent("the server %s presents a cluster CA whose sha256 is %s, but the token pins %s: this server is not the token's cluster (check server: and token: in the config; the token is the server's %s)", o.Server, ca.Hash, tok.CAHash, tokenFile(user))
	case tr.hash != "" && tr.hash != ca.Hash:
		console.Event(console.EventJoinCAMismatch, "server", o.Server, "ca", ca.Hash, "pinned", tr.hash, "by", "first-join")
		return nil, "", permanent("the server %s presents a cluster CA whose sha256 is %s, but the CA this node took at its first join (recorded in %s) is %s: the server's CA changed, or this is not the cluster the node joined, and a bare secret cannot tell which. "+
			"If the cluster's CA changed on purpose, wipe this node's state partition to join anew, or give the new full token (K10<hash>::%s:<secret>, the server's %s)",
			o.Server, ca.Hash, tr.file, tr.hash, user, tokenFile(user))
	case tok.CAHash == "" && tr.hash == "":
		slog.Warn("join: the token pins no CA (a bare secret): trusting the CA the server presents on first use; later joins are pinned to it", "server", o.Server, "ca_sha256", ca.Hash)
	}
	return newClient(u, user, tok.Password, o, ca.Pool(), 30*time.Second), ca.Hash, nil
}

// tokenFile is where a server keeps the token for user: node-token, a
// link to agent-token, for agents.
func tokenFile(user string) string {
	if user == "server" {
		return "/var/lib/rancher/rke2/server/token"
	}
	return "/var/lib/rancher/rke2/server/node-token"
}

// newClient is a supervisor client that trusts pool only, sends user and
// pass as basic auth, and follows no redirect.
func newClient(u *url.URL, user, pass string, o Options, pool *x509.CertPool, timeout time.Duration) *client {
	return &client{base: u, user: user, pass: pass, o: o, http: &http.Client{Timeout: timeout, CheckRedirect: noRedirect,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}}
}

// noRedirect stops a client at a redirect, which the caller refuses
// (redirected): a supervisor never answers one, and Go's client would
// send the token (basic auth) and the node's password along to where it
// points, to any port of the same host.
func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// redirected is the refusal of a 3xx answer, nil for another.
func redirected(server, path string, resp *http.Response) error {
	if resp.StatusCode < 300 || resp.StatusCode > 399 {
		return nil
	}
	return permanent("the server %s answers %s with a redirect (%s) to %q: a supervisor never redirects, and the node follows none (it would take its token along); is server: the supervisor's port 9345?",
		server, path, resp.Status, resp.Header.Get("Location"))
}

// fetchCA gets /cacerts without trusting the server yet: what it answers
// is checked against the token's hash before anything else is sent, and
// only what that hash vouches for is trusted (see serverpki.PinnedCA).
func fetchCA(ctx context.Context, u *url.URL) (*serverpki.PinnedCA, error) {
	hc := &http.Client{Timeout: 30 * time.Second, CheckRedirect: noRedirect, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}}}
	defer hc.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.JoinPath("/cacerts").String(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cacerts: %w", err)
	}
	defer resp.Body.Close()
	if err := redirected(u.String(), "/cacerts", resp); err != nil {
		return nil, err
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("cacerts: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("cacerts: %s", resp.Status)
	}
	ca, err := serverpki.PinCA(b)
	if err != nil {
		return nil, permanent("the server %s answers /cacerts with no CA certificate: %w (is server: the supervisor's port 9345?)", u, err)
	}
	// The server's own certificate must chain to what the hash vouches
	// for: not to whatever else the answer carries.
	if cs := resp.TLS; cs != nil && len(cs.PeerCertificates) > 0 {
		inter := x509.NewCertPool()
		for _, c := range cs.PeerCertificates[1:] {
			inter.AddCert(c)
		}
		if _, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: ca.Pool(), Intermediates: inter}); err != nil {
			return nil, permanent("the server %s presents a certificate that the cluster CA of its /cacerts (sha256 %s) does not sign: %w", u, ca.Hash, err)
		}
	}
	return ca, nil
}

// A 429 answers a node that claims its name from an address that has
// claimed many new names lately (the supervisor limits them per source):
// it is waited out, as the answer's Retry-After says within
// [minRetryAfter, maxRetryAfter] (a server cannot park the node for
// long), up to rateLimitedTries times, and is then a temporary error that
// the caller's wait retries.
const (
	minRetryAfter     = time.Second
	maxRetryAfter     = time.Minute
	defaultRetryAfter = 5 * time.Second
	rateLimitedTries  = 3
)

// do sends a request with the node's credentials and wants 200, waiting
// out a 429.
func (c *client) do(ctx context.Context, method, path string, body []byte, header http.Header) ([]byte, error) {
	for try := 1; ; try++ {
		b, wait, err := c.once(ctx, method, path, body, header)
		if wait == 0 || try == rateLimitedTries {
			return b, err
		}
		slog.Info("join: the server limits the new node names claimed from this address: waiting", "server", c.o.Server, "path", path, "wait", wait)
		if !backoff.Sleep(ctx, wait) {
			return nil, fmt.Errorf("%w (%v)", ctx.Err(), err)
		}
	}
}

// once sends one request; for a 429 it answers how long to wait.
func (c *client) once(ctx context.Context, method, path string, body []byte, header http.Header) ([]byte, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base.JoinPath(path).String(), bytes.NewReader(body))
	if err != nil {
		return nil, 0, err
	}
	req.SetBasicAuth(c.user, c.pass)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", path, err)
	}
	defer resp.Body.Close()
	if err := redirected(c.o.Server, path, resp); err != nil {
		return nil, 0, err
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", path, err)
	}
	switch {
	case resp.StatusCode == http.StatusOK:
		return b, 0, nil
	case resp.StatusCode == http.StatusTooManyRequests:
		return nil, retryAfter(resp.Header.Get("Retry-After"), time.Now()), fmt.Errorf("%s: %s: %s", path, resp.Status, strings.TrimSpace(string(b)))
	case resp.StatusCode == http.StatusUnauthorized:
		console.Event(console.EventJoinRefused, "server", c.o.Server, "status", resp.StatusCode, "node", c.o.NodeName)
		return nil, 0, permanent("the server %s refused the token (401 Unauthorized): token: is not this cluster's (the %s token is the server's %s)", c.o.Server, c.user, tokenFile(c.user))
	case resp.StatusCode == http.StatusForbidden:
		console.Event(console.EventJoinRefused, "server", c.o.Server, "status", resp.StatusCode, "node", c.o.NodeName)
		if why := strings.TrimSpace(string(b)); why != "" && why != http.StatusText(http.StatusForbidden) {
			return nil, 0, permanent("the server %s refused the node name %q (403 Forbidden): %s", c.o.Server, c.o.NodeName, why)
		}
		return nil, 0, permanent("the server %s refused the node name %q (403 Forbidden): another node holds that name with another password; give this node another node-name, or delete that Node (and the secret kube-system/%s)", c.o.Server, c.o.NodeName, supervisorapi.SecretName(c.o.NodeName))
	case resp.StatusCode >= 400 && resp.StatusCode < 500:
		return nil, 0, permanent("%s: %s: %s", path, resp.Status, strings.TrimSpace(string(b)))
	}
	return nil, 0, fmt.Errorf("%s: %s: %s", path, resp.Status, strings.TrimSpace(string(b)))
}

// retryAfter is how long a Retry-After value (seconds, or an HTTP date)
// asks to wait from now, within [minRetryAfter, maxRetryAfter];
// defaultRetryAfter if there is none that can be read.
func retryAfter(v string, now time.Time) time.Duration {
	d := defaultRetryAfter
	if secs, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
		d = time.Duration(min(secs, int(maxRetryAfter/time.Second))) * time.Second
	} else if at, err := http.ParseTime(v); err == nil {
		d = at.Sub(now)
	}
	return min(max(d, minRetryAfter), maxRetryAfter)
}

func (c *client) get(ctx context.Context, path string) ([]byte, error) {
	return c.do(ctx, http.MethodGet, path, nil, nil)
}

// certificate asks for the certificate of the key at base.key (made once,
// kept) and writes it, with its CA, to base.crt.
func (c *client) certificate(ctx context.Context, path, base, nodeIPs string) error {
	key, err := ensureKey(base + ".key")
	if err != nil {
		return err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: c.o.NodeName}}, key)
	if err != nil {
		return err
	}
	h := http.Header{}
	h.Set(supervisorapi.HeaderNodeName, c.o.NodeName)
	h.Set(supervisorapi.HeaderNodePassword, c.o.Password)
	if nodeIPs != "" {
		h.Set(supervisorapi.HeaderNodeIP, nodeIPs)
	}
	h.Set("Content-Type", "application/x-pem-file")
	crt, err := c.do(ctx, http.MethodPost, path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), h)
	if err != nil {
		return err
	}
	blk, _ := pem.Decode(crt)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return fmt.Errorf("%s: the answer is no PEM certificate", path)
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(cert.PublicKey) {
		return fmt.Errorf("%s: the certificate is not for this node's key", path)
	}
	return writeFile(base+".crt", crt, 0o644)
}

// ensureKey loads the private key at p, or makes one: a key is made once
// and kept across joins, as RKE2 keeps its agents' keys.
func ensureKey(p string) (crypto.Signer, error) {
	b, err := os.ReadFile(p)
	if err == nil {
		blk, _ := pem.Decode(b)
		if blk != nil {
			if k, err := x509.ParseECPrivateKey(blk.Bytes); err == nil {
				return k, nil
			}
		}
		slog.Warn("join: the key is unreadable, making a new one", "file", p)
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return nil, err
	}
	if err := writeFile(p, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return nil, err
	}
	return k, nil
}

func writeFile(p string, b []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	if err := durable.WriteFile(p, b, mode); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	return nil
}

// APIServers asks the supervisor at server (https://host:9345), trusted
// through caFile, for the cluster's apiservers: an agent's load balancer
// keeps its backends current with it.
func APIServers(ctx context.Context, server, token, caFile string) ([]string, error) {
	u, err := url.Parse(server)
	if err != nil {
		return nil, err
	}
	tok, err := serverpki.ParseToken(token)
	if err != nil {
		return nil, fmt.Errorf("token: %w", err)
	}
	ca, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("%s holds no certificate", caFile)
	}
	user := tok.Username
	if user == "" {
		user = "node"
	}
	c := newClient(u, user, tok.Password, Options{Server: server}, pool, 15*time.Second)
	defer c.http.CloseIdleConnections()
	b, err := c.get(ctx, supervisorapi.Prefix+"/apiservers")
	if err != nil {
		return nil, err
	}
	var out []string
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("%s/apiservers: %w", supervisorapi.Prefix, err)
	}
	return out, nil
}
