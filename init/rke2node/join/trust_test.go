package join

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rke2os/rke2os/init/shared/layout"
	"github.com/rke2os/rke2os/init/shared/serverpki"
)

// testCert makes a certificate and its key, signed by parent (self-signed
// if nil): a CA, or a serving certificate for 127.0.0.1.
func testCert(t *testing.T, cn string, ca bool, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), BasicConstraintsValid: true}
	if ca {
		tmpl.IsCA, tmpl.KeyUsage = true, x509.KeyUsageCertSign|x509.KeyUsageDigitalSignature
	} else {
		tmpl.KeyUsage, tmpl.ExtKeyUsage = x509.KeyUsageDigitalSignature, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	}
	if parent == nil {
		parent, parentKey = tmpl, k
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, k.Public(), parentKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c, k
}

func pemOf(certs ...*x509.Certificate) []byte {
	var b []byte
	for _, c := range certs {
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return b
}

// recorder is a handler that keeps the path and credentials of every
// request it gets.
type recorder struct {
	mu   sync.Mutex
	seen []string
}

func (r *recorder) record(req *http.Request) {
	user, pass, _ := req.BasicAuth()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen = append(r.seen, req.Method+" "+req.URL.Path+" user="+user+" pass="+pass+" node-password="+req.Header.Get("rke2-Node-Password"))
}

func (r *recorder) requests() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.seen...)
}

// TestJoinRefusesAppendedCA: an attacker between the node and the server
// answers /cacerts with the cluster's real chain (so the token's hash of
// the root matches) plus a CA of its own, and serves a certificate of that
// CA. The node must trust the pinned root's chain only: it refuses, and
// the attacker never sees the token.
func TestJoinRefusesAppendedCA(t *testing.T) {
	root, rootKey := testCert(t, "cluster root", true, nil, nil)
	inter, interKey := testCert(t, "rke2 server CA", true, root, rootKey)
	evil, evilKey := testCert(t, "attacker CA", true, nil, nil)
	sum := sha256.Sum256(root.Raw)
	token := serverpki.Token{CAHash: hex.EncodeToString(sum[:]), Username: "node", Password: "sekrit"}.String()

	for _, tc := range []struct {
		name       string
		signer     *x509.Certificate
		signerKey  *ecdsa.PrivateKey
		refused    bool
		wantInBody string
	}{
		{"served by the attacker's CA", evil, evilKey, true, "does not sign"},
		// The control: the cluster's own serving certificate is trusted
		// through the same answer, and the node goes on to ask with its token.
		{"served by the cluster's CA", inter, interKey, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leaf, leafKey := testCert(t, "server", false, tc.signer, tc.signerKey)
			rec := &recorder{}
			ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/cacerts" {
					w.Write(pemOf(inter, root, evil))
					return
				}
				rec.record(r)
				http.Error(w, "nope", http.StatusUnauthorized)
			}))
			ts.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{leaf.Raw}, PrivateKey: leafKey}}}
			ts.StartTLS()
			defer ts.Close()
			dir := t.TempDir()
			o := Options{Server: ts.URL, Token: token, NodeName: "a", Password: "pw", Paths: layout.Paths{DataDir: filepath.Join(dir, "data"), EtcDir: filepath.Join(dir, "etc")}}
			_, err := Join(context.Background(), o)
			var pe *PermanentError
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v, want a permanent error", err)
			}
			got := rec.requests()
			if tc.refused {
				if len(got) > 0 {
					t.Errorf("the attacker's server got %q", got)
				}
				if !strings.Contains(err.Error(), tc.wantInBody) || !strings.Contains(err.Error(), ts.URL) {
					t.Errorf("err = %v, want %q and the server", err, tc.wantInBody)
				}
			} else if len(got) == 0 || !strings.Contains(err.Error(), "refused the token") {
				t.Errorf("err = %v, requests %q: want the token sent over the cluster's chain (and refused here)", err, got)
			}
		})
	}
}

