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
	draining               // cordoned, pods being evicted
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
	// since is when its drain began (draining, requested), as the plan's
	// status records it.
	since *metav1.Time
	// cur is the node's RequestKey (nil if none), whichever plan's.
	cur *upgradeapi.Request
	// busyWith names another plan that has the node in progress: it does
	// not start for this one until that is over.
	busyWith string
	// deselected: the plan no longer selects the node (its selector or
	// artifacts changed) while it was at work on the plan's request: it
	// finishes, counted as in progress, not in the plan's total.
	deselected bool
}

func (v *nodeView) inProgress() bool { return v.state == draining || v.state == requested }

// line is the node's line in the plan's status, with the controller's
// records of it.
func (v *nodeView) line() upgradeapi.NodeProgress {
	np := upgradeapi.NodeProgress{Name: v.node.Name, Role: v.role, Phase: v.phase, Reason: v.reason,
		OSImage: v.node.Status.NodeInfo.OSImage, SHA256: v.req.SHA256}
	if v.inProgress() {
		np.DrainSince, np.Requested = v.since, v.state == requested
	}
	return np
}

// drainOutcome is what one step of a node's drain came to in this pass:
// the next round of the pass records it in the plan's status.
type drainOutcome struct {
	plan    string
	drained bool
	failed  string // why the drain failed
}

// kind of a node action.
type kind int

const (
	actStart   kind = iota // cordon (the drain's start is recorded)
	actDrain               // evict; its outcome goes to the next round
	actRequest             // set RequestKey (recorded as requested)
	actRelease             // remove a RequestKey no plan has in progress, uncordon what we cordoned
)

func (k kind) String() string {
	return [...]string{"start", "drain", "request", "release"}[k]
}

