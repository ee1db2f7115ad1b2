//go:build hatest

package qemutest

// The three-server test runs on its own (make ha-test): three servers
// under TCG on two cores take longer than CI's budget leaves for it.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rke2os/rke2os/qemu-test/qemu"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// haServer is one server of the test's cluster.
type haServer struct {
	name, ip   string
	api, sup   int
	cfg        qemu.Config
	vm         *qemu.VM
	kc         kubernetes.Interface
	supervisor string
	// seed is the server's NoCloud drive, with more lines in its rke2
	// section.
	seed func(moreRKE2 string) []string
}

// TestHA: three servers make one cluster. The first starts it; the two
// others join through its supervisor, are added to etcd as learners and
// promoted. etcd reports three voting members; with one server powered
// off the API serves through the two others; it comes back, rejoins and
// is Ready; its Node deleted, its member leaves etcd.
func TestHA(t *testing.T) {
	servers, secrets, token := haServers(t, 3)
	ctx := context.Background()
	start := time.Now()
	servers[0].vm = qemu.Start(t, servers[0].cfg)
	waitNodeReady(t, servers[0].vm)
	t.Logf("server1 node-ready after %s: %v", time.Since(start).Round(time.Second), servers[0].vm.Milestones())

	// One after the other: each control plane under TCG takes about a
	// core even idle, and a joining server imports, starts etcd and its
	// apiserver on what the others leave of two.
	for _, s := range servers[1:] {
		s.vm = qemu.Start(t, s.cfg)
		waitJoinedServer(t, s.vm)
		t.Logf("%s after %s: %v", s.name, time.Since(start).Round(time.Second), s.vm.Milestones())
		if t.Failed() {
			t.FailNow()
		}
	}
	t.Logf("three servers node-ready after %s", time.Since(start).Round(time.Second))
	for _, s := range servers {
		nodeReady(t, ctx, servers[0].kc, s.name)
		controlPlaneRunning(t, ctx, servers[0].kc, s.name)
	}
	waitVoters(t, servers[0], secrets, token, 3)

	// One server off: the API serves through the two others.
	powerOffInOrder(t, servers[2].vm)
	for _, s := range servers[:2] {
		poll(t, "the API through "+s.name+" with server3 off", 3*time.Minute, func() error {
			_, err := s.kc.CoreV1().Namespaces().Get(ctx, "kube-system", metav1.GetOptions{})
			return err
		})
		if _, err := s.kc.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "written-via-" + s.name}}, metav1.CreateOptions{}); err != nil {
			t.Errorf("write through %s with server3 off: %v", s.name, err)
		}
	}
	// It comes back, rejoins (its member is still there) and is Ready.
	servers[2].vm = qemu.Start(t, servers[2].cfg)
	waitNodeReady(t, servers[2].vm)
	nodeReady(t, ctx, servers[0].kc, "server3")
	waitVoters(t, servers[0], secrets, token, 3)
	if _, err := servers[2].kc.CoreV1().ConfigMaps("default").Get(ctx, "written-via-server2", metav1.GetOptions{}); err != nil {
		t.Errorf("server3 back: what was written while it was off: %v", err)
	}

	// Its Node deleted, its etcd member is removed.
	powerOffInOrder(t, servers[2].vm)
	if err := servers[0].kc.CoreV1().Nodes().Delete(ctx, "server3", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitVoters(t, servers[0], secrets, token, 2)
	for _, s := range servers[:2] {
		powerOffInOrder(t, s.vm)
	}
}

