package upgradectl

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/rke2os/rke2os/init/rke2node/upgradeapi"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
)

// The roles, as the plan's status names them.
const (
	RoleServer = "server"
	RoleAgent  = "agent"
)

// Defaults of a plan's spec.
const (
	DefaultConcurrency  = 1
	DefaultDrainTimeout = 10 * time.Minute
)

// plan is an UpgradePlan as one pass sees it: its spec and the status it
// had, which the pass compares its own with.
type plan struct {
	upgradeapi.UpgradePlan
	status Status
	obj    *unstructured.Unstructured // as read, for the status update
}

// state is where a node stands in a plan.
type state int

const (
	waiting   state = iota // not started for this plan's request
	draining               // cordoned, pods being evicted (DrainKey)
	requested              // drained, RequestKey set, the node at work
	done                   // the node runs the plan's artifact
	failed                 // the node failed or rolled back this request
)

// nodeView is one selected node in one plan.
type nodeView struct {
	node  *corev1.Node
	role  string
	req   upgradeapi.Request // what the plan asks of it
	state state
	// phase and reason are its line in the plan's status.
	phase, reason string
	ready         bool
	// cur is the node's RequestKey when it is this plan's (nil if not);
	// drain its DrainKey when this plan's.
	cur   *upgradeapi.Request
	drain *drainRecord
	// keepDrain: drain records the failed drain of the current request,
	// the plan's evidence of it; releasing the node leaves it.
	keepDrain bool
	// busyWith names another plan whose request or drain is on the node:
	// it does not start for this one until that is over.
	busyWith string
}

// kind of a node action.
type kind int

const (
	actStart   kind = iota // cordon, record the drain's start
	actDrain               // evict; drained: set RequestKey; too long: fail
	actRequest             // set RequestKey (the plan changed)
	actRelease             // uncordon what we cordoned, remove our annotations
)

func (k kind) String() string {
	return [...]string{"start", "drain", "request", "release"}[k]
}

// action is one thing a pass does to one Node.
type action struct {
	kind kind
	node string
	plan string
	req  upgradeapi.Request // start, drain, request
	// since and timeout bound a drain.
	since   time.Time
	timeout time.Duration
	// keepDrain: release leaves the DrainKey (a failed drain, kept as
	// the plan's evidence).
	keepDrain bool
}

func (a action) String() string { return fmt.Sprintf("%s %s (plan %s)", a.kind, a.node, a.plan) }

// event is a Kubernetes Event the pass emits, on the Node and the plan.
type event struct {
	node, plan      string
	warning         bool
	reason, message string
}

// planResult is what a pass decides for one plan.
type planResult struct {
	plan   *plan
	status Status
	events []event
}

// decision is what a pass decides: each plan's status, and the actions
// on Nodes.
type decision struct {
	plans   []planResult
	actions []action
	// draining: some node drains, whose pods the next pass must look at
	// soon (nothing else tells it they are gone).
	draining bool
}

