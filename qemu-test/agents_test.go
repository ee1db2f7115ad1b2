//go:build multinode

package qemutest

// The agent test runs on its own (make multinode-test): a server and an
// agent under TCG on two cores take longer than CI's budget leaves.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rke2os/rke2os/init/rke2node/upgradeapi"
	"github.com/rke2os/rke2os/init/shared/console"
	"github.com/rke2os/rke2os/qemu-test/qemu"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// startAgent boots an agent disk (an overlay of base) with its config
// (agentConfig).
func startAgent(t *testing.T, base, sw, name, ip, token string, mem int) *qemu.VM {
	return qemu.Start(t, agentConfig(t, base, sw, name, ip, token, mem))
}

// TestAgents: a server, its image baked with --secrets, boots with a token
// and an agent-token of its config into its cluster and runs the echo
// workload; then an agent joins it with the agent token (joinAgent),
// which the supervisor answers on the agents' endpoints only
// (checkSupervisorRoles). An UpgradePlan with both roles' artifacts
// upgrades the server, then the agent (upgradeInOrder). Last, nodes that
// must be refused are (checkRefusals).
func TestAgents(t *testing.T) {
	cs := newClusterServer(t)
	sup := freePort(t)
	cs.cfg.NetdevOpts += fmt.Sprintf(",hostfwd=tcp:127.0.0.1:%d-10.0.2.15:9345", sup)
	cs.rke2 = fmt.Sprintf("  token: %s\n  agent-token: %s\n", testServerSecret, testAgentSecret)
	// The next version's artifacts, both roles, are built while the
	// server boots, and before the agent does: built beside the agent's
	// first boot, on one vCPU niced, they slowed the unpacking of its
	// kube-proxy image past the kubelet's two-minute limit for creating
	// a container, which it then tried again from scratch for ever.
	next := make(chan [2]built, 1)
	go func() {
		var b [2]built
		b[0].path, b[0].sum = roleArtifact(t, "server", cs.secrets, "test-2")
		b[1].path, b[1].sum = roleArtifact(t, "agent", cs.secrets, "test-2")
		next <- b
	}()
	cs.cfg.Extra = cs.seed(1)
	vm := qemu.Start(t, cs.cfg)
	waitNodeReady(t, vm)
	ctx := context.Background()
	checkWorkload(t, ctx, cs.kc)
	tokens := testTokens(t, cs.secrets)
	artifacts := <-next
	// The agent's image carries the cluster's upgrade key (--secrets
	// bakes only that into an agent image).
	base := roleImage(t, "agent", "--secrets", cs.secrets)
	agentCfg := agentConfig(t, base, cs.cfg.Switch, "agent1", clusterNet+"11", tokens.agent, 3072)
	agent := joinAgent(t, ctx, cs.kc, agentCfg)
	checkSupervisorRoles(t, ctx, cs.kc, fmt.Sprintf("https://127.0.0.1:%d", sup), cs.secrets, tokens)
	vm, agent = upgradeInOrder(t, cs, vm, agent, agentCfg, artifacts)
	powerOffInOrder(t, agent)
	checkRefusals(t, vm, base, cs.cfg.Switch, tokens.agent)
	powerOffInOrder(t, vm)
}

type built struct{ path, sum string }

