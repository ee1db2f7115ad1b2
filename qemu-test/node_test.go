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
	"os/exec"
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

// nodeUserData is the NoCloud user-data of the test nodes: a hostname, a
// written file, DHCP on eth0, etcd's server CA as RKE2's custom CA (so the
// test can make its own client certificate), and the debug switches.
func nodeUserData(ca *testCA) string {
	return fmt.Sprintf(`#cloud-config
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
}

// testNode is a node under test: its medium, its NoCloud volume and the
// host ports forwarded to its etcd (2379) and debug hooks (7557).
type testNode struct {
	t           *testing.T
	cfg         qemu.Config
	etcd, hooks int
	ca          *testCA
}

func newTestNode(t *testing.T, cfg qemu.Config) *testNode {
	ca := newCA(t)
	n := &testNode{t: t, cfg: cfg, etcd: freePort(t), hooks: freePort(t), ca: ca}
	seed := cidata(t, nodeUserData(ca), "instance-id: node1\n")
	n.cfg.Machine, n.cfg.MemoryMiB, n.cfg.CPUs = "q35", 4096, 2
	n.cfg.NetdevOpts = fmt.Sprintf("hostfwd=tcp:127.0.0.1:%d-10.0.2.15:2379,hostfwd=tcp:127.0.0.1:%d-10.0.2.15:7557", n.etcd, n.hooks)
	n.cfg.Extra = []string{"-drive", "file=" + seed + ",media=cdrom,readonly=on,if=none,id=cidata", "-device", "ide-cd,drive=cidata,bus=ide.1"}
	return n
}

// boot starts the node and waits for the timeline up to kubelet-started,
// with no error on the way.
func (n *testNode) boot() *qemu.VM {
	t := n.t
	vm := qemu.Start(t, n.cfg)
	for _, m := range []string{"config-loaded", "network-up", "content-ready", "containerd-ready", "images-imported", "kubelet-started"} {
		// An error line means maintenance mode: fail now, not at the timeout.
		got, err := vm.WaitFor(regexp.MustCompile(`(?m)^rke2-init (milestone=`+m+` |error=)`), nodeTimeout)
		if err != nil || got[1] == "error=" {
			t.Fatalf("waiting for %s: %v; errors: %v", m, err, vm.Errors())
		}
	}
	if errs := vm.Errors(); len(errs) > 0 {
		t.Fatalf("init reported errors:\n%s", strings.Join(errs, "\n"))
	}
	if i := strings.Index(vm.Console(), "EXT4-fs error"); i >= 0 {
		t.Fatalf("the kernel found the state filesystem broken: %s", strings.SplitN(vm.Console()[i:], "\n", 2)[0])
	}
	// The hostname from cidata names the node, and so etcd's mirror pod.
	if _, err := vm.WaitFor(regexp.MustCompile(`etcd-node1`), nodeTimeout); err != nil {
		t.Errorf("%v: the hostname from cidata was not applied", err)
	}
	return vm
}

// etcdDo retries op against the node's etcd until it answers.
func (n *testNode) etcdDo(what string, op func(context.Context, *clientv3.Client) error) {
	t := n.t
	cli := etcdClient(t, n.ca, n.etcd)
	defer cli.Close()
	deadline := time.Now().Add(nodeTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := op(ctx, cli)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("etcd never answered a %s through the forwarded port: %v", what, err)
		}
		time.Sleep(5 * time.Second)
	}
}

func (n *testNode) put(key, value string) {
	n.etcdDo("put", func(ctx context.Context, cli *clientv3.Client) error {
		_, err := cli.Put(ctx, key, value)
		return err
	})
}

func (n *testNode) get(key string) (value string) {
	n.etcdDo("get", func(ctx context.Context, cli *clientv3.Client) error {
		resp, err := cli.Get(ctx, key)
		if err == nil && len(resp.Kvs) == 1 {
			value = string(resp.Kvs[0].Value)
		}
		return err
	})
	return value
}

// signal kills a supervised service from inside through the debug hook.
func (n *testNode) signal(service, sig string) {
	resp, err := http.Post(fmt.Sprintf("http://127.0.0.1:%d/debug/signal?service=%s&signal=%s", n.hooks, service, sig), "text/plain", nil)
	if err != nil {
		n.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		n.t.Fatalf("debug hook: %s", resp.Status)
	}
}

// waitMore waits until the console has more than before lines matching s.
func waitMore(t *testing.T, vm *qemu.VM, s string, before int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for strings.Count(vm.Console(), s) <= before {
		if time.Now().After(deadline) {
			t.Fatalf("no new %q after %s", s, timeout)
		}
		time.Sleep(time.Second)
	}
}

// The server ISO with a NoCloud volume comes up as a live node: hostname,
// a written file, DHCP, the runtime extracted as RKE2 does, containerd,
// the airgap images imported, a standalone kubelet running etcd's static
// pod, which the test reaches through QEMU's port forwarding.
func TestNodeRunsEtcd(t *testing.T) {
	n := newTestNode(t, qemu.Config{ISO: filepath.Join(outDir(t), "rke2-server.iso")})
	vm := n.boot()
	for _, re := range []string{`config loaded" sources="cidata`, `no state partition`, `runtime content" .* skipped=false`} {
		if _, err := vm.WaitFor(regexp.MustCompile(re), time.Second); err != nil {
			t.Error(err)
		}
	}
	n.put("/rke2os/test", "hello from the host")
	if got := n.get("/rke2os/test"); got != "hello from the host" {
		t.Fatalf("get = %q", got)
	}
	t.Logf("timeline: %v", vm.Milestones())
	if err := vm.Powerdown(); err != nil {
		t.Fatal(err)
	}
	if _, err := vm.WaitMilestone("shutdown-done", 3*time.Minute); err != nil {
		t.Fatal(err)
	}
}