// decide is the controller's logic, a function of what the API holds:
// the plans, each with the status it has, and the Nodes (their labels,
// Ready condition, cordon and the annotations of the controller and of
// the node). Nothing else is remembered between passes, so a new leader,
// or this one after its own node rebooted, goes on where it was.
func decide(now time.Time, plans []*plan, nodes []*corev1.Node) decision {
	plans = slices.Clone(plans)
	slices.SortStableFunc(plans, func(a, b *plan) int {
		return cmp.Or(a.CreationTimestamp.Compare(b.CreationTimestamp.Time), cmp.Compare(a.Name, b.Name))
	})
	nodes = slices.Clone(nodes)
	slices.SortFunc(nodes, func(a, b *corev1.Node) int { return cmp.Compare(a.Name, b.Name) })

	views := make([][]nodeView, len(plans))
	errs := make([]error, len(plans))
	// claimed: node -> plan whose markers on it are accounted for by a
	// plan that selects it.
	claimed := map[string]bool{}
	for i, p := range plans {
		views[i], errs[i] = p.view(nodes)
		for _, v := range views[i] {
			claimed[v.node.Name+"\x00"+p.Name] = true
		}
	}

	var d decision
	// Markers of a plan that is gone, or that no longer selects the node:
	// released, except for a node whose upgrade is under way (it finishes
	// what it started, cordoned, and is released once it says how it
	// ended). busy are the nodes in progress, whoever's.
	busy := map[string]string{} // node -> plan
	for _, n := range nodes {
		cur, hasCur := requestOf(n)
		dr, hasDr := drainOf(n)
		switch {
		case hasCur:
			busy[n.Name] = cur.Plan
		case hasDr && dr.Failed == "":
			busy[n.Name] = dr.Plan
		}
		owner := ""
		if hasCur {
			owner = cur.Plan
		} else if hasDr {
			owner = dr.Plan
		}
		if owner == "" || claimed[n.Name+"\x00"+owner] {
			continue
		}
		if hasCur {
			if ns, ok := statusOf(n); ok && ns.For(cur) && !terminal(ns.Phase) && ns.Phase != upgradeapi.PhaseWaiting {
				continue // under way: wait for its end
			}
		}
		delete(busy, n.Name)
		d.actions = append(d.actions, action{kind: actRelease, node: n.Name, plan: owner})
	}

	results := make([]planResult, len(plans))
	for i, p := range plans {
		var releases []action
		results[i], releases = p.assess(views[i], errs[i])
		d.actions = append(d.actions, releases...)
	}
	// The active plan: the oldest with a node in progress, else the
	// oldest not done. A failed plan holds the later ones back until it
	// is changed or deleted.
	active := slices.IndexFunc(views, func(vs []nodeView) bool {
		return slices.ContainsFunc(vs, func(v nodeView) bool { return v.state == draining || v.state == requested })
	})
	if active < 0 {
		active = slices.IndexFunc(results, func(r planResult) bool { return r.status.Phase != upgradeapi.PlanDone })
	}
	for i, p := range plans {
		r := &results[i]
		if r.status.Phase == upgradeapi.PlanRolling && i == active {
			d.actions = append(d.actions, p.turn(now, views[i], busy)...)
			r.status.Message = rollingMessage(views[i], busy, p.Name)
		} else {
			// Drains go on only in the active, rolling plan: a stopped
			// or waiting plan's drains end (the node uncordoned); a node
			// it already asked to upgrade finishes.
			for j, v := range views[i] {
				if v.state == draining {
					d.actions = append(d.actions, action{kind: actRelease, node: v.node.Name, plan: p.Name})
					r.status.Nodes[j].Phase, r.status.Nodes[j].Reason = upgradeapi.PhaseWaiting, ""
				}
			}
			if r.status.Phase == upgradeapi.PlanRolling {
				r.status.Phase = ""
				r.status.Message = "waits for plan " + plans[active].Name
			}
		}
		r.events = transitions(p, r.status)
		d.plans = append(d.plans, *r)
	}
	for _, a := range d.actions {
		if a.kind == actDrain {
			d.draining = true
		}
	}
	return d
}

// view is the plan's selected nodes, in the order they go (servers by
// name, then agents by name), and where each stands.
func (p *plan) view(nodes []*corev1.Node) ([]nodeView, error) {
	sel := labels.Everything()
	if p.Spec.NodeSelector != nil {
		s, err := metav1.LabelSelectorAsSelector(p.Spec.NodeSelector)
		if err != nil {
			return nil, fmt.Errorf("spec.nodeSelector: %w", err)
		}
		sel = s
	}
	sticky := map[string]upgradeapi.NodeProgress{}
	if p.status.ObservedGeneration == p.Generation {
		for _, np := range p.status.Nodes {
			if np.Phase == upgradeapi.PhaseDone || np.Phase == upgradeapi.PhaseFailed || np.Phase == upgradeapi.PhaseRolledBack {
				sticky[np.Name] = np
			}
		}
	}
	var out []nodeView
	for _, n := range nodes {
		role := Role(n)
		art := p.Spec.Agent
		if role == RoleServer {
			art = p.Spec.Server
		}
		if art == nil || !sel.Matches(labels.Set(n.Labels)) {
			continue
		}
		v := nodeView{node: n, role: role, ready: Ready(n),
			req: upgradeapi.Request{Plan: p.Name, Generation: p.Generation, Artifact: *art}}
		v.evaluate(p, sticky[n.Name])
		out = append(out, v)
	}
	slices.SortStableFunc(out, func(a, b nodeView) int {
		if a.role != b.role {
			if a.role == RoleServer {
				return -1
			}
			return 1
		}
		return cmp.Compare(a.node.Name, b.node.Name)
	})
	return out, nil
}

