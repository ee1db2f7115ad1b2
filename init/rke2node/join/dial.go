package join

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"

	"github.com/rke2os/rke2os/init/shared/serverpki"
)

// Supervisor is a server's supervisor as an operator's tool talks to it
// (rke2-build etcd-snapshot): its CA pinned as a joining server pins it,
// the server token's credentials on every request.
type Supervisor struct {
	c *client
	// trusted says where the CA trusted came from, for a refusal.
	trusted string
}

// DialServer checks the supervisor at server (https://host:9345) against
// the token, which must be the server token: a full token
// (K10<hash>::server:<secret>) pins the CA the server presents at
// /cacerts, as a join does; a bare secret pins none, so caFile (the
// cluster's server-ca.crt) is needed. With both, they must agree.
// Nothing is sent with the token before the CA is checked.
func DialServer(ctx context.Context, server, token, caFile string) (*Supervisor, error) {
	u, err := url.Parse(server)
	if err != nil || u.Scheme != "https" || u.Host == "" || (u.Path != "" && u.Path != "/") {
		return nil, permanent("server %q is not a URL like https://10.0.0.1:9345 (a server's supervisor)", server)
	}
	tok, err := serverpki.ParseToken(token)
	if err != nil {
		return nil, permanent("token: %w", err)
	}
	switch {
	case tok.Bootstrap:
		return nil, permanent("token: a bootstrap token (abcdef.0123456789abcdef) cannot manage a server; give the server token, K10<hash>::server:<secret> from a server's /var/lib/rancher/rke2/server/token")
	case tok.Username == "node":
		return nil, permanent("token: an agent's token cannot manage a server (this one is K10...::node:<secret>); give the server token, K10<hash>::server:<secret> from a server's /var/lib/rancher/rke2/server/token")
	case tok.Username != "" && tok.Username != "server":
		return nil, permanent("token: user %q is not server; give the server token, K10<hash>::server:<secret> from a server's /var/lib/rancher/rke2/server/token", tok.Username)
	case tok.CAHash == "" && caFile == "":
		return nil, permanent("token: it is a bare secret, which pins no CA, and the server's CA is not given: give the full K10 token from a server's /var/lib/rancher/rke2/server/token, or the cluster's CA with --ca-file (a server's /var/lib/rancher/rke2/server/tls/server-ca.crt)")
	}
	var file *serverpki.PinnedCA
	if caFile != "" {
		b, err := os.ReadFile(caFile)
		if err != nil {
			return nil, permanent("CA file: %w", err)
		}
		if file, err = serverpki.PinCA(b); err != nil {
			return nil, permanent("CA file %s: %w (want the cluster's server-ca.crt, PEM)", caFile, err)
		}
		if tok.CAHash != "" && tok.CAHash != file.Hash {
			return nil, permanent("CA file %s (sha256 %s) is not the CA the token pins (%s): give the CA file and the token of the same cluster, or the full token alone", caFile, file.Hash, tok.CAHash)
		}
	}
	ca := file
	if tok.CAHash != "" {
		if ca, err = fetchCA(ctx, u); err != nil {
			return nil, err
		}
		if ca.Hash != tok.CAHash {
			return nil, permanent("the server %s presents a cluster CA whose sha256 is %s, but the token pins %s: this server is not the token's cluster (check the server's address, and the token: a server's /var/lib/rancher/rke2/server/token)", server, ca.Hash, tok.CAHash)
		}
	}
	// No client timeout: a save or a fetch of a large database takes
	// minutes; the caller's ctx bounds each request.
	trusted := "the CA the token pins"
	if tok.CAHash == "" {
		trusted = "the CA file " + caFile
	}
	return &Supervisor{c: newClient(u, "server", tok.Password, Options{Server: server}, ca.Pool(), 0), trusted: trusted}, nil
}

// Do sends one request with the server token's credentials (a body is
// JSON) and returns the answer, whatever its status, for the caller to
// read and close. A redirect is refused (the token would go along) and
// its answer closed. path is escaped already.
func (s *Supervisor) Do(ctx context.Context, method, path string, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, s.c.base.JoinPath(path).String(), body)
	if err != nil {
		return nil, err
	}
	req.SetBasicAuth(s.c.user, s.c.pass)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.c.http.Do(req)
	var unsigned *tls.CertificateVerificationError
	if errors.As(err, &unsigned) {
		return nil, permanent("the server %s presents a certificate that %s does not sign (%v): is it this cluster's server, and the CA its server-ca.crt?", s.c.o.Server, s.trusted, unsigned.Err)
	}
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if err := redirected(s.c.o.Server, path, resp); err != nil {
		resp.Body.Close()
		return nil, err
	}
	return resp, nil
}

// Close closes the idle connections to the supervisor.
func (s *Supervisor) Close() { s.c.http.CloseIdleConnections() }