// The server's raw disk, written to a larger (8 GiB) disk, boots twice.
// The first boot grows and formats the state partition, extracts and
// imports; the kubelet, killed from inside, comes back with backoff; the
// power button stops the kubelet before containerd. The disk then grows
// to 10 GiB; the second boot grows the state filesystem, skips the
// extraction and the import, etcd still has its key, and a containerd
// that dies takes the node stack down and back up.
func TestNodeRawDiskTwice(t *testing.T) {
	disk := qemu.Overlay(t, filepath.Join(outDir(t), "rke2-server.raw"), 8<<30)
	n := newTestNode(t, qemu.Config{Disk: disk})

	vm := n.boot()
	for _, re := range []string{`state partition grown to the end of the disk`, `state ready" device=/dev/vda5 formatted=true`,
		`runtime content" .* skipped=false`, `airgap images" imported=1 skipped=0`} {
		if _, err := vm.WaitFor(regexp.MustCompile(re), time.Second); err != nil {
			t.Errorf("first boot: %v", err)
		}
	}
	n.put("/rke2os/test", "kept across boots")
	t.Logf("first boot timeline: %v", vm.Milestones())

	// Kill the kubelet from inside: the supervisor brings it back (backoff).
	before := strings.Count(vm.Console(), "name=kubelet state=running")
	n.signal("kubelet", "KILL")
	if _, err := vm.WaitFor(regexp.MustCompile(`name=kubelet state=backoff`), 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	waitMore(t, vm, "name=kubelet state=running", before, 3*time.Minute)

	// Power off: the kubelet stops before containerd, then the disk is
	// unmounted and QEMU exits by itself.
	if err := vm.Powerdown(); err != nil {
		t.Fatal(err)
	}
	if err := vm.WaitExit(3 * time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := stopOrder(vm.Console()); err != nil {
		t.Error(err)
	}
	if i := strings.Index(vm.Console(), "unmount failed"); i >= 0 {
		t.Errorf("the state was not unmounted cleanly: %s", strings.SplitN(vm.Console()[i:], "\n", 2)[0])
	}

	// The disk grows while the VM is off, as a cloud disk is resized: the
	// second boot grows the partition and the mounted filesystem.
	if out, err := exec.Command("qemu-img", "resize", "-q", disk, "10G").CombinedOutput(); err != nil {
		t.Fatalf("qemu-img resize: %v: %s", err, out)
	}
	vm = n.boot()
	for _, re := range []string{`state ready" device=/dev/vda5 formatted=false`, `state filesystem grown to its partition" device=/dev/vda5 added_mib=20`,
		`runtime content" .* skipped=true`, `airgap images" imported=0 skipped=1`} {
		if _, err := vm.WaitFor(regexp.MustCompile(re), time.Second); err != nil {
			t.Errorf("second boot: %v", err)
		}
	}
	t.Logf("second boot timeline: %v", vm.Milestones())
	if got := n.get("/rke2os/test"); got != "kept across boots" {
		t.Fatalf("second boot: etcd has %q for the key put on the first", got)
	}

	// containerd dies: the node stack stops and starts again (the default
	// on_containerd_exit: restart), and etcd answers again.
	containerd, kubelet := strings.Count(vm.Console(), "name=containerd state=running"), strings.Count(vm.Console(), "name=kubelet state=running")
	n.signal("containerd", "KILL")
	if _, err := vm.WaitFor(regexp.MustCompile(`error="node stack stopped`), 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	waitMore(t, vm, "name=containerd state=running", containerd, 3*time.Minute)
	waitMore(t, vm, "name=kubelet state=running", kubelet, 3*time.Minute)
	if got := n.get("/rke2os/test"); got != "kept across boots" {
		t.Fatalf("after the stack restart: etcd has %q", got)
	}
	if err := vm.Powerdown(); err != nil {
		t.Fatal(err)
	}
	if err := vm.WaitExit(3 * time.Minute); err != nil {
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
