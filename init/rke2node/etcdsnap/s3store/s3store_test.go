package s3store

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/minio/minio-go/v7"
)

const (
	bucket    = "snaps"
	accessKey = "AKIAEXAMPLEACCESS"
	secretKey = "s3cr3t-Key-That-Must-Not-Leak"
	token     = "session-Token-That-Must-Not-Leak"
	proxyPass = "pr0xy-Pass-That-Must-Not-Leak"
)

// fake serves an in-memory S3 with the bucket over http, or over TLS with
// a certificate from httptest's own CA. wrap, if not nil, sits in front
// of the fake.
func fake(t *testing.T, tls bool, wrap func(http.Handler) http.Handler) *httptest.Server {
	t.Helper()
	backend := s3mem.New()
	if err := backend.CreateBucket(bucket); err != nil {
		t.Fatal(err)
	}
	var h http.Handler = gofakes3.New(backend).Server()
	if wrap != nil {
		h = wrap(h)
	}
	var srv *httptest.Server
	if tls {
		srv = httptest.NewTLSServer(h)
	} else {
		srv = httptest.NewServer(h)
	}
	t.Cleanup(srv.Close)
	return srv
}

func host(srv *httptest.Server) string {
	return strings.TrimPrefix(strings.TrimPrefix(srv.URL, "http://"), "https://")
}

func plainConfig(srv *httptest.Server) Config {
	return Config{
		Endpoint:     host(srv),
		Insecure:     true,
		AccessKey:    accessKey,
		SecretKey:    secretKey,
		SessionToken: token,
		Bucket:       bucket,
		Timeout:      10 * time.Second,
	}
}

