package config

import (
	"fmt"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// RKE2's defaults for its etcd-snapshot-* keys.
const (
	DefaultSnapshotCron      = "0 */12 * * *"
	DefaultSnapshotRetention = 5
	DefaultSnapshotName      = "etcd-snapshot"
)

// EtcdSnapshots is what the etcd-snapshot-* keys and etcd-disable-snapshots
// say, RKE2's defaults in place of the keys not written. Dir is "" for
// RKE2's default, server/db/snapshots under the data directory.
type EtcdSnapshots struct {
	Disabled  bool
	Cron      string
	Retention int
	Dir       string
	Name      string
	Compress  bool
}

// EtcdSnapshots returns the snapshot settings, checked when the config was
// parsed.
func (r RKE2Config) EtcdSnapshots() EtcdSnapshots {
	s := EtcdSnapshots{Cron: DefaultSnapshotCron, Retention: DefaultSnapshotRetention, Name: DefaultSnapshotName}
	if v := r.String("etcd-snapshot-schedule-cron"); v != "" {
		s.Cron = v
	}
	if v, err := strconv.Atoi(r.String("etcd-snapshot-retention")); err == nil {
		s.Retention = v
	}
	if v := r.String("etcd-snapshot-name"); v != "" {
		s.Name = v
	}
	s.Dir = r.String("etcd-snapshot-dir")
	s.Compress, _ = strconv.ParseBool(r.String("etcd-snapshot-compress"))
	s.Disabled, _ = strconv.ParseBool(r.String("etcd-disable-snapshots"))
	return s
}

// ParseCron reads a snapshot schedule as RKE2 does: five fields (minute,
// hour, day of month, month, day of week) or a descriptor like @hourly or
// @every 6h, in the node's time.
func ParseCron(s string) (cron.Schedule, error) {
	sched, err := cron.ParseStandard(s)
	if err != nil {
		return nil, fmt.Errorf("%q is not a cron schedule (%v): five fields, minute hour day-of-month month day-of-week, like %q (RKE2's default) or \"*/30 * * * *\", or @hourly, @daily, @every 6h", s, err, DefaultSnapshotCron)
	}
	return sched, nil
}

func checkCron(s string) error {
	_, err := ParseCron(s)
	return err
}

func checkRetention(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 10000 {
		return fmt.Errorf("%q is not a number of snapshots to keep per node: a whole number from 1, like 5 (RKE2's default)", s)
	}
	return nil
}

// checkSnapshotName: the name begins every snapshot's file name.
func checkSnapshotName(s string) error {
	if s == "" || len(s) > 128 || strings.ContainsAny(s, "/\\\x00 ") || strings.HasPrefix(s, ".") {
		return fmt.Errorf("%q cannot begin a snapshot's file name: use letters, digits, \"-\", \"_\" and \".\", no \"/\" and no leading dot, like %q", s, DefaultSnapshotName)
	}
	return nil
}

func checkSnapshotDir(s string) error {
	if !filepath.IsAbs(s) || filepath.Clean(s) == "/" {
		return fmt.Errorf("%q is not a directory for snapshots: give an absolute path on the state partition, like /var/lib/rancher/rke2/server/db/snapshots (RKE2's default)", s)
	}
	if !strings.HasPrefix(filepath.Clean(s), "/var/") {
		return fmt.Errorf("%q is not under /var: only /var is kept on the state partition, a snapshot elsewhere is lost at the next reboot; leave the key out for RKE2's default, /var/lib/rancher/rke2/server/db/snapshots", s)
	}
	return nil
}

func checkBool(s string) error {
	if _, err := strconv.ParseBool(s); err != nil {
		return fmt.Errorf("%q is not true or false", s)
	}
	return nil
}

// checkRestorePath: an absolute path, or a snapshot's file name in the
// snapshot directory.
func checkRestorePath(s string) error {
	if filepath.IsAbs(s) {
		if filepath.Clean(s) != s || strings.HasSuffix(s, "/") {
			return fmt.Errorf("%q is not a clean file path: give it like /var/lib/rancher/rke2/server/db/snapshots/etcd-snapshot-node1-1796644800", s)
		}
		return nil
	}
	if s == "" || s != filepath.Base(s) || strings.HasPrefix(s, ".") {
		return fmt.Errorf("%q is neither an absolute path nor a snapshot's name: give /path/to/the/snapshot, or a name as rke2-build etcd-snapshot ls lists it", s)
	}
	return nil
}

// EtcdS3 is what the etcd-s3 keys say, as written (rke2-node makes the
// S3 client of it; PID 1 links no S3 code). Enabled is etcd-s3.
type EtcdS3 struct {
	Enabled                                                  bool
	Endpoint, EndpointCA, AccessKey, SecretKey, SessionToken string
	Bucket, Region, Folder, BucketLookup                     string
	SkipSSLVerify, Insecure                                  bool
	Timeout                                                  time.Duration
	// Proxy is etcd-s3-proxy: the proxy URL all S3 requests go through
	// whatever the proxy environment variables say, "none" for none, ""
	// for the environment's. It may carry user:password: print it with
	// RedactProxy.
	Proxy string
	// ConfigSecret is etcd-s3-config-secret: a Secret in kube-system
	// holding these keys, used when no other etcd-s3-* key is set.
	ConfigSecret string
}

// EtcdS3 returns the S3 settings, checked when the config was parsed.
func (r RKE2Config) EtcdS3() EtcdS3 {
	b := func(k string) bool { v, _ := strconv.ParseBool(r.String(k)); return v }
	s := EtcdS3{Enabled: b("etcd-s3"), Endpoint: r.String("etcd-s3-endpoint"), EndpointCA: r.String("etcd-s3-endpoint-ca"),
		AccessKey: r.String("etcd-s3-access-key"), SecretKey: r.String("etcd-s3-secret-key"), SessionToken: r.String("etcd-s3-session-token"),
		Bucket: r.String("etcd-s3-bucket"), Region: r.String("etcd-s3-region"), Folder: r.String("etcd-s3-folder"),
		BucketLookup: r.String("etcd-s3-bucket-lookup-type"), SkipSSLVerify: b("etcd-s3-skip-ssl-verify"), Insecure: b("etcd-s3-insecure")}
	s.Timeout, _ = time.ParseDuration(r.String("etcd-s3-timeout"))
	s.Proxy = r.String("etcd-s3-proxy")
	s.ConfigSecret = r.String("etcd-s3-config-secret")
	return s
}

// FromKeysOnly says whether no etcd-s3-* key but etcd-s3 and
// etcd-s3-config-secret is set: then the secret configures S3, as RKE2
// reads it.
func (s EtcdS3) FromKeysOnly() bool {
	rest := s
	rest.Enabled, rest.ConfigSecret = false, ""
	return rest == (EtcdS3{})
}

func checkDuration(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil || d < time.Second {
		return fmt.Errorf("%q is not a duration of a second or more: write it like 5m0s or 30s", s)
	}
	return nil
}

func checkAbsFile(s string) error {
	if !filepath.IsAbs(s) {
		return fmt.Errorf("%q is not an absolute file path: give the PEM file's path on the node, like /etc/rke2/s3-ca.pem (write_files can put it there)", s)
	}
	return nil
}

func checkBucketLookup(s string) error {
	switch s {
	case "auto", "dns", "path":
		return nil
	}
	return fmt.Errorf("%q is not a bucket lookup type: auto, dns or path", s)
}

// checkS3Proxy checks etcd-s3-proxy: an http or https proxy URL with a
// host (user:password@ allowed), or "none" as RKE2 takes it (no proxy,
// whatever the environment says). Its errors never show the credentials.
func checkS3Proxy(s string) error {
	if s == "none" {
		return nil
	}
	const like = "give the proxy's URL like http://proxy.example.com:3128 (user:password@ allowed), or none for no proxy"
	shown := fmt.Sprintf("%q", s)
	if strings.Contains(s, "@") {
		shown = "the value" // it may hold a password that, unparsed, cannot be cut out
	}
	if !strings.Contains(s, "://") {
		return fmt.Errorf("%s is not a URL with a scheme: %s", shown, like)
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%s is not a URL: %s", shown, like)
	}
	shown = fmt.Sprintf("%q", RedactProxy(s))
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("%s is a %s:// URL: the S3 client speaks to http and https proxies only; %s", shown, u.Scheme, like)
	case u.Opaque != "" || u.Hostname() == "":
		return fmt.Errorf("%s has no host: %s", shown, like)
	case u.RawQuery != "" || u.Fragment != "" || (u.Path != "" && u.Path != "/"):
		return fmt.Errorf("%s has a path, query or fragment, which a proxy does not use: %s", shown, like)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("%s has port %s: a port is 1 to 65535; %s", shown, p, like)
		}
	}
	return nil
}

// RedactProxy is an etcd-s3-proxy value fit for a log: its user:password
// replaced by xxxxx; a value that does not parse as a URL and holds an "@"
// is replaced whole.
func RedactProxy(s string) string {
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