// upgradeInOrder creates an UpgradePlan with both roles' artifacts (OS
// version test-2) and follows it: the server goes first, reboots into
// slot B and is Ready on it while the agent has not been touched (its
// machine still up, no upgrade said on its console); then the agent is
// drained, reboots into its slot B and is Ready on it; both Nodes report
// test-2 and the plan is Done 2/2. It returns the machines as they run
// after their reboots.
func upgradeInOrder(t *testing.T, cs *clusterServer, server, agent *qemu.VM, agentCfg qemu.Config, next [2]built) (*qemu.VM, *qemu.VM) {
	ctx := context.Background()
	surl, _ := serveFile(t, next[0].path)
	aurl, _ := serveFile(t, next[1].path)
	createPlanSpec(t, cs.rc, "to-test-2", upgradeapi.PlanSpec{
		Server: &upgradeapi.Artifact{URL: surl, SHA256: next[0].sum},
		Agent:  &upgradeapi.Artifact{URL: aurl, SHA256: next[1].sum}})
	if err := server.WaitExit(nodeTimeout); err != nil {
		t.Fatalf("the server did not reboot for the upgrade: %v; errors: %v", err, server.Errors())
	}
	server = qemu.Start(t, cs.cfg)
	if _, err := server.WaitFor(regexp.MustCompile(`Command line: .*rke2\.slot=B rke2\.trial=1`), bootTimeout); err != nil {
		t.Fatalf("GRUB did not try the server's slot B: %v", err)
	}
	waitNodeReady(t, server)
	// Servers first, and never a server and an agent down together: the
	// agent is still up and has not started.
	if n := len(agent.Events(console.EventUpgrade)); n != 0 || agent.Exited() {
		t.Fatalf("the agent started its upgrade (%d upgrade events, exited: %v) before the server was Ready on its new slot", n, agent.Exited())
	}
	if err := agent.WaitExit(agentTimeout); err != nil {
		t.Fatalf("the agent did not reboot for the upgrade: %v; errors: %v", err, agent.Errors())
	}
	for _, phase := range []string{upgradeapi.PhaseDownloading, upgradeapi.PhaseWriting, upgradeapi.PhaseRebooting} {
		if _, err := agent.WaitEvent(console.EventUpgrade, map[string]string{"phase": phase, "plan": "to-test-2"}, time.Second); err != nil {
			t.Errorf("the agent's upgrade: %v", err)
		}
	}
	agent = qemu.Start(t, agentCfg)
	if _, err := agent.WaitFor(regexp.MustCompile(`Command line: .*rke2\.slot=B rke2\.trial=1`), bootTimeout); err != nil {
		t.Fatalf("GRUB did not try the agent's slot B: %v", err)
	}
	for _, m := range []string{"kubelet-started", "node-ready"} {
		got, err := agent.WaitFor(regexp.MustCompile(`(?m)^rke2-init (milestone=`+m+` |error=)`), agentTimeout)
		if err != nil || got[1] == "error=" {
			t.Fatalf("agent on slot B: waiting for %s: %v; errors: %v", m, err, agent.Errors())
		}
	}
	st := waitPlan(t, cs.rc, "to-test-2", upgradeapi.PlanDone)
	if st.Done != 2 || st.Total != 2 || len(st.Nodes) != 2 || st.Nodes[0].Name != "node1" || st.Nodes[1].Name != "agent1" {
		t.Errorf("the plan done: %+v", st)
	}
	for name, want := range map[string]string{"node1": "rke2os test-2 (server)", "agent1": "rke2os test-2 (agent)"} {
		poll(t, name+"'s osImage "+want, 5*time.Minute, func() error {
			n, err := cs.kc.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if n.Status.NodeInfo.OSImage != want || n.Spec.Unschedulable {
				return fmt.Errorf("osImage %q, unschedulable %v", n.Status.NodeInfo.OSImage, n.Spec.Unschedulable)
			}
			return nil
		})
	}
	return server, agent
}

// joinAgent boots agent1 and joins it to the running server: it gets its
// certificates through the supervisor and its Node is Ready; a pod on it
// reaches a pod on the server by pod IP and through a Service, resolving
// through CoreDNS across the nodes. The agent is left running.
func joinAgent(t *testing.T, ctx context.Context, kc kubernetes.Interface, cfg qemu.Config) *qemu.VM {
	agent := startJoined(t, cfg)
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
	agentPodsRunning(t, ctx, kc)
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
	return agent
}