// action is one thing a pass does to one Node.
type action struct {
	kind kind
	node string
	plan string             // start, drain, request; release: the plan of the request dropped
	req  upgradeapi.Request // start, drain, request
	// since and timeout bound a drain.
	since   time.Time
	timeout time.Duration
	// dropRequest and uncordon are what a release does.
	dropRequest, uncordon bool
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
// on Nodes, to be taken once the statuses that record them are written.
type decision struct {
	plans   []planResult
	actions []action
	// draining: some node drains, whose pods the next pass must look at
	// soon (nothing else tells it they are gone).
	draining bool
}

// decide is the controller's logic, a function of what the API holds
// and of this pass's drains: the plans, each with the status it has (the
// controller's records of each node), and the Nodes (their labels, Ready
// condition, cordon, request and the node's answer). Nothing else is
// remembered between passes, so a new leader, or this one after its own
// node rebooted, goes on where it was. A node's answer is believed only
// for a request the plan's status records: a node writes its own Node,
// and must not be able to say it is done, fail a plan, or hold the
// rollout, unasked.
func decide(now time.Time, plans []*plan, nodes []*corev1.Node, drains map[string]drainOutcome) decision {
	plans = slices.Clone(plans)
	slices.SortStableFunc(plans, func(a, b *plan) int {
		return cmp.Or(a.CreationTimestamp.Compare(b.CreationTimestamp.Time), cmp.Compare(a.Name, b.Name))
	})
	nodes = slices.Clone(nodes)
	slices.SortFunc(nodes, func(a, b *corev1.Node) int { return cmp.Compare(a.Name, b.Name) })

	views := make([][]nodeView, len(plans))
	errs := make([]error, len(plans))
	for i, p := range plans {
		views[i], errs[i] = p.view(nodes, drains)
		if p.deleting() {
			// A deleted plan starts nothing and drains no more; a node
			// at work on its request finishes, one that has not taken
			// it up is withdrawn. The plan is gone once none is left.
			for j := range views[i] {
				v := &views[i][j]
				if v.state == draining || (v.state == requested && !v.underWay()) {
					v.state, v.phase, v.reason, v.since = waiting, upgradeapi.PhaseWaiting, "", nil
				}
			}
		}
	}
	// busy: node -> the plan that has it in progress. Should two plans'
	// records claim one node, the older plan keeps it.
	busy := map[string]string{}
	for i, p := range plans {
		for j := range views[i] {
			v := &views[i][j]
			if !v.inProgress() {
				continue
			}
			if _, ok := busy[v.node.Name]; ok {
				v.state, v.phase, v.reason, v.since = waiting, upgradeapi.PhaseWaiting, "", nil
				continue
			}
			busy[v.node.Name] = p.Name
		}
	}
	for i, p := range plans {
		for j := range views[i] {
			v := &views[i][j]
			if b := busy[v.node.Name]; v.state == waiting && b != "" && b != p.Name {
				v.busyWith, v.reason = b, "busy with plan "+b
			}
		}
	}

	results := make([]planResult, len(plans))
	for i, p := range plans {
		results[i] = p.assess(views[i], errs[i])
	}
	// The active plan: the oldest with a node in progress, else the
	// oldest not done. A failed plan holds the later ones back until it
	// is changed or deleted; a deleted one, or one that could only start
	// nodes that are not Ready, does not.
	active := -1
	for i, vs := range views {
		if !plans[i].deleting() && slices.ContainsFunc(vs, func(v nodeView) bool { return v.inProgress() }) {
			active = i
			break
		}
	}
	if active < 0 {
		active = slices.IndexFunc(results, func(r planResult) bool {
			return r.status.Phase != upgradeapi.PlanDone && !r.plan.deleting() && !(r.status.Phase == upgradeapi.PlanRolling && stalled(views[slices.Index(plans, r.plan)]))
		})
	}
	// Servers not Ready, selected or not: no server starts meanwhile.
	var downServers []string
	for _, n := range nodes {
		if Role(n) == RoleServer && !Ready(n) {
			downServers = append(downServers, n.Name)
		}
	}
	var d decision
	for i, p := range plans {
		r := &results[i]
		switch {
		case r.status.Phase == upgradeapi.PlanRolling && i == active:
			acts, waits := p.turn(now, views[i], busy, downServers)
			d.actions = append(d.actions, acts...)
			r.status.Message = rollingMessage(views[i], waits)
		default:
			// Drains go on only in the active, rolling plan: a stopped
			// or waiting plan's drains end (the node uncordoned); a node
			// it already asked to upgrade finishes.
			for j := range views[i] {
				v := &views[i][j]
				if v.state == draining {
					v.state, v.phase, v.reason, v.since = waiting, upgradeapi.PhaseWaiting, "", nil
					delete(busy, v.node.Name)
				}
			}
			switch {
			case p.deleting():
				r.status.Message = rollingMessage(views[i], nil)
				if r.status.Message != "" {
					r.status.Message = "deleted; finishing: " + r.status.Message
				}
			case r.status.Phase == upgradeapi.PlanRolling && stalled(views[i]):
				r.status.Message = rollingMessage(views[i], unready(views[i]))
			case r.status.Phase == upgradeapi.PlanRolling:
				r.status.Phase = ""
				r.status.Message = "waits for plan " + plans[active].Name
			}
		}
		for _, v := range views[i] {
			r.status.Nodes = append(r.status.Nodes, v.line())
		}
		r.events = transitions(p, r.status)
		d.plans = append(d.plans, *r)
	}
	// The controller's marks on a node that no plan has in progress (done,
	// failed, its drain stopped, its plan gone, or marks the node wrote
	// itself) are taken off: the request removed, the node uncordoned if
	// the controller cordoned it.
	for _, n := range nodes {
		owner := busy[n.Name]
		rel := action{kind: actRelease, node: n.Name}
		if cur, ok := requestOf(n); ok && cur.Plan != owner {
			rel.dropRequest, rel.plan = true, cur.Plan
		}
		rel.uncordon = owner == "" && n.Annotations[CordonedKey] == "true"
		if rel.dropRequest || rel.uncordon {
			d.actions = append(d.actions, rel)
		}
	}
	for _, a := range d.actions {
		if a.kind == actDrain {
			d.draining = true
		}
	}
	return d
}

// stalled: nothing of the plan is in progress, and the only nodes it
// could start are agents that are not Ready: it lets later plans go
// meanwhile.
func stalled(views []nodeView) bool {
	some := false
	for _, v := range views {
		switch {
		case v.inProgress():
			return false
		case v.state == waiting && (v.ready || v.role == RoleServer):
			return false
		case v.state == waiting:
			some = true
		}
	}
	return some
}

// unready are the "node X to be Ready" of the plan's nodes that are not
// Ready and not in progress.
func unready(views []nodeView) []string {
	var out []string
	for _, v := range views {
		if !v.ready && !v.inProgress() && !v.deselected {
			out = append(out, "node "+v.node.Name+" to be Ready")
		}
	}
	return out
}

// view is the plan's selected nodes, in the order they go (servers by
// name, then agents by name), and where each stands; after them, nodes
// it no longer selects that are still at work on its request.
func (p *plan) view(nodes []*corev1.Node, drains map[string]drainOutcome) ([]nodeView, error) {
	sel := labels.Everything()
	if p.Spec.NodeSelector != nil {
		s, err := metav1.LabelSelectorAsSelector(p.Spec.NodeSelector)
		if err != nil {
			return nil, fmt.Errorf("spec.nodeSelector: %w", err)
		}
		sel = s
	}
	recs := map[string]upgradeapi.NodeProgress{}
	for _, np := range p.status.Nodes {
		recs[np.Name] = np
	}
	var out, left []nodeView
	for _, n := range nodes {
		role := Role(n)
		art := p.Spec.Agent
		if role == RoleServer {
			art = p.Spec.Server
		}
		v := nodeView{node: n, role: role, ready: Ready(n)}
		if cur, ok := requestOf(n); ok {
			v.cur = &cur
		}
		rec := recs[n.Name]
		if art == nil || !sel.Matches(labels.Set(n.Labels)) {
			// Left out while it was at work on the plan's request (the
			// request it holds, which the status records): it finishes.
			if rec.Requested && v.cur != nil && v.cur.Plan == p.Name && v.cur.SHA256 == rec.SHA256 && v.underWay() {
				v.req, v.deselected = *v.cur, true
				v.state, v.since = requested, rec.DrainSince
				ns, _ := statusOf(n)
				v.phase, v.reason = ns.Phase, "left out of the plan; finishing"
				left = append(left, v)
			}
			continue
		}
		v.req = upgradeapi.Request{Plan: p.Name, Generation: p.Generation, Artifact: *art}
		var dr drainOutcome
		if o, ok := drains[n.Name]; ok && o.plan == p.Name {
			dr = o
		}
		v.evaluate(p, rec, dr)
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
	return append(out, left...), nil
}

// underWay: the node is at work on the request it holds (its answer says
// a phase between taking it up and its end).
func (v *nodeView) underWay() bool {
	if v.cur == nil {
		return false
	}
	ns, ok := statusOf(v.node)
	return ok && ns.For(*v.cur) && !terminal(ns.Phase) && ns.Phase != upgradeapi.PhaseWaiting
}

// evaluate sets where the node stands: from the plan's status (what it
// said of the node, the controller's records of its drain and request),
// then from this pass's drain, then from the node's answer to the
// recorded request, which the node holds (the request's patch removed
// any earlier answer of the plan, so an answer to it is the node's).
func (v *nodeView) evaluate(p *plan, rec upgradeapi.NodeProgress, dr drainOutcome) {
	ns, hasNS := statusOf(v.node)
	sameGen := p.status.ObservedGeneration == p.Generation
	switch {
	// A node failed or rolled back stays so for this generation.
	case sameGen && (rec.Phase == upgradeapi.PhaseFailed || rec.Phase == upgradeapi.PhaseRolledBack):
		v.state, v.phase, v.reason = failed, rec.Phase, rec.Reason
	// Done: the node runs the plan's artifact for its role, whichever
	// generation asked for it (a plan changed in other ways does not
	// redo it).
	case rec.Phase == upgradeapi.PhaseDone && rec.SHA256 == v.req.SHA256:
		v.state, v.phase, v.reason = done, rec.Phase, rec.Reason
	case rec.Requested:
		v.since = rec.DrainSince
		holds := v.cur != nil && v.cur.Plan == p.Name
		switch {
		case !holds || !hasNS:
			v.state, v.phase, v.reason = requested, upgradeapi.PhaseDownloading, notTakenUp
		// Done for this artifact, asked by any generation of the plan.
		case ns.Phase == upgradeapi.PhaseDone && ns.Plan == p.Name && ns.SHA256 == v.req.SHA256 && v.cur.SHA256 == v.req.SHA256:
			v.state, v.phase, v.reason = done, upgradeapi.PhaseDone, ns.Reason
		case ns.For(v.req) && (ns.Phase == upgradeapi.PhaseFailed || ns.Phase == upgradeapi.PhaseRolledBack):
			v.state, v.phase, v.reason = failed, ns.Phase, ns.Reason
		case (ns.For(v.req) || ns.For(*v.cur)) && !terminal(ns.Phase) && ns.Phase != upgradeapi.PhaseWaiting:
			v.state, v.phase, v.reason = requested, ns.Phase, ns.Reason
		default:
			v.state, v.phase, v.reason = requested, upgradeapi.PhaseDownloading, notTakenUp
		}
	case rec.DrainSince != nil && dr.failed != "":
		v.state, v.phase, v.reason = failed, upgradeapi.PhaseFailed, dr.failed
	case rec.DrainSince != nil && dr.drained:
		v.state, v.phase, v.reason, v.since = requested, upgradeapi.PhaseDownloading, notTakenUp, rec.DrainSince
	case rec.DrainSince != nil:
		v.state, v.phase, v.since = draining, upgradeapi.PhaseDraining, rec.DrainSince
		v.reason = "since " + rec.DrainSince.UTC().Format(time.RFC3339)
	default:
		v.state, v.phase = waiting, upgradeapi.PhaseWaiting
	}
}

// notTakenUp is a requested node's reason until it answers.
const notTakenUp = "requested; the node has not taken it up yet"

// deleting: the plan was deleted; its finalizer holds it until no node is
// in progress for it.
func (p *plan) deleting() bool { return p.DeletionTimestamp != nil }

// assess is the plan's phase and message from its nodes: Failed, Done,
// or Rolling if neither. Its nodes' lines are added once the pass has
// decided what it does next.
func (p *plan) assess(views []nodeView, err error) planResult {
	st := Status{ObservedGeneration: p.Generation}
	if err != nil {
		st.Phase, st.Message = upgradeapi.PlanFailed, err.Error()
		return planResult{plan: p, status: st}
	}
	var firstFailed *nodeView
	for i, v := range views {
		if v.deselected {
			continue
		}
		st.Total++
		switch v.state {
		case done:
			st.Done++
		case failed:
			if firstFailed == nil {
				firstFailed = &views[i]
			}
		}
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
	return planResult{plan: p, status: st}
}

// turn is what the rolling plan does next: drains go on, a node drained
// or a changed plan is asked (again), and nodes start in turn; it says
// what holds the rest back. Servers go one at a time and alone, and only
// while every server (downServers: selected or not) is Ready; agents once every server is done,
// Concurrency at once, an agent that is not Ready counting as one in
// progress (so a node that never becomes Ready holds agents only as far
// as spec.concurrency says, and the servers not at all). Nothing starts
// while a node is in progress for another plan. A node started is
// recorded in its view (and busy) for the status written before it is
// cordoned.
func (p *plan) turn(now time.Time, views []nodeView, busy map[string]string, downServers []string) (acts []action, waits []string) {
	inProgress := 0
	for _, v := range views {
		switch v.state {
		case draining:
			inProgress++
			acts = append(acts, action{kind: actDrain, node: v.node.Name, plan: p.Name, req: v.req,
				since: v.since.Time, timeout: p.drainTimeout()})
		case requested:
			inProgress++
			if v.cur == nil || *v.cur != v.req {
				acts = append(acts, action{kind: actRequest, node: v.node.Name, plan: p.Name, req: v.req})
			}
		}
	}
	for n, owner := range busy {
		if owner != p.Name {
			waits = append(waits, fmt.Sprintf("node %s (plan %s)", n, owner))
		}
	}
	if len(waits) > 0 {
		slices.Sort(waits)
		return acts, waits
	}
	start := func(v *nodeView) {
		acts = append(acts, action{kind: actStart, node: v.node.Name, plan: p.Name, req: v.req, since: now})
		t := metav1.NewTime(now.Truncate(time.Second))
		v.state, v.phase, v.since = draining, upgradeapi.PhaseDraining, &t
		v.reason = "since " + t.UTC().Format(time.RFC3339)
		busy[v.node.Name] = p.Name
	}
	for i := range views {
		v := &views[i]
		if v.role == RoleServer && v.state != done {
			// The first server not done: it starts when nothing else
			// is in progress and every server is Ready; no agent goes
			// before it.
			if len(downServers) > 0 {
				for _, n := range downServers {
					waits = append(waits, "node "+n+" to be Ready")
				}
				return acts, waits
			}
			if v.state == waiting && inProgress == 0 && v.busyWith == "" {
				start(v)
			}
			return acts, nil
		}
	}
	notReady := unready(views)
	inProgress += len(notReady)
	limit := max(p.Spec.Concurrency, DefaultConcurrency)
	for i := range views {
		v := &views[i]
		if v.state != waiting || v.busyWith != "" || !v.ready {
			continue
		}
		if inProgress >= limit {
			break
		}
		start(v)
		inProgress++
	}
	if slices.ContainsFunc(views, func(v nodeView) bool { return v.state == waiting }) {
		return acts, notReady
	}
	return acts, nil
}

// rollingMessage says what a rolling plan is doing, and what it waits
// for.
func rollingMessage(views []nodeView, waits []string) string {
	var doing []string
	for _, v := range views {
		if v.inProgress() {
			doing = append(doing, fmt.Sprintf("%s %s", v.node.Name, v.phase))
		}
	}
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

func unmarshal(n *corev1.Node, key string, v any) bool {
	s, ok := n.Annotations[key]
	return ok && json.Unmarshal([]byte(s), v) == nil
}