func newStore(t *testing.T, c Config) *Store {
	t.Helper()
	s, err := New(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func names(objs []Object) []string {
	var out []string
	for _, o := range objs {
		out = append(out, o.Name)
	}
	return out
}

func TestValidate(t *testing.T) {
	ok := Config{Bucket: "snaps"}
	tests := []struct {
		name string
		edit func(*Config)
		want string // "" for no error
	}{
		{"defaults", func(c *Config) {}, ""},
		{"everything", func(c *Config) {
			*c = Config{Endpoint: "minio.example.com:9000", EndpointCA: "/etc/ssl/ca.pem", AccessKey: "a", SecretKey: "s", SessionToken: "t",
				Bucket: "snaps", Region: "eu-west-1", Folder: "/cluster1/etcd/", Timeout: time.Minute, BucketLookup: "path"}
		}, ""},
		{"ipv6 endpoint", func(c *Config) { c.Endpoint = "[::1]:9000" }, ""},
		{"bucket missing", func(c *Config) { c.Bucket = "" }, "rke2.etcd-s3-bucket is not set: "},
		{"bucket short", func(c *Config) { c.Bucket = "ab" }, `rke2.etcd-s3-bucket "ab" is not a bucket name`},
		{"bucket url", func(c *Config) { c.Bucket = "s3://snaps" }, `rke2.etcd-s3-bucket "s3://snaps" is not a bucket name`},
		{"endpoint scheme", func(c *Config) { c.Endpoint = "https://s3.example.com" }, "give host[:port], use etcd-s3-insecure for http"},
		{"endpoint path", func(c *Config) { c.Endpoint = "s3.example.com/bucket" }, `rke2.etcd-s3-endpoint "s3.example.com/bucket" is not host[:port]`},
		{"endpoint port only", func(c *Config) { c.Endpoint = ":9000" }, "is not host[:port]"},
		{"ca relative", func(c *Config) { c.EndpointCA = "ca.pem" }, "rke2.etcd-s3-endpoint-ca \"ca.pem\" is not an absolute path"},
		{"access key alone", func(c *Config) { c.AccessKey = "a" }, "rke2.etcd-s3-secret-key is not set but etcd-s3-access-key is"},
		{"secret key alone", func(c *Config) { c.SecretKey = secretKey }, "rke2.etcd-s3-access-key is not set but etcd-s3-secret-key is"},
		{"token alone", func(c *Config) { c.SessionToken = token }, "rke2.etcd-s3-session-token is set without"},
		{"folder dotdot", func(c *Config) { c.Folder = "a/../b" }, `rke2.etcd-s3-folder "a/../b" is not a folder`},
		{"folder double slash", func(c *Config) { c.Folder = "a//b" }, "is not a folder"},
		{"folder only slash", func(c *Config) { c.Folder = "/" }, "is not a folder"},
		{"timeout negative", func(c *Config) { c.Timeout = -time.Second }, "rke2.etcd-s3-timeout -1s is too short"},
		{"timeout tiny", func(c *Config) { c.Timeout = 5 * time.Millisecond }, "rke2.etcd-s3-timeout 5ms is too short"},
		{"lookup bad", func(c *Config) { c.BucketLookup = "virtual" }, `rke2.etcd-s3-bucket-lookup-type "virtual" is not auto, dns or path`},
		{"proxy", func(c *Config) { c.Proxy = "http://user:" + proxyPass + "@proxy.example.com:3128" }, ""},
		{"proxy https", func(c *Config) { c.Proxy = "https://proxy.example.com/" }, ""},
		{"proxy none", func(c *Config) { c.Proxy = "none" }, ""},
		{"proxy no scheme", func(c *Config) { c.Proxy = "proxy.example.com:3128" }, `rke2.etcd-s3-proxy "proxy.example.com:3128" is not a URL with a scheme`},
		{"proxy socks", func(c *Config) { c.Proxy = "socks5://user:" + proxyPass + "@proxy:1080" }, `rke2.etcd-s3-proxy "socks5://xxxxx@proxy:1080" is a socks5:// URL`},
		{"proxy no host", func(c *Config) { c.Proxy = "http://user:" + proxyPass + "@:3128" }, `rke2.etcd-s3-proxy "http://xxxxx@:3128" has no host`},
		{"proxy path", func(c *Config) { c.Proxy = "http://proxy:3128/s3" }, "has a path, query or fragment"},
		{"proxy port", func(c *Config) { c.Proxy = "http://proxy:0" }, "has port 0"},
		{"proxy not a url", func(c *Config) { c.Proxy = "http://user:" + proxyPass + " x@proxy:3128" }, `rke2.etcd-s3-proxy "xxxxx" is not a URL`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.edit(&c)
			err := c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("Validate: %v, want %q", err, tt.want)
			case err != nil && (strings.Contains(err.Error(), secretKey) || strings.Contains(err.Error(), proxyPass)):
				t.Fatalf("Validate: %v shows a secret", err)
			}
		})
	}

	// Every mistake at once, one line each.
	err := Config{Endpoint: "http://x", Timeout: -1}.Validate()
	if err == nil || strings.Count(err.Error(), "\n") != 2 {
		t.Errorf("Validate: %v, want three lines", err)
	}
}

func TestNewMissingBucket(t *testing.T) {
	srv := fake(t, false, nil)
	c := plainConfig(srv)
	c.Bucket = "other-bucket"
	_, err := New(t.Context(), c)
	if err == nil || !strings.Contains(err.Error(), "s3 bucket other-bucket does not exist at http://"+host(srv)) {
		t.Fatalf("New: %v, want bucket other-bucket does not exist", err)
	}
}

