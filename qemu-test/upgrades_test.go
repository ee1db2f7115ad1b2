//go:build upgradetest

package qemutest

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rke2os/rke2os/init/rke2node/upgradeapi"
	"github.com/rke2os/rke2os/init/shared/console"
	"github.com/rke2os/rke2os/init/shared/slots"
	"github.com/rke2os/rke2os/internal/disktest"
	"github.com/rke2os/rke2os/qemu-test/qemu"
)

// What can go wrong with an upgrade asked for through the Kubernetes API,
// on one booted server, one plan after the other:
//
//  1. An artifact signed with another cluster's key is refused after its
//     download: the plan fails with the node's plain reason, slot B's
//     bytes are what they were, and the node stays up, uncordoned.
//  2. An artifact whose init is not a program (a broken image, signed
//     with the right key) is written and tried: each trial boot panics
//     and reboots, GRUB goes back to slot A when the tries are spent,
//     and the node, Ready on A, says the upgrade rolled back: on its
//     console, in its Node's status and in the plan's, which fails.
//  3. A good artifact, the power cut while slot B is written: the node
//     boots slot A (nothing half-written is ever tried), carries the
//     request out again and ends on slot B, the plan done.
func TestUpgradeFailures(t *testing.T) {
	cs := newClusterServer(t)
	cfg, rc := cs.cfg, cs.rc
	disk := cfg.Disk
	type built struct{ path, sum string }
	evil, broken, good := make(chan built, 1), make(chan built, 1), make(chan built, 1)
	go func() {
		other := secretsDir(t)
		p, s := upgradeArtifact(t, other, "test-evil")
		evil <- built{p, s}
		notInit := filepath.Join(t.TempDir(), "not-an-init")
		if err := os.WriteFile(notInit, []byte("this is not a program\n"), 0o755); err != nil {
			t.Error(err)
			return
		}
		p, s = upgradeArtifact(t, cs.secrets, "test-broken", "--init", notInit)
		broken <- built{p, s}
		p, s = upgradeArtifact(t, cs.secrets, "test-2")
		good <- built{p, s}
	}()

	cfg.Extra = cs.seed(1)
	vm := qemu.Start(t, cfg)
	waitNodeReady(t, vm)
	checkOSImage(t, cs.kc, "rke2os "+rke2Version(t)+" (server)")
	bStart, bSize := disktest.Partition(t, disk, "RKE2_B")

	// 1. Another key's signature.
	a := <-evil
	before := disktest.Hash(t, disk, bStart, bSize)
	url, _ := serveFile(t, a.path)
	createPlan(t, rc, "evil", url, a.sum)
	st := waitPlan(t, rc, "evil", upgradeapi.PlanFailed)
	if len(st.Nodes) != 1 || st.Nodes[0].Phase != upgradeapi.PhaseFailed || !strings.Contains(st.Nodes[0].Reason, "signed with another key") {
		t.Errorf("the plan with another key's artifact: %+v", st)
	}
	if _, err := vm.WaitEventFunc(console.EventUpgrade, func(ev map[string]string) bool {
		return ev["plan"] == "evil" && ev["phase"] == upgradeapi.PhaseFailed && strings.Contains(ev["reason"], "signed with another key")
	}, "the refusal of another key's artifact", time.Minute); err != nil {
		t.Error(err)
	}
	if n := len(vm.Events(console.EventUpgrade)); n == 0 || countEvents(vm, console.EventUpgrade, map[string]string{"plan": "evil", "phase": upgradeapi.PhaseWriting}) != 0 {
		t.Errorf("the refused artifact reached the writing phase (%d upgrade events)", n)
	}
	if after := disktest.Hash(t, disk, bStart, bSize); after != before {
		t.Error("slot B was written with an artifact of another key")
	}
	waitUncordoned(t, cs.kc)
	// A failed plan holds the later ones back until it is deleted.
	deletePlan(t, rc, "evil")

	// 2. A broken image, correctly signed: tried, then rolled back.
	b := <-broken
	url, _ = serveFile(t, b.path)
	createPlan(t, rc, "broken", url, b.sum)
	if err := vm.WaitExit(nodeTimeout); err != nil {
		t.Fatalf("the node did not reboot into the broken slot: %v; errors: %v", err, vm.Errors())
	}
	if _, err := vm.WaitEvent(console.EventUpgrade, map[string]string{"plan": "broken", "phase": upgradeapi.PhaseRebooting, "slot": "B"}, time.Second); err != nil {
		t.Error(err)
	}
	for try := 1; try <= slots.DefaultTries; try++ {
		vm = qemu.Start(t, cfg)
		if _, err := vm.WaitFor(regexp.MustCompile(`Command line: .*rke2\.slot=B rke2\.trial=1`), bootTimeout); err != nil {
			t.Fatalf("try %d: GRUB did not try slot B: %v", try, err)
		}
		if err := vm.WaitExit(bootTimeout); err != nil {
			t.Fatalf("try %d: the broken slot did not reboot: %v", try, err)
		}
		if !strings.Contains(vm.Console(), "Kernel panic") {
			t.Errorf("try %d: no kernel panic on the console", try)
		}
	}
	vm = qemu.Start(t, cfg)
	if _, err := vm.WaitFor(regexp.MustCompile(`Command line: .*rke2\.slot=A rke2\.trial=0`), bootTimeout); err != nil {
		t.Fatalf("the tries spent: GRUB did not boot slot A: %v", err)
	}
	// PID 1 says the rollback before anything starts, rke2-node again
	// with the build at node-ready: errors, and expected.
	rolledBack := regexp.MustCompile(`upgrade rolled back`)
	for _, m := range []string{"kubelet-started", "node-ready"} {
		if _, err := vm.WaitMilestone(m, nodeTimeout); err != nil {
			t.Fatalf("slot A after the rollback: %v; errors: %v", err, vm.Errors())
		}
	}
	if errs := unexpectedErrors(vm, []*regexp.Regexp{rolledBack}); len(errs) > 0 {
		t.Errorf("slot A after the rollback: errors %v", errs)
	}
	st = waitPlan(t, rc, "broken", upgradeapi.PlanFailed)
	if len(st.Nodes) != 1 || st.Nodes[0].Phase != upgradeapi.PhaseRolledBack || !strings.Contains(st.Nodes[0].Reason, "test-broken") {
		t.Errorf("the plan of the broken image: %+v", st)
	}
	if _, err := vm.WaitFor(regexp.MustCompile(`(?m)^rke2-init error=".*upgrade rolled back: slot B \(build test-broken, RKE2 [^)]+\) did not reach node-ready in 2 boots; the node booted slot A again`), time.Minute); err != nil {
		t.Errorf("the rollback in plain words: %v", err)
	}
	checkOSImage(t, cs.kc, "rke2os "+rke2Version(t)+" (server)")
	waitUncordoned(t, cs.kc)
	deletePlan(t, rc, "broken")

	// 3. A good image, the power cut while it is written.
	g := <-good
	url, downloads := serveFile(t, g.path)
	createPlan(t, rc, "to-test-2", url, g.sum)
	if _, err := vm.WaitEvent(console.EventUpgrade, map[string]string{"plan": "to-test-2", "phase": upgradeapi.PhaseWriting}, nodeTimeout); err != nil {
		t.Fatalf("the good upgrade: %v; errors: %v", err, vm.Errors())
	}
	time.Sleep(2 * time.Second) // into the slot's writes
	vm.Kill()
	vm = qemu.Start(t, cfg)
	if _, err := vm.WaitFor(regexp.MustCompile(`Command line: .*rke2\.slot=A rke2\.trial=0`), bootTimeout); err != nil {
		t.Fatalf("after the cut: GRUB did not boot slot A: %v", err)
	}
	if err := vm.WaitExit(nodeTimeout); err != nil {
		t.Fatalf("the node did not carry the request out again and reboot: %v; errors: %v", err, vm.Errors())
	}
	// Cut while writing, before the slot was recorded as written: the
	// node says so, and does it all again.
	if !regexp.MustCompile(`an upgrade of this request was cut short while writing .*it is carried out again`).MatchString(vm.Console()) {
		t.Error("the cut upgrade was not said as carried out again")
	}
	if n := downloads.Load(); n != 2 {
		t.Errorf("the artifact was downloaded %d times, want twice (before and after the cut)", n)
	}
	vm = qemu.Start(t, cfg)
	if _, err := vm.WaitFor(regexp.MustCompile(`Command line: .*rke2\.slot=B rke2\.trial=1`), bootTimeout); err != nil {
		t.Fatalf("GRUB did not try slot B: %v", err)
	}
	waitNodeReady(t, vm)
	if _, err := vm.WaitEvent(console.EventSlotConfirmed, map[string]string{"slot": "B"}, time.Minute); err != nil {
		t.Errorf("slot B was not confirmed: %v", err)
	}
	waitPlan(t, rc, "to-test-2", upgradeapi.PlanDone)
	checkOSImage(t, cs.kc, "rke2os test-2 (server)")
	powerOffInOrder(t, vm)
}