// evaluate sets where the node stands: from what the plan's status said
// of this generation (a node done or failed stays so), then from the
// node's answer, then from the controller's own annotations.
func (v *nodeView) evaluate(p *plan, sticky upgradeapi.NodeProgress) {
	n := v.node
	ns, hasNS := statusOf(n)
	if cur, ok := requestOf(n); ok {
		if cur.Plan == p.Name {
			v.cur = &cur
		} else {
			v.busyWith = cur.Plan
		}
	}
	if dr, ok := drainOf(n); ok {
		if dr.Plan == p.Name {
			v.drain = &dr
			v.keepDrain = dr.Failed != "" && dr.Request == v.req
		} else if dr.Failed == "" && v.busyWith == "" {
			v.busyWith = dr.Plan
		}
	}
	// An answer older than the plan is of an earlier plan of that name.
	fresh := hasNS && !ns.Time.Time.Before(p.CreationTimestamp.Time.Truncate(time.Second))
	switch {
	case sticky.Phase == upgradeapi.PhaseDone:
		v.state, v.phase, v.reason = done, sticky.Phase, sticky.Reason
	case sticky.Phase != "":
		v.state, v.phase, v.reason = failed, sticky.Phase, sticky.Reason
	// Done: the node runs the plan's artifact for its role, whichever
	// generation asked for it (a plan changed in other ways does not
	// redo it).
	case hasNS && ns.Phase == upgradeapi.PhaseDone && ns.Plan == p.Name && ns.SHA256 == v.req.SHA256:
		v.state, v.phase, v.reason = done, upgradeapi.PhaseDone, ns.Reason
	case hasNS && fresh && ns.For(v.req) && (ns.Phase == upgradeapi.PhaseFailed || ns.Phase == upgradeapi.PhaseRolledBack):
		v.state, v.phase, v.reason = failed, ns.Phase, ns.Reason
	case v.keepDrain:
		v.state, v.phase, v.reason = failed, upgradeapi.PhaseFailed, v.drain.Failed
	case v.cur != nil:
		v.state = requested
		if hasNS && ns.For(*v.cur) && !terminal(ns.Phase) {
			v.phase, v.reason = ns.Phase, ns.Reason
		} else {
			v.phase, v.reason = upgradeapi.PhaseDownloading, "requested; the node has not taken it up yet"
		}
	case v.drain != nil && v.drain.Failed == "":
		v.state, v.phase = draining, upgradeapi.PhaseDraining
		v.reason = "since " + v.drain.Since.UTC().Format(time.RFC3339)
	default:
		v.state, v.phase = waiting, upgradeapi.PhaseWaiting
		if v.busyWith != "" {
			v.reason = "busy with plan " + v.busyWith
		}
	}
}