func TestRoundTrip(t *testing.T) {
	for _, tt := range []struct {
		name, folder, keyPrefix string
		tls                     bool
	}{
		{"top of bucket", "", "", false},
		{"folder", "a/b", "a/b/", false},
		{"folder with slashes, tls", "/a/b/", "a/b/", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			srv := fake(t, tt.tls, nil)
			c := plainConfig(srv)
			c.Folder = tt.folder
			if tt.tls {
				c.Insecure, c.EndpointCA = false, writeCA(t, srv)
			}
			s := newStore(t, c)

			// Four snapshots, uploaded newest first: List orders by the
			// time in the name, not by the upload's.
			src := t.TempDir()
			const prefix = "etcd-snapshot-node1"
			snaps := []string{prefix + "-1796644800", prefix + "-1796601600.zip", prefix + "-1796558400", prefix + "-1796515200"}
			content := map[string][]byte{}
			for i, name := range snaps {
				data := fmt.Appendf(nil, "snapshot %d of %s", i, name)
				if i == 0 && tt.tls {
					// Big enough for a multipart upload. Only over TLS:
					// over http minio signs each part as aws-chunked,
					// and gofakes3 1.2.0 stores a part's chunk framing
					// as its data (it decodes only whole PUTs).
					data = make([]byte, 17<<20)
					rand.Read(data)
				}
				content[name] = data
				o, err := s.Upload(ctx, writeFile(t, src, name, data), "n")
				if err != nil {
					t.Fatal(err)
				}
				want := Object{Key: tt.keyPrefix + name, Name: name, Size: int64(len(data)), Location: "s3://snaps/" + tt.keyPrefix + name}
				if o.Key != want.Key || o.Name != want.Name || o.Size != want.Size || o.Location != want.Location || o.LastModified.IsZero() {
					t.Errorf("Upload: %+v, want %+v", o, want)
				}
			}
			// What List must leave out: other prefixes, subfolders,
			// folder markers, and keys outside the folder.
			for _, key := range []string{
				tt.keyPrefix + "on-demand-node1-1796644801",
				tt.keyPrefix + ".metadata/" + prefix + "-1796644800",
				tt.keyPrefix + prefix + "-sub/x",
				tt.keyPrefix + prefix + "-dir/",
				"elsewhere/" + prefix + "-1796644802",
				"a/bc/" + prefix + "-1796644803",
				"a/" + prefix + "-1796644804",
			} {
				if _, err := s.mc.PutObject(ctx, bucket, key, strings.NewReader("x"), 1, minio.PutObjectOptions{}); err != nil {
					t.Fatal(err)
				}
			}

			checkList := func(want []string) {
				t.Helper()
				got, err := s.List(ctx, prefix)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(names(got), want) {
					t.Fatalf("List: %q, want %q", names(got), want)
				}
			}
			oldestFirst := slices.Clone(snaps)
			slices.Reverse(oldestFirst)
			checkList(oldestFirst)
			all, err := s.List(ctx, "")
			if err != nil || len(all) != 5 {
				t.Fatalf("List(\"\"): %q, %v, want the four and on-demand", names(all), err)
			}

			dst := t.TempDir()
			for _, name := range snaps {
				p := filepath.Join(dst, name)
				if err := s.Download(ctx, name, p); err != nil {
					t.Fatal(err)
				}
				got, err := os.ReadFile(p)
				if err != nil || !bytes.Equal(got, content[name]) {
					t.Fatalf("Download %s: %d bytes, %v; want the %d uploaded", name, len(got), err, len(content[name]))
				}
				if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
					t.Errorf("Download %s: mode %v, want 0600", name, fi.Mode())
				}
			}

			pruned, err := s.Prune(ctx, prefix, 2)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(names(pruned), oldestFirst[:2]) {
				t.Errorf("Prune: deleted %q, want %q", names(pruned), oldestFirst[:2])
			}
			checkList(oldestFirst[2:])
			if pruned, err := s.Prune(ctx, prefix, 0); err != nil || len(pruned) != 0 {
				t.Errorf("Prune keep 0: %q, %v; want nothing deleted", names(pruned), err)
			}
			checkList(oldestFirst[2:])

			for range 2 { // the second time, the object is gone: no error
				if err := s.Delete(ctx, snaps[0]); err != nil {
					t.Fatal(err)
				}
			}
			checkList(oldestFirst[2:3])
			// The other prefix and the objects outside are still there.
			for _, key := range []string{tt.keyPrefix + "on-demand-node1-1796644801", "elsewhere/" + prefix + "-1796644802"} {
				if _, err := s.mc.StatObject(ctx, bucket, key, minio.StatObjectOptions{}); err != nil {
					t.Errorf("%s: %v", key, err)
				}
			}
		})
	}
}

