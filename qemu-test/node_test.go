package qemutest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/rke2os/rke2os/init/shared/console"
	"github.com/rke2os/rke2os/qemu-test/qemu"
	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
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

func newCA(t *testing.T, cn string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().AddDate(10, 0, 0),
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature, BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM: pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})}
}

func (ca *testCA) client(t *testing.T) tls.Certificate {
	t.Helper()
	return ca.clientAs(t, "test-client")
}

// clientAs is a client certificate for cn in the groups org.
func (ca *testCA) clientAs(t *testing.T, cn string, org ...string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn, Organization: org},
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
	return qemu.CIData(t, userData, metaData)
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
// test can make its own client certificate), and the debug switches with
// the debug hooks' token.
func nodeUserData(cas testCAs, hooksToken, extra string) string {
	ca := cas.etcd
	return fmt.Sprintf(`#cloud-config
hostname: node1
write_files:
  - path: /etc/motd
    content: "rke2os test node\n"
  - path: /etc/rke2/debug-hooks.token
    permissions: "0600"
    content: "%s\n"
  - path: /var/lib/rancher/rke2/server/tls/etcd/server-ca.crt
    permissions: "0644"
    content: |
%s
  - path: /var/lib/rancher/rke2/server/tls/etcd/server-ca.key
    permissions: "0600"
    content: |
%s
%s  - path: /var/lib/rke2os-test/written.txt
    permissions: "0640"
    content: "written by write_files\n"
network:
  interfaces:
    - name: eth0
      dhcp4: true
debug:
  logs: true
  hooks: true
%s`, hooksToken, indent(string(ca.certPEM), 6), indent(string(ca.keyPEM), 6), cas.writeFiles(), extra)
}

// testCAs are the cluster CAs a test hands its node (RKE2's custom CA
// support): with them the test makes its own client certificates for
// etcd and the apiserver.
type testCAs struct{ etcd, server, client *testCA }

func newTestCAs(t *testing.T) testCAs {
	return testCAs{etcd: newCA(t, "etcd-server-ca@test"), server: newCA(t, "rke2-server-ca@test"), client: newCA(t, "rke2-client-ca@test")}
}

// writeFiles are the write_files entries of the server and client CAs.
func (c testCAs) writeFiles() string {
	var b strings.Builder
	for _, f := range []struct {
		name string
		ca   *testCA
	}{{"server-ca", c.server}, {"client-ca", c.client}} {
		fmt.Fprintf(&b, "  - path: /var/lib/rancher/rke2/server/tls/%s.crt\n    permissions: \"0644\"\n    content: |\n%s\n", f.name, indent(string(f.ca.certPEM), 6))
		fmt.Fprintf(&b, "  - path: /var/lib/rancher/rke2/server/tls/%s.key\n    permissions: \"0600\"\n    content: |\n%s\n", f.name, indent(string(f.ca.keyPEM), 6))
	}
	return b.String()
}

// testNode is a node under test: its medium, its NoCloud volume and the
// host ports forwarded to its etcd (2379), apiserver (6443) and debug
// hooks (7557), which answer only requests with hooksToken.
type testNode struct {
	t                *testing.T
	cfg              qemu.Config
	etcd, api, hooks int
	hooksToken       string
	ca               *testCA // etcd's server CA
	cas              testCAs
}

func newTestNode(t *testing.T, cfg qemu.Config) *testNode {
	cas := newTestCAs(t)
	n := &testNode{t: t, cfg: cfg, etcd: freePort(t), api: freePort(t), hooks: freePort(t), hooksToken: rand.Text(), ca: cas.etcd, cas: cas}
	// 6 GiB: a test node keeps its state in memory, and the root tmpfs
	// (half the memory) holds the runtime, containerd's content and the
	// unpacked control-plane images; at 4 GiB TestNodeRunsEtcd ran out of
	// space unpacking kube-apiserver (2026-12-06).
	n.cfg.Machine, n.cfg.MemoryMiB, n.cfg.CPUs = "q35", 6144, 2
	n.cfg.NetdevOpts = fmt.Sprintf("hostfwd=tcp:127.0.0.1:%d-10.0.2.15:2379,hostfwd=tcp:127.0.0.1:%d-10.0.2.15:6443,hostfwd=tcp:127.0.0.1:%d-10.0.2.15:7557", n.etcd, n.api, n.hooks)
	n.userData("")
	return n
}

// userData gives the node's next boots a NoCloud volume with the test
// nodes' user-data and extra YAML at its end.
func (n *testNode) userData(extra string) {
	seed := cidata(n.t, nodeUserData(n.cas, n.hooksToken, extra), "instance-id: node1\n")
	n.cfg.Extra = qemu.CIDataDrive(seed)
}

// boot starts the node and waits for the timeline up to kubelet-started,
// with no error on the way.
func (n *testNode) boot() *qemu.VM {
	return n.bootWith(nil)
}

