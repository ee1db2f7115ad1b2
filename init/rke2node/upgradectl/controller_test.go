package upgradectl

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rke2os/rke2os/init/rke2node/crds"
	"github.com/rke2os/rke2os/init/rke2node/upgradeapi"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"
)

// TestSingleServer is the case of a cluster of one server, whose
// controller upgrades the node it runs on: it drains its own node, asks
// for the upgrade, the node reboots (the controller with it), and the
// controller that starts after the boot finds the node done and finishes.
func TestSingleServer(t *testing.T) {
	objs := []runtime.Object{
		server("s1"),
		pod("kube-system", "coredns-1", "s1", ownedBy("ReplicaSet")),
		pod("kube-system", "canal-x", "s1", ownedBy("DaemonSet")),
		pod("kube-system", "kube-apiserver-s1", "s1", mirror),
		pod("default", "web-1", "other-node", ownedBy("ReplicaSet")),
	}
	e := newEnv(t, objs, planObj("v2", 1, t0, func(s *upgradeapi.PlanSpec) { s.Agent = nil }))

	wait := e.sync()
	n := e.node("s1")
	want(t, "cordoned", n.Spec.Unschedulable, true)
	want(t, "cordoned annotation", n.Annotations[CordonedKey], "true")
	// Drained: coredns evicted; the DaemonSet's pod, the static pod and
	// another node's pod left.
	want(t, "evictions", strings.Join(e.evictions, " "), "kube-system/coredns-1")
	want(t, "canal left", e.podExists("kube-system", "canal-x"), true)
	want(t, "apiserver left", e.podExists("kube-system", "kube-apiserver-s1"), true)
	want(t, "other node's pod left", e.podExists("default", "web-1"), true)
	want(t, "nodes", e.phases("v2"), "s1=draining")
	want(t, "next pass while draining", wait, 5*time.Second)
	// The next pass sees the pods gone, and asks for the upgrade.
	e.now = e.now.Add(wait)
	wait = e.sync()
	n = e.node("s1")
	r, ok := requestOf(n)
	want(t, "requested", ok, true)
	want(t, "request", r, serverReq("v2", 1))
	st := e.status("v2")
	want(t, "recorded", lines(st), "s1=downloading(requested)")
	want(t, "phase", st.Phase, upgradeapi.PlanRolling)
	want(t, "total", st.Total, 1)
	want(t, "nodes", e.phases("v2"), "s1=downloading")
	want(t, "observed generation", st.ObservedGeneration, int64(1))
	want(t, "next pass", wait, 30*time.Second)

	// The node at work; then it reboots: NotReady, and this controller
	// gone with it.
	e.answer("s1", upgradeapi.PhaseWriting, "")
	e.sync()
	want(t, "nodes", e.phases("v2"), "s1=writing")
	e.answer("s1", upgradeapi.PhaseRebooting, "")
	e.setReady("s1", false)
	e.sync()
	want(t, "nodes", e.phases("v2"), "s1=rebooting")

	// After the boot, Ready on the new slot; a new controller.
	e.now = e.now.Add(5 * time.Minute)
	e.c = e.controller()
	e.setReady("s1", true)
	e.sync() // before the node says done: nothing to do
	want(t, "in progress", e.inProgress(), "s1")
	e.finish("s1")
	e.sync()
	n = e.node("s1")
	want(t, "uncordoned", n.Spec.Unschedulable, false)
	for _, k := range []string{CordonedKey, upgradeapi.RequestKey} {
		if _, ok := n.Annotations[k]; ok {
			t.Errorf("%s left on the node", k)
		}
	}
	if _, ok := n.Annotations[upgradeapi.StatusKey]; !ok {
		t.Error("the node's answer was removed")
	}
	st = e.status("v2")
	want(t, "phase", st.Phase, upgradeapi.PlanDone)
	want(t, "done", st.Done, 1)
	want(t, "osImage", st.Nodes[0].OSImage, "rke2os v2")
	want(t, "events", strings.Join(e.events(), ", "),
		"Node/s1 UpgradeDone, Node/s1 UpgradeStarted, UpgradePlan/v2 UpgradeDone, UpgradePlan/v2 UpgradeStarted")

	// Again: nothing more, no event twice, nothing drained again.
	actions := len(e.kube.Actions())
	e.c = e.controller()
	e.sync()
	for _, a := range e.kube.Actions()[actions:] {
		if a.GetVerb() != "list" {
			t.Errorf("a pass over a done plan did %s %s", a.GetVerb(), a.GetResource().Resource)
		}
	}
	want(t, "evictions", len(e.evictions), 1)
}

