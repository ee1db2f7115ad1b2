package upgradectl

// The controller's records against what a node may write on its own
// Node, and against edits and deletions of a plan mid-rollout (the
// findings of a review, read as an attacker holding one node's kubelet
// credentials would).

import (
	"context"
	"errors"
	"fmt"
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

func decideActs(d decision) string {
	var acts []string
	for _, a := range d.actions {
		acts = append(acts, fmt.Sprintf("%s %s", a.kind, a.node))
	}
	return strings.Join(acts, ", ")
}

func mustPlan(t *testing.T, name string, gen int64, created time.Time, mod func(*upgradeapi.PlanSpec), st *Status) *plan {
	t.Helper()
	u := planObj(name, gen, created, mod)
	if st != nil {
		setStatus(u, *st)
	}
	p, err := readPlan(u)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// A node's kubelet writes a RequestKey naming a plan that does not
// exist and a StatusKey "downloading" for it, on its own Node. The node
// is not selected by any plan and is not even Ready. No plan records
// such a request: it should be taken off, and the plan should go on.
func TestForgedRequestHoldsNothing(t *testing.T) {
	now := t0.Add(24 * time.Hour)
	ghost := agentReq("ghost", 1)
	evil := agent("evil", notReady, annotate(upgradeapi.RequestKey, ghost), answered(ghost, "downloading", "", now))
	sel := func(s *upgradeapi.PlanSpec) {
		s.NodeSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"pool": "x"}}
	}
	p := mustPlan(t, "v2", 1, t0, sel, nil)
	d := decide(now, []*plan{p}, []*corev1.Node{server("s1", label("pool", "x")), agent("a1", label("pool", "x")), evil}, nil)
	t.Logf("message: %q", d.plans[0].status.Message)
	if got := decideActs(d); !strings.Contains(got, "start s1") || !strings.Contains(got, "release evil") {
		t.Errorf("actions = %q, want s1 started and evil's forged request released", got)
	}
}

// The plan is edited (generation 2, same artifacts: a concurrency
// change) after a node said done for generation 1 and before the
// controller recorded it. README: a node that said done for the plan's
// artifact is not upgraded again after a change that keeps its artifact.
func TestDoneBeforeEditIsDone(t *testing.T) {
	now := t0.Add(24 * time.Hour)
	areq1 := agentReq("v2", 1)
	st := &Status{ObservedGeneration: 1, PlanStatus: upgradeapi.PlanStatus{Phase: upgradeapi.PlanRolling,
		Nodes: []upgradeapi.NodeProgress{recRequested("a1", areq1), recLine("a2", areq1, upgradeapi.PhaseWaiting)}}}
	p := mustPlan(t, "v2", 2, t0, func(s *upgradeapi.PlanSpec) { s.Server = nil; s.Concurrency = 1 }, st)
	d := decide(now, []*plan{p}, []*corev1.Node{agent("a1", requestedBy(areq1), answered(areq1, "done", "", now)), agent("a2")}, nil)
	want(t, "lines", lines(d.plans[0].status), "a1=done a2=draining(recorded)")
	if strings.Contains(decideActs(d), "request a1") {
		t.Errorf("a1, done for this artifact, asked again: %s", decideActs(d))
	}
}

// The done pass's status write is refused (the user's edit of the plan
// came first): the node is not released (uncordoned, its request
// removed) before the status records it done, so the next pass does not
// ask an uncordoned, undrained node to upgrade again.
func TestReleaseOnlyRecorded(t *testing.T) {
	e := newEnv(t, []runtime.Object{agent("a1"), agent("a2")}, planObj("v2", 1, t0, nil))
	e.sync()
	want(t, "in progress", e.inProgress(), "a1")
	e.finish("a1")
	refuse := true
	e.dyn.PrependReactor("update", "upgradeplans", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() == "status" && refuse {
			return true, nil, apierrors.NewConflict(crds.UpgradePlan.GroupResource(), "v2", errors.New("the object has been modified"))
		}
		return false, nil, nil
	})
	_, _ = e.c.Sync(context.Background())
	n := e.node("a1")
	t.Logf("after the refused write: cordoned=%v request=%v", n.Spec.Unschedulable, n.Annotations[upgradeapi.RequestKey] != "")
	refuse = false
	e.updatePlan("v2", 2, func(s *upgradeapi.PlanSpec) { s.Concurrency = 2 })
	e.sync()
	n = e.node("a1")
	if r, ok := requestOf(n); ok {
		t.Errorf("a1 (done) asked again for generation %d; cordoned=%v", r.Generation, n.Spec.Unschedulable)
	}
}