func TestUploadContentType(t *testing.T) {
	srv := fake(t, false, nil)
	s := newStore(t, plainConfig(srv))
	dir := t.TempDir()
	for name, want := range map[string]string{"s-n-1.zip": "application/zip", "s-n-2": "application/octet-stream"} {
		if _, err := s.Upload(t.Context(), writeFile(t, dir, name, []byte("x")), "n"); err != nil {
			t.Fatal(err)
		}
		info, err := s.mc.StatObject(t.Context(), bucket, name, minio.StatObjectOptions{})
		if err != nil || info.ContentType != want {
			t.Errorf("%s: content type %q, %v; want %q", name, info.ContentType, err, want)
		}
	}
	if _, err := s.Upload(t.Context(), filepath.Join(dir, "missing"), "n"); err == nil || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Upload of a missing file: %v, want not exist", err)
	}
}

// A store that keeps fewer bytes than it was sent: Upload fails and
// removes the short object.
func TestUploadSizeChecked(t *testing.T) {
	srv := fake(t, false, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodHead && strings.HasSuffix(r.URL.Path, "/s-n-1") {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, r)
				maps.Copy(w.Header(), rec.Header())
				w.Header().Set("Content-Length", "3")
				w.WriteHeader(rec.Code)
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	s := newStore(t, plainConfig(srv))
	_, err := s.Upload(t.Context(), writeFile(t, t.TempDir(), "s-n-1", []byte("12345")), "n")
	if err == nil || !strings.Contains(err.Error(), "stored 3 bytes of 5") {
		t.Fatalf("Upload: %v, want stored 3 bytes of 5", err)
	}
	if got, err := s.List(t.Context(), ""); err != nil || len(got) != 0 {
		t.Errorf("after a short upload the bucket holds %q, %v", names(got), err)
	}
}

func TestDownloadLeavesNothing(t *testing.T) {
	ctx := t.Context()
	srv := fake(t, false, nil)
	s := newStore(t, plainConfig(srv))
	dir := t.TempDir()
	if _, err := s.Upload(ctx, writeFile(t, dir, "s-n-1", []byte("new")), "n"); err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()

	existing := writeFile(t, dst, "s-n-1", []byte("old"))
	if err := s.Download(ctx, "s-n-1", existing); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Errorf("Download over an existing file: %v, want it refused", err)
	}
	if got, _ := os.ReadFile(existing); string(got) != "old" {
		t.Errorf("existing file now %q", got)
	}

	err := s.Download(ctx, "s-n-missing", filepath.Join(dst, "s-n-missing"))
	if err == nil || !strings.Contains(err.Error(), "s3 download s3://snaps/s-n-missing to ") {
		t.Errorf("Download of a missing object: %v", err)
	}
	entries, _ := os.ReadDir(dst)
	if len(entries) != 1 {
		t.Errorf("after a failed download the directory holds %d files, want only the existing one", len(entries))
	}
}