// assess is the plan's status from its nodes, Rolling if it is neither
// done nor failed, and the releases of its nodes that are over.
func (p *plan) assess(views []nodeView, err error) (planResult, []action) {
	st := Status{ObservedGeneration: p.Generation}
	if err != nil {
		st.Phase, st.Message = upgradeapi.PlanFailed, err.Error()
		return planResult{plan: p, status: st}, nil
	}
	st.Total = len(views)
	var acts []action
	var firstFailed *nodeView
	for i, v := range views {
		switch v.state {
		case done:
			st.Done++
		case failed:
			if firstFailed == nil {
				firstFailed = &views[i]
			}
		}
		// A node done or failed keeps nothing of ours: uncordoned (a
		// failed or rolled-back node is back on its old, working slot),
		// its request removed.
		if (v.state == done || v.state == failed) && (v.cur != nil || (v.drain != nil && !v.keepDrain)) {
			acts = append(acts, action{kind: actRelease, node: v.node.Name, plan: p.Name, keepDrain: v.keepDrain})
		}
		st.Nodes = append(st.Nodes, upgradeapi.NodeProgress{Name: v.node.Name, Role: v.role, Phase: v.phase,
			Reason: v.reason, OSImage: v.node.Status.NodeInfo.OSImage})
	}
	switch {
	case p.status.ObservedGeneration == p.Generation && p.status.Phase == upgradeapi.PlanFailed:
		// Failed stays, whatever became of the node since, until the
		// plan is changed.
		st.Phase, st.Message = upgradeapi.PlanFailed, p.status.Message
	case firstFailed != nil:
		st.Phase = upgradeapi.PlanFailed
		what := "failed"
		if firstFailed.phase == upgradeapi.PhaseRolledBack {
			what = "rolled back"
		}
		st.Message = fmt.Sprintf("node %s %s: %s", firstFailed.node.Name, what, cmp.Or(firstFailed.reason, "no reason given"))
	case st.Done == st.Total:
		st.Phase = upgradeapi.PlanDone
		if st.Total == 0 {
			st.Message = "no node selected"
		}
	default:
		st.Phase = upgradeapi.PlanRolling
	}
	return planResult{plan: p, status: st}, acts
}

// turn is what the rolling plan does next: drains go on, a changed plan
// is asked for again, and nodes start in turn. Servers go one at a time
// and alone; agents once every server is done, Concurrency at once.
// Nothing starts while a selected node is not Ready (a server and an
// agent are never both down), nor while a node is in progress for
// another plan.
func (p *plan) turn(now time.Time, views []nodeView, busy map[string]string) []action {
	var acts []action
	inProgress := 0
	for _, v := range views {
		switch v.state {
		case draining:
			inProgress++
			acts = append(acts, action{kind: actDrain, node: v.node.Name, plan: p.Name, req: v.req,
				since: v.drain.Since.Time, timeout: p.drainTimeout()})
		case requested:
			inProgress++
			if *v.cur != v.req {
				acts = append(acts, action{kind: actRequest, node: v.node.Name, plan: p.Name, req: v.req})
			}
		}
	}
	for _, owner := range busy {
		if owner != p.Name {
			return acts
		}
	}
	for _, v := range views {
		if !v.ready {
			return acts
		}
	}
	start := func(v nodeView) {
		acts = append(acts, action{kind: actStart, node: v.node.Name, plan: p.Name, req: v.req, since: now})
	}
	for _, v := range views {
		if v.role == RoleServer && v.state != done {
			// The first server not done: it starts when nothing else
			// is in progress; no agent goes before it.
			if v.state == waiting && inProgress == 0 && v.busyWith == "" {
				start(v)
			}
			return acts
		}
	}
	limit := max(p.Spec.Concurrency, DefaultConcurrency)
	for _, v := range views {
		if inProgress >= limit {
			break
		}
		if v.state == waiting && v.busyWith == "" {
			start(v)
			inProgress++
		}
	}
	return acts
}

// rollingMessage says what a rolling plan is doing or waiting for.
func rollingMessage(views []nodeView, busy map[string]string, self string) string {
	var doing []string
	for _, v := range views {
		if v.state == draining || v.state == requested {
			doing = append(doing, fmt.Sprintf("%s %s", v.node.Name, v.phase))
		}
	}
	var waits []string
	for _, v := range views {
		if !v.ready {
			waits = append(waits, "node "+v.node.Name+" to be Ready")
			break
		}
	}
	var others []string
	for n, owner := range busy {
		if owner != self {
			others = append(others, fmt.Sprintf("node %s (plan %s)", n, owner))
		}
	}
	slices.Sort(others)
	waits = append(waits, others...)
	var parts []string
	if len(doing) > 0 {
		parts = append(parts, strings.Join(doing, ", "))
	}
	if len(waits) > 0 {
		parts = append(parts, "waiting for "+strings.Join(waits, ", "))
	}
	return strings.Join(parts, "; ")
}