// wrapCluster is newCluster with its supervisor's handler wrapped, and a
// recorder of the requests that reach the supervisor (not /cacerts).
func wrapCluster(t *testing.T) (*cluster, *recorder) {
	rec := &recorder{}
	c := newClusterWrapped(t, true, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/cacerts" {
				rec.record(r)
			}
			h.ServeHTTP(w, r)
		})
	})
	return c, rec
}

// TestJoinPinsFirstCA: an agent that joined with a bare secret is pinned
// to the CA of that first join at every later join: another cluster that
// takes the same secret (or an attacker who learnt it) is refused, before
// the secret is sent, with the file and the fix in the message.
func TestJoinPinsFirstCA(t *testing.T) {
	c1 := newCluster(t, true)
	o := c1.agent(t, "a", "pw", "sekrit")
	if _, err := Join(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(c1.logs.String(), "trusting the CA the server presents on first use") {
		t.Errorf("no trust-on-first-use warning in %q", c1.logs.String())
	}
	// The same cluster again: pinned, no warning.
	c1.logs.Reset()
	if _, err := Join(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(c1.logs.String(), "on first use") {
		t.Errorf("a second join trusted on first use again: %q", c1.logs.String())
	}

	// Another cluster with the same bare secret (its own CA).
	c2, rec := wrapCluster(t)
	o.Server = c2.url
	for _, tc := range []struct {
		name, file string
		prepare    func()
	}{
		{"recorded in join.json", StatePath(o.Paths), func() {}},
		// A first join that stopped before join.json left server-ca.crt.
		{"recorded in server-ca.crt", o.Paths.Agent("server-ca.crt"), func() { os.Remove(StatePath(o.Paths)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.prepare()
			_, err := Join(context.Background(), o)
			var pe *PermanentError
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v, want a permanent refusal", err)
			}
			for _, want := range []string{c2.url, tc.file, "wipe", "full token"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("err = %v, want %q in it", err, want)
				}
			}
			if got := rec.requests(); len(got) > 0 {
				t.Errorf("the other cluster got %q", got)
			}
		})
	}

	// The fix the message gives: the other cluster's full token.
	o.Token = strings.Replace(c2.token, "::server:", "::node:", 1)
	if _, err := Join(context.Background(), o); err != nil {
		t.Fatalf("the full token of the new cluster: %v", err)
	}
}

// TestBootstrapBareToken: a further server takes the cluster's keys, so a
// bare secret (which pins no CA) is refused unless the config says to
// trust on first use; after its first bootstrap it is pinned to the CA it
// took.
func TestBootstrapBareToken(t *testing.T) {
	c1, rec1 := wrapCluster(t)
	o := c1.agent(t, "server2", "pw", "sekrit")
	_, err := Bootstrap(context.Background(), o)
	var pe *PermanentError
	if !errors.As(err, &pe) {
		t.Fatalf("err = %v, want a permanent refusal", err)
	}
	for _, want := range []string{"full K10 token", "/var/lib/rancher/rke2/server/token", "join.trust_on_first_use: true"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want %q in it", err, want)
		}
	}
	if got := rec1.requests(); len(got) > 0 {
		t.Errorf("the server got %q before the node trusted it", got)
	}

	o.TrustOnFirstUse = true
	if _, err := Bootstrap(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(c1.logs.String(), "on first use") {
		t.Errorf("no trust-on-first-use warning in %q", c1.logs.String())
	}
	c1.logs.Reset()
	if _, err := Bootstrap(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(c1.logs.String(), "on first use") {
		t.Errorf("a later bootstrap trusted on first use again: %q", c1.logs.String())
	}

	// Another cluster with the same secret: refused before the secret goes.
	c2, rec2 := wrapCluster(t)
	o.Server = c2.url
	_, err = Bootstrap(context.Background(), o)
	if !errors.As(err, &pe) {
		t.Fatalf("err = %v, want a permanent refusal", err)
	}
	for _, want := range []string{c2.url, o.Paths.Server("tls", "server-ca.crt"), "wipe"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want %q in it", err, want)
		}
	}
	if got := rec2.requests(); len(got) > 0 {
		t.Errorf("the other cluster got %q", got)
	}
}
