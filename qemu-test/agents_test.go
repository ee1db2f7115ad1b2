//go:build multinode

package qemutest

// The agent test runs on its own (make multinode-test): a server and an
// agent under TCG on two cores take longer than CI's budget leaves.

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rke2os/rke2os/qemu-test/qemu"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// agentUserData is the config of an agent joining the test's server.
func agentUserData(name, ip, token string) string {
	return fmt.Sprintf("#cloud-config\nhostname: %s\n", name) + clusterNetwork(ip, fmt.Sprintf(
		"rke2:\n  server: https://%s:9345\n  token: %q\n  node-ip: %s\n", serverIP, token, ip))
}

// agentTimeout bounds each of the agent's milestones: it boots beside a
// running server, on what the server leaves of two cores.
const agentTimeout = 40 * time.Minute

// startAgent boots an agent disk (an overlay of base) with its config.
//
// One vCPU, niced 5: under TCG on two cores, an agent with two vCPUs
// importing its images beside the server starved the server's apiserver
// into TLS handshake timeouts it did not recover from; niced 15 it was
// itself starved (the idle control plane under TCG takes about a core)
// and had not imported its images after 20 minutes. One vCPU at nice 5
// leaves the server a core and the agent most of the other.
func startAgent(t *testing.T, base, sw, name, ip, token string, mem int) *qemu.VM {
	iso := cidata(t, agentUserData(name, ip, token), "instance-id: "+name+"\n")
	return qemu.Start(t, qemu.Config{Machine: "q35", MemoryMiB: mem, CPUs: 1, Nice: 5, Disk: qemu.Overlay(t, base, 8<<30),
		Switch: sw, SwitchMAC: clusterMAC(ip),
		Extra: qemu.CIDataDrive(iso)})
}

// TestAgents: a server boots into its cluster and runs the echo
// workload; then an agent joins it (checkAgents).
func TestAgents(t *testing.T) {
	cs := newClusterServer(t)
	cs.cfg.Extra = cs.seed(1)
	vm := qemu.Start(t, cs.cfg)
	waitNodeReady(t, vm)
	ctx := context.Background()
	checkWorkload(t, ctx, cs.kc)
	checkAgents(t, ctx, cs.kc, vm, cs.cfg.Switch, cs.secrets)
	powerOffInOrder(t, vm)
}

