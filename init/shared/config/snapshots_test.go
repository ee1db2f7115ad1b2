package config

import (
	"strings"
	"testing"
	"time"
)

func TestEtcdSnapshots(t *testing.T) {
	c, err := Parse("t", []byte("rke2:\n  etcd-snapshot-schedule-cron: \"* * * * *\"\n  etcd-snapshot-retention: 2\n  etcd-snapshot-compress: true\n  etcd-snapshot-name: nightly\n  etcd-snapshot-dir: /var/backups/etcd\n  cluster-reset: true\n  cluster-reset-restore-path: etcd-snapshot-node1-1796644800\n"))
	if err != nil {
		t.Fatal(err)
	}
	got := c.RKE2.EtcdSnapshots()
	want := EtcdSnapshots{Cron: "* * * * *", Retention: 2, Compress: true, Name: "nightly", Dir: "/var/backups/etcd"}
	if got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if w := c.RKE2Warnings(); len(w) != 0 {
		t.Errorf("warnings %q: the snapshot keys are acted on", w)
	}
	def := (RKE2Config{}).EtcdSnapshots()
	if def != (EtcdSnapshots{Cron: "0 */12 * * *", Retention: 5, Name: "etcd-snapshot"}) {
		t.Errorf("defaults %+v", def)
	}
}

func TestEtcdSnapshotsBadInput(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"etcd-snapshot-schedule-cron: \"0 */12 * *\"", `config config.yaml line 2 column 32: rke2.etcd-snapshot-schedule-cron "0 */12 * *" is not a cron schedule`},
		{"etcd-snapshot-schedule-cron: \"61 * * * *\"", "five fields, minute hour day-of-month month day-of-week"},
		{"etcd-snapshot-retention: 0", `"0" is not a number of snapshots to keep per node`},
		{"etcd-snapshot-retention: five", `"five" is not a number`},
		{"etcd-snapshot-name: ../x", `"../x" cannot begin a snapshot's file name`},
		{"etcd-snapshot-dir: snapshots", `"snapshots" is not a directory for snapshots: give an absolute path`},
		{"etcd-snapshot-dir: /root/snap", `"/root/snap" is not under /var`},
		{"etcd-snapshot-compress: maybe", `"maybe" is not true or false`},
		{"etcd-disable-snapshots: [true]", "etcd-disable-snapshots"},
		{"cluster-reset: yes please", `"yes please" is not true or false`},
		{"etcd-s3-timeout: 5", `"5" is not a duration of a second or more`},
		{"etcd-s3-endpoint-ca: ca.pem", `"ca.pem" is not an absolute file path`},
		{"etcd-s3-bucket-lookup-type: virtual", `"virtual" is not a bucket lookup type`},
		{"etcd-s3: on", `"on" is not true or false`},
		{"etcd-s3-proxy: proxy.example.com:3128", `config config.yaml line 2 column 18: rke2.etcd-s3-proxy "proxy.example.com:3128" is not a URL with a scheme: give the proxy's URL like http://proxy.example.com:3128`},
		{"etcd-s3-proxy: 10.0.0.1:3128", `"10.0.0.1:3128" is not a URL with a scheme`},
		{"etcd-s3-proxy: socks5://10.0.0.1:1080", `"socks5://10.0.0.1:1080" is a socks5:// URL: the S3 client speaks to http and https proxies only`},
		{"etcd-s3-proxy: ftp://proxy", `is a ftp:// URL`},
		{"etcd-s3-proxy: http://", `"http://" has no host`},
		{"etcd-s3-proxy: http://:3128", `"http://:3128" has no host`},
		{"etcd-s3-proxy: http://proxy:3128/s3", `"http://proxy:3128/s3" has a path, query or fragment`},
		{"etcd-s3-proxy: http://proxy:3128?x=1", `has a path, query or fragment`},
		{"etcd-s3-proxy: http://proxy:99999", `"http://proxy:99999" has port 99999: a port is 1 to 65535`},
		{"etcd-s3-proxy: \"\"", `rke2.etcd-s3-proxy "" is not a URL with a scheme`},
		{"etcd-s3-proxy: [http://proxy:3128]", "etcd-s3-proxy"},
		{"cluster-reset-restore-path: ../snap", `"../snap" is neither an absolute path nor a snapshot's name`},
		{"cluster-reset-restore-path: /var/x/../snap", `is not a clean file path`},
	} {
		_, err := Parse("config.yaml", []byte("rke2:\n  "+tc.yaml+"\n"))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want %q", tc.yaml, err, tc.want)
		}
	}
}

