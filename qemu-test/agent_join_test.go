//go:build multinode || conformance

package qemutest

// Agents joining the cluster test's server: make multinode-test's, and
// make conformance's second node (CONFORMANCE_NODES=2).

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
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

// agentConfig is an agent's machine, its disk an overlay of base: started
// again with it, the agent boots from the same disk.
//
// One vCPU, niced 5: under TCG on two cores, an agent with two vCPUs
// importing its images beside the server starved the server's apiserver
// into TLS handshake timeouts it did not recover from; niced 15 it was
// itself starved (the idle control plane under TCG takes about a core)
// and had not imported its images after 20 minutes. One vCPU at nice 5
// leaves the server a core and the agent most of the other.
func agentConfig(t *testing.T, base, sw, name, ip, token string, mem int) qemu.Config {
	iso := cidata(t, agentUserData(name, ip, token), "instance-id: "+name+"\n")
	return qemu.Config{Machine: "q35", MemoryMiB: mem, CPUs: 1, Nice: 5, Disk: qemu.Overlay(t, base, 8<<30),
		Switch: sw, SwitchMAC: clusterMAC(ip),
		Extra: qemu.CIDataDrive(iso)}
}

// The tokens the test's server config sets, as a user would over the
// image's baked ones: the config's win at the first boot (the baked token
// is only a default), and agents join with an agent token of their own.
const (
	testServerSecret = "multinode-server-secret"
	testAgentSecret  = "multinode-agent-secret"
)

// clusterTokens are the tokens of the test's cluster: the full tokens of
// its config's secrets, pinning the CA baked into the server image, and
// the baked server token, which the config's overrides.
type clusterTokens struct {
	server, agent, baked string
}

// testTokens are the full tokens of the cluster whose secrets are in
// secrets: the CA hash is the baked token's (its CA is the cluster's).
func testTokens(t *testing.T, secrets string) clusterTokens {
	tb, err := os.ReadFile(filepath.Join(secrets, "token"))
	if err != nil {
		t.Fatal(err)
	}
	baked := strings.TrimSpace(string(tb))
	hash, _, ok := strings.Cut(baked, "::")
	if !ok {
		t.Fatalf("the secrets' token %q is not a K10<hash>::<user>:<secret> token", baked)
	}
	return clusterTokens{server: hash + "::server:" + testServerSecret, agent: hash + "::node:" + testAgentSecret, baked: baked}
}

// startJoined boots an agent of cfg and waits for it to join the server,
// start its kubelet and see its Node Ready (its console's milestones).
func startJoined(t *testing.T, cfg qemu.Config) *qemu.VM {
	t.Helper()
	agent := qemu.Start(t, cfg)
	for _, m := range []string{"joined", "kubelet-started", "node-ready"} {
		got, err := agent.WaitFor(regexp.MustCompile(`(?m)^rke2-init (milestone=`+m+` |error=)`), agentTimeout)
		if err != nil || got[1] == "error=" {
			t.Fatalf("agent: waiting for %s: %v; errors: %v", m, err, agent.Errors())
		}
	}
	t.Logf("agent timeline: %v", agent.Milestones())
	return agent
}

// agentPodsRunning waits for kube-proxy and flannel to run on agent1, and
// fails on a control-plane pod there.
func agentPodsRunning(t *testing.T, ctx context.Context, kc kubernetes.Interface) {
	t.Helper()
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
}