// TestRestartResumes: a controller that starts with a node's answer done
// already there (its predecessor set the request) only finishes it.
func TestRestartResumes(t *testing.T) {
	req := serverReq("v2", 1)
	objs := []runtime.Object{
		server("s1", requestedBy(req), answered(req, upgradeapi.PhaseDone, "", t0.Add(time.Hour))),
		server("s2"),
		pod("default", "web-1", "s1", ownedBy("ReplicaSet")),
	}
	p := planObj("v2", 1, t0, func(s *upgradeapi.PlanSpec) { s.Agent = nil })
	s1 := recRequested("s1", req)
	s1.Phase = upgradeapi.PhaseRebooting
	setStatus(p, Status{ObservedGeneration: 1, PlanStatus: upgradeapi.PlanStatus{Phase: upgradeapi.PlanRolling, Total: 2,
		Nodes: []upgradeapi.NodeProgress{s1, recLine("s2", serverReq("v2", 1), upgradeapi.PhaseWaiting)}}})
	e := newEnv(t, objs, p)
	e.sync()
	want(t, "s1 uncordoned", e.node("s1").Spec.Unschedulable, false)
	if _, ok := requestOf(e.node("s1")); ok {
		t.Error("s1's request left")
	}
	// s1 is not drained again (its pod stays); s2 goes next.
	want(t, "s1's pod", e.podExists("default", "web-1"), true)
	want(t, "in progress", e.inProgress(), "s2")
	want(t, "nodes", e.phases("v2"), "s1=done s2=downloading")
	want(t, "events", strings.Join(e.events(), ", "),
		"Node/s1 UpgradeDone, Node/s2 UpgradeStarted, UpgradePlan/v2 UpgradeDone, UpgradePlan/v2 UpgradeStarted")
}

// TestOrder: servers by name one at a time and alone, then agents by
// name, Concurrency at once.
func TestOrder(t *testing.T) {
	objs := []runtime.Object{agent("a3"), agent("a1"), server("s2"), agent("a2"), server("s1")}
	e := newEnv(t, objs, planObj("v2", 1, t0, func(s *upgradeapi.PlanSpec) { s.Concurrency = 2 }))
	e.sync()
	want(t, "order in the status", e.phases("v2"), "s1=downloading s2=waiting a1=waiting a2=waiting a3=waiting")
	for _, step := range []struct{ finish, then string }{
		{"", "s1"},
		{"s1", "s2"},
		{"s2", "a1 a2"},
		{"a2", "a1 a3"},
		{"a1", "a3"},
		{"a3", ""},
	} {
		if step.finish != "" {
			for _, n := range strings.Fields(step.finish) {
				e.finish(n)
			}
			e.sync()
		}
		want(t, "in progress after "+step.finish, e.inProgress(), step.then)
	}
	st := e.status("v2")
	want(t, "phase", st.Phase, upgradeapi.PlanDone)
	want(t, "done/total", [2]int{st.Done, st.Total}, [2]int{5, 5})
}

// TestServersAlone: an agent in progress (a plan changed under it) holds
// the first server back until it is done.
func TestServersAlone(t *testing.T) {
	objs := []runtime.Object{server("s1"), agent("a1", requestedBy(agentReq("v2", 1)))}
	p := planObj("v2", 1, t0, nil)
	setStatus(p, Status{ObservedGeneration: 1, PlanStatus: upgradeapi.PlanStatus{Phase: upgradeapi.PlanRolling,
		Nodes: []upgradeapi.NodeProgress{recRequested("a1", agentReq("v2", 1))}}})
	e := newEnv(t, objs, p)
	e.sync()
	want(t, "in progress", e.inProgress(), "a1")
	e.finish("a1")
	e.sync()
	want(t, "in progress", e.inProgress(), "s1")
}

