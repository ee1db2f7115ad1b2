// Package upgradectl is the cluster's upgrade controller, run by the
// servers under leader election: it rolls each UpgradePlan
// (rke2os.io/v1, upgradeapi's types) over the nodes it selects, one plan
// at a time, in the order the plans were created.
//
// For each selected node in turn (servers by name, one at a time and
// alone; then agents by name, spec.concurrency at once), it cordons the
// Node, evicts its pods as kubectl drain does (PodDisruptionBudgets
// honoured, DaemonSet and static pods left), then sets upgradeapi's
// RequestKey on it and waits for the node's answer in StatusKey. A node
// done is uncordoned and the next one starts; a node that fails, rolls
// back or does not drain within spec.drainTimeout stops the plan
// (status.phase Failed) and is uncordoned, back on its working slot.
// Nothing starts while a selected node is not Ready.
//
// Everything the controller knows is in the API: the plan's status (with
// the generation it is for, and its records of each node's drain and
// request, written before the step they record is taken), the node's
// answer, and its cordon mark on the Node (CordonedKey). A new leader,
// or the same server after the reboot of its own node (a single-server
// cluster upgrades the node its controller runs on), reads them and goes
// on. Only the plan's status is the controller's word: a node's kubelet
// can write its own Node's annotations, so a node's answer counts only
// for a request the status records (a node cannot say it is done, or
// fail a plan, unasked), and a request or cordon mark no plan records is
// taken off.
package upgradectl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/rke2os/rke2os/init/rke2node/crds"
	"github.com/rke2os/rke2os/init/rke2node/upgradeapi"
	"github.com/rke2os/rke2os/internal/backoff"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// LeaseName is the controller's Lease in kube-system: one server at a
// time runs it.
const LeaseName = "rke2os-upgrade"

// CordonedKey is "true" on a Node the controller cordoned: only those it
// uncordons, so a node an administrator cordoned stays so. (Beside
// upgradeapi's two, the controller's only mark on a Node.)
const CordonedKey = "upgrade.rke2os.io/cordoned"

// Finalizer holds a deleted UpgradePlan, and with it the controller's
// records of its nodes, until no node is at work on its request: the
// plan's requests are only ever believed from those records.
const Finalizer = "upgrade.rke2os.io/records"

// Status is an UpgradePlan's status as the controller writes it:
// upgradeapi's, and the plan's metadata.generation it is for. A node done
// or failed, and the plan's Failed, stay so for that generation whatever
// becomes of the Node's annotations afterwards (another plan's upgrade
// of the node overwrites its answer).
type Status struct {
	upgradeapi.PlanStatus `json:",inline"`
	ObservedGeneration    int64 `json:"observedGeneration,omitempty"`
}

// Controller rolls the UpgradePlans out.
type Controller struct {
	// Kube and Dyn are cluster-admin clients (a server's supervisor
	// kubeconfig). Their requests are bounded by each pass's deadline,
	// so they need no timeout of their own (watches would break on one).
	Kube kubernetes.Interface
	Dyn  dynamic.Interface
	// Every is how often the plans are looked at without a change
	// (default 30 s); DrainEvery how often while a node drains (5 s).
	Every, DrainEvery time.Duration
	// Now is the clock (default time.Now), for the tests.
	Now func() time.Time

	seq int64 // makes the names of events written at once differ
}

// maxRounds bounds the decide-and-act rounds of one pass: a start is
// followed by its drain's first evictions, a finished drain by its
// request, in the same pass, each recorded before it is done.
const maxRounds = 5

// passTimeout bounds one pass's requests.
const passTimeout = 2 * time.Minute

// Run waits until the apiserver serves UpgradePlans (the servers install
// the CRD with the others), then passes over the plans on every change of
// a plan or a Node, and every Every, until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	err := backoff.Poll(ctx, 5*time.Second, "UpgradePlans to be served", func(ctx context.Context) error {
		_, err := c.Dyn.Resource(crds.UpgradePlan).List(ctx, metav1.ListOptions{Limit: 1})
		return err
	})
	if err != nil {
		return err
	}
	changed := make(chan struct{}, 1)
	poke := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { notify(changed) },
		UpdateFunc: func(any, any) { notify(changed) },
		DeleteFunc: func(any) { notify(changed) },
	}
	nodes := informers.NewSharedInformerFactory(c.Kube, 0)
	defer nodes.Shutdown()
	plans := dynamicinformer.NewDynamicSharedInformerFactory(c.Dyn, 0)
	defer plans.Shutdown()
	if _, err := nodes.Core().V1().Nodes().Informer().AddEventHandler(poke); err != nil {
		return err
	}
	if _, err := plans.ForResource(crds.UpgradePlan).Informer().AddEventHandler(poke); err != nil {
		return err
	}
	nodes.Start(ctx.Done())
	plans.Start(ctx.Done())
	slog.Info("upgrade controller started")
	for {
		// A burst of changes (our own patches among them) is one pass.
		if !backoff.Sleep(ctx, time.Second) {
			return nil
		}
		select {
		case <-changed:
		default:
		}
		wait, err := c.Sync(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			slog.Warn("upgrade controller", "err", err)
			wait = min(wait, 10*time.Second)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-changed:
			t.Stop()
		case <-t.C:
		}
	}
}

