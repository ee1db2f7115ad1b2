// Package s3store keeps etcd snapshots in an S3 bucket as RKE2 does with
// etcd-s3: true: each snapshot file is one object, <folder>/<file name>,
// so a bucket RKE2 itself wrote to reads the same. It uploads, lists,
// prunes, deletes and downloads; taking, checking and restoring a
// snapshot is etcdsnap's, and the schedule is the caller's.
package s3store

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/s3utils"

	"github.com/rke2os/rke2os/internal/durable"
)

// RKE2's defaults for its etcd-s3-* keys.
const (
	DefaultEndpoint = "s3.amazonaws.com"
	DefaultRegion   = "us-east-1"
	DefaultTimeout  = 5 * time.Minute
)

// Config is what RKE2's etcd-s3-* keys say; the comments name the key.
type Config struct {
	Endpoint      string        // etcd-s3-endpoint: host[:port]; "" is DefaultEndpoint
	EndpointCA    string        // etcd-s3-endpoint-ca: a PEM file, trusted beside the system's roots
	SkipSSLVerify bool          // etcd-s3-skip-ssl-verify
	Insecure      bool          // etcd-s3-insecure: plain http
	AccessKey     string        // etcd-s3-access-key; with SecretKey, or neither for anonymous access
	SecretKey     string        // etcd-s3-secret-key
	SessionToken  string        // etcd-s3-session-token
	Bucket        string        // etcd-s3-bucket: must exist
	Region        string        // etcd-s3-region; "" is DefaultRegion
	Folder        string        // etcd-s3-folder: the objects' key prefix, "" for the bucket's top
	Timeout       time.Duration // etcd-s3-timeout: bounds each call; 0 is DefaultTimeout
	BucketLookup  string        // etcd-s3-bucket-lookup-type: auto (or ""), dns or path
	// Proxy is etcd-s3-proxy: an http or https proxy URL, user:password@
	// allowed, that every request goes through whatever HTTP_PROXY,
	// HTTPS_PROXY and NO_PROXY say; "none" for no proxy at all (RKE2's
	// word); "" for those variables, as minio's default transport reads
	// them. An https proxy's certificate is checked as the endpoint's is.
	Proxy string
}

// String is c with the secret key, the session token and the proxy's
// credentials left out, for logs.
func (c Config) String() string {
	type plain Config // without this String
	r := plain(c)
	for _, f := range []*string{&r.SecretKey, &r.SessionToken} {
		if *f != "" {
			*f = "<redacted>"
		}
	}
	r.Proxy = redactProxy(c.Proxy)
	return fmt.Sprintf("%+v", r)
}

// LogValue is String, for slog's handlers (JSON's would print the fields).
func (c Config) LogValue() slog.Value { return slog.StringValue(c.String()) }

// ParseProxy checks an etcd-s3-proxy value: an http or https URL with a
// host, user:password@ allowed, and nothing after the port. It returns
// nil for "" and "none". Its errors never show the credentials.
func ParseProxy(s string) (*url.URL, error) {
	if s == "" || s == "none" {
		return nil, nil
	}
	const like = "give it like http://proxy.example.com:3128 (user:password@ allowed), or none for no proxy"
	shown := redactProxy(s)
	u, err := url.Parse(s)
	switch {
	case err != nil || !strings.Contains(s, "://"):
		return nil, fmt.Errorf("%q is not a URL with a scheme: %s", shown, like)
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("%q is a %s:// URL: only http and https proxies are supported; %s", shown, u.Scheme, like)
	case u.Opaque != "" || u.Hostname() == "":
		return nil, fmt.Errorf("%q has no host: %s", shown, like)
	case u.RawQuery != "" || u.Fragment != "" || (u.Path != "" && u.Path != "/"):
		return nil, fmt.Errorf("%q has a path, query or fragment, which a proxy does not use: %s", shown, like)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("%q has port %s: a port is 1 to 65535; %s", shown, p, like)
		}
	}
	return u, nil
}

// redactProxy is a proxy URL with its user:password replaced by xxxxx; a
// value that does not parse and holds an "@" is replaced whole.
func redactProxy(s string) string {
	u, err := url.Parse(s)
	switch {
	case err == nil && u.Opaque == "" && u.User != nil:
		u.User = url.User("xxxxx")
		return u.String()
	case (err != nil || u.Opaque != "") && strings.Contains(s, "@"):
		return "xxxxx"
	}
	return s
}

