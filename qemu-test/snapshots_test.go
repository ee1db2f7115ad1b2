package qemutest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rke2os/rke2os/init/rke2node/crds"
	"github.com/rke2os/rke2os/init/rke2node/etcdsnap"
	"github.com/rke2os/rke2os/init/rke2node/supervisorapi"
	"github.com/rke2os/rke2os/init/shared/console"
	"github.com/rke2os/rke2os/qemu-test/qemu"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
)

// snapshotRKE2 is the cluster server's snapshot schedule: every minute,
// two kept (the proof; RKE2's defaults are twice a day, five),
// copied to the bucket "snaps" of the S3 server at the host's port s3Port
// (QEMU's user network: 10.0.2.2 is the host's loopback).
func snapshotRKE2(s3Port int) string {
	return "  etcd-snapshot-schedule-cron: \"* * * * *\"\n  etcd-snapshot-retention: 2\n" +
		fmt.Sprintf("  etcd-s3: true\n  etcd-s3-endpoint: 10.0.2.2:%d\n  etcd-s3-insecure: true\n  etcd-s3-bucket: snaps\n  etcd-s3-folder: cluster1\n", s3Port) +
		"  etcd-s3-access-key: test\n  etcd-s3-secret-key: test-secret\n"
}

// s3Server runs a real S3 server on the host's loopback, versitygw's
// posix gateway (built by make images, cached by version), with an empty
// bucket "snaps" under root: its objects are files there.
func s3Server(t *testing.T) (port int, root string) {
	t.Helper()
	versions, err := os.ReadFile("../images/versions.env")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^VERSITYGW_VERSION=(\S+)$`).FindSubmatch(versions)
	if m == nil {
		t.Fatal("images/versions.env has no VERSITYGW_VERSION")
	}
	bin := inputOr("RKE2_VERSITYGW", "../build/cache/versitygw-"+string(m[1])+"/versitygw")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("the S3 server: %v (make images builds it)", err)
	}
	root = t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "snaps"), 0o755); err != nil {
		t.Fatal(err)
	}
	port = freePort(t)
	cmd := exec.Command(bin, "--port", fmt.Sprintf("127.0.0.1:%d", port), "--access", "test", "--secret", "test-secret", "posix", root)
	log, err := os.Create(filepath.Join(t.TempDir(), "versitygw.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	poll(t, "the S3 server", time.Minute, func() error {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
		}
		return err
	})
	return port, root
}

// s3Names are the snapshot names in the bucket's folder cluster1: the
// files the gateway keeps.
func s3Names(t *testing.T, root string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(root, "snaps", "cluster1"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if e.Type().IsRegular() && !strings.HasPrefix(e.Name(), ".") {
			out = append(out, e.Name())
		}
	}
	slices.Sort(out)
	return out
}

// snapshotCLI runs rke2-build etcd-snapshot against the server's
// supervisor with the cluster's server token, as a workstation would.
func (cs *clusterServer) snapshotCLI(t *testing.T, dir string, args ...string) (string, error) {
	t.Helper()
	return cs.snapshotCLIToken(t, dir, filepath.Join(cs.secrets, "token"), args...)
}

// snapshotCLIToken is snapshotCLI with the token in tokenFile.
func (cs *clusterServer) snapshotCLIToken(t *testing.T, dir, tokenFile string, args ...string) (string, error) {
	t.Helper()
	full := append([]string{"etcd-snapshot", args[0], "--server", fmt.Sprintf("https://127.0.0.1:%d", cs.supervisor),
		"--token-file", tokenFile}, args[1:]...)
	cmd := exec.Command(filepath.Join(buildEnv(t, "RKE2_BIN"), "rke2-build"), full...)
	cmd.Dir = dir
	b, err := cmd.CombinedOutput()
	return string(b), err
}

// snapshotList is the server's snapshots as rke2-build etcd-snapshot ls
// -o json lists them.
func (cs *clusterServer) snapshotList(t *testing.T) ([]supervisorapi.SnapshotInfo, error) {
	out, err := cs.snapshotCLI(t, t.TempDir(), "ls", "-o", "json")
	if err != nil {
		return nil, fmt.Errorf("ls: %v: %s", err, out)
	}
	resp, err := supervisorapi.DecodeSnapshotResponse([]byte(out))
	return resp.Snapshots, err
}

// snapshotRecords are the snapshot names the ETCDSnapshotFile objects of
// storage (node1's disk, or s3) record as ready.
func (cs *clusterServer) snapshotRecords(ctx context.Context, storage ...string) ([]string, error) {
	where := "node1"
	if len(storage) > 0 {
		where = storage[0]
	}
	l, err := dynamic.NewForConfigOrDie(cs.rc).Resource(crds.ETCDSnapshotFile).List(ctx, metav1.ListOptions{LabelSelector: "etcd.rke2.cattle.io/snapshot-storage-node=" + where})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, o := range l.Items {
		name, _, _ := unstructured.NestedString(o.Object, "spec", "snapshotName")
		if ready, _, _ := unstructured.NestedBool(o.Object, "status", "readyToUse"); ready {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out, nil
}

// snapshotNames are the names of the snapshots on the node's disk (not
// their copies in S3) that begin with prefix.
func snapshotNames(l []supervisorapi.SnapshotInfo, prefix string) []string {
	var out []string
	for _, s := range l {
		if strings.HasPrefix(s.Name, prefix) && strings.HasPrefix(s.Location, "file://") {
			out = append(out, s.Name)
		}
	}
	slices.Sort(out)
	return out
}

// checkSnapshots proves the server's etcd snapshots as a user meets them:
// the schedule (every minute, two kept, older ones pruned) listed by
// rke2-build etcd-snapshot ls and by kubectl get etcdsnapshotfiles; a
// compressed snapshot saved on demand and fetched to the workstation with
// its hash checked, another saved and deleted; an agent's token refused.
// It returns the name of the on-demand snapshot it keeps.
func (cs *clusterServer) checkSnapshots(t *testing.T, vm *qemu.VM, bucket string) string {
	t.Helper()
	ctx := context.Background()
	if _, err := vm.WaitEvent(console.EventEtcdSnapshot, map[string]string{"outcome": "pruned"}, 6*time.Minute); err != nil {
		t.Fatalf("no scheduled snapshot pruned (every minute, two kept): %v; snapshot events: %v", err, vm.Events(console.EventEtcdSnapshot))
	}
	var scheduled []string
	poll(t, "two scheduled snapshots, listed and recorded", 3*time.Minute, func() error {
		l, err := cs.snapshotList(t)
		if err != nil {
			return err
		}
		scheduled = snapshotNames(l, "etcd-snapshot-node1-")
		if len(scheduled) != 2 {
			return fmt.Errorf("scheduled snapshots listed: %v, want two", scheduled)
		}
		recs, err := cs.snapshotRecords(ctx)
		if err != nil {
			return err
		}
		if all := snapshotNames(l, ""); !slices.Equal(recs, all) {
			return fmt.Errorf("ETCDSnapshotFiles %v, files %v", recs, all)
		}
		return nil
	})
	t.Logf("scheduled snapshots: %v; events: %d saved, %d pruned, %d uploaded", scheduled,
		snapshotEvents(vm, "saved"), snapshotEvents(vm, "pruned"), snapshotEvents(vm, "uploaded"))
	// S3: each uploaded, two kept there too, recorded as storage s3.
	poll(t, "two scheduled snapshots in S3, listed and recorded", 3*time.Minute, func() error {
		in := s3Names(t, bucket)
		if len(in) != 2 || !strings.HasPrefix(in[0], "etcd-snapshot-node1-") {
			return fmt.Errorf("in the bucket: %v, want two scheduled ones", in)
		}
		recs, err := cs.snapshotRecords(ctx, "s3")
		if err != nil {
			return err
		}
		if !slices.Equal(recs, in) {
			return fmt.Errorf("s3 ETCDSnapshotFiles %v, bucket %v", recs, in)
		}
		l, err := cs.snapshotList(t)
		if err != nil {
			return err
		}
		var listed []string
		for _, s := range l {
			if strings.HasPrefix(s.Location, "s3://snaps/cluster1/") {
				listed = append(listed, s.Name)
			}
		}
		slices.Sort(listed)
		if !slices.Equal(listed, in) {
			return fmt.Errorf("ls lists %v in S3, the bucket holds %v", listed, in)
		}
		return nil
	})

	// On demand, compressed, kept across the upgrade's reboot.
	ws := t.TempDir()
	out, err := cs.snapshotCLI(t, ws, "save", "--name", "pre-upgrade", "--compress")
	m := regexp.MustCompile(`Snapshot (pre-upgrade-node1-[0-9]+\.zip) saved\.`).FindStringSubmatch(out)
	if err != nil || m == nil {
		t.Fatalf("etcd-snapshot save --compress: %v: %s", err, out)
	}
	kept := m[1]
	// Fetched to the workstation: the zip and a plain scheduled one.
	for _, name := range []string{kept, scheduled[1]} {
		out, err := cs.snapshotCLI(t, ws, "fetch", name)
		if err != nil || !strings.Contains(out, "Snapshot "+name+" fetched to ") {
			t.Errorf("etcd-snapshot fetch %s: %v: %s", name, err, out)
			continue
		}
		if _, err := os.Stat(filepath.Join(ws, name)); err != nil {
			t.Errorf("fetched %s: %v", name, err)
		}
	}
	if st, err := etcdsnap.Check(filepath.Join(ws, scheduled[1])); err != nil || st.Revision == 0 {
		t.Errorf("the fetched snapshot %s: %+v %v", scheduled[1], st, err)
	}
	// Another saved, then deleted: gone from ls and the records.
	out, err = cs.snapshotCLI(t, ws, "save")
	m = regexp.MustCompile(`Snapshot (on-demand-node1-[0-9]+) saved\.`).FindStringSubmatch(out)
	if err != nil || m == nil {
		t.Fatalf("etcd-snapshot save: %v: %s", err, out)
	}
	if out, err := cs.snapshotCLI(t, ws, "delete", m[1]); err != nil || !strings.Contains(out, "Snapshot "+m[1]+" deleted.") {
		t.Errorf("etcd-snapshot delete: %v: %s", err, out)
	}
	poll(t, "the deleted snapshot gone from ls and the records", 2*time.Minute, func() error {
		l, err := cs.snapshotList(t)
		if err != nil {
			return err
		}
		recs, err := cs.snapshotRecords(ctx)
		if err != nil {
			return err
		}
		if slices.Contains(snapshotNames(l, ""), m[1]) || slices.Contains(recs, m[1]) {
			return fmt.Errorf("still there: files %v, records %v", snapshotNames(l, ""), recs)
		}
		if !slices.Contains(recs, kept) {
			return fmt.Errorf("records %v lack %s", recs, kept)
		}
		return nil
	})
	// The agent token opens no snapshot endpoint.
	pool := x509.NewCertPool()
	ca, err := os.ReadFile(filepath.Join(cs.secrets, "tls", "server-ca.crt"))
	if err != nil || !pool.AppendCertsFromPEM(ca) {
		t.Fatalf("server CA: %v", err)
	}
	agentTok, err := os.ReadFile(filepath.Join(cs.secrets, "agent-token"))
	if err != nil {
		t.Fatal(err)
	}
	_, secret, _ := strings.Cut(strings.TrimSpace(string(agentTok)), "::node:")
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("https://127.0.0.1:%d%s/%s", cs.supervisor, supervisorapi.SnapshotPath, kept), nil)
	req.SetBasicAuth("node", secret)
	if resp, err := c.Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("a snapshot fetched with the agent token: %v %v, want 401", resp, err)
	} else {
		resp.Body.Close()
	}
	if out, err := cs.snapshotCLIToken(t, ws, filepath.Join(cs.secrets, "agent-token"), "ls"); err == nil || !strings.Contains(out, "agent's token") {
		t.Errorf("ls with the agent token: %v: %s", err, out)
	}
	return kept
}

func snapshotEvents(vm *qemu.VM, outcome string) int {
	n := 0
	for _, ev := range vm.Events(console.EventEtcdSnapshot) {
		if ev["outcome"] == outcome {
			n++
		}
	}
	return n
}

// checkSnapshotKept: a snapshot taken before a reboot is still listed and
// recorded after it.
func (cs *clusterServer) checkSnapshotKept(t *testing.T, name string) {
	t.Helper()
	poll(t, "the snapshot "+name+" listed and recorded after the reboot", 5*time.Minute, func() error {
		l, err := cs.snapshotList(t)
		if err != nil {
			return err
		}
		recs, err := cs.snapshotRecords(context.Background())
		if err != nil {
			return err
		}
		if !slices.Contains(snapshotNames(l, ""), name) || !slices.Contains(recs, name) {
			return fmt.Errorf("files %v, records %v", snapshotNames(l, ""), recs)
		}
		return nil
	})
}