// checkRefusals boots nodes that must be refused, each on a machine of
// its own, at once: a wrong token (refused by the server, which logs it),
// a token pinning another CA (refused by the node, which says so), a
// taken name (agent1's).
func checkRefusals(t *testing.T, server *qemu.VM, base, sw, token string) {
	tok := strings.SplitN(token, "::", 2)
	wrongCA := "K10" + strings.Repeat("0", 64) + "::" + tok[1]
	sha256 := regexp.MustCompile(`^[0-9a-f]{64}$`)
	var wg sync.WaitGroup
	for _, c := range []struct {
		name, ip, token string
		event, want     string // the event on the agent's console, described
		ok              func(map[string]string) bool
	}{
		{"agent2", clusterNet + "12", tok[0] + "::node:wrong-secret", console.EventJoinRefused, "the token refused (401)",
			func(ev map[string]string) bool { return ev["status"] == "401" }},
		{"agent3", clusterNet + "13", wrongCA, console.EventJoinCAMismatch, "a server CA that is not the token's",
			func(ev map[string]string) bool {
				return sha256.MatchString(ev["ca"]) && ev["pinned"] == strings.Repeat("0", 64) && ev["by"] == "token"
			}},
		{"agent1", clusterNet + "14", token, console.EventJoinRefused, "the node name agent1 refused (403)",
			func(ev map[string]string) bool { return ev["status"] == "403" && ev["node"] == "agent1" }},
	} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// They only go as far as the join.
			vm := startAgent(t, base, sw, c.name, c.ip, c.token, 1536)
			if _, err := vm.WaitEventFunc(c.event, c.ok, c.want, nodeTimeout); err != nil {
				t.Errorf("%s at %s: %v; errors: %v", c.name, c.ip, err, vm.Errors())
			}
			vm.Kill()
		}()
	}
	wg.Wait()
	for _, want := range []struct{ ip, status string }{{clusterNet + "12", "401"}, {clusterNet + "14", "403"}} {
		if _, err := server.WaitEventFunc(console.EventSupervisorRefused, func(ev map[string]string) bool {
			return strings.HasPrefix(ev["remote"], want.ip+":") && ev["status"] == want.status
		}, "a refusal of "+want.ip+" with "+want.status, time.Second); err != nil {
			t.Errorf("the server logged no refusal: %v", err)
		}
	}
}

// checkSupervisorRoles asks the server's supervisor (supervisor, its
// port 9345 forwarded) what each token gets: the agent token, with which
// agent1 joined, is answered on the agents' endpoints and refused (401) on
// the servers', server-bootstrap (the cluster's CA keys) and /db/info; the
// config's server token is answered on both; the baked server token, which
// the config's overrode at the first boot, is no token of this cluster.
func checkSupervisorRoles(t *testing.T, ctx context.Context, kc kubernetes.Interface, supervisor, secrets string, tokens clusterTokens) {
	if _, err := kc.CoreV1().Nodes().Get(ctx, "agent1", metav1.GetOptions{}); err != nil {
		t.Errorf("agent1, joined with the agent token: %v", err)
	}
	pem, err := os.ReadFile(filepath.Join(secrets, "tls", "server-ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("%s holds no certificate", filepath.Join(secrets, "tls", "server-ca.crt"))
	}
	c := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	secret := func(token string) string { return token[strings.LastIndex(token, ":")+1:] }
	for _, tc := range []struct {
		name, user, token, path string
		want                    int
	}{
		{"agent token", "node", tokens.agent, "/v1-rke2/readyz", http.StatusOK},
		{"agent token", "node", tokens.agent, "/v1-rke2/config", http.StatusOK},
		{"agent token", "node", tokens.agent, "/v1-rke2/server-bootstrap", http.StatusUnauthorized},
		{"agent token", "node", tokens.agent, "/db/info", http.StatusUnauthorized},
		{"agent secret as the server", "server", tokens.agent, "/v1-rke2/server-bootstrap", http.StatusUnauthorized},
		{"server token", "server", tokens.server, "/v1-rke2/readyz", http.StatusOK},
		{"server token", "server", tokens.server, "/db/info", http.StatusOK},
		{"baked server token", "server", tokens.baked, "/v1-rke2/readyz", http.StatusUnauthorized},
	} {
		poll(t, fmt.Sprintf("%s on %s: %d", tc.name, tc.path, tc.want), 2*time.Minute, func() error {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, supervisor+tc.path, nil)
			if err != nil {
				return err
			}
			req.SetBasicAuth(tc.user, secret(tc.token))
			resp, err := c.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			if resp.StatusCode != tc.want {
				return fmt.Errorf("%s: %s", resp.Status, b)
			}
			return nil
		})
	}
}