// TestNotReady: a server not Ready holds everything; an agent not Ready
// holds no server, and counts as one in progress against concurrency.
func TestNotReady(t *testing.T) {
	objs := []runtime.Object{server("s1"), agent("a1"), agent("a2"), agent("a3", notReady)}
	e := newEnv(t, objs, planObj("v2", 1, t0, func(s *upgradeapi.PlanSpec) { s.Concurrency = 2 }))
	e.sync()
	want(t, "in progress", e.inProgress(), "s1")
	// The server rebooting: no agent starts, though the servers are all
	// in.
	e.answer("s1", upgradeapi.PhaseRebooting, "")
	e.setReady("s1", false)
	e.sync()
	want(t, "in progress", e.inProgress(), "s1")
	want(t, "message", e.status("v2").Message, "s1 rebooting; waiting for node s1 to be Ready")
	e.setReady("s1", true)
	e.finish("s1")
	e.sync()
	// a3, not Ready, takes one of the two places.
	want(t, "in progress", e.inProgress(), "a1")
	e.sync()
	want(t, "in progress", e.inProgress(), "a1")
	want(t, "message", e.status("v2").Message, "a1 downloading; waiting for node a3 to be Ready")
	e.finish("a1")
	e.sync()
	want(t, "in progress", e.inProgress(), "a2")
	want(t, "message", e.status("v2").Message, "a2 downloading; waiting for node a3 to be Ready")
	e.setReady("a3", true)
	e.sync()
	want(t, "in progress", e.inProgress(), "a2 a3")
	// a2 rebooting counts once: nothing more to start anyway.
	e.answer("a2", upgradeapi.PhaseRebooting, "")
	e.setReady("a2", false)
	e.finish("a3")
	e.sync()
	want(t, "in progress", e.inProgress(), "a2")
	e.setReady("a2", true)
	e.finish("a2")
	e.sync()
	want(t, "phase", e.status("v2").Phase, upgradeapi.PlanDone)
}

// TestFailedStops: a node that fails stops the plan; it is uncordoned
// and no other node starts, pass after pass.
func TestFailedStops(t *testing.T) {
	objs := []runtime.Object{agent("a1"), agent("a2"), agent("a3")}
	e := newEnv(t, objs, planObj("v2", 1, t0, func(s *upgradeapi.PlanSpec) { s.Concurrency = 2 }))
	e.sync()
	want(t, "in progress", e.inProgress(), "a1 a2")
	e.answer("a1", upgradeapi.PhaseFailed, "artifact signed by another key")
	e.sync()
	st := e.status("v2")
	want(t, "phase", st.Phase, upgradeapi.PlanFailed)
	want(t, "message", st.Message, "node a1 failed: artifact signed by another key")
	want(t, "a1 uncordoned", e.node("a1").Spec.Unschedulable, false)
	// a2, already asked, finishes; a3 never starts.
	want(t, "in progress", e.inProgress(), "a2")
	e.finish("a2")
	for range 3 {
		e.sync()
	}
	want(t, "in progress", e.inProgress(), "")
	want(t, "a2 uncordoned", e.node("a2").Spec.Unschedulable, false)
	want(t, "nodes", e.phases("v2"), "a1=failed a2=done a3=waiting")
	st = e.status("v2")
	want(t, "phase", st.Phase, upgradeapi.PlanFailed)
	want(t, "message", st.Message, "node a1 failed: artifact signed by another key")
	want(t, "events", strings.Join(e.events(), ", "), "Node/a1 UpgradeFailed, Node/a1 UpgradeStarted, Node/a2 UpgradeDone, Node/a2 UpgradeStarted, "+
		"UpgradePlan/v2 UpgradeDone, UpgradePlan/v2 UpgradeFailed, UpgradePlan/v2 UpgradeStarted, UpgradePlan/v2 UpgradeStarted")
}

