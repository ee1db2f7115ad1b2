package upgradectl

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rke2os/rke2os/init/rke2node/crds"
	"github.com/rke2os/rke2os/init/rke2node/upgradeapi"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	k8stypes "k8s.io/apimachinery/pkg/types"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

var t0 = time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)

var (
	shaServer  = strings.Repeat("a", 64)
	shaAgent   = strings.Repeat("b", 64)
	shaServer2 = strings.Repeat("c", 64)
)

type nodeOpt func(*corev1.Node)

func newNode(name string, lbls map[string]string, opts ...nodeOpt) *corev1.Node {
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, UID: k8stypes.UID("uid-node-" + name), Labels: map[string]string{"kubernetes.io/hostname": name}},
		Status: corev1.NodeStatus{
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
			NodeInfo:   corev1.NodeSystemInfo{OSImage: "rke2os v1"},
		},
	}
	for k, v := range lbls {
		n.Labels[k] = v
	}
	for _, o := range opts {
		o(n)
	}
	return n
}

func server(name string, opts ...nodeOpt) *corev1.Node {
	return newNode(name, map[string]string{
		"node-role.kubernetes.io/control-plane": "true",
		"node-role.kubernetes.io/etcd":          "true",
		"node-role.kubernetes.io/master":        "true",
	}, opts...)
}

func agent(name string, opts ...nodeOpt) *corev1.Node { return newNode(name, nil, opts...) }

func notReady(n *corev1.Node) { n.Status.Conditions[0].Status = corev1.ConditionFalse }

func cordoned(n *corev1.Node) { n.Spec.Unschedulable = true }

func label(k, v string) nodeOpt { return func(n *corev1.Node) { n.Labels[k] = v } }

func annotate(k string, v any) nodeOpt {
	return func(n *corev1.Node) {
		if n.Annotations == nil {
			n.Annotations = map[string]string{}
		}
		s, ok := v.(string)
		if !ok {
			s = mustJSON(v)
		}
		n.Annotations[k] = s
	}
}

// recDraining, recRequested and recDone are a plan's records of a node
// (its line in the status): drain started, request set, done.
func recDraining(name string, r upgradeapi.Request) upgradeapi.NodeProgress {
	np := recLine(name, r, upgradeapi.PhaseDraining)
	np.DrainSince = ptr(metav1.NewTime(t0))
	return np
}

func recRequested(name string, r upgradeapi.Request) upgradeapi.NodeProgress {
	np := recDraining(name, r)
	np.Phase, np.Requested = upgradeapi.PhaseDownloading, true
	return np
}

func recDone(name string, r upgradeapi.Request) upgradeapi.NodeProgress {
	return recLine(name, r, upgradeapi.PhaseDone)
}

func recLine(name string, r upgradeapi.Request, phase string) upgradeapi.NodeProgress {
	role := RoleAgent
	if strings.HasPrefix(name, "s") {
		role = RoleServer
	}
	return upgradeapi.NodeProgress{Name: name, Role: role, Phase: phase, SHA256: r.SHA256}
}

// setStatus gives a plan object a status.
func setStatus(u *unstructured.Unstructured, st Status) {
	var m map[string]any
	if err := json.Unmarshal([]byte(mustJSON(st)), &m); err != nil {
		panic(err)
	}
	u.Object["status"] = m
}

// requestedBy: the controller cordoned the node and set its request (the
// plan's status must record it, or the request is taken off).
func requestedBy(r upgradeapi.Request) nodeOpt {
	return func(n *corev1.Node) {
		cordoned(n)
		annotate(CordonedKey, "true")(n)
		annotate(upgradeapi.RequestKey, r)(n)
	}
}

// answered: the node's answer to r.
func answered(r upgradeapi.Request, phase, reason string, at time.Time) nodeOpt {
	return annotate(upgradeapi.StatusKey, upgradeapi.NodeStatus{Plan: r.Plan, Generation: r.Generation,
		SHA256: r.SHA256, Phase: phase, Reason: reason, Time: metav1.NewTime(at)})
}

func serverReq(plan string, gen int64) upgradeapi.Request {
	return upgradeapi.Request{Plan: plan, Generation: gen, Artifact: upgradeapi.Artifact{URL: "https://h/rke2-server.upgrade", SHA256: shaServer}}
}

func agentReq(plan string, gen int64) upgradeapi.Request {
	return upgradeapi.Request{Plan: plan, Generation: gen, Artifact: upgradeapi.Artifact{URL: "https://h/rke2-agent.upgrade", SHA256: shaAgent}}
}