// Validate checks c without the network; its errors name the rke2 key and
// say what to write instead.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }

	switch {
	case c.Bucket == "":
		bad("rke2.etcd-s3-bucket is not set: give the name of an existing bucket for the snapshots")
	case s3utils.CheckValidBucketName(c.Bucket) != nil:
		bad("rke2.etcd-s3-bucket %q is not a bucket name (%v): give the bucket's name alone, like my-snapshots", c.Bucket, s3utils.CheckValidBucketName(c.Bucket))
	}
	if c.Endpoint != "" {
		if strings.Contains(c.Endpoint, "://") {
			bad("rke2.etcd-s3-endpoint %q has a scheme: give host[:port], use etcd-s3-insecure for http", c.Endpoint)
		} else if u, err := url.Parse("//" + c.Endpoint); err != nil || u.Host != c.Endpoint || u.Hostname() == "" {
			bad("rke2.etcd-s3-endpoint %q is not host[:port]: give it like %s or minio.example.com:9000, without a path", c.Endpoint, DefaultEndpoint)
		}
	}
	if c.EndpointCA != "" && !filepath.IsAbs(c.EndpointCA) {
		bad("rke2.etcd-s3-endpoint-ca %q is not an absolute path: give the path of a PEM file of the CA that signed the endpoint's certificate", c.EndpointCA)
	}
	switch {
	case c.AccessKey != "" && c.SecretKey == "":
		bad("rke2.etcd-s3-secret-key is not set but etcd-s3-access-key is: set both, or neither for anonymous access")
	case c.AccessKey == "" && c.SecretKey != "":
		bad("rke2.etcd-s3-access-key is not set but etcd-s3-secret-key is: set both, or neither for anonymous access")
	case c.SessionToken != "" && c.AccessKey == "":
		bad("rke2.etcd-s3-session-token is set without etcd-s3-access-key and etcd-s3-secret-key: a session token goes with the temporary keys it was issued with")
	}
	if c.Folder != "" {
		if f := strings.Trim(c.Folder, "/"); f == "" || slices.ContainsFunc(strings.Split(f, "/"), func(s string) bool { return s == "" || s == "." || s == ".." }) || strings.ContainsAny(f, "\\\x00") {
			bad("rke2.etcd-s3-folder %q is not a folder: give it like snapshots or cluster1/etcd, without \"..\", \".\" or \"//\"", c.Folder)
		}
	}
	if c.Timeout < 0 || c.Timeout > 0 && c.Timeout < time.Second {
		bad("rke2.etcd-s3-timeout %s is too short: give a duration of a second or more, like 5m (RKE2's default)", c.Timeout)
	}
	if _, err := ParseProxy(c.Proxy); err != nil {
		bad("rke2.etcd-s3-proxy %v", err)
	}
	if _, ok := bucketLookups[c.BucketLookup]; !ok {
		bad("rke2.etcd-s3-bucket-lookup-type %q is not auto, dns or path: auto (the default) uses dns for Amazon's and Google's endpoints, path for the others", c.BucketLookup)
	}
	return errors.Join(errs...)
}

var bucketLookups = map[string]minio.BucketLookupType{
	"":     minio.BucketLookupAuto,
	"auto": minio.BucketLookupAuto,
	"dns":  minio.BucketLookupDNS,
	"path": minio.BucketLookupPath,
}

// Store is a bucket's folder of snapshots. Each call is bounded by the
// Config's Timeout.
type Store struct {
	mc     *minio.Client
	cfg    Config
	prefix string // the folder with a trailing "/", or ""
}

// Object is one snapshot in the bucket.
type Object struct {
	Key          string // the object's key: <folder>/<name>
	Name         string // the snapshot's file name
	Size         int64
	LastModified time.Time
	Location     string // s3://<bucket>/<key>
}