// bootWith is boot with a step of the test's own (unplugging the cable,
// say) run right after QEMU starts, before the timeline is waited for.
func (n *testNode) bootWith(started func(*qemu.VM)) *qemu.VM {
	t := n.t
	vm := qemu.Start(t, n.cfg)
	if started != nil {
		started(vm)
	}
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

// signal kills a supervised service from inside through the debug hook,
// with the node's token.
func (n *testNode) signal(service, sig string) {
	if code, body := n.hook(service, sig, n.hooksToken); code != http.StatusOK {
		n.t.Fatalf("debug hook: %d: %s", code, body)
	}
}

// hook asks the debug hooks to signal a service, sending token (none if
// ""), and returns the status code and the reply.
func (n *testNode) hook(service, sig, token string) (int, string) {
	req, err := http.NewRequest(http.MethodPost, fmt.Sprintf("http://127.0.0.1:%d/debug/signal?service=%s&signal=%s", n.hooks, service, sig), nil)
	if err != nil {
		n.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		n.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		n.t.Fatalf("debug hook: reading the reply: %v", err)
	}
	return resp.StatusCode, string(body)
}

// countEvents counts the events named name on the console that have
// every key/value of match.
func countEvents(vm *qemu.VM, name string, match map[string]string) int {
	n := 0
	for _, ev := range vm.Events(name) {
		ok := true
		for k, v := range match {
			ok = ok && ev[k] == v
		}
		if ok {
			n++
		}
	}
	return n
}

// waitMore waits until the console has more than before events named name
// with match's key/values.
func waitMore(t *testing.T, vm *qemu.VM, name string, match map[string]string, before int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for countEvents(vm, name, match) <= before {
		if time.Now().After(deadline) {
			t.Fatalf("no new event %s %v after %s", name, match, timeout)
		}
		time.Sleep(time.Second)
	}
}

// foreignStateDisk is a disk of another machine: a GPT with a blank
// partition named RKE2_STATE (what a fresh rke2os disk has), 64 MiB.
func foreignStateDisk(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "foreign.raw")
	const size = 96 << 20
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	tbl := &gpt.Table{LogicalSectorSize: 512, PhysicalSectorSize: 512, ProtectiveMBR: true,
		Partitions: []*gpt.Partition{{Index: 1, Start: 2048, End: 2048 + 64<<11 - 1, Size: 64 << 20, Type: gpt.LinuxFilesystem, Name: "RKE2_STATE"}}}
	if err := tbl.Write(f, size); err != nil {
		t.Fatalf("write GPT: %v", err)
	}
	return p
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
func stopOrder(log string) error {
	i := strings.LastIndex(log, "milestone=shutdown-begin")
	if i < 0 {
		return fmt.Errorf("no shutdown-begin")
	}
	lines := strings.Split(log[i:], "\n")
	stopped := func(service string) int {
		for n, l := range lines {
			if name, ev, err := qemu.ParseEvent(l); err == nil && name == console.EventService && ev["name"] == service && ev["state"] == "stopped" {
				return n
			}
		}
		return -1
	}
	k, c := stopped("kubelet"), stopped("containerd")
	d := slices.IndexFunc(lines, func(l string) bool { return strings.Contains(l, "milestone=shutdown-done") })
	if k < 0 || c < 0 || d < 0 || !(k < c && c < d) {
		return fmt.Errorf("shutdown order: kubelet stopped at line %d, containerd stopped at line %d, shutdown-done at line %d (want increasing)", k, c, d)
	}
	return nil
}

// checkControlPlane waits for the server's control plane: etcd healthy,
// then the apiserver ready, answering the admin's certificate and refusing
// anyone else; the controller-manager and the scheduler take their leader
// leases through it.
func (n *testNode) checkControlPlane(vm *qemu.VM) {
	t := n.t
	for _, m := range []string{"etcd-healthy", "apiserver-ready"} {
		if _, err := vm.WaitMilestone(m, nodeTimeout); err != nil {
			t.Fatalf("%v; errors: %v", err, vm.Errors())
		}
	}
	ms := vm.Milestones()
	if !(ms["kubelet-started"] <= ms["etcd-healthy"] && ms["etcd-healthy"] <= ms["apiserver-ready"]) {
		t.Errorf("kubelet-started %.3f, etcd-healthy %.3f, apiserver-ready %.3f: not in order", ms["kubelet-started"], ms["etcd-healthy"], ms["apiserver-ready"])
	}
	pool := x509.NewCertPool()
	pool.AddCert(n.cas.server.cert)
	get := func(path string, certs ...tls.Certificate) (int, string) {
		c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: certs, ServerName: "localhost"}}}
		resp, err := c.Get(fmt.Sprintf("https://127.0.0.1:%d%s", n.api, path))
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return resp.StatusCode, string(b)
	}
	admin := n.cas.client.clientAs(t, "system:admin", "system:masters")
	if code, body := get("/readyz", admin); code != http.StatusOK {
		t.Fatalf("/readyz as system:admin: %d %s", code, body)
	}
	if code, body := get("/api/v1/namespaces/kube-system", admin); code != http.StatusOK || !strings.Contains(body, `"name":"kube-system"`) {
		t.Errorf("kube-system namespace: %d %s", code, body)
	}
	// No credentials, or a certificate of another CA: 401.
	stranger := newCA(t, "stranger").clientAs(t, "system:admin", "system:masters")
	for what, certs := range map[string][]tls.Certificate{"no credentials": nil, "a foreign certificate": {stranger}} {
		if code, body := get("/api/v1/namespaces", certs...); code != http.StatusUnauthorized {
			t.Errorf("%s: %d %s, want 401", what, code, body)
		}
	}
	for _, lease := range []string{"kube-controller-manager", "kube-scheduler"} {
		deadline := time.Now().Add(10 * time.Minute)
		for {
			code, body := get("/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/"+lease, admin)
			if code == http.StatusOK {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("%s holds no leader lease after 10m: %d %s", lease, code, body)
				break
			}
			time.Sleep(5 * time.Second)
		}
	}
	n.checkNodeAndProxy(get, admin)
}