// planObj is an UpgradePlan with both artifacts unless spec changes them.
func planObj(name string, gen int64, created time.Time, mod func(*upgradeapi.PlanSpec)) *unstructured.Unstructured {
	spec := upgradeapi.PlanSpec{
		Server: &upgradeapi.Artifact{URL: "https://h/rke2-server.upgrade", SHA256: shaServer},
		Agent:  &upgradeapi.Artifact{URL: "https://h/rke2-agent.upgrade", SHA256: shaAgent},
	}
	if mod != nil {
		mod(&spec)
	}
	p := upgradeapi.UpgradePlan{
		TypeMeta: metav1.TypeMeta{APIVersion: upgradeapi.Group + "/" + upgradeapi.Version, Kind: upgradeapi.Kind},
		ObjectMeta: metav1.ObjectMeta{Name: name, Generation: gen, UID: k8stypes.UID("uid-plan-" + name),
			CreationTimestamp: metav1.NewTime(created)},
		Spec: spec,
	}
	b, err := json.Marshal(p)
	if err != nil {
		panic(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		panic(err)
	}
	delete(m, "status")
	return &unstructured.Unstructured{Object: m}
}

func tooManyRequests() error {
	return apierrors.NewTooManyRequests("Cannot evict pod as it would violate the pod's disruption budget.", 10)
}

func pod(ns, name, node string, mod ...func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: corev1.PodSpec{NodeName: node}}
	for _, m := range mod {
		m(p)
	}
	return p
}

func ownedBy(kind string) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		p.OwnerReferences = append(p.OwnerReferences, metav1.OwnerReference{APIVersion: "apps/v1", Kind: kind, Name: "x", UID: "u", Controller: ptr(true)})
	}
}

func mirror(p *corev1.Pod) { p.Annotations = map[string]string{MirrorKey: "hash"} }

func ptr[T any](v T) *T { return &v }

var podsGVR = schema.GroupVersionResource{Version: "v1", Resource: "pods"}

// env is a controller on fake clients, with a clock, and a node side the
// test plays by hand.
type env struct {
	t    *testing.T
	kube *fake.Clientset
	dyn  *dynamicfake.FakeDynamicClient
	c    *Controller
	now  time.Time

	mu        sync.Mutex
	evictions []string
	// refuse: pods whose eviction a PodDisruptionBudget refuses (429).
	refuse map[string]bool
}

func newEnv(t *testing.T, objs []runtime.Object, plans ...*unstructured.Unstructured) *env {
	t.Helper()
	e := &env{t: t, kube: fake.NewClientset(objs...), now: t0.Add(24 * time.Hour), refuse: map[string]bool{}}
	var dobjs []runtime.Object
	for _, p := range plans {
		dobjs = append(dobjs, p)
	}
	e.dyn = dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{crds.UpgradePlan: "UpgradePlanList"}, dobjs...)
	// The eviction API: the pod goes at once, unless a budget refuses.
	e.kube.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "eviction" {
			return false, nil, nil
		}
		ev := a.(k8stesting.CreateAction).GetObject().(*policyv1.Eviction)
		key := ev.Namespace + "/" + ev.Name
		e.mu.Lock()
		e.evictions = append(e.evictions, key)
		refused := e.refuse[key]
		e.mu.Unlock()
		if refused {
			return true, nil, tooManyRequests()
		}
		return true, nil, e.kube.Tracker().Delete(podsGVR, ev.Namespace, ev.Name)
	})
	e.c = e.controller()
	return e
}

// controller is a new controller on the env's clients: as after a leader
// change or a reboot, it knows only what the API holds.
func (e *env) controller() *Controller {
	return &Controller{Kube: e.kube, Dyn: e.dyn, Now: func() time.Time { return e.now }}
}

func (e *env) sync() time.Duration {
	e.t.Helper()
	wait, err := e.c.Sync(context.Background())
	if err != nil {
		e.t.Fatalf("sync: %v", err)
	}
	e.purge()
	return wait
}

func (e *env) node(name string) *corev1.Node {
	e.t.Helper()
	n, err := e.kube.CoreV1().Nodes().Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	return n
}

