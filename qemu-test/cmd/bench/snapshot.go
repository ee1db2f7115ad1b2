package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/rke2os/rke2os/init/rke2node/supervisorapi"
	"github.com/rke2os/rke2os/init/shared/console"
	"github.com/rke2os/rke2os/init/shared/pki"
	"github.com/rke2os/rke2os/qemu-test/qemu"
)

// The data the snapshot benchmark puts into etcd: 10,000 keys of 1 KiB.
const (
	benchKeys     = 10000
	benchKeyBytes = 1024
)

// benchSnapshot measures an etcd snapshot of a server holding a known
// amount of data, and a restore. The server's raw disk (the cluster's
// secrets baked) boots to node-ready; the bench writes benchKeys keys of
// benchKeyBytes through etcd's forwarded client port, then alternates,
// runs times: rke2-build etcd-snapshot save through the supervisor (the
// node streams, syncs and checks the snapshot on its disk) and etcdctl
// snapshot save of the same member to the host. Then a plain reboot (the
// baseline) and a reboot that restores the last snapshot
// (cluster-reset-restore-path): power-off asked to node-ready, each.
func benchSnapshot(tb *benchTB, images clusterImages, bin, etcdctl string, runs int) []row {
	api, sup, etcdPort := freePort(), freePort(), freePort()
	cidata := func(rke2 string) []string {
		ud := "#cloud-config\nhostname: node1\n"
		if rke2 != "" {
			ud += "rke2:\n" + rke2
		}
		return qemu.CIDataDrive(qemu.CIData(tb, ud, "instance-id: node1\n"))
	}
	cfg := qemu.Config{Machine: "q35", MemoryMiB: 4096, CPUs: 2, Disk: qemu.Overlay(tb, images.server, 8<<30),
		NetdevOpts: fmt.Sprintf("hostfwd=tcp:127.0.0.1:%d-10.0.2.15:6443,hostfwd=tcp:127.0.0.1:%d-10.0.2.15:9345,hostfwd=tcp:127.0.0.1:%d-10.0.2.15:2379", api, sup, etcdPort),
		Extra:      cidata("")}
	vm := qemu.Start(tb, cfg)
	waitReady(vm)

	// A client certificate of etcd's CA, as an operator holding the
	// cluster's secrets makes one.
	dir := tb.TempDir()
	ca, err := pki.LoadCA(filepath.Join(images.secrets, "tls", "etcd", "server-ca.crt"), filepath.Join(images.secrets, "tls", "etcd", "server-ca.key"))
	check(err)
	cert, key := filepath.Join(dir, "client.crt"), filepath.Join(dir, "client.key")
	_, err = ca.Issue(cert, key, pki.Leaf{CN: "bench", Client: true})
	check(err)
	caFile := filepath.Join(images.secrets, "tls", "etcd", "server-ca.crt")
	pem, err := os.ReadFile(caFile)
	check(err)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	pair, err := tls.LoadX509KeyPair(cert, key)
	check(err)
	endpoint := fmt.Sprintf("https://127.0.0.1:%d", etcdPort)
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 10 * time.Second, Logger: zap.NewNop(),
		TLS: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}}})
	check(err)
	defer c.Close()
	value := strings.Repeat("v", benchKeyBytes)
	start := time.Now()
	for i := 0; i < benchKeys; i += 100 {
		ops := make([]clientv3.Op, 0, 100)
		for j := i; j < i+100 && j < benchKeys; j++ {
			ops = append(ops, clientv3.OpPut(fmt.Sprintf("/bench/key-%05d", j), value))
		}
		poll("write the bench keys", 5*time.Minute, func() error {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			_, err := c.Txn(ctx).Then(ops...).Commit()
			return err
		})
	}
	tb.Logf("snapshot: %d keys of %d bytes written in %.1f s", benchKeys, benchKeyBytes, time.Since(start).Seconds())

	cli := func(args ...string) string {
		full := append([]string{"etcd-snapshot", args[0], "--server", fmt.Sprintf("https://127.0.0.1:%d", sup),
			"--token-file", filepath.Join(images.secrets, "token")}, args[1:]...)
		out, err := exec.Command(filepath.Join(bin, "rke2-build"), full...).CombinedOutput()
		if err != nil {
			check(fmt.Errorf("rke2-build %s: %v: %s", strings.Join(full, " "), err, out))
		}
		return string(out)
	}
	var own, ctl []float64
	var ownSize, ctlSize int64
	var last string
	saved := regexp.MustCompile(`Snapshot (\S+) saved\.`)
	for i := range runs {
		start := time.Now()
		m := saved.FindStringSubmatch(cli("save", "--name", fmt.Sprintf("bench%d", i)))
		if m == nil {
			check(fmt.Errorf("etcd-snapshot save said no name"))
		}
		own = append(own, time.Since(start).Seconds())
		last = m[1]

		file := filepath.Join(tb.TempDir(), "etcdctl.db")
		start = time.Now()
		out, err := exec.Command(etcdctl, "--endpoints", endpoint, "--cacert", caFile, "--cert", cert, "--key", key,
			"snapshot", "save", file).CombinedOutput()
		if err != nil {
			check(fmt.Errorf("etcdctl snapshot save: %v: %s", err, out))
		}
		ctl = append(ctl, time.Since(start).Seconds())
		fi, err := os.Stat(file)
		check(err)
		ctlSize = fi.Size()
	}
	var ls supervisorapi.SnapshotResponse
	check(json.Unmarshal([]byte(cli("ls", "-o", "json")), &ls))
	for _, s := range ls.Snapshots {
		if s.Name == last {
			ownSize = s.Size
		}
	}
	ev, err := vm.WaitEvent(console.EventEtcdSnapshot, map[string]string{"outcome": "saved", "name": last}, time.Minute)
	check(err)
	guest := num(ev, "seconds")

	// The baseline: a plain reboot; then one that restores the last
	// snapshot.
	vm, plain := plainReboot(tb, vm, cfg)

	down := time.Now()
	check(vm.Powerdown())
	check(vm.WaitExit(5 * time.Minute))
	cfg.Extra = cidata("  cluster-reset: true\n  cluster-reset-restore-path: " + last + "\n")
	vm = qemu.Start(tb, cfg)
	rev, err := vm.WaitEvent(console.EventClusterReset, map[string]string{"outcome": "restored"}, lifecycleTimeout)
	if err != nil {
		check(fmt.Errorf("the restore: %w; errors: %v", err, vm.Errors()))
	}
	waitReady(vm)
	restored := time.Since(down).Seconds()
	tb.Logf("snapshot: own %v s, etcdctl %v s; sizes %d / %d; plain reboot %.1f s, restore %.1f s (%v)", own, ctl, ownSize, ctlSize, plain, restored, rev)
	check(vm.Powerdown())
	check(vm.WaitExit(5 * time.Minute))

	ratios := make([]float64, len(own))
	for i := range own {
		ratios[i] = own[i] / ctl[i]
	}
	return []row{
		{fmt.Sprintf("etcd snapshot of %d keys x %d B: rke2-build etcd-snapshot save, wall (s)", benchKeys, benchKeyBytes), f(median(own)),
			"etcdctl snapshot save of the same member to the host|" + f(median(ctl)), fmt.Sprintf("%.2fx (median of pairs)", median(ratios))},
		{"that snapshot: streamed, synced and checked on the node, guest (s)", f(guest), "", ""},
		{"that snapshot's size (MiB)", fmt.Sprintf("%.1f", float64(ownSize)/(1<<20)), "etcdctl's file|" + fmt.Sprintf("%.1f", float64(ctlSize)/(1<<20)), ""},
		ratioRow("restore (cluster-reset-restore-path): power-off asked to node-ready, wall (s)", restored, "plain reboot", plain),
		{"the restore itself (checked, etcdutl, moved aside), guest (s)", rev["seconds"], "", ""},
	}
}