// A server that sends fewer bytes than it announces: the download fails
// and leaves no file.
func TestDownloadShort(t *testing.T) {
	ctx := t.Context()
	srv := fake(t, false, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/s-n-1") {
				w.Header().Set("Content-Length", "1000")
				w.Header().Set("Last-Modified", time.Now().UTC().Format(http.TimeFormat))
				w.Header().Set("ETag", `"x"`)
				w.WriteHeader(http.StatusOK)
				w.Write([]byte("short"))
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	c := plainConfig(srv)
	s := newStore(t, c)
	if _, err := s.Upload(ctx, writeFile(t, t.TempDir(), "s-n-1", bytes.Repeat([]byte("x"), 1000)), "n"); err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	if err := s.Download(ctx, "s-n-1", filepath.Join(dst, "s-n-1")); err == nil {
		t.Error("Download of a short object: no error")
	}
	if entries, _ := os.ReadDir(dst); len(entries) != 0 {
		t.Errorf("after a short download the directory holds %v", entries)
	}
}

func TestRefusedNames(t *testing.T) {
	srv := fake(t, false, nil)
	s := newStore(t, plainConfig(srv))
	for _, name := range []string{"../x", "a/b", "..", ".", "", "a\\b", "x..y"} {
		t.Run(name, func(t *testing.T) {
			if err := s.Delete(t.Context(), name); err == nil || !strings.Contains(err.Error(), "is not a snapshot's name") {
				t.Errorf("Delete(%q): %v, want refused", name, err)
			}
			if err := s.Download(t.Context(), name, filepath.Join(t.TempDir(), "x")); err == nil || !strings.Contains(err.Error(), "is not a snapshot's name") {
				t.Errorf("Download(%q): %v, want refused", name, err)
			}
		})
	}
	if _, err := s.List(t.Context(), "a/b"); err == nil {
		t.Error("List(\"a/b\"): no error")
	}
}

// writeCA writes the certificate httptest's TLS server presents, which is
// its own CA, as a PEM file.
func writeCA(t *testing.T, srv *httptest.Server) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ca.pem")
	data := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestTLS(t *testing.T) {
	srv := fake(t, true, nil)
	notPEM := writeFile(t, t.TempDir(), "ca.pem", []byte("not a certificate"))
	for _, tt := range []struct {
		name string
		edit func(*Config)
		want string // "" for a working store
	}{
		{"endpoint CA", func(c *Config) { c.EndpointCA = writeCA(t, srv) }, ""},
		{"skip verify", func(c *Config) { c.SkipSSLVerify = true }, ""},
		{"no CA", func(c *Config) {}, "x509: certificate signed by unknown authority: set rke2.etcd-s3-endpoint-ca to"},
		{"CA file missing", func(c *Config) { c.EndpointCA = "/nonexistent/ca.pem" }, "rke2.etcd-s3-endpoint-ca: open /nonexistent/ca.pem"},
		{"CA file not PEM", func(c *Config) { c.EndpointCA = notPEM }, "holds no PEM certificate"},
		{"http to https", func(c *Config) { c.Insecure = true }, "s3 bucket snaps at http://"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := plainConfig(srv)
			c.Insecure = false
			tt.edit(&c)
			s, err := New(t.Context(), c)
			if tt.want != "" {
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("New: %v, want %q", err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			if _, err := s.Upload(t.Context(), writeFile(t, dir, "s-n-1", []byte("over tls")), "n"); err != nil {
				t.Fatal(err)
			}
			if err := s.Download(t.Context(), "s-n-1", filepath.Join(dir, "back")); err != nil {
				t.Fatal(err)
			}
			if got, _ := os.ReadFile(filepath.Join(dir, "back")); string(got) != "over tls" {
				t.Errorf("downloaded %q", got)
			}
		})
	}
}

// Errors name what failed, never the secret key or the session token,
// even where the server echoes them back.
func TestErrorsHideSecrets(t *testing.T) {
	ctx := t.Context()
	srv := fake(t, false, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(r.URL.Path, "/echo-n-1") {
				w.Header().Set("Content-Type", "application/xml")
				w.WriteHeader(http.StatusForbidden)
				fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>denied for key %s token %s</Message></Error>`, secretKey, token)
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	c := plainConfig(srv)
	s := newStore(t, c)
	dir := t.TempDir()

	c.Bucket = "missing-bucket"
	_, errNew := New(ctx, c)
	_, errUpload := s.Upload(ctx, writeFile(t, dir, "echo-n-1", []byte("x")), "n")
	down := plainConfig(srv)
	down.Endpoint = "127.0.0.1:1"
	down.Timeout = time.Second
	_, errDown := New(ctx, down)
	errs := map[string]error{
		"new, missing bucket":      errNew,
		"new, nothing listening":   errDown,
		"download, missing object": s.Download(ctx, "gone-n-1", filepath.Join(dir, "gone")),
		"download, echo":           s.Download(ctx, "echo-n-1", filepath.Join(dir, "echo")),
		"delete, echo":             s.Delete(ctx, "echo-n-1"),
		"upload, echo":             errUpload,
	}
	for call, err := range errs {
		if err == nil {
			t.Errorf("%s: no error", call)
			continue
		}
		if strings.Contains(err.Error(), secretKey) || strings.Contains(err.Error(), token) {
			t.Errorf("%s: %v shows a secret", call, err)
		}
	}
	// A HEAD's answer has no body: the download's error is minio's
	// "Access Denied.", the delete's and the upload's are the server's.
	for _, call := range []string{"delete, echo", "upload, echo"} {
		err := errs[call]
		if err == nil || !strings.Contains(err.Error(), "denied for key <redacted> token <redacted>") {
			t.Errorf("%s: %v, want the echoed secrets redacted", call, err)
		}
		var r minio.ErrorResponse
		if !errors.As(err, &r) || r.Code != "AccessDenied" {
			t.Errorf("%s: %v, the S3 error is lost", call, err)
		}
	}
}

// Each call gives up after the Config's Timeout.
func TestTimeout(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	defer srv.Close()
	c := plainConfig(srv)
	c.Timeout = time.Second
	start := time.Now()
	_, err := New(t.Context(), c)
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("New: %v, want deadline exceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("New took %v, timeout 1s", d)
	}
}

func TestAnonymous(t *testing.T) {
	srv := fake(t, false, nil)
	c := plainConfig(srv)
	c.AccessKey, c.SecretKey, c.SessionToken = "", "", ""
	s := newStore(t, c)
	if _, err := s.Upload(t.Context(), writeFile(t, t.TempDir(), "s-n-1", []byte("x")), "n"); err != nil {
		t.Fatal(err)
	}
}

// auto and path address the bucket in the path for an endpoint that is
// not Amazon's or Google's. dns is not tested: it asks for
// snaps.localhost, which Go's resolver leaves to DNS, and a test cannot
// point minio's dialer elsewhere.
func TestBucketLookup(t *testing.T) {
	var (
		mu    sync.Mutex
		paths []string
	)
	srv := fake(t, false, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			paths = append(paths, r.Host+r.URL.Path)
			mu.Unlock()
			h.ServeHTTP(w, r)
		})
	})
	port := srv.URL[strings.LastIndexByte(srv.URL, ':')+1:]
	for _, tt := range []struct{ lookup, endpoint string }{
		{"", "127.0.0.1:" + port},
		{"auto", "127.0.0.1:" + port},
		{"path", "localhost:" + port},
	} {
		t.Run(tt.lookup, func(t *testing.T) {
			mu.Lock()
			paths = nil
			mu.Unlock()
			c := plainConfig(srv)
			c.Endpoint, c.BucketLookup = tt.endpoint, tt.lookup
			newStore(t, c)
			mu.Lock()
			defer mu.Unlock()
			if want := tt.endpoint + "/snaps/"; !slices.Equal(paths, []string{want}) {
				t.Errorf("requests %q, want one to %q", paths, want)
			}
		})
	}
}

// gofakes3 does not check request signatures: wrong keys pass. The case
// is kept so that it runs if it ever does.
func TestWrongCredentials(t *testing.T) {
	srv := fake(t, false, nil)
	c := plainConfig(srv)
	c.SecretKey = "wrong-" + secretKey
	s, err := New(t.Context(), c)
	if err == nil {
		if _, err = s.List(t.Context(), ""); err == nil {
			t.Skip("gofakes3 accepts any signature: wrong credentials cannot be tested against it")
		}
	}
	if strings.Contains(err.Error(), c.SecretKey) {
		t.Errorf("%v shows the secret key", err)
	}
}