// New connects to the endpoint and checks that the bucket exists. Empty
// fields of c take RKE2's defaults.
func New(ctx context.Context, c Config) (*Store, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	c.Endpoint = cmp.Or(c.Endpoint, DefaultEndpoint)
	c.Region = cmp.Or(c.Region, DefaultRegion)
	c.Timeout = cmp.Or(c.Timeout, DefaultTimeout)
	s := &Store{cfg: c}
	if f := strings.Trim(c.Folder, "/"); f != "" {
		s.prefix = f + "/"
	}

	tr, err := transport(c)
	if err != nil {
		return nil, err
	}
	// minio retries a refused connection until the deadline and then
	// says only that: the last dial's error says what was refused (the
	// endpoint, or the proxy).
	var lastDial atomic.Pointer[error]
	dial := tr.DialContext
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := dial(ctx, network, addr)
		if err != nil && ctx.Err() == nil {
			lastDial.Store(&err)
		}
		return conn, err
	}
	// Static credentials with both keys empty sign nothing: anonymous
	// access, for a bucket that allows it.
	s.mc, err = minio.New(c.Endpoint, &minio.Options{
		Creds:        credentials.NewStaticV4(c.AccessKey, c.SecretKey, c.SessionToken),
		Secure:       !c.Insecure,
		Transport:    tr,
		Region:       c.Region,
		BucketLookup: bucketLookups[c.BucketLookup],
	})
	if err != nil {
		return nil, s.errorf("s3 endpoint %s: %w", c.Endpoint, err)
	}

	ctx, cancel := s.bound(ctx)
	defer cancel()
	ok, err := s.mc.BucketExists(ctx, c.Bucket)
	if err != nil {
		var hint string
		if cv := (*tls.CertificateVerificationError)(nil); errors.As(err, &cv) {
			hint = ": set rke2.etcd-s3-endpoint-ca to the PEM file of the CA that signed the endpoint's certificate"
		} else if d := lastDial.Load(); d != nil && errors.Is(err, context.DeadlineExceeded) {
			hint = fmt.Sprintf(" (the last connection: %v)", *d)
		}
		return nil, s.errorf("s3 bucket %s at %s%s: %w%s", c.Bucket, s.endpointURL(), s.via(), err, hint)
	}
	if !ok {
		return nil, fmt.Errorf("s3 bucket %s does not exist at %s%s: create it, or set rke2.etcd-s3-bucket to one that does", c.Bucket, s.endpointURL(), s.via())
	}
	return s, nil
}