// etcd-s3-proxy: an http or https URL with a host, credentials allowed
// and never shown, or none (RKE2's word for no proxy at all).
func TestEtcdS3Proxy(t *testing.T) {
	for _, tc := range []struct{ value, want string }{
		{"http://proxy.example.com:3128", ""},
		{"http://10.0.0.1:3128/", ""},
		{"https://proxy.example.com", ""},
		{"http://[fd00::1]:3128", ""},
		{"HTTP://Proxy.Example.com:3128", ""},
		{"http://user:pr0xy-Pass@proxy.example.com:3128", ""},
		{"http://pr0xy-Pass@proxy.example.com:3128", ""},
		{"none", ""},
		{"http://user:pr0xy-Pass@proxy.example.com:3128/path", `"http://xxxxx@proxy.example.com:3128/path" has a path, query or fragment`},
		{"socks5://user:pr0xy-Pass@proxy.example.com:1080", `"socks5://xxxxx@proxy.example.com:1080" is a socks5:// URL`},
		{"user:pr0xy-Pass@proxy.example.com:3128", "the value is not a URL with a scheme"},
		{"http://user:pr0xy Pass@proxy.example.com:3128", "the value is not a URL: "},
		{"http://user:pr0xy-Pass@:3128", `"http://xxxxx@:3128" has no host`},
	} {
		c, err := Parse("config.yaml", []byte("rke2:\n  etcd-s3: true\n  etcd-s3-proxy: \""+tc.value+"\"\n"))
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.value, err)
		case tc.want == "" && c.RKE2.EtcdS3().Proxy != tc.value:
			t.Errorf("%s: EtcdS3().Proxy %q", tc.value, c.RKE2.EtcdS3().Proxy)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), "rke2.etcd-s3-proxy") || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: err %v, want %q", tc.value, err, tc.want)
		case err != nil && strings.Contains(err.Error(), "pr0xy"):
			t.Errorf("%s: %v shows the password", tc.value, err)
		}
	}
	for in, want := range map[string]string{
		"":                                  "",
		"none":                              "none",
		"http://proxy:3128":                 "http://proxy:3128",
		"http://user:pr0xy-Pass@proxy:3128": "http://xxxxx@proxy:3128",
		"http://pr0xy-Pass@proxy:3128":      "http://xxxxx@proxy:3128",
		"user:pr0xy-Pass@proxy:3128":        "xxxxx",
		"http://u:pr0xy Pass@proxy:3128":    "xxxxx",
	} {
		if got := RedactProxy(in); got != want {
			t.Errorf("RedactProxy(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestEtcdS3(t *testing.T) {
	c, err := Parse("t", []byte("rke2:\n  etcd-s3: true\n  etcd-s3-endpoint: 10.0.2.2:9000\n  etcd-s3-bucket: snaps\n  etcd-s3-folder: cluster1\n  etcd-s3-insecure: true\n  etcd-s3-timeout: 30s\n  etcd-s3-access-key: a\n  etcd-s3-secret-key: s\n  etcd-s3-proxy: http://10.0.2.2:3128\n"))
	if err != nil {
		t.Fatal(err)
	}
	got := c.RKE2.EtcdS3()
	want := EtcdS3{Enabled: true, Endpoint: "10.0.2.2:9000", Bucket: "snaps", Folder: "cluster1", Insecure: true, Timeout: 30 * time.Second, AccessKey: "a", SecretKey: "s",
		Proxy: "http://10.0.2.2:3128"}
	if got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if w := c.RKE2Warnings(); len(w) != 0 {
		t.Errorf("warnings %q", w)
	}
	// A proxy alone is an etcd-s3-* key: the config secret is not read.
	if s3 := (EtcdS3{Enabled: true, ConfigSecret: "s3", Proxy: "http://p:3128"}); s3.FromKeysOnly() {
		t.Error("etcd-s3-proxy and a secret: FromKeysOnly")
	}
}