func (e *env) updateNode(name string, opts ...nodeOpt) {
	e.t.Helper()
	n := e.node(name)
	for _, o := range opts {
		o(n)
	}
	if _, err := e.kube.CoreV1().Nodes().Update(context.Background(), n, metav1.UpdateOptions{}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) setReady(name string, ready bool) {
	e.updateNode(name, func(n *corev1.Node) {
		n.Status.Conditions[0].Status = corev1.ConditionTrue
		if !ready {
			n.Status.Conditions[0].Status = corev1.ConditionFalse
		}
	})
}

// answer is the node side: it answers the request on its Node.
func (e *env) answer(name, phase, reason string) {
	e.t.Helper()
	r, ok := requestOf(e.node(name))
	if !ok {
		e.t.Fatalf("node %s has no request to answer", name)
	}
	e.updateNode(name, answered(r, phase, reason, e.now))
}

// finish is the node side's whole upgrade of a node: done, and its new
// image in osImage.
func (e *env) finish(name string) {
	e.t.Helper()
	e.answer(name, upgradeapi.PhaseDone, "")
	e.updateNode(name, func(n *corev1.Node) { n.Status.NodeInfo.OSImage = "rke2os v2" })
}

func (e *env) status(plan string) Status {
	e.t.Helper()
	u, err := e.dyn.Resource(crds.UpgradePlan).Get(context.Background(), plan, metav1.GetOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	p, err := readPlan(u)
	if err != nil {
		e.t.Fatal(err)
	}
	return p.status
}

// phases is the plan's status.nodes as "name=phase" words.
func (e *env) phases(plan string) string {
	var out []string
	for _, n := range e.status(plan).Nodes {
		out = append(out, n.Name+"="+n.Phase)
	}
	return strings.Join(out, " ")
}

// inProgress is what is in progress: the nodes with a RequestKey, and
// those whose drain a plan's status records.
func (e *env) inProgress() string {
	e.t.Helper()
	list, err := e.kube.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	plans, err := e.c.listPlans(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for i := range list.Items {
		n := &list.Items[i]
		if _, ok := requestOf(n); ok {
			out = append(out, n.Name)
			continue
		}
		for _, p := range plans {
			for _, np := range p.status.Nodes {
				if np.Name == n.Name && np.DrainSince != nil && !np.Requested {
					out = append(out, n.Name+"(draining)")
				}
			}
		}
	}
	slices.Sort(out)
	return strings.Join(out, " ")
}

// events are the Events written, as "Kind/name Reason".
func (e *env) events() []string {
	e.t.Helper()
	list, err := e.kube.CoreV1().Events(metav1.NamespaceDefault).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, ev := range list.Items {
		out = append(out, fmt.Sprintf("%s/%s %s", ev.InvolvedObject.Kind, ev.InvolvedObject.Name, ev.Reason))
	}
	slices.Sort(out)
	return out
}

func (e *env) updatePlan(name string, gen int64, mod func(*upgradeapi.PlanSpec)) {
	e.t.Helper()
	old, err := e.dyn.Resource(crds.UpgradePlan).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	u := planObj(name, gen, old.GetCreationTimestamp().Time, mod)
	u.Object["status"] = old.Object["status"]
	if _, err := e.dyn.Resource(crds.UpgradePlan).Update(context.Background(), u, metav1.UpdateOptions{}); err != nil {
		e.t.Fatal(err)
	}
}

// deletePlan deletes a plan as the apiserver does: one with finalizers
// is only marked (deletionTimestamp), and goes once they are removed
// (sync purges it).
func (e *env) deletePlan(name string) {
	e.t.Helper()
	u, err := e.dyn.Resource(crds.UpgradePlan).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	if len(u.GetFinalizers()) == 0 {
		if err := e.dyn.Resource(crds.UpgradePlan).Delete(context.Background(), name, metav1.DeleteOptions{}); err != nil {
			e.t.Fatal(err)
		}
		return
	}
	ts := metav1.NewTime(e.now)
	u.SetDeletionTimestamp(&ts)
	if _, err := e.dyn.Resource(crds.UpgradePlan).Update(context.Background(), u, metav1.UpdateOptions{}); err != nil {
		e.t.Fatal(err)
	}
}

// purge removes the plans marked deleted whose finalizers are gone.
func (e *env) purge() {
	e.t.Helper()
	list, err := e.dyn.Resource(crds.UpgradePlan).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	for _, u := range list.Items {
		if u.GetDeletionTimestamp() != nil && len(u.GetFinalizers()) == 0 {
			if err := e.dyn.Resource(crds.UpgradePlan).Delete(context.Background(), u.GetName(), metav1.DeleteOptions{}); err != nil {
				e.t.Fatal(err)
			}
		}
	}
}

// finalizers are the plan's finalizers.
func (e *env) finalizers(name string) []string {
	e.t.Helper()
	u, err := e.dyn.Resource(crds.UpgradePlan).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	return u.GetFinalizers()
}

// planExists reports whether the plan is still there.
func (e *env) planExists(name string) bool {
	_, err := e.dyn.Resource(crds.UpgradePlan).Get(context.Background(), name, metav1.GetOptions{})
	return err == nil
}

func (e *env) podExists(ns, name string) bool {
	_, err := e.kube.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
	return err == nil
}

func want[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}