func notify(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

func (c *Controller) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// Sync is one pass, in rounds: it reads the plans and the Nodes, decides,
// writes each plan's status (the records of what it is about to do, and
// the events of what ended), then does what it decided on the Nodes and
// decides again on what that changed. A plan whose status could not be
// written (another leader's write came first) does nothing this pass. It
// returns when the next pass is due without a change.
func (c *Controller) Sync(ctx context.Context) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, passTimeout)
	defer cancel()
	next := cmpOr(c.Every, 30*time.Second)
	plans, err := c.listPlans(ctx)
	if err != nil {
		return next, err
	}
	nodeList, err := c.Kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return next, fmt.Errorf("list Nodes: %w", err)
	}
	byName := map[string]*corev1.Node{}
	var nodes []*corev1.Node
	for i := range nodeList.Items {
		n := &nodeList.Items[i]
		byName[n.Name] = n
		nodes = append(nodes, n)
	}

	planByName := map[string]*plan{}
	for _, p := range plans {
		planByName[p.Name] = p
	}
	var errs []error
	// A plan gets the finalizer before anything is recorded in it; one
	// that cannot get it does nothing this pass.
	blocked := map[string]bool{}
	for _, p := range plans {
		if !p.deleting() && !slices.Contains(p.Finalizers, Finalizer) {
			if err := c.setFinalizer(ctx, p, true); err != nil {
				errs = append(errs, err)
				blocked[p.Name] = true
			}
		}
	}
	var d decision
	drains := map[string]drainOutcome{}
	written := map[string]bool{}
	for range maxRounds {
		d = decide(c.now(), plans, nodes, drains)
		changed := false
		written = map[string]bool{}
		for _, r := range d.plans {
			if blocked[r.plan.Name] {
				continue
			}
			wrote, err := c.writeStatus(ctx, r)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			written[r.plan.Name] = true
			changed = changed || wrote
			for _, ev := range r.events {
				c.event(ctx, byName[ev.node], r.plan, ev)
			}
		}
		// Releases only once every plan's status says why: a node done
		// or failed is recorded so before it is uncordoned.
		allWritten := len(written) == len(d.plans)
		for _, a := range d.actions {
			if (a.kind == actRelease && !allWritten) || (a.kind != actRelease && !written[a.plan]) {
				continue // not recorded: not done
			}
			n := byName[a.node]
			if a.kind == actDrain {
				o, updated, err := c.drain(ctx, n, a)
				if err != nil {
					errs = append(errs, fmt.Errorf("%s: %w", a, err))
					continue
				}
				if updated != nil {
					byName[a.node], changed = updated, true
				}
				if o.drained || o.failed != "" {
					drains[a.node], changed = o, true
				}
				continue
			}
			updated, err := c.act(ctx, n, a, planByName[a.plan])
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", a, err))
				continue
			}
			if updated != nil {
				byName[a.node], changed = updated, true
			}
		}
		if !changed {
			break
		}
		nodes = nodes[:0]
		for _, n := range byName {
			nodes = append(nodes, n)
		}
	}
	// A deleted plan with no node in progress any more is let go.
	for _, p := range plans {
		if p.deleting() && written[p.Name] && slices.Contains(p.Finalizers, Finalizer) &&
			!slices.ContainsFunc(p.status.Nodes, func(np upgradeapi.NodeProgress) bool { return np.Requested || np.DrainSince != nil }) {
			if err := c.setFinalizer(ctx, p, false); err != nil {
				errs = append(errs, err)
			} else {
				slog.Info("upgrade plan deleted: nothing in progress left", "plan", p.Name)
			}
		}
	}
	if d.draining {
		next = cmpOr(c.DrainEvery, 5*time.Second)
	}
	return next, errors.Join(errs...)
}

