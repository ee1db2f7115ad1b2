//go:build conformance

package qemutest

// Kubernetes' own conformance tests against a server of this OS: make
// conformance, on its own (a set chosen by CONFORMANCE_FOCUS can take
// hours under TCG).

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rke2os/rke2os/qemu-test/conformance"
	"github.com/rke2os/rke2os/qemu-test/qemu"
)

// smokeFocus is the set make conformance runs by default for now: the
// [Conformance] tests that run no image of their own (API machinery,
// auth, leases, IngressClass), until the images the others run are built
// (issue 25).
const smokeFocus = `\[sig-api-machinery\] (server version|Discovery|Watchers|CustomResourceDefinition resources|FieldValidation|AggregatedDiscovery) .*\[Conformance\]` +
	`|\[sig-auth\] (Certificates API|SubjectReview) .*\[Conformance\]` +
	`|\[sig-node\] Lease .*\[Conformance\]` +
	`|\[sig-network\] IngressClass API .*\[Conformance\]`

// TestConformance boots the cluster test's server, waits for it to be
// Ready with CoreDNS running, and runs e2e.test with the focus
// (CONFORMANCE_FOCUS, default smokeFocus), skip (CONFORMANCE_SKIP) and
// time budget (CONFORMANCE_TIMEOUT, default 1h) chosen. It writes the
// JUnit report, e2e.test's log and the summary into a directory of
// RKE2_CONFORMANCE_DIR named by the time, the summary also as
// RKE2_CONFORMANCE_DIR/summary.txt, and fails on a failed test or when
// none passed.
func TestConformance(t *testing.T) {
	e2e, kubectl, dir := buildEnv(t, "RKE2_E2E"), buildEnv(t, "RKE2_KUBECTL"), buildEnv(t, "RKE2_CONFORMANCE_DIR")
	focus := os.Getenv("CONFORMANCE_FOCUS")
	if focus == "" {
		focus = smokeFocus
	}
	budget := time.Hour
	if v := os.Getenv("CONFORMANCE_TIMEOUT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("CONFORMANCE_TIMEOUT=%q: %v (say 90m or 6h)", v, err)
		}
		budget = d
	}
	cs := newClusterServer(t)
	cfg := cs.cfg
	cfg.Extra = cs.seed(1)
	start := time.Now()
	vm := qemu.Start(t, cfg)
	waitNodeReady(t, vm)
	a := (&testNode{t: t}).clientWith(cs.rc)
	a.runningPods("CoreDNS", "k8s-app=kube-dns", 10*time.Minute)
	t.Logf("server Ready with CoreDNS after %s", time.Since(start).Round(time.Second))

	report := filepath.Join(dir, time.Now().UTC().Format("20060102T150405Z"))
	if err := os.MkdirAll(report, 0o755); err != nil {
		t.Fatal(err)
	}
	args := []string{"--kubeconfig=" + cs.kubeconfig, "--provider=skeleton", "--kubectl-path=" + kubectl,
		"--report-dir=" + report, "--e2e-output-dir=" + report,
		"--ginkgo.focus=" + focus, "--ginkgo.timeout=" + budget.String(), "--ginkgo.no-color"}
	if skip := os.Getenv("CONFORMANCE_SKIP"); skip != "" {
		args = append(args, "--ginkgo.skip="+skip)
	}
	log, err := os.Create(filepath.Join(report, "e2e.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	cmd := exec.Command(e2e, args...)
	cmd.Stdout, cmd.Stderr = log, log
	ran := time.Now()
	runErr := cmd.Run()
	t.Logf("e2e.test ran %s (%v); its log: %s", time.Since(ran).Round(time.Second), runErr, log.Name())
	f, err := os.Open(filepath.Join(report, "junit_01.xml"))
	if err != nil {
		b, _ := os.ReadFile(log.Name())
		t.Fatalf("e2e.test wrote no report (%v, exit %v); its log ends:\n%s", err, runErr, lastLines(string(b), 30))
	}
	defer f.Close()
	s, err := conformance.Read(f)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	s.Write(&b)
	for _, p := range []string{filepath.Join(report, "summary.txt"), filepath.Join(dir, "summary.txt")} {
		if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
			t.Error(err)
		}
	}
	t.Logf("\n%s", b.String())
	if len(s.Failed) > 0 {
		t.Errorf("%d conformance tests failed (see above and %s)", len(s.Failed), report)
	}
	if len(s.Passed) == 0 {
		t.Errorf("no conformance test passed: the focus %q selects none, or the suite did not start", focus)
	}
	powerOffInOrder(t, vm)
}

// lastLines is the end of s, n lines at most.
func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(l[max(0, len(l)-n):], "\n")
}
