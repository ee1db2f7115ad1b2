package qemutest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rke2os/rke2os/builder/iso"
	"github.com/rke2os/rke2os/qemu-test/qemu"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// nodeTimeout bounds a full node start under TCG: extracting the runtime
// and importing ~850 MB of images into containerd are the long steps.
const nodeTimeout = 20 * time.Minute

// testCA is the etcd server CA a test hands the node (RKE2's custom CA):
// with it the test can make its own etcd client certificate.
type testCA struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	certPEM []byte
	keyPEM  []byte
}

func newCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "etcd-server-ca@test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature, BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	kder, _ := x509.MarshalECPrivateKey(key)
	return &testCA{cert: cert, key: key, certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM: pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})}
}

func (ca *testCA) client(t *testing.T) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "test-client"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// cidata writes a NoCloud volume with user-data and meta-data.
func cidata(t *testing.T, userData, metaData string) string {
	t.Helper()
	dir := t.TempDir()
	ud, md := filepath.Join(dir, "user-data"), filepath.Join(dir, "meta-data")
	os.WriteFile(ud, []byte(userData), 0o644)
	os.WriteFile(md, []byte(metaData), 0o644)
	ws := filepath.Join(dir, "ws")
	os.Mkdir(ws, 0o755)
	out := filepath.Join(dir, "cidata.iso")
	if err := iso.Write(out, ws, iso.Spec{VolumeID: "CIDATA", Epoch: time.Now(),
		Files: []iso.File{{Path: "/user-data", Source: ud}, {Path: "/meta-data", Source: md}}}); err != nil {
		t.Fatal(err)
	}
	return out
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func indent(s string, n int) string {
	pad := strings.Repeat(" ", n)
	return pad + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n"+pad)
}

// The server's raw disk, written to a larger (8 GiB) disk and booted with a
// NoCloud volume, comes up as a node: hostname, a written file, DHCP, the
// state partition grown and formatted, the runtime extracted as RKE2 does,
// containerd, the airgap images imported, a standalone kubelet running
// etcd's static pod. The test talks to that etcd through QEMU's port
// forwarding, kills the kubelet from inside, powers the node off (kubelet
// stopped before containerd) and boots it again: the second boot skips the
// extraction and the import, and etcd still has what was put in it.
func TestNodeRunsEtcd(t *testing.T) {
	out := outDir(t)
	ca := newCA(t)
	userData := fmt.Sprintf(`#cloud-config
hostname: node1
write_files:
  - path: /etc/motd
    content: "rke2os test node\n"
  - path: /var/lib/rancher/rke2/server/tls/etcd/server-ca.crt
    permissions: "0644"
    content: |
%s
  - path: /var/lib/rancher/rke2/server/tls/etcd/server-ca.key
    permissions: "0600"
    content: |
%s
network:
  interfaces:
    - name: eth0
      dhcp4: true
debug:
  logs: true
  hooks: true
`, indent(string(ca.certPEM), 6), indent(string(ca.keyPEM), 6))
	disk := qemu.Overlay(t, filepath.Join(out, "rke2-server.raw"), 8<<30)
	seed := cidata(t, userData, "instance-id: node1\n")
	port, hooks := freePort(t), freePort(t)
	bootNode := func() *qemu.VM {
		vm := qemu.Start(t, qemu.Config{Machine: "q35", MemoryMiB: 4096, CPUs: 2, Disk: disk,
			NetdevOpts: fmt.Sprintf("hostfwd=tcp:127.0.0.1:%d-10.0.2.15:2379,hostfwd=tcp:127.0.0.1:%d-10.0.2.15:7557", port, hooks),
			Extra:      []string{"-drive", "file=" + seed + ",media=cdrom,readonly=on,if=none,id=cidata", "-device", "ide-cd,drive=cidata,bus=ide.1"}})
		for _, m := range []string{"config-loaded", "network-up", "content-ready", "containerd-ready", "images-imported", "kubelet-started"} {
			if _, err := vm.WaitMilestone(m, nodeTimeout); err != nil {
				t.Fatalf("%v; errors: %v", err, vm.Errors())
			}
		}
		if errs := vm.Errors(); len(errs) > 0 {
			t.Fatalf("init reported errors:\n%s", strings.Join(errs, "\n"))
		}
		return vm
	}

	vm := bootNode()
	for _, re := range []string{`config loaded" sources="cidata`, `state ready" device=/dev/vda5 formatted=true`,
		`state partition grown to the end of the disk`, `runtime content" .* skipped=false`, `airgap images" imported=1 skipped=0`} {
		if _, err := vm.WaitFor(regexp.MustCompile(re), time.Second); err != nil {
			t.Errorf("first boot: %v", err)
		}
	}
	cli := etcdClient(t, ca, port)
	deadline := time.Now().Add(nodeTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := cli.Put(ctx, "/rke2os/test", "hello from the host")
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("etcd never answered a put through the forwarded port: %v", err)
		}
		time.Sleep(5 * time.Second)
	}
	if got := etcdGet(t, cli, "/rke2os/test"); got != "hello from the host" {
		t.Fatalf("get = %q", got)
	}
	cli.Close()
	t.Logf("first boot timeline: %v", vm.Milestones())
	// The hostname from cidata names the node, and so etcd's mirror pod.
	if !strings.Contains(vm.Console(), "etcd-node1") {
		t.Error("no etcd-node1 pod in the kubelet's log: the hostname from cidata was not applied")
	}

	// Kill the kubelet from inside: the supervisor brings it back (backoff).
	before := strings.Count(vm.Console(), "name=kubelet state=running")
	resp, err := http.Post(fmt.Sprintf("http://127.0.0.1:%d/debug/signal?service=kubelet&signal=KILL", hooks), "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("debug hook: %s", resp.Status)
	}
	if _, err := vm.WaitFor(regexp.MustCompile(`name=kubelet state=backoff`), 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(3 * time.Minute)
	for strings.Count(vm.Console(), "name=kubelet state=running") <= before {
		if time.Now().After(deadline) {
			t.Fatal("the kubelet was not restarted after it was killed")
		}
		time.Sleep(time.Second)
	}

	// Power off: the kubelet stops before containerd, then the disk is
	// unmounted and QEMU exits.
	if err := vm.Powerdown(); err != nil {
		t.Fatal(err)
	}
	if _, err := vm.WaitMilestone("shutdown-done", 3*time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := vm.WaitExit(time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := stopOrder(vm.Console()); err != nil {
		t.Error(err)
	}

	// Second boot from the same disk: the state partition is kept, and the
	// extraction and the import are skipped.
	vm = bootNode()
	for _, re := range []string{`state ready" device=/dev/vda5 formatted=false`, `runtime content" .* skipped=true`, `airgap images" imported=0 skipped=1`} {
		if _, err := vm.WaitFor(regexp.MustCompile(re), time.Second); err != nil {
			t.Errorf("second boot: %v", err)
		}
	}
	t.Logf("second boot timeline: %v", vm.Milestones())
	cli = etcdClient(t, ca, port)
	defer cli.Close()
	deadline = time.Now().Add(nodeTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		resp, err := cli.Get(ctx, "/rke2os/test")
		cancel()
		if err == nil {
			if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "hello from the host" {
				t.Fatalf("second boot: etcd lost the key: %v", resp.Kvs)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("second boot: etcd never answered: %v", err)
		}
		time.Sleep(5 * time.Second)
	}
	if err := vm.Powerdown(); err != nil {
		t.Fatal(err)
	}
	if _, err := vm.WaitMilestone("shutdown-done", 3*time.Minute); err != nil {
		t.Fatal(err)
	}
}

func etcdClient(t *testing.T, ca *testCA, port int) *clientv3.Client {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{fmt.Sprintf("https://127.0.0.1:%d", port)}, DialTimeout: 10 * time.Second,
		TLS: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{ca.client(t)}, ServerName: "localhost"}})
	if err != nil {
		t.Fatal(err)
	}
	return cli
}

func etcdGet(t *testing.T, cli *clientv3.Client, key string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, key)
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("get %s = %v, %v", key, resp, err)
	}
	return string(resp.Kvs[0].Value)
}

// stopOrder checks, in a console log, that the shutdown stopped the
// kubelet before containerd, and both before the machine went down.
func stopOrder(console string) error {
	i := strings.LastIndex(console, "milestone=shutdown-begin")
	if i < 0 {
		return fmt.Errorf("no shutdown-begin")
	}
	tail := console[i:]
	k := strings.Index(tail, "name=kubelet state=stopped")
	c := strings.Index(tail, "name=containerd state=stopped")
	d := strings.Index(tail, "milestone=shutdown-done")
	if k < 0 || c < 0 || d < 0 || !(k < c && c < d) {
		return fmt.Errorf("shutdown order: kubelet stopped at %d, containerd stopped at %d, shutdown-done at %d (want increasing)", k, c, d)
	}
	return nil
}
