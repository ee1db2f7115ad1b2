//go:build conformance

package qemutest

// Kubernetes' own conformance tests against a server of this OS: make
// conformance, on its own (a set chosen by CONFORMANCE_FOCUS can take
// hours under TCG).

import (
	"os"
	"regexp"
	"testing"
	"time"

	"github.com/rke2os/rke2os/qemu-test/conformance"
	"github.com/rke2os/rke2os/qemu-test/qemu"
)

// TestConformance boots the cluster test's server, waits for it to be
// Ready with CoreDNS running, and runs e2e.test (runConformance) with the
// focus (CONFORMANCE_FOCUS, default conformance.Default's tests), skip
// (CONFORMANCE_SKIP) and time budget (CONFORMANCE_TIMEOUT, default 1h)
// chosen.
func TestConformance(t *testing.T) {
	focus, skip := os.Getenv("CONFORMANCE_FOCUS"), os.Getenv("CONFORMANCE_SKIP")
	// Checked before the boot: e2e.test compiles them only once the
	// server is up, and panics on one that is no regular expression.
	for name, v := range map[string]string{"CONFORMANCE_FOCUS": focus, "CONFORMANCE_SKIP": skip} {
		if _, err := regexp.Compile(v); err != nil {
			t.Fatalf("%s=%q: %v (a Go regular expression matched against the tests' names, as ginkgo's --ginkgo.focus: quote [ and ] as \\[ and \\])", name, v, err)
		}
	}
	if focus == "" {
		focus = conformance.Focus(conformance.Default)
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
	cfg := cs.cfg
	cfg.Extra = cs.seed(1)
	start := time.Now()
	vm := qemu.Start(t, cfg)
	waitNodeReady(t, vm)
	a := (&testNode{t: t}).clientWith(cs.rc)
	a.runningPods("CoreDNS", "k8s-app=kube-dns", 10*time.Minute)
	t.Logf("server Ready with CoreDNS after %s", time.Since(start).Round(time.Second))

	runConformance(t, cs.kubeconfig, focus, skip, budget)
	powerOffInOrder(t, vm)
}