// haServers makes the machines of n servers of one cluster (none started):
// the server image with the cluster's secrets baked in, each on the
// cluster's segment with its API and supervisor forwarded, the first the
// others' server; and the secrets and the server token.
func haServers(t *testing.T, n int) (servers []*haServer, secrets, token string) {
	secrets = filepath.Join(t.TempDir(), "secrets")
	bin := buildEnv(t, "RKE2_BIN")
	if b, err := exec.Command(filepath.Join(bin, "rke2-build"), "secrets", "--output", secrets).CombinedOutput(); err != nil {
		t.Fatalf("rke2-build secrets: %v\n%s", err, b)
	}
	tb, err := os.ReadFile(filepath.Join(secrets, "token"))
	if err != nil {
		t.Fatal(err)
	}
	token = strings.TrimSpace(string(tb))
	base := roleImage(t, "server", "--secrets", secrets)
	sw := qemu.StartSwitch(t)

	servers = make([]*haServer, n)
	for i := range servers {
		s := &haServer{name: fmt.Sprintf("server%d", i+1), ip: fmt.Sprintf("%s%d", clusterNet, 10+i), api: freePort(t), sup: freePort(t)}
		// The small machine's knobs (smallMachineRKE2): three control
		// planes on two host cores under TCG. etcd's heartbeat and
		// election timeout are etcd's advice for slow links: a
		// member's answers late by a second under TCG are not a dead
		// leader.
		rke2 := "rke2:\n  node-ip: " + s.ip + "\n" + smallMachineRKE2 +
			"  etcd-arg: [heartbeat-interval=500, election-timeout=5000]\n"
		if i > 0 {
			rke2 += fmt.Sprintf("  server: https://%s:9345\n  token: %q\n", serverIP, token)
		}
		s.seed = func(moreRKE2 string) []string {
			return qemu.CIDataDrive(cidata(t, fmt.Sprintf("#cloud-config\nhostname: %s\nwrite_files:\n", s.name)+
				"  - path: /var/lib/rancher/rke2/server/manifests/rke2-flannel-config.yaml\n    content: |\n"+indent(smallMachineFlannel, 6)+"\n"+
				clusterNetwork(s.ip, rke2+moreRKE2), "instance-id: "+s.name+"\n"))
		}
		// Two vCPUs each (RKE2's minimum for a server: at one, the
		// control plane's CPU requests leave no room for kube-proxy's
		// once flannel and CoreDNS run), all at the same niceness. Two
		// members of etcd are its quorum both: with the second server
		// at one vCPU niced 5 (as the agent test's agent), its etcd
		// answered the leader's heartbeats so late that reads took
		// seconds, the first's apiserver failed its /livez (etcd) and
		// was restarted, and the second's never got ready.
		s.cfg = qemu.Config{Machine: "q35", MemoryMiB: 3072, CPUs: 2, Disk: qemu.Overlay(t, base, 8<<30), Switch: sw, SwitchMAC: clusterMAC(s.ip),
			NetdevOpts: fmt.Sprintf("hostfwd=tcp:127.0.0.1:%d-10.0.2.15:6443,hostfwd=tcp:127.0.0.1:%d-10.0.2.15:9345", s.api, s.sup),
			Extra:      s.seed("")}
		kubeconfig := filepath.Join(t.TempDir(), "admin.kubeconfig")
		if b, err := exec.Command(filepath.Join(bin, "rke2-build"), "kubeconfig", "--secrets", secrets,
			"--server", fmt.Sprintf("https://127.0.0.1:%d", s.api), "--output", kubeconfig).CombinedOutput(); err != nil {
			t.Fatalf("rke2-build kubeconfig: %v\n%s", err, b)
		}
		rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			t.Fatal(err)
		}
		rc.Timeout = 20 * time.Second
		s.kc = kubernetes.NewForConfigOrDie(rc)
		s.supervisor = fmt.Sprintf("https://127.0.0.1:%d", s.sup)
		servers[i] = s
	}
	return servers, secrets, token
}

// waitJoinedServer waits for a further server's timeline: its etcd member
// promoted, its control plane up, its Node Ready.
func waitJoinedServer(t *testing.T, vm *qemu.VM) {
	for _, m := range []string{"kubelet-started", "etcd-healthy", "etcd-voter", "apiserver-ready", "node-ready"} {
		got, err := vm.WaitFor(regexp.MustCompile(`(?m)^rke2-init (milestone=`+m+` |error=)`), 2*nodeTimeout)
		if err != nil || got[1] == "error=" {
			t.Errorf("waiting for %s: %v; errors: %v", m, err, vm.Errors())
			return
		}
	}
}

func nodeReady(t *testing.T, ctx context.Context, kc kubernetes.Interface, name string) {
	poll(t, name+" Ready", 10*time.Minute, func() error {
		n, err := kc.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if _, ok := n.Labels["node-role.kubernetes.io/etcd"]; !ok {
			return fmt.Errorf("no etcd role label: %v", n.Labels)
		}
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				return nil
			}
		}
		return fmt.Errorf("not Ready")
	})
}

// controlPlaneRunning waits for a server's control plane, kube-proxy and
// flannel to run and be ready there.
func controlPlaneRunning(t *testing.T, ctx context.Context, kc kubernetes.Interface, name string) {
	poll(t, "the control plane, kube-proxy and flannel ready on "+name, 10*time.Minute, func() error {
		pl, err := kc.CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + name})
		if err != nil {
			return err
		}
		ready := map[string]bool{}
		for _, p := range pl.Items {
			for _, c := range p.Status.ContainerStatuses {
				if c.Ready {
					ready[c.Name] = true
				}
			}
		}
		for _, c := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy", "kube-flannel"} {
			if !ready[c] {
				return fmt.Errorf("%s not ready (ready: %v)", c, ready)
			}
		}
		return nil
	})
}

// waitVoters asks the supervisor's /db/info (with the server token) until
// etcd has want members, all voting.
func waitVoters(t *testing.T, s *haServer, secrets, token string, want int) {
	secret := token[strings.LastIndex(token, ":")+1:]
	pem, err := os.ReadFile(filepath.Join(secrets, "tls", "server-ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("%s holds no certificate", filepath.Join(secrets, "tls", "server-ca.crt"))
	}
	c := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	poll(t, fmt.Sprintf("etcd with %d voting members", want), 10*time.Minute, func() error {
		req, _ := http.NewRequest(http.MethodGet, s.supervisor+"/db/info", nil)
		req.SetBasicAuth("server", secret)
		resp, err := c.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s (%v)", resp.Status, b, err)
		}
		var info struct {
			Members []struct {
				Name      string `json:"name"`
				IsLearner bool   `json:"isLearner"`
			} `json:"members"`
		}
		if err := json.Unmarshal(b, &info); err != nil {
			return fmt.Errorf("%s: %s", resp.Status, b)
		}
		voters := 0
		for _, m := range info.Members {
			if !m.IsLearner {
				voters++
			}
		}
		if len(info.Members) != want || voters != want {
			return fmt.Errorf("members %+v", info.Members)
		}
		return nil
	})
}