// The plan's nodeSelector is edited to leave out s1 while s1 is
// rebooting into its new slot. README: while a server is upgraded no
// other node is. s2 must not start until s1 says how it ended.
func TestDeselectedServerStillCounts(t *testing.T) {
	now := t0.Add(24 * time.Hour)
	sreq1 := serverReq("v2", 1)
	st := &Status{ObservedGeneration: 1, PlanStatus: upgradeapi.PlanStatus{Phase: upgradeapi.PlanRolling,
		Nodes: []upgradeapi.NodeProgress{recRequested("s1", sreq1)}}}
	sel := func(s *upgradeapi.PlanSpec) {
		s.NodeSelector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "hold", Operator: metav1.LabelSelectorOpDoesNotExist}}}
	}
	p := mustPlan(t, "v2", 2, t0, sel, st)
	nodes := []*corev1.Node{
		server("s1", label("hold", "1"), notReady, requestedBy(sreq1), answered(sreq1, "rebooting", "", now)),
		server("s2"), server("s3"),
	}
	d := decide(now, []*plan{p}, nodes, nil)
	if got := decideActs(d); strings.Contains(got, "start") {
		t.Errorf("actions = %q while s1 reboots: two servers down at once", got)
	}
}

// One Node joined with the agent token that never becomes Ready is
// selected by the oldest plan: that plan never ends, and every later
// plan waits behind it forever (README: it "holds the agents only as far
// as concurrency says").
func TestNotReadyAgentLetsLaterPlansGo(t *testing.T) {
	now := t0.Add(24 * time.Hour)
	sreq, areq := serverReq("old", 1), agentReq("old", 1)
	st := &Status{ObservedGeneration: 1, PlanStatus: upgradeapi.PlanStatus{Phase: upgradeapi.PlanRolling,
		Nodes: []upgradeapi.NodeProgress{recDone("s1", sreq), recDone("a1", areq)}}}
	old := mustPlan(t, "old", 1, t0, nil, st)
	newer := mustPlan(t, "new", 1, t0.Add(time.Hour), func(s *upgradeapi.PlanSpec) {
		s.Agent = nil
		s.Server.SHA256 = shaServer2
	}, nil)
	d := decide(now, []*plan{old, newer}, []*corev1.Node{server("s1"), agent("a1"), agent("fake", notReady)}, nil)
	t.Logf("old: %q; new: %q %q", d.plans[0].status.Message, d.plans[1].status.Phase, d.plans[1].status.Message)
	if !strings.Contains(decideActs(d), "start s1") {
		t.Errorf("a later plan held by a NotReady fake agent of an earlier plan: actions %q", decideActs(d))
	}
}

// An answer of an earlier plan of the same name is on the node when it
// is asked (the start's patch, which removes it, did not land: the drain
// cordoned the node instead): the request's patch removes it, and it is
// not taken for the node's answer.
func TestStaleAnswerClearedAtRequest(t *testing.T) {
	areq := agentReq("v2", 1)
	p := planObj("v2", 1, t0.Add(24*time.Hour), nil)
	setStatus(p, Status{ObservedGeneration: 1, PlanStatus: upgradeapi.PlanStatus{Phase: upgradeapi.PlanRolling,
		Nodes: []upgradeapi.NodeProgress{recDraining("a1", areq)}}})
	e := newEnv(t, []runtime.Object{agent("a1", answered(areq, upgradeapi.PhaseDone, "", t0))}, p)
	e.now = t0.Add(25 * time.Hour)
	e.sync()
	n := e.node("a1")
	want(t, "cordoned", n.Spec.Unschedulable, true)
	if _, ok := n.Annotations[upgradeapi.StatusKey]; ok {
		t.Error("the old answer is left")
	}
	want(t, "lines", lines(e.status("v2")), "a1=downloading(requested)")
	want(t, "request", must(requestOf(n)), areq)
}

// A plan with a node in progress stays the active one (its drain goes
// on) though an older plan is deleted with a node of its own still at
// work, and another older one waits.
func TestInProgressPlanKeepsGoing(t *testing.T) {
	now := t0.Add(24 * time.Hour)
	r1, r2 := agentReq("v1", 1), agentReq("v2", 1)
	v0 := mustPlan(t, "v0", 1, t0, func(s *upgradeapi.PlanSpec) { s.Server = nil }, nil)
	v1 := mustPlan(t, "v1", 1, t0.Add(time.Hour), func(s *upgradeapi.PlanSpec) { s.Server = nil },
		&Status{ObservedGeneration: 1, PlanStatus: upgradeapi.PlanStatus{Phase: upgradeapi.PlanRolling, Nodes: []upgradeapi.NodeProgress{recRequested("a1", r1)}}})
	del := metav1.NewTime(now)
	v1.DeletionTimestamp = &del
	v2 := mustPlan(t, "v2", 1, t0.Add(2*time.Hour), func(s *upgradeapi.PlanSpec) { s.Server = nil },
		&Status{ObservedGeneration: 1, PlanStatus: upgradeapi.PlanStatus{Phase: upgradeapi.PlanRolling, Nodes: []upgradeapi.NodeProgress{recDraining("a2", r2)}}})
	nodes := []*corev1.Node{agent("a1", requestedBy(r1), answered(r1, "writing", "", now)), agent("a2", cordoned, annotate(CordonedKey, "true")), agent("a3")}
	d := decide(now, []*plan{v0, v1, v2}, nodes, nil)
	want(t, "actions", decideActs(d), "drain a2")
	for _, r := range d.plans {
		if r.plan.Name == "v1" {
			want(t, "v1", r.status.Message, "deleted; finishing: a1 writing")
		}
		if r.plan.Name == "v0" {
			want(t, "v0", r.status.Message, "waits for plan v2")
		}
	}
}
