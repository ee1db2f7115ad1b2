package s3store

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// forwardProxy is an http proxy that alone knows where the S3 endpoints
// of the tests are: it dials names (s3.invalid, s3.example.com) to the
// fake S3 behind them, and nothing else. It forwards requests in proxy
// form (an absolute URI) and tunnels CONNECT, counting both; a request
// not in proxy form, which only a direct connection would send, is
// refused and counted apart.
type forwardProxy struct {
	*httptest.Server
	hosts map[string]string // name -> the fake's host:port

	mu                        sync.Mutex
	forwarded, tunnels, plain int
	auth                      []string // the Proxy-Authorization headers
	conns                     []net.Conn
}

func newForwardProxy(t *testing.T, hosts map[string]string) *forwardProxy {
	t.Helper()
	p := &forwardProxy{hosts: hosts}
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, _ := net.SplitHostPort(addr)
		target, ok := p.hosts[host]
		if !ok {
			return nil, fmt.Errorf("the proxy knows no %s", addr)
		}
		var d net.Dialer
		return d.DialContext(ctx, network, target)
	}
	rp := &httputil.ReverseProxy{
		Director:  func(r *http.Request) {}, // r.URL is already absolute
		Transport: &http.Transport{DialContext: dial},
	}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.auth = append(p.auth, r.Header.Get("Proxy-Authorization"))
		p.mu.Unlock()
		switch {
		case r.Method == http.MethodConnect:
			p.tunnel(w, r, dial)
		case r.URL.Host == "":
			p.mu.Lock()
			p.plain++
			p.mu.Unlock()
			http.Error(w, "not a proxy request", http.StatusBadRequest)
		case strings.HasSuffix(r.URL.Path, "/echo-n-1"):
			// A proxy that echoes the credentials it was given.
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>proxy denied %s (%s)</Message></Error>`,
				r.Header.Get("Proxy-Authorization"), "user:"+proxyPass)
		default:
			p.mu.Lock()
			p.forwarded++
			p.mu.Unlock()
			rp.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(func() {
		p.Close()
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, c := range p.conns {
			c.Close()
		}
	})
	return p
}

func (p *forwardProxy) tunnel(w http.ResponseWriter, r *http.Request, dial func(context.Context, string, string) (net.Conn, error)) {
	up, err := dial(r.Context(), "tcp", r.Host)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	down, buf, err := w.(http.Hijacker).Hijack()
	if err != nil {
		up.Close()
		return
	}
	p.mu.Lock()
	p.tunnels++
	p.conns = append(p.conns, up, down)
	p.mu.Unlock()
	down.Write([]byte("HTTP/1.1 200 Connection established\r\n\r\n"))
	go func() { io.Copy(up, buf); up.Close() }()
	go func() { io.Copy(down, up); down.Close() }()
}

func (p *forwardProxy) counts() (forwarded, tunnels, plain int, auth []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.forwarded, p.tunnels, p.plain, append([]string(nil), p.auth...)
}

// proxyURL is the proxy's URL with user:proxyPass.
func (p *forwardProxy) proxyURL() string {
	return strings.Replace(p.URL, "http://", "http://user:"+proxyPass+"@", 1)
}

// With Proxy set, every request goes through the proxy, with its
// credentials, to an endpoint the test's machine cannot reach itself:
// plain http in proxy form, https through a CONNECT tunnel (the
// endpoint's certificate still checked against etcd-s3-endpoint-ca).
func TestProxy(t *testing.T) {
	plainS3, tlsS3 := fake(t, false, nil), fake(t, true, nil)
	// s3.invalid never resolves; s3.example.com is a name httptest's
	// certificate holds (*.example.com) and no S3 serves.
	proxy := newForwardProxy(t, map[string]string{"s3.invalid": host(plainS3), "s3.example.com": host(tlsS3)})
	wantAuth := "Basic " + base64.StdEncoding.EncodeToString([]byte("user:"+proxyPass))
	for _, tt := range []struct {
		name string
		edit func(*Config)
	}{
		{"http", func(c *Config) { c.Endpoint = "s3.invalid" }},
		{"https through CONNECT", func(c *Config) {
			c.Endpoint, c.Insecure, c.EndpointCA = "s3.example.com", false, writeCA(t, tlsS3)
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f0, t0, p0, _ := proxy.counts()
			c := plainConfig(plainS3)
			c.Proxy = proxy.proxyURL()
			tt.edit(&c)
			s := newStore(t, c)
			dir := t.TempDir()
			if _, err := s.Upload(t.Context(), writeFile(t, dir, "s-n-1", []byte("through the proxy")), "n"); err != nil {
				t.Fatal(err)
			}
			objs, err := s.List(t.Context(), "s-")
			if err != nil || len(objs) != 1 || objs[0].Name != "s-n-1" {
				t.Fatalf("List: %+v %v", objs, err)
			}
			if err := s.Download(t.Context(), "s-n-1", filepath.Join(dir, "back")); err != nil {
				t.Fatal(err)
			}
			if got, _ := os.ReadFile(filepath.Join(dir, "back")); string(got) != "through the proxy" {
				t.Errorf("downloaded %q", got)
			}
			f, tun, plain, auth := proxy.counts()
			if c.Insecure && f-f0 < 4 || !c.Insecure && tun-t0 < 1 {
				t.Errorf("the proxy forwarded %d requests and opened %d tunnels: the store did not go through it", f-f0, tun-t0)
			}
			if plain != p0 {
				t.Errorf("the proxy got %d requests not in proxy form", plain-p0)
			}
			for _, a := range auth {
				if a != wantAuth {
					t.Fatalf("Proxy-Authorization %q, want the URL's user:password", a)
				}
			}
		})
	}

	// A proxy that echoes the credentials: the error does not.
	c := plainConfig(plainS3)
	c.Endpoint, c.Proxy = "s3.invalid", proxy.proxyURL()
	s := newStore(t, c)
	_, err := s.Upload(t.Context(), writeFile(t, t.TempDir(), "echo-n-1", []byte("x")), "n")
	if err == nil || !strings.Contains(err.Error(), "proxy denied Basic <redacted> (<redacted>)") {
		t.Errorf("upload: %v, want the echoed credentials redacted", err)
	}
	if err != nil && (strings.Contains(err.Error(), proxyPass) || strings.Contains(err.Error(), wantAuth[len("Basic "):])) {
		t.Errorf("upload: %v shows the proxy's credentials", err)
	}
}

// A proxy that does not answer fails New with an error that names it,
// without its password.
func TestProxyDown(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // connection refused from now on
	c := plainConfig(fake(t, false, nil))
	c.Endpoint, c.Proxy, c.Timeout = "s3.invalid", "http://user:"+proxyPass+"@"+addr, time.Second
	_, err = New(t.Context(), c)
	switch {
	case err == nil:
		t.Fatal("New through a proxy that is down: no error")
	case !strings.Contains(err.Error(), "s3 bucket snaps at http://s3.invalid through proxy http://xxxxx@"+addr+": "):
		t.Errorf("New: %v, want it to name the proxy", err)
	case !strings.Contains(err.Error(), addr+": connect: connection refused"):
		t.Errorf("New: %v, want the proxy's refusal", err)
	case strings.Contains(err.Error(), proxyPass):
		t.Errorf("New: %v shows the proxy's password", err)
	}
	t.Logf("New: %v", err)
}

// Without Proxy the transport is minio's, whose proxy comes from the
// environment; "none" is no proxy at all; a URL is that proxy for every
// request, NO_PROXY or not.
func TestProxyTransport(t *testing.T) {
	funcOf := func(f any) uintptr { return reflect.ValueOf(f).Pointer() }
	req := httptest.NewRequest(http.MethodGet, "http://127.0.0.1:9000/snaps/", nil)
	for _, tt := range []struct {
		proxy string
		check func(*http.Transport) string // "" when right
	}{
		{"", func(tr *http.Transport) string {
			if tr.Proxy == nil || funcOf(tr.Proxy) != funcOf(http.ProxyFromEnvironment) {
				return "not http.ProxyFromEnvironment"
			}
			return ""
		}},
		{"none", func(tr *http.Transport) string {
			if tr.Proxy != nil {
				return "a proxy function"
			}
			return ""
		}},
		{"http://u:p@proxy.example.com:3128", func(tr *http.Transport) string {
			if u, err := tr.Proxy(req); err != nil || u == nil || u.String() != "http://u:p@proxy.example.com:3128" {
				return fmt.Sprintf("proxy %v %v for 127.0.0.1", u, err)
			}
			return ""
		}},
	} {
		for _, insecure := range []bool{false, true} {
			tr, err := transport(Config{Proxy: tt.proxy, Insecure: insecure, SkipSSLVerify: !insecure})
			if err != nil {
				t.Fatalf("%q: %v", tt.proxy, err)
			}
			if msg := tt.check(tr); msg != "" {
				t.Errorf("proxy %q, insecure %v: %s", tt.proxy, insecure, msg)
			}
		}
	}
	if _, err := transport(Config{Proxy: "ftp://user:" + proxyPass + "@x"}); err == nil || strings.Contains(err.Error(), proxyPass) ||
		!strings.Contains(err.Error(), `rke2.etcd-s3-proxy "ftp://xxxxx@x" is a ftp:// URL`) {
		t.Errorf("an ftp proxy: %v", err)
	}
}