// TestRolledBackStops: a server that came back on its old slot stops the
// plan and is uncordoned; the agents do not start.
func TestRolledBackStops(t *testing.T) {
	objs := []runtime.Object{server("s1"), agent("a1")}
	e := newEnv(t, objs, planObj("v2", 1, t0, nil))
	e.sync()
	want(t, "in progress", e.inProgress(), "s1")
	e.answer("s1", upgradeapi.PhaseRebooting, "")
	e.setReady("s1", false)
	e.sync()
	e.setReady("s1", true)
	e.answer("s1", upgradeapi.PhaseRolledBack, "slot B never reached node-ready")
	e.sync()
	e.sync()
	st := e.status("v2")
	want(t, "phase", st.Phase, upgradeapi.PlanFailed)
	want(t, "message", st.Message, "node s1 rolled back: slot B never reached node-ready")
	n := e.node("s1")
	want(t, "s1 uncordoned", n.Spec.Unschedulable, false)
	want(t, "s1's cordon mark", n.Annotations[CordonedKey], "")
	want(t, "in progress", e.inProgress(), "")
	want(t, "nodes", e.phases("v2"), "s1=rolled-back a1=waiting")
	if ev := e.events(); !slices.Contains(ev, "Node/s1 UpgradeRolledBack") || !slices.Contains(ev, "UpgradePlan/v2 UpgradeRolledBack") {
		t.Errorf("events %v", ev)
	}
}

// TestDrainBudget: an eviction a PodDisruptionBudget refuses is asked
// again each pass until the drain timeout, which fails the node.
func TestDrainBudget(t *testing.T) {
	objs := []runtime.Object{agent("a1"), agent("a2"),
		pod("default", "web-1", "a1", ownedBy("ReplicaSet")), pod("default", "web-2", "a1", ownedBy("ReplicaSet"))}
	e := newEnv(t, objs, planObj("v2", 1, t0, func(s *upgradeapi.PlanSpec) {
		s.DrainTimeout = &metav1.Duration{Duration: 3 * time.Minute}
	}))
	e.refuse["default/web-1"] = true
	e.sync()
	want(t, "in progress", e.inProgress(), "a1(draining)")
	for range 2 {
		e.now = e.now.Add(time.Minute)
		e.sync()
	}
	want(t, "web-1 asked each pass", strings.Count(strings.Join(e.evictions, " "), "default/web-1"), 3)
	want(t, "web-2 evicted once", strings.Count(strings.Join(e.evictions, " "), "default/web-2"), 1)
	want(t, "nodes", e.phases("v2"), "a1=draining a2=waiting")
	e.now = e.now.Add(time.Minute)
	e.sync()
	st := e.status("v2")
	want(t, "phase", st.Phase, upgradeapi.PlanFailed)
	want(t, "message", st.Message, "node a1 failed: drain: not done after 3m0s: default/web-1: Cannot evict pod as it would violate the pod's disruption budget.")
	n := e.node("a1")
	want(t, "a1 uncordoned", n.Spec.Unschedulable, false)
	if _, ok := requestOf(n); ok {
		t.Error("a node that did not drain was asked to upgrade")
	}
	want(t, "in progress", e.inProgress(), "")
	e.now = e.now.Add(time.Hour)
	e.sync()
	want(t, "in progress", e.inProgress(), "")

	// The plan changed (a longer timeout): the drain is tried again.
	e.refuse["default/web-1"] = false
	e.updatePlan("v2", 2, func(s *upgradeapi.PlanSpec) { s.DrainTimeout = &metav1.Duration{Duration: 30 * time.Minute} })
	e.sync()
	e.sync()
	want(t, "phase", e.status("v2").Phase, upgradeapi.PlanRolling)
	want(t, "in progress", e.inProgress(), "a1")
}