// checkAgents joins an agent to the running server: it gets its
// certificates through the supervisor and its Node is Ready; a pod on it
// reaches a pod on the server by pod IP and through a Service, resolving
// through CoreDNS across the nodes. Then nodes that must be refused are:
// a wrong token (refused by the server, which logs it), a token pinning
// another CA (refused by the node, which says so), a taken name.
func checkAgents(t *testing.T, ctx context.Context, kc kubernetes.Interface, server *qemu.VM, sw, secrets string) {
	tb, err := os.ReadFile(filepath.Join(secrets, "token"))
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(string(tb))
	base := roleImage(t, "agent")
	agent := startAgent(t, base, sw, "agent1", clusterNet+"11", token, 3072)
	for _, m := range []string{"joined", "kubelet-started", "node-ready"} {
		got, err := agent.WaitFor(regexp.MustCompile(`(?m)^rke2-init (milestone=`+m+` |error=)`), agentTimeout)
		if err != nil || got[1] == "error=" {
			t.Fatalf("agent: waiting for %s: %v; errors: %v", m, err, agent.Errors())
		}
	}
	t.Logf("agent timeline: %v", agent.Milestones())
	n, err := kc.CoreV1().Nodes().Get(ctx, "agent1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := n.Labels["node-role.kubernetes.io/control-plane"]; ok {
		t.Errorf("the agent carries the control-plane label: %v", n.Labels)
	}
	internal := 0
	for _, a := range n.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			internal++
			if a.Address != clusterNet+"11" {
				t.Errorf("agent1's InternalIP is %s, want its node-ip", a.Address)
			}
		}
	}
	if internal == 0 {
		t.Errorf("agent1 has no InternalIP (addresses %v), want its node-ip %s", n.Status.Addresses, clusterNet+"11")
	}
	// kube-proxy and flannel run on the agent; no control-plane pod does.
	poll(t, "kube-proxy and flannel Running on agent1", 10*time.Minute, func() error {
		pods, err := kc.CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=agent1"})
		if err != nil {
			return err
		}
		running := map[string]bool{}
		for _, p := range pods.Items {
			if p.Labels["tier"] == "control-plane" && p.Labels["component"] != "kube-proxy" {
				t.Fatalf("a control-plane pod on the agent: %s", p.Name)
			}
			if p.Status.Phase == corev1.PodRunning {
				running[p.Labels["component"]+p.Labels["app"]] = true
			}
		}
		if !running["kube-proxy"] || !running["flannel"] {
			return fmt.Errorf("running: %v", running)
		}
		return nil
	})
	// The server kept the agent's password, and gave it to its Node.
	poll(t, "agent1's node password secret owned by its Node", 3*time.Minute, func() error {
		s, err := kc.CoreV1().Secrets("kube-system").Get(ctx, "agent1.node-password.rke2", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if len(s.OwnerReferences) != 1 || s.OwnerReferences[0].UID != n.UID {
			return fmt.Errorf("owners %v", s.OwnerReferences)
		}
		return nil
	})

	// The echo pod (checkWorkload's) runs on the server; a probe on the
	// agent reaches it by pod IP and through its Service, by name.
	echo, err := kc.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=echo"})
	if err != nil || len(echo.Items) != 1 || echo.Items[0].Spec.NodeName != "node1" || echo.Items[0].Status.PodIP == "" {
		t.Fatalf("the echo pod: %v %v", echo, err)
	}
	log := runProbe(t, ctx, kc, "probe-agent1", "agent1", "--resolve", "kubernetes.default.svc.cluster.local",
		"--get", "http://"+net.JoinHostPort(echo.Items[0].Status.PodIP, "8080")+"/", "--get", "http://echo.default.svc.cluster.local:8080/")
	if strings.Count(log, "hello from echo-") < 2 {
		t.Errorf("the probe on agent1 did not reach the echo pod twice:\n%s", log)
	}
	powerOffInOrder(t, agent)

	// Refusals, each on a machine of its own, at once.
	tok := strings.SplitN(token, "::", 2)
	if len(tok) != 2 {
		t.Fatalf("the secrets' token %q is not a K10<hash>::<user>:<secret> token", token)
	}
	wrongCA := "K10" + strings.Repeat("0", 64) + "::" + tok[1]
	var wg sync.WaitGroup
	for _, c := range []struct{ name, ip, token, want string }{
		{"agent2", clusterNet + "12", tok[0] + "::node:wrong-secret", `refused the token \(401`},
		{"agent3", clusterNet + "13", wrongCA, `presents a cluster CA whose sha256 is [0-9a-f]{64}, but the token pins 0{64}`},
		{"agent1", clusterNet + "14", token, `refused the node name \\?"agent1\\?" \(403`}, // slog escapes the quotes
	} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// They only go as far as the join.
			vm := startAgent(t, base, sw, c.name, c.ip, c.token, 1536)
			if _, err := vm.WaitFor(regexp.MustCompile(c.want), nodeTimeout); err != nil {
				t.Errorf("%s at %s: no %q on its console: %v; errors: %v", c.name, c.ip, c.want, err, vm.Errors())
			}
			vm.Kill()
		}()
	}
	wg.Wait()
	for _, want := range []string{`supervisor: refused.*remote=` + clusterNet + `12:.*status=401`, `supervisor: refused.*remote=` + clusterNet + `14:.*status=403`} {
		if _, err := server.WaitFor(regexp.MustCompile(want), time.Second); err != nil {
			t.Errorf("the server logged no %q: %v", want, err)
		}
	}
}