// transitions are the events of a node's upgrade ending, seen as the
// change from the plan's status to the new one: a node that was in
// progress and is now done, failed or rolled back. The status is in the
// API, so a new leader does not say it twice.
func transitions(p *plan, st Status) []event {
	was := map[string]string{}
	for _, np := range p.status.Nodes {
		was[np.Name] = np.Phase
	}
	var out []event
	for _, np := range st.Nodes {
		prev := was[np.Name]
		if prev == np.Phase || !inProgress(prev) {
			continue
		}
		switch np.Phase {
		case upgradeapi.PhaseDone:
			out = append(out, event{node: np.Name, plan: p.Name, reason: "UpgradeDone",
				message: fmt.Sprintf("Node %s upgraded by plan %s: %s", np.Name, p.Name, cmp.Or(np.OSImage, "done"))})
		case upgradeapi.PhaseFailed:
			out = append(out, event{node: np.Name, plan: p.Name, warning: true, reason: "UpgradeFailed",
				message: fmt.Sprintf("Node %s failed plan %s: %s", np.Name, p.Name, np.Reason)})
		case upgradeapi.PhaseRolledBack:
			out = append(out, event{node: np.Name, plan: p.Name, warning: true, reason: "UpgradeRolledBack",
				message: fmt.Sprintf("Node %s rolled back from plan %s: %s", np.Name, p.Name, np.Reason)})
		}
	}
	return out
}

// inProgress: a node phase between its start and its end.
func inProgress(phase string) bool {
	switch phase {
	case upgradeapi.PhaseDraining, upgradeapi.PhaseDownloading, upgradeapi.PhaseWriting, upgradeapi.PhaseRebooting:
		return true
	}
	return false
}

// terminal: a node phase that ends a request.
func terminal(phase string) bool {
	switch phase {
	case upgradeapi.PhaseDone, upgradeapi.PhaseFailed, upgradeapi.PhaseRolledBack:
		return true
	}
	return false
}

func (p *plan) drainTimeout() time.Duration {
	if p.Spec.DrainTimeout != nil && p.Spec.DrainTimeout.Duration > 0 {
		return p.Spec.DrainTimeout.Duration
	}
	return DefaultDrainTimeout
}

// Role is a Node's role: a server carries RKE2's control-plane or etcd
// role label (rke2-node server sets them on its Node), an agent neither.
func Role(n *corev1.Node) string {
	for _, k := range []string{"node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/etcd"} {
		if _, ok := n.Labels[k]; ok {
			return RoleServer
		}
	}
	return RoleAgent
}

// Ready reports whether the Node's Ready condition is True.
func Ready(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// maxStatus bounds a node's answer: a node writes it, and any kubelet
// identity may write one on its own Node; more is not read.
const maxStatus = 16 << 10

// maxReason bounds a node's reason as the plan's status and the events
// carry it: a few answers as long as an annotation allows would push the
// UpgradePlan past what etcd stores, and no status would be written.
const maxReason = 512

// statusOf is the node's answer (StatusKey), if it has a readable one,
// its reason shortened and without control characters.
func statusOf(n *corev1.Node) (upgradeapi.NodeStatus, bool) {
	var s upgradeapi.NodeStatus
	if len(n.Annotations[upgradeapi.StatusKey]) > maxStatus || !unmarshal(n, upgradeapi.StatusKey, &s) {
		return upgradeapi.NodeStatus{}, false
	}
	s.Reason = cleanReason(s.Reason)
	return s, true
}

func cleanReason(r string) string {
	r = strings.Map(func(c rune) rune {
		if unicode.IsControl(c) {
			return ' '
		}
		return c
	}, r)
	if len(r) > maxReason {
		r = strings.ToValidUTF8(r[:maxReason], "") + "..."
	}
	return r
}

// requestOf is the controller's request on the node (RequestKey).
func requestOf(n *corev1.Node) (upgradeapi.Request, bool) {
	var r upgradeapi.Request
	return r, unmarshal(n, upgradeapi.RequestKey, &r) && r.Plan != ""
}

// drainOf is the controller's drain record on the node (DrainKey).
func drainOf(n *corev1.Node) (drainRecord, bool) {
	var d drainRecord
	return d, unmarshal(n, DrainKey, &d) && d.Plan != ""
}

func unmarshal(n *corev1.Node, key string, v any) bool {
	s, ok := n.Annotations[key]
	return ok && json.Unmarshal([]byte(s), v) == nil
}
