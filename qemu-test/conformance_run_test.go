package qemutest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rke2os/rke2os/qemu-test/conformance"
)

// runConformance runs Kubernetes' e2e.test (RKE2_E2E, with the kubectl of
// RKE2_KUBECTL) against the cluster of kubeconfig with the focus, skip
// (none when empty) and time budget given. It writes the JUnit report,
// e2e.test's log and the summary into a directory of RKE2_CONFORMANCE_DIR
// named by the time, the summary also as RKE2_CONFORMANCE_DIR/summary.txt,
// logs the summary, and fails the test on a failed test, a chosen test the
// budget left unrun, or when none passed. It returns the summary.
func runConformance(t *testing.T, kubeconfig, focus, skip string, budget time.Duration) *conformance.Summary {
	t.Helper()
	e2e, kubectl, dir := buildEnv(t, "RKE2_E2E"), buildEnv(t, "RKE2_KUBECTL"), buildEnv(t, "RKE2_CONFORMANCE_DIR")
	report := filepath.Join(dir, time.Now().UTC().Format("20060102T150405Z"))
	if err := os.MkdirAll(report, 0o755); err != nil {
		t.Fatal(err)
	}
	args := []string{"--kubeconfig=" + kubeconfig, "--provider=skeleton", "--kubectl-path=" + kubectl,
		"--report-dir=" + report, "--e2e-output-dir=" + report,
		"--ginkgo.focus=" + focus, "--ginkgo.timeout=" + budget.String(), "--ginkgo.no-color", "--ginkgo.v"}
	if skip != "" {
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
	if len(s.NotReached) > 0 {
		t.Errorf("%d chosen conformance tests did not run: %s (a larger CONFORMANCE_TIMEOUT, or a smaller set)", len(s.NotReached), s.NotReached[0].Detail)
	}
	if len(s.Passed) == 0 {
		t.Errorf("no conformance test passed: the focus %q selects none, or the suite did not start", focus)
	}
	return s
}

// lastLines is the end of s, n lines at most.
func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(l[max(0, len(l)-n):], "\n")
}