// TestPlanChanged: a new generation with another artifact asks again a
// node in progress, and upgrades again a node done; one that changes
// nothing of a node's artifact does not redo it.
func TestPlanChanged(t *testing.T) {
	objs := []runtime.Object{server("s1"), server("s2"), agent("a1")}
	e := newEnv(t, objs, planObj("v2", 1, t0, nil))
	e.sync()
	e.finish("s1")
	e.sync()
	want(t, "in progress", e.inProgress(), "s2")
	e.answer("s2", upgradeapi.PhaseDownloading, "")

	// Another concurrency: generation 2, same artifacts.
	e.updatePlan("v2", 2, func(s *upgradeapi.PlanSpec) { s.Concurrency = 3 })
	e.sync()
	want(t, "s2's request", must(requestOf(e.node("s2"))).Generation, int64(2))
	want(t, "nodes", e.phases("v2"), "s1=done s2=downloading a1=waiting")

	// Another server artifact: s2 asked for it at once, s1 again in turn.
	e.updatePlan("v2", 3, func(s *upgradeapi.PlanSpec) { s.Server.SHA256 = shaServer2 })
	e.sync()
	r := must(requestOf(e.node("s2")))
	want(t, "s2's request", [2]any{r.Generation, r.SHA256}, [2]any{int64(3), shaServer2})
	want(t, "nodes", e.phases("v2"), "s1=waiting s2=downloading a1=waiting")
	e.finish("s2")
	e.sync()
	want(t, "in progress", e.inProgress(), "s1")
	want(t, "s1's request", must(requestOf(e.node("s1"))).SHA256, shaServer2)
}

func must[T any](v T, ok bool) T {
	if !ok {
		panic("missing")
	}
	return v
}

// TestSelection: a node whose role has no artifact, or that the selector
// leaves out, is not selected.
func TestSelection(t *testing.T) {
	objs := []runtime.Object{server("s1"), agent("a1", label("pool", "gpu")), agent("a2", label("pool", "cpu")), agent("a3")}
	e := newEnv(t, objs,
		planObj("agents", 1, t0, func(s *upgradeapi.PlanSpec) {
			s.Server = nil
			s.NodeSelector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
				{Key: "pool", Operator: metav1.LabelSelectorOpIn, Values: []string{"gpu", "cpu"}}}}
		}))
	e.sync()
	want(t, "nodes", e.phases("agents"), "a1=downloading a2=waiting")
	want(t, "total", e.status("agents").Total, 2)
}

// TestEmptyPlan: nothing selected is done at once.
func TestEmptyPlan(t *testing.T) {
	e := newEnv(t, []runtime.Object{agent("a1")}, planObj("servers", 1, t0, func(s *upgradeapi.PlanSpec) { s.Agent = nil }))
	e.sync()
	st := e.status("servers")
	want(t, "phase", st.Phase, upgradeapi.PlanDone)
	want(t, "message", st.Message, "no node selected")
}

// TestUserCordon: a node an administrator cordoned is upgraded, and left
// cordoned.
func TestUserCordon(t *testing.T) {
	e := newEnv(t, []runtime.Object{agent("a1", cordoned)}, planObj("v2", 1, t0, nil))
	e.sync()
	want(t, "cordon mark", e.node("a1").Annotations[CordonedKey], "")
	e.finish("a1")
	e.sync()
	want(t, "phase", e.status("v2").Phase, upgradeapi.PlanDone)
	want(t, "still cordoned", e.node("a1").Spec.Unschedulable, true)
}

// TestDeletePlan: deleting a plan stops it. A node draining is
// uncordoned at once; a node at work on its request finishes cordoned,
// and is released when it says it is done. The plan (its finalizer)
// stays until then, with its records: a later plan waits for that node.
func TestDeletePlan(t *testing.T) {
	objs := []runtime.Object{agent("a1"), agent("a2"), agent("a3", label("pool", "x")), pod("default", "web-1", "a2", ownedBy("ReplicaSet"))}
	e := newEnv(t, objs, planObj("v2", 1, t0, func(s *upgradeapi.PlanSpec) {
		s.Concurrency = 2
		s.NodeSelector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "pool", Operator: metav1.LabelSelectorOpDoesNotExist}}}
	}), planObj("v3", 1, t0.Add(time.Hour), func(s *upgradeapi.PlanSpec) {
		s.Server = nil
		s.NodeSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"pool": "x"}}
	}))
	e.refuse["default/web-1"] = true
	e.sync()
	want(t, "in progress", e.inProgress(), "a1 a2(draining)")
	want(t, "finalizer", strings.Join(e.finalizers("v2"), " "), Finalizer)
	e.answer("a1", upgradeapi.PhaseWriting, "")
	e.deletePlan("v2")
	e.sync()
	want(t, "in progress", e.inProgress(), "a1")
	want(t, "a2 uncordoned", e.node("a2").Spec.Unschedulable, false)
	want(t, "a1 still cordoned", e.node("a1").Spec.Unschedulable, true)
	want(t, "v2 kept", e.planExists("v2"), true)
	want(t, "v2", e.status("v2").Message, "deleted; finishing: a1 writing")
	want(t, "v3", e.status("v3").Message, "waiting for node a1 (plan v2)")
	e.finish("a1")
	e.sync()
	want(t, "v2 gone", e.planExists("v2"), false)
	want(t, "a1 uncordoned", e.node("a1").Spec.Unschedulable, false)
	if _, ok := requestOf(e.node("a1")); ok {
		t.Error("a1's request left")
	}
	want(t, "in progress", e.inProgress(), "a3")
}