// A Config printed or logged shows no secret.
func TestConfigString(t *testing.T) {
	c := Config{Endpoint: "s3.example.com", AccessKey: accessKey, SecretKey: secretKey, SessionToken: token, Bucket: bucket,
		Proxy: "http://user:" + proxyPass + "@proxy.example.com:3128"}
	var js bytes.Buffer
	slog.New(slog.NewJSONHandler(&js, nil)).Info("s3", "config", c)
	var text bytes.Buffer
	slog.New(slog.NewTextHandler(&text, nil)).Info("s3", "config", c)
	for name, out := range map[string]string{"%v": fmt.Sprintf("%v", c), "%+v": fmt.Sprintf("%+v", c), "%s": fmt.Sprint(c),
		"slog json": js.String(), "slog text": text.String()} {
		for _, secret := range []string{secretKey, token, proxyPass} {
			if strings.Contains(out, secret) {
				t.Errorf("%s: %s shows %q", name, out, secret)
			}
		}
		if !strings.Contains(out, "http://xxxxx@proxy.example.com:3128") || !strings.Contains(out, accessKey) {
			t.Errorf("%s: %s, want the proxy's host and the access key", name, out)
		}
	}
	var m map[string]any
	if err := json.NewDecoder(bufio.NewReader(&js)).Decode(&m); err != nil {
		t.Errorf("slog json: %v", err)
	}
}
