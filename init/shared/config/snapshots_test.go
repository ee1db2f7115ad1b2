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
		{"cluster-reset-restore-path: ../snap", `"../snap" is neither an absolute path nor a snapshot's name`},
		{"cluster-reset-restore-path: /var/x/../snap", `is not a clean file path`},
	} {
		_, err := Parse("config.yaml", []byte("rke2:\n  "+tc.yaml+"\n"))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want %q", tc.yaml, err, tc.want)
		}
	}
}

func TestEtcdS3(t *testing.T) {
	c, err := Parse("t", []byte("rke2:\n  etcd-s3: true\n  etcd-s3-endpoint: 10.0.2.2:9000\n  etcd-s3-bucket: snaps\n  etcd-s3-folder: cluster1\n  etcd-s3-insecure: true\n  etcd-s3-timeout: 30s\n  etcd-s3-access-key: a\n  etcd-s3-secret-key: s\n"))
	if err != nil {
		t.Fatal(err)
	}
	got := c.RKE2.EtcdS3()
	want := EtcdS3{Enabled: true, Endpoint: "10.0.2.2:9000", Bucket: "snaps", Folder: "cluster1", Insecure: true, Timeout: 30 * time.Second, AccessKey: "a", SecretKey: "s"}
	if got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if w := c.RKE2Warnings(); len(w) != 0 {
		t.Errorf("warnings %q", w)
	}
}