// setFinalizer adds the controller's finalizer to the plan, or removes
// it, on the plan as read (its resourceVersion: a plan changed meanwhile
// is left for the next pass).
func (c *Controller) setFinalizer(ctx context.Context, p *plan, on bool) error {
	obj := p.obj.DeepCopy()
	fs := slices.DeleteFunc(obj.GetFinalizers(), func(f string) bool { return f == Finalizer })
	if on {
		fs = append(fs, Finalizer)
	}
	obj.SetFinalizers(fs)
	updated, err := c.Dyn.Resource(crds.UpgradePlan).Update(ctx, obj, metav1.UpdateOptions{})
	if err != nil {
		return fmt.Errorf("UpgradePlan %s: finalizer: %w", p.Name, err)
	}
	p.obj, p.Finalizers, p.ResourceVersion = updated, fs, updated.GetResourceVersion()
	return nil
}

func cmpOr(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// listPlans reads every UpgradePlan, with the status it has.
func (c *Controller) listPlans(ctx context.Context) ([]*plan, error) {
	list, err := c.Dyn.Resource(crds.UpgradePlan).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list UpgradePlans: %w", err)
	}
	var out []*plan
	for i := range list.Items {
		p, err := readPlan(&list.Items[i])
		if err != nil {
			// The CRD's schema makes this rare: say it, skip the plan.
			slog.Warn("upgrade plan unreadable", "plan", list.Items[i].GetName(), "err", err)
			continue
		}
		out = append(out, p)
	}
	return out, nil
}

// readPlan is an UpgradePlan and its status from the dynamic client.
func readPlan(u *unstructured.Unstructured) (*plan, error) {
	b, err := json.Marshal(u.Object)
	if err != nil {
		return nil, err
	}
	p := &plan{}
	if err := json.Unmarshal(b, &p.UpgradePlan); err != nil {
		return nil, err
	}
	if st, ok := u.Object["status"]; ok {
		sb, err := json.Marshal(st)
		if err != nil {
			return nil, err
		}
		if err := json.Unmarshal(sb, &p.status); err != nil {
			return nil, fmt.Errorf("status: %w", err)
		}
	}
	p.obj = u
	return p, nil
}

// writeStatus updates the plan's status subresource if it changed, and
// keeps what was written as the plan's status for the pass's next round.
// It reports whether it wrote.
func (c *Controller) writeStatus(ctx context.Context, r planResult) (bool, error) {
	b, err := json.Marshal(r.status)
	if err != nil {
		return false, err
	}
	// Compared as JSON: times read back from the API are in another
	// location than the clock's.
	if was, err := json.Marshal(r.plan.status); err == nil && string(was) == string(b) {
		return false, nil
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return false, err
	}
	obj := r.plan.obj.DeepCopy()
	obj.Object["status"] = m
	updated, err := c.Dyn.Resource(crds.UpgradePlan).UpdateStatus(ctx, obj, metav1.UpdateOptions{})
	if err != nil {
		return false, fmt.Errorf("UpgradePlan %s: update status: %w", r.plan.Name, err)
	}
	if r.status.Phase != r.plan.status.Phase || r.status.Message != r.plan.status.Message {
		slog.Info("upgrade plan", "plan", r.plan.Name, "phase", r.status.Phase, "done", r.status.Done,
			"total", r.status.Total, "message", r.status.Message)
	}
	r.plan.status, r.plan.obj = r.status, updated
	return true, nil
}

// act does one action on Node n and returns the Node as it is after it,
// nil if the action changed nothing.
func (c *Controller) act(ctx context.Context, n *corev1.Node, a action, p *plan) (*corev1.Node, error) {
	if n == nil {
		return nil, nil
	}
	switch a.kind {
	case actStart:
		ann := map[string]any{}
		if !n.Spec.Unschedulable {
			ann[CordonedKey] = "true"
		}
		clearAnswer(n, a.plan, ann)
		meta := map[string]any{"annotations": ann}
		if n.ResourceVersion != "" {
			// Only if the cordon read above still holds.
			meta["resourceVersion"] = n.ResourceVersion
		}
		updated, err := c.patchNode(ctx, n.Name, map[string]any{"metadata": meta, "spec": map[string]any{"unschedulable": true}})
		if err != nil {
			return nil, err
		}
		slog.Info("upgrade: node cordoned, draining", "node", n.Name, "plan", a.plan, "role", Role(n))
		c.event(ctx, updated, p, event{node: n.Name, plan: a.plan, reason: "UpgradeStarted",
			message: fmt.Sprintf("Node %s cordoned and being drained, to upgrade to plan %s (%s)", n.Name, a.plan, upgradeapi.RedactURL(a.req.URL))})
		return updated, nil
	case actRequest:
		slog.Info("upgrade: requesting the upgrade", "node", n.Name, "plan", a.plan, "generation", a.req.Generation,
			"url", upgradeapi.RedactURL(a.req.URL))
		ann := map[string]any{upgradeapi.RequestKey: mustJSON(a.req)}
		clearAnswer(n, a.plan, ann)
		return c.patchNode(ctx, n.Name, annotations(ann))
	case actRelease:
		return c.release(ctx, n, a)
	}
	return nil, fmt.Errorf("unknown action %d", a.kind)
}