// TestDeletePlanNotTakenUp: a request the node has not taken up yet is
// withdrawn with the plan.
func TestDeletePlanNotTakenUp(t *testing.T) {
	e := newEnv(t, []runtime.Object{agent("a1")}, planObj("v2", 1, t0, nil))
	e.sync()
	want(t, "in progress", e.inProgress(), "a1")
	e.deletePlan("v2")
	e.sync()
	want(t, "in progress", e.inProgress(), "")
	want(t, "a1 uncordoned", e.node("a1").Spec.Unschedulable, false)
	want(t, "v2 gone", e.planExists("v2"), false)
}

// TestPlansInOrder: one plan rolls at a time, the oldest first; a done
// plan stays done when a later one moves its nodes on.
func TestPlansInOrder(t *testing.T) {
	objs := []runtime.Object{agent("a1")}
	e := newEnv(t, objs,
		planObj("v3", 1, t0.Add(time.Hour), func(s *upgradeapi.PlanSpec) { s.Agent.SHA256 = shaServer2 }),
		planObj("v2", 1, t0, nil))
	e.sync()
	want(t, "v3", e.status("v3").Message, "waits for plan v2")
	want(t, "v3 phase", e.status("v3").Phase, "")
	want(t, "a1's request", must(requestOf(e.node("a1"))).Plan, "v2")
	e.finish("a1")
	e.sync()
	want(t, "v2", e.status("v2").Phase, upgradeapi.PlanDone)
	want(t, "a1's request", must(requestOf(e.node("a1"))).Plan, "v3")
	e.finish("a1")
	for range 3 {
		e.sync()
	}
	want(t, "v3", e.status("v3").Phase, upgradeapi.PlanDone)
	want(t, "v2", e.status("v2").Phase, upgradeapi.PlanDone)
	want(t, "in progress", e.inProgress(), "")
}

// TestFailedPlanHolds: a failed plan holds the later ones back.
func TestFailedPlanHolds(t *testing.T) {
	e := newEnv(t, []runtime.Object{agent("a1")},
		planObj("v2", 1, t0, nil), planObj("v3", 1, t0.Add(time.Hour), nil))
	e.sync()
	e.answer("a1", upgradeapi.PhaseFailed, "no space")
	e.sync()
	e.sync()
	want(t, "v2", e.status("v2").Phase, upgradeapi.PlanFailed)
	want(t, "v3", e.status("v3").Message, "waits for plan v2")
	want(t, "in progress", e.inProgress(), "")
}

// TestRecreatedPlan: the answer to a plan of the same name deleted
// before is not this plan's: the node is asked again, and that old
// answer removed for the node not to take it for the new one's.
func TestRecreatedPlan(t *testing.T) {
	old := agentReq("v2", 1)
	e := newEnv(t, []runtime.Object{agent("a1", answered(old, upgradeapi.PhaseRolledBack, "bad image", t0))},
		planObj("v2", 1, t0.Add(time.Hour), nil))
	e.sync()
	want(t, "phase", e.status("v2").Phase, upgradeapi.PlanRolling)
	n := e.node("a1")
	want(t, "request", must(requestOf(n)), old)
	if _, ok := n.Annotations[upgradeapi.StatusKey]; ok {
		t.Error("the old answer is left")
	}
}