// transport is minio's, with the proxy and the TLS settings of the
// config.
func transport(c Config) (*http.Transport, error) {
	tr, err := minio.DefaultTransport(!c.Insecure)
	if err != nil {
		return nil, err
	}
	switch u, err := ParseProxy(c.Proxy); {
	case err != nil:
		return nil, fmt.Errorf("rke2.etcd-s3-proxy %w", err)
	case u != nil:
		tr.Proxy = http.ProxyURL(u)
	case c.Proxy == "none":
		tr.Proxy = nil
	}
	// c.Proxy "": minio's http.ProxyFromEnvironment, as before the key.
	if c.Insecure {
		return tr, nil
	}
	if c.SkipSSLVerify {
		tr.TLSClientConfig.InsecureSkipVerify = true
		return tr, nil
	}
	if c.EndpointCA == "" {
		return tr, nil
	}
	pem, err := os.ReadFile(c.EndpointCA)
	if err != nil {
		return nil, fmt.Errorf("rke2.etcd-s3-endpoint-ca: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		// No system roots (a minimal image): the given CA alone.
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("rke2.etcd-s3-endpoint-ca %s holds no PEM certificate: give the CA that signed the endpoint's certificate, in PEM", c.EndpointCA)
	}
	tr.TLSClientConfig.RootCAs = pool
	return tr, nil
}

// Upload puts the file at path into the folder under its base name and
// checks the object's size against the file's.
// MetaNode is the user metadata of an uploaded snapshot that names the
// node that took it: names alone cannot tell "x-server1"'s snapshots
// from "server1"'s.
const MetaNode = "Rke2os-Node"

// Upload uploads the snapshot file as the folder's <base name>, its node
// in the object's metadata (MetaNode).
func (s *Store) Upload(ctx context.Context, file, node string) (Object, error) {
	name := filepath.Base(file)
	key := s.prefix + name
	fail := func(err error) (Object, error) {
		return Object{}, s.errorf("s3 upload %s to %s: %w", file, s.location(key), err)
	}
	if err := checkName(name); err != nil {
		return fail(err)
	}
	f, err := os.Open(file)
	if err != nil {
		return fail(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fail(err)
	}
	if !fi.Mode().IsRegular() {
		return fail(fmt.Errorf("not a regular file"))
	}

	ctx, cancel := s.bound(ctx)
	defer cancel()
	opts := minio.PutObjectOptions{ContentType: "application/octet-stream"}
	if node != "" {
		opts.UserMetadata = map[string]string{MetaNode: node}
	}
	if strings.HasSuffix(name, ".zip") {
		opts.ContentType = "application/zip"
	}
	if _, err := s.mc.PutObject(ctx, s.cfg.Bucket, key, f, fi.Size(), opts); err != nil {
		return fail(err)
	}
	info, err := s.mc.StatObject(ctx, s.cfg.Bucket, key, minio.StatObjectOptions{})
	if err != nil {
		return fail(err)
	}
	if info.Size != fi.Size() {
		// A short object must not pass for a snapshot at restore.
		s.mc.RemoveObject(ctx, s.cfg.Bucket, key, minio.RemoveObjectOptions{})
		return fail(fmt.Errorf("stored %d bytes of %d", info.Size, fi.Size()))
	}
	return s.object(info), nil
}

// List lists the snapshots directly in the folder whose names begin with
// prefix, oldest first by the unix time that ends a snapshot's name (by
// LastModified for a name without one). Objects in subfolders (RKE2's
// .metadata) and folder markers are left out.
func (s *Store) List(ctx context.Context, prefix string) ([]Object, error) {
	if strings.Contains(prefix, "/") {
		return nil, fmt.Errorf("s3 list %s: prefix %q holds a \"/\": give the beginning of a snapshot's name", s.location(s.prefix), prefix)
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	var out []Object
	// Not recursive: the listing is of the folder's own objects, and
	// deeper keys come back as one "directory" each, skipped below.
	for info := range s.mc.ListObjects(ctx, s.cfg.Bucket, minio.ListObjectsOptions{Prefix: s.prefix + prefix}) {
		if info.Err != nil {
			return nil, s.errorf("s3 list %s: %w", s.location(s.prefix+prefix), info.Err)
		}
		name, ok := strings.CutPrefix(info.Key, s.prefix)
		if !ok || name == "" || strings.Contains(name, "/") || !strings.HasPrefix(name, prefix) {
			continue
		}
		out = append(out, s.object(info))
	}
	slices.SortFunc(out, func(a, b Object) int {
		return cmp.Or(created(a).Compare(created(b)), strings.Compare(a.Name, b.Name))
	})
	return out, nil
}

// created is when a snapshot was taken: the unix time RKE2 ends its name
// with, before any .zip. An upload's LastModified is later, and is the
// upload's, which may come long after the snapshot.
func created(o Object) time.Time {
	n := strings.TrimSuffix(o.Name, ".zip")
	if i := strings.LastIndexByte(n, '-'); i >= 0 {
		if sec, err := strconv.ParseInt(n[i+1:], 10, 64); err == nil && sec > 0 {
			return time.Unix(sec, 0)
		}
	}
	return o.LastModified
}

// Delete deletes the snapshot name from the folder; one already gone is
// no error.
func (s *Store) Delete(ctx context.Context, name string) error {
	if err := checkName(name); err != nil {
		return fmt.Errorf("s3 delete: %w", err)
	}
	key := s.prefix + name
	ctx, cancel := s.bound(ctx)
	defer cancel()
	if err := s.mc.RemoveObject(ctx, s.cfg.Bucket, key, minio.RemoveObjectOptions{}); err != nil && !notFound(err) {
		return s.errorf("s3 delete %s: %w", s.location(key), err)
	}
	return nil
}

// Prune deletes the oldest of List(prefix) beyond the newest keep and
// returns those it deleted; keep < 1 keeps all.
func (s *Store) Prune(ctx context.Context, prefix string, keep int) ([]Object, error) {
	if keep < 1 {
		return nil, nil
	}
	all, err := s.List(ctx, prefix)
	if err != nil || len(all) <= keep {
		return nil, err
	}
	var deleted []Object
	for _, o := range all[:len(all)-keep] {
		if err := s.Delete(ctx, o.Name); err != nil {
			return deleted, err
		}
		deleted = append(deleted, o)
	}
	return deleted, nil
}

// Download writes the snapshot name to dest, which must not exist: into
// a temporary file beside it, synced, then linked into place, so that a
// failed or short download leaves nothing at dest. The file is 0600: a
// snapshot holds the cluster's secrets.
func (s *Store) Download(ctx context.Context, name, dest string) error {
	if err := checkName(name); err != nil {
		return fmt.Errorf("s3 download: %w", err)
	}
	key := s.prefix + name
	fail := func(err error) error {
		return s.errorf("s3 download %s to %s: %w", s.location(key), dest, err)
	}
	if _, err := os.Lstat(dest); err == nil {
		return fail(fmt.Errorf("%s exists: remove it or download to another path", dest))
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fail(err)
	}

	ctx, cancel := s.bound(ctx)
	defer cancel()
	obj, err := s.mc.GetObject(ctx, s.cfg.Bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return fail(err)
	}
	defer obj.Close()
	info, err := obj.Stat()
	if err != nil {
		return fail(err)
	}

	tmp, err := os.CreateTemp(filepath.Dir(dest), "."+filepath.Base(dest)+".part-")
	if err != nil {
		return fail(err)
	}
	defer os.Remove(tmp.Name())
	n, err := io.Copy(tmp, obj)
	if err == nil && n != info.Size {
		err = fmt.Errorf("got %d bytes of %d", n, info.Size)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fail(err)
	}
	// A link, not a rename: it fails if dest came in the meantime.
	if err := os.Link(tmp.Name(), dest); err != nil {
		return fail(err)
	}
	if err := durable.SyncDir(filepath.Dir(dest)); err != nil {
		return fail(err)
	}
	return nil
}

// checkName refuses a name that is not a plain file name: a key outside
// the folder must not be reachable through one.
func checkName(name string) error {
	if name == "" || strings.ContainsAny(name, "/\\\x00") || strings.Contains(name, "..") || name == "." {
		return fmt.Errorf("%q is not a snapshot's name: give a file name as List returns it, without \"/\" or \"..\"", name)
	}
	return nil
}

// notFound: S3 answers a delete of a missing key with success, but not
// every server does.
func notFound(err error) bool {
	var r minio.ErrorResponse
	return errors.As(err, &r) && (r.Code == minio.NoSuchKey || r.StatusCode == http.StatusNotFound)
}

func (s *Store) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.cfg.Timeout)
}

func (s *Store) object(info minio.ObjectInfo) Object {
	return Object{
		Key:          info.Key,
		Name:         path.Base(info.Key),
		Size:         info.Size,
		LastModified: info.LastModified,
		Location:     s.location(info.Key),
	}
}

func (s *Store) location(key string) string {
	return "s3://" + s.cfg.Bucket + "/" + key
}

// via is " through proxy <URL>" (its credentials xxxxx) when the config
// names a proxy, "" otherwise.
func (s *Store) via() string {
	if u, _ := ParseProxy(s.cfg.Proxy); u != nil {
		return " through proxy " + redactProxy(s.cfg.Proxy)
	}
	return ""
}

func (s *Store) endpointURL() string {
	if s.cfg.Insecure {
		return "http://" + s.cfg.Endpoint
	}
	return "https://" + s.cfg.Endpoint
}

// errorf is fmt.Errorf with the secret key, the session token and the
// proxy's credentials cut out of the text: errors end up in logs and
// events, and a server or a proxy may echo what it was sent.
func (s *Store) errorf(format string, a ...any) error {
	err := fmt.Errorf(format, a...)
	msg := err.Error()
	for _, secret := range append([]string{s.cfg.SecretKey, s.cfg.SessionToken}, proxySecrets(s.cfg.Proxy)...) {
		if secret != "" {
			msg = strings.ReplaceAll(msg, secret, "<redacted>")
		}
	}
	if msg == err.Error() {
		return err
	}
	return &redacted{msg: msg, err: err}
}

// proxySecrets are the forms a proxy URL's credentials may take in an
// error: the URL's user:password (as written, and decoded), the
// Proxy-Authorization header's base64 of it, and the password alone (the
// user alone when there is no password: a token, if it is long enough).
func proxySecrets(proxy string) []string {
	u, err := url.Parse(proxy)
	if err != nil || u.User == nil {
		return nil
	}
	user := u.User.Username()
	pass, hasPass := u.User.Password()
	out := []string{u.User.String(), user + ":" + pass, base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))}
	switch {
	case hasPass:
		out = append(out, pass)
	case len(user) >= 8:
		// Long enough not to cut ordinary words out of the text.
		out = append(out, user)
	}
	return slices.DeleteFunc(out, func(s string) bool { return s == "" || s == ":" })
}

// redacted keeps the wrapped error for errors.Is and errors.As.
type redacted struct {
	msg string
	err error
}

func (r *redacted) Error() string { return r.msg }
func (r *redacted) Unwrap() error { return errors.Unwrap(r.err) }

// Owner is the node an object's metadata names (MetaNode), "" if it names
// none (uploaded by RKE2 itself, or by hand).
func (s *Store) Owner(ctx context.Context, name string) (string, error) {
	if err := checkName(name); err != nil {
		return "", err
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	key := s.prefix + name
	info, err := s.mc.StatObject(ctx, s.cfg.Bucket, key, minio.StatObjectOptions{})
	if err != nil {
		return "", s.errorf("s3 stat %s: %w", s.location(key), err)
	}
	for k, v := range info.UserMetadata {
		if strings.EqualFold(k, MetaNode) || strings.EqualFold(k, "X-Amz-Meta-"+MetaNode) {
			return v, nil
		}
	}
	return "", nil
}