// release takes the controller's marks off a Node no plan has in
// progress: a request, and the cordon if the controller set it.
func (c *Controller) release(ctx context.Context, n *corev1.Node, a action) (*corev1.Node, error) {
	ann := map[string]any{}
	patch := annotations(ann)
	if a.dropRequest {
		ann[upgradeapi.RequestKey] = nil
	}
	if a.uncordon {
		ann[CordonedKey] = nil
		patch["spec"] = map[string]any{"unschedulable": false}
	}
	updated, err := c.patchNode(ctx, n.Name, patch)
	if err == nil {
		slog.Info("upgrade: node released", "node", n.Name, "request of plan", a.plan, "uncordoned", a.uncordon)
	}
	return updated, err
}

// clearAnswer adds to a patch of the node's annotations the removal of
// its answer to the plan, if it has one: at a start or a request the node
// has no answer of its own to the plan's request yet, so one there is of
// an earlier plan of the same name, or of an earlier generation, and
// must not be taken for the answer to this one.
func clearAnswer(n *corev1.Node, plan string, ann map[string]any) {
	if ns, ok := statusOf(n); ok && ns.Plan == plan {
		ann[upgradeapi.StatusKey] = nil
	} else if _, present := n.Annotations[upgradeapi.StatusKey]; present && !ok {
		ann[upgradeapi.StatusKey] = nil // unreadable: no one's answer
	}
}

func annotations(ann map[string]any) map[string]any {
	return map[string]any{"metadata": map[string]any{"annotations": ann}}
}

func (c *Controller) patchNode(ctx context.Context, name string, patch map[string]any) (*corev1.Node, error) {
	b, err := json.Marshal(patch)
	if err != nil {
		return nil, err
	}
	n, err := c.Kube.CoreV1().Nodes().Patch(ctx, name, types.MergePatchType, b, metav1.PatchOptions{})
	if err != nil {
		return nil, fmt.Errorf("patch Node %s: %w", name, err)
	}
	return n, nil
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // plain structs of strings and numbers
	}
	return string(b)
}

// event records an Event on the Node and one on the plan (kubectl
// describe shows each). The node may not be able to write events of its
// own; the controller surely can. Events of cluster-scoped objects go to
// the default namespace, as client-go's recorder puts them.
func (c *Controller) event(ctx context.Context, n *corev1.Node, p *plan, ev event) {
	typ := corev1.EventTypeNormal
	if ev.warning {
		typ = corev1.EventTypeWarning
	}
	now := metav1.NewTime(c.now())
	refs := []corev1.ObjectReference{}
	if n != nil {
		refs = append(refs, corev1.ObjectReference{APIVersion: "v1", Kind: "Node", Name: n.Name, UID: n.UID})
	}
	if p != nil {
		refs = append(refs, corev1.ObjectReference{APIVersion: upgradeapi.Group + "/" + upgradeapi.Version,
			Kind: upgradeapi.Kind, Name: p.Name, UID: p.UID, ResourceVersion: p.ResourceVersion})
	}
	for _, ref := range refs {
		c.seq++
		e := &corev1.Event{
			// Named as client-go's recorder names events.
			ObjectMeta:     metav1.ObjectMeta{Name: fmt.Sprintf("%s.%x", ref.Name, now.UnixNano()+c.seq), Namespace: metav1.NamespaceDefault},
			InvolvedObject: ref, Type: typ, Reason: ev.reason, Message: ev.message,
			FirstTimestamp: now, LastTimestamp: now, Count: 1,
			Source:              corev1.EventSource{Component: "rke2os-upgrade"},
			ReportingController: "rke2os.io/upgrade", ReportingInstance: "rke2os-upgrade",
		}
		if _, err := c.Kube.CoreV1().Events(metav1.NamespaceDefault).Create(ctx, e, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			slog.Warn("upgrade event", "reason", ev.reason, "object", ref.Name, "err", err)
		}
	}
}
