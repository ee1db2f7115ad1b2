//go:build conformance

package qemutest

// Kubernetes' own conformance tests against a server of this OS: make
// conformance, on its own (a set chosen by CONFORMANCE_FOCUS can take
// hours under TCG).

import (
	"os"
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
	focus := os.Getenv("CONFORMANCE_FOCUS")
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

	runConformance(t, cs.kubeconfig, focus, os.Getenv("CONFORMANCE_SKIP"), budget)
	powerOffInOrder(t, vm)
}