// checkNodeAndProxy checks that the kubelet registered the Node with the
// config's label and taint, that the server gave it RKE2's role labels,
// and that kube-proxy runs (its liveness probe wants its rules synced
// through the image's iptables) without a restart.
func (n *testNode) checkNodeAndProxy(get func(string, ...tls.Certificate) (int, string), admin tls.Certificate) {
	t := n.t
	var node corev1.Node
	poll(t, "the Node node1 with RKE2's role labels", 10*time.Minute, func() error {
		code, body := get("/api/v1/nodes/node1", admin)
		if code != http.StatusOK {
			return fmt.Errorf("%d %s", code, body)
		}
		node = corev1.Node{} // Unmarshal merges: nothing of the last answer may stay
		if err := json.Unmarshal([]byte(body), &node); err != nil {
			return err
		}
		for _, l := range []string{"node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/etcd", "node-role.kubernetes.io/master"} {
			if node.Labels[l] != "true" {
				return fmt.Errorf("labels %v lack %s=true", node.Labels, l)
			}
		}
		return nil
	})
	if node.Labels["rke2os.test/role"] != "server" {
		t.Errorf("the config's node-label is missing: %v", node.Labels)
	}
	if !slices.ContainsFunc(node.Spec.Taints, func(tn corev1.Taint) bool {
		return tn.Key == "rke2os.test/dedicated" && tn.Value == "true" && tn.Effect == corev1.TaintEffectPreferNoSchedule
	}) {
		t.Errorf("the config's node-taint is missing: %v", node.Spec.Taints)
	}
	var pod corev1.Pod
	poll(t, "kube-proxy Running and ready", 10*time.Minute, func() error {
		code, body := get("/api/v1/namespaces/kube-system/pods/kube-proxy-node1", admin)
		if code != http.StatusOK {
			return fmt.Errorf("%d %s", code, body)
		}
		pod = corev1.Pod{}
		if err := json.Unmarshal([]byte(body), &pod); err != nil {
			return err
		}
		if pod.Status.Phase != corev1.PodRunning || len(pod.Status.ContainerStatuses) == 0 || !pod.Status.ContainerStatuses[0].Ready {
			return fmt.Errorf("phase %s, containers %+v", pod.Status.Phase, pod.Status.ContainerStatuses)
		}
		return nil
	})
	// Its liveness probe (/livez: rules synced lately) keeps passing. An
	// apiserver that cannot answer fails the test: it cannot tell.
	time.Sleep(60 * time.Second)
	code, body := get("/api/v1/namespaces/kube-system/pods/kube-proxy-node1", admin)
	if code != http.StatusOK {
		t.Fatalf("kube-proxy's restarts after a minute: cannot check them: %d %s", code, body)
	}
	pod = corev1.Pod{} // not the poll's last answer
	if err := json.Unmarshal([]byte(body), &pod); err != nil {
		t.Fatalf("kube-proxy's restarts after a minute: cannot check them: %v in %d %s", err, code, body)
	}
	if cs := pod.Status.ContainerStatuses; len(cs) == 0 || cs[0].RestartCount != 0 || !cs[0].Ready {
		t.Errorf("kube-proxy restarted or is not ready: %+v", cs)
	}
}

// poll calls check every 5 s until it returns nil, failing the test
// with the last error after timeout.
func poll(t *testing.T, what string, timeout time.Duration, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s after %s: %v", what, timeout, err)
		}
		time.Sleep(5 * time.Second)
	}
}
