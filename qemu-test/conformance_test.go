//go:build conformance

package qemutest

// Kubernetes' own conformance tests against a server of this OS: make
// conformance, on its own (a set chosen by CONFORMANCE_FOCUS can take
// hours under TCG).

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"testing"
	"time"

	"github.com/rke2os/rke2os/init/shared/console"
	"github.com/rke2os/rke2os/qemu-test/conformance"
	"github.com/rke2os/rke2os/qemu-test/qemu"
)

// TestConformance boots the cluster test's server, waits for it to be
// Ready with CoreDNS running, with CONFORMANCE_NODES=2 joins make
// multinode-test's agent to it, and runs e2e.test (runConformance) with
// the focus (CONFORMANCE_FOCUS, default the tests of conformance.Default,
// on two nodes conformance.TwoNodes), skip (CONFORMANCE_SKIP) and time
// budget (CONFORMANCE_TIMEOUT, default 1h) chosen. A set chosen by name
// that e2e.test does not hold whole fails the test.
func TestConformance(t *testing.T) {
	focus, skip := os.Getenv("CONFORMANCE_FOCUS"), os.Getenv("CONFORMANCE_SKIP")
	// Checked before the boot: e2e.test compiles them only once the
	// server is up, and panics on one that is no regular expression.
	for name, v := range map[string]string{"CONFORMANCE_FOCUS": focus, "CONFORMANCE_SKIP": skip} {
		if _, err := regexp.Compile(v); err != nil {
			t.Fatalf("%s=%q: %v (a Go regular expression matched against the tests' names, as ginkgo's --ginkgo.focus: quote [ and ] as \\[ and \\])", name, v, err)
		}
	}
	nodes := 1
	switch v := os.Getenv("CONFORMANCE_NODES"); v {
	case "", "1":
	case "2":
		nodes = 2
	default:
		t.Fatalf("CONFORMANCE_NODES=%q: make conformance boots one server (1, the default) or a server and an agent (2)", v)
	}
	var names []string
	if focus == "" {
		names = conformance.Default
		if nodes == 2 {
			names = conformance.TwoNodes
		}
		focus = conformance.Focus(names)
	}
	budget := time.Hour
	if v := os.Getenv("CONFORMANCE_TIMEOUT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("CONFORMANCE_TIMEOUT=%q: %v (say 90m or 6h)", v, err)
		}
		budget = d
	}
	// The server runs with the small machine's knobs, as a user of two
	// cores would set them (the guest is busy throughout a run).
	cs := newClusterServer(t)
	cs.rke2 = smallMachineRKE2
	cs.manifests = map[string]string{"rke2-flannel-config.yaml": smallMachineFlannel}
	if nodes == 2 {
		// make multinode-test's tokens: the agent joins with the
		// agent token.
		cs.rke2 += fmt.Sprintf("  token: %s\n  agent-token: %s\n", testServerSecret, testAgentSecret)
	}
	var agentBase string
	if nodes == 2 {
		// Built before the server boots rather than beside it.
		agentBase = roleImage(t, "agent", "--secrets", cs.secrets)
	}
	cfg := cs.cfg
	cfg.Extra = cs.seed(1)
	start := time.Now()
	vm := qemu.Start(t, cfg)
	waitNodeReady(t, vm)
	a := (&testNode{t: t}).clientWith(cs.rc)
	a.runningPods("CoreDNS", "k8s-app=kube-dns", 10*time.Minute)
	t.Logf("server Ready with CoreDNS after %s", time.Since(start).Round(time.Second))
	var agent *qemu.VM
	if nodes == 2 {
		agent = startJoined(t, agentConfig(t, agentBase, cfg.Switch, "agent1", clusterNet+"11", testTokens(t, cs.secrets).agent, 3072))
		agentPodsRunning(t, context.Background(), cs.kc)
		t.Logf("agent Ready after %s", time.Since(start).Round(time.Second))
		// The tests' pods start on the agent once its images are
		// unpacked: on its one niced vCPU, the kubelet's own unpack of
		// agnhost did not fit its 2-minute limit (2026-12-08).
		for _, m := range []*qemu.VM{vm, agent} {
			ev, err := m.WaitEvent(console.EventImagesUnpacked, nil, agentTimeout)
			if err != nil {
				t.Fatalf("images unpacked: %v; errors: %v", err, m.Errors())
			}
			t.Logf("images unpacked: %v", ev)
		}
		t.Logf("both nodes' images unpacked after %s", time.Since(start).Round(time.Second))
	}

	s := runConformance(t, cs.kubeconfig, focus, skip, budget)
	if m := s.Missing(names); len(m) > 0 {
		t.Errorf("e2e.test has no test named %q (of %d chosen by name)", m, len(names))
	}
	if agent != nil {
		powerOffInOrder(t, agent)
	}
	powerOffInOrder(t, vm)
}