// TestRun: the loop over informers passes when a Node changes.
func TestRun(t *testing.T) {
	e := newEnv(t, []runtime.Object{agent("a1")}, planObj("v2", 1, t0, nil))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error)
	go func() { done <- e.c.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for e.inProgress() != "a1" {
		if time.Now().After(deadline) {
			t.Fatal("a1 not started")
		}
		time.Sleep(50 * time.Millisecond)
	}
	e.finish("a1")
	for e.status("v2").Phase != upgradeapi.PlanDone {
		if time.Now().After(deadline) {
			t.Fatal("a1's done not seen")
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestEvicted(t *testing.T) {
	for _, tc := range []struct {
		pod  *corev1.Pod
		want bool
	}{
		{pod("a", "rs", "n", ownedBy("ReplicaSet")), true},
		{pod("a", "bare", "n"), true},
		{pod("a", "ds", "n", ownedBy("DaemonSet")), false},
		{pod("a", "static", "n", mirror), false},
	} {
		want(t, tc.pod.Name, Evicted(tc.pod), tc.want)
	}
}

// TestRecordedFirst: a step on a node is taken only once the plan's
// status records it. A status the apiserver refuses (another leader
// wrote first) leaves the node untouched; the next pass does it.
func TestRecordedFirst(t *testing.T) {
	e := newEnv(t, []runtime.Object{agent("a1")}, planObj("v2", 1, t0, nil))
	refuse := true
	e.dyn.PrependReactor("update", "upgradeplans", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() == "status" && refuse {
			return true, nil, apierrors.NewConflict(crds.UpgradePlan.GroupResource(), "v2", errors.New("the object has been modified"))
		}
		return false, nil, nil
	})
	if _, err := e.c.Sync(context.Background()); err == nil {
		t.Error("a refused status was not an error")
	}
	n := e.node("a1")
	want(t, "cordoned", n.Spec.Unschedulable, false)
	if _, ok := requestOf(n); ok {
		t.Error("requested unrecorded")
	}
	refuse = false
	e.sync()
	want(t, "in progress", e.inProgress(), "a1")
	want(t, "recorded", lines(e.status("v2")), "a1=downloading(requested)")
}

// TestNodeWritesItsOwn: what a node writes on its own Node (its kubelet
// may) is not the controller's word. An answer to a request never made
// neither ends the node's turn nor fails the plan; a request, a cordon
// mark or an old drain record no plan recorded is taken off.
func TestNodeWritesItsOwn(t *testing.T) {
	areq := agentReq("v2", 1)
	objs := []runtime.Object{
		agent("a1", answered(areq, upgradeapi.PhaseDone, "", t0.Add(48*time.Hour))),
		agent("a2", answered(areq, upgradeapi.PhaseFailed, "forged", t0.Add(48*time.Hour))),
		agent("a3", annotate(upgradeapi.RequestKey, areq), annotate(CordonedKey, "true"), cordoned,
			annotate("upgrade.rke2os.io/drain", `{"plan":"v2","generation":1,"failed":"drain: forged"}`)),
	}
	e := newEnv(t, objs, planObj("v2", 1, t0, nil))
	e.sync()
	st := e.status("v2")
	want(t, "phase", st.Phase, upgradeapi.PlanRolling)
	want(t, "lines", lines(st), "a1=downloading(requested) a2=waiting a3=waiting")
	want(t, "in progress", e.inProgress(), "a1")
	n := e.node("a3")
	if _, ok := requestOf(n); ok {
		t.Error("a3's own request left")
	}
	want(t, "a3 uncordoned", n.Spec.Unschedulable, false)
	// a1's own answer was removed when it was asked: it must answer.
	if _, ok := e.node("a1").Annotations[upgradeapi.StatusKey]; ok {
		t.Error("a1's unasked answer left")
	}
	e.sync()
	want(t, "phase", e.status("v2").Phase, upgradeapi.PlanRolling)
	e.finish("a1")
	e.sync()
	want(t, "in progress", e.inProgress(), "a2")
	want(t, "phase", e.status("v2").Phase, upgradeapi.PlanRolling)
}
