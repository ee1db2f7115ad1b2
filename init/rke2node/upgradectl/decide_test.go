package upgradectl

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rke2os/rke2os/init/rke2node/crds"
	"github.com/rke2os/rke2os/init/rke2node/upgradeapi"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// TestDecide is decide alone: the nodes and plans a pass lists, the
// plan's records of its nodes and this pass's drains, the actions and
// plan phase it comes to.
func TestDecide(t *testing.T) {
	now := t0.Add(24 * time.Hour)
	sreq, areq := serverReq("v2", 1), agentReq("v2", 1)
	conc := func(n int) func(*upgradeapi.PlanSpec) {
		return func(s *upgradeapi.PlanSpec) { s.Concurrency = n }
	}
	drainFailed := map[string]drainOutcome{"a1": {plan: "v2", failed: "drain: not done after 10m0s: default/web-1: evicted"}}
	for _, tc := range []struct {
		name    string
		nodes   []*corev1.Node
		recs    []upgradeapi.NodeProgress
		drains  map[string]drainOutcome
		spec    func(*upgradeapi.PlanSpec)
		actions string
		phase   string
		message string
		lines   string // the status's lines, if given
	}{
		{name: "first server first", nodes: []*corev1.Node{agent("a1"), server("s2"), server("s1")},
			actions: "start s1", phase: "Rolling", message: "s1 draining"},
		{name: "one server at a time", nodes: []*corev1.Node{server("s1", requestedBy(sreq)), server("s2"), agent("a1")},
			recs:    []upgradeapi.NodeProgress{recRequested("s1", sreq)},
			actions: "", phase: "Rolling", message: "s1 downloading"},
		{name: "agents after the servers", nodes: []*corev1.Node{server("s1", answered(sreq, "done", "", now)), agent("a1"), agent("a2"), agent("a3")},
			recs: []upgradeapi.NodeProgress{recDone("s1", sreq)},
			spec: conc(2), actions: "start a1, start a2", phase: "Rolling", message: "a1 draining, a2 draining"},
		{name: "concurrency counts agents in progress", nodes: []*corev1.Node{agent("a1", requestedBy(areq)), agent("a2"), agent("a3")},
			recs: []upgradeapi.NodeProgress{recRequested("a1", areq)},
			spec: conc(2), actions: "start a2", phase: "Rolling", message: "a1 downloading, a2 draining"},
		{name: "an agent in progress and not Ready counts once", nodes: []*corev1.Node{agent("a1", requestedBy(areq), notReady), agent("a2")},
			recs: []upgradeapi.NodeProgress{recRequested("a1", areq)},
			spec: conc(2), actions: "start a2", phase: "Rolling", message: "a1 downloading, a2 draining"},
		// A node that never becomes Ready (a machine gone, or one that
		// joined with an agent's token and never ran a kubelet) does not
		// hold the servers, and holds agents only as far as concurrency.
		{name: "a NotReady agent does not hold the servers", nodes: []*corev1.Node{server("s1"), agent("a2", notReady)},
			actions: "start s1", phase: "Rolling", message: "s1 draining"},
		{name: "a NotReady agent counts against concurrency", nodes: []*corev1.Node{server("s1"), agent("a1", notReady), agent("a2"), agent("a3")},
			recs: []upgradeapi.NodeProgress{recDone("s1", sreq)}, spec: conc(2),
			actions: "start a2", phase: "Rolling", message: "a2 draining; waiting for node a1 to be Ready"},
		{name: "a NotReady agent named when it holds the rest", nodes: []*corev1.Node{server("s1"), agent("a1", notReady), agent("a2")},
			recs:    []upgradeapi.NodeProgress{recDone("s1", sreq)},
			actions: "", phase: "Rolling", message: "waiting for node a1 to be Ready"},
		{name: "a NotReady server holds everything", nodes: []*corev1.Node{server("s1", notReady), server("s2"), agent("a1")},
			actions: "", phase: "Rolling", message: "waiting for node s1 to be Ready"},
		{name: "failed stops and releases", nodes: []*corev1.Node{agent("a1", requestedBy(areq), answered(areq, "failed", "bad signature", now)), agent("a2")},
			recs:    []upgradeapi.NodeProgress{recRequested("a1", areq)},
			actions: "release a1", phase: "Failed", message: "node a1 failed: bad signature", lines: "a1=failed a2=waiting"},
		{name: "rolled back stops and releases", nodes: []*corev1.Node{server("s1", requestedBy(sreq), answered(sreq, "rolled-back", "no node-ready", now)), agent("a2")},
			recs:    []upgradeapi.NodeProgress{recRequested("s1", sreq)},
			actions: "release s1", phase: "Failed", message: "node s1 rolled back: no node-ready"},
		{name: "done is released, next starts", nodes: []*corev1.Node{agent("a1", requestedBy(areq), answered(areq, "done", "", now)), agent("a2")},
			recs:    []upgradeapi.NodeProgress{recRequested("a1", areq)},
			actions: "start a2, release a1", phase: "Rolling", lines: "a1=done a2=draining(recorded)"},
		{name: "a draining node drains", nodes: []*corev1.Node{agent("a1", cordoned, annotate(CordonedKey, "true"))},
			recs:    []upgradeapi.NodeProgress{recDraining("a1", areq)},
			actions: "drain a1", phase: "Rolling", message: "a1 draining"},
		{name: "a drained node is requested", nodes: []*corev1.Node{agent("a1", cordoned, annotate(CordonedKey, "true"))},
			recs: []upgradeapi.NodeProgress{recDraining("a1", areq)}, drains: map[string]drainOutcome{"a1": {plan: "v2", drained: true}},
			actions: "request a1", phase: "Rolling", message: "a1 downloading", lines: "a1=downloading(requested)"},
		{name: "a drain that failed fails the node", nodes: []*corev1.Node{agent("a1", cordoned, annotate(CordonedKey, "true")), agent("a2")},
			recs: []upgradeapi.NodeProgress{recDraining("a1", areq)}, drains: drainFailed,
			actions: "release a1", phase: "Failed", message: "node a1 failed: drain: not done after 10m0s: default/web-1: evicted", lines: "a1=failed a2=waiting"},
		{name: "no artifact for the role", nodes: []*corev1.Node{server("s1"), agent("a1")},
			spec: func(s *upgradeapi.PlanSpec) { s.Server = nil }, actions: "start a1", phase: "Rolling", message: "a1 draining"},
		// No plan records it: the node's word that it is at work on it
		// holds nothing.
		{name: "a gone plan's request the node says it works on", nodes: []*corev1.Node{agent("a1", requestedBy(agentReq("gone", 1)),
			answered(agentReq("gone", 1), "writing", "", now)), agent("a2")},
			actions: "start a1, release a1", phase: "Rolling", message: "a1 draining"},
		// Its request taken off, a1 is started for this plan.
		{name: "a gone plan's request not taken up", nodes: []*corev1.Node{agent("a1", requestedBy(agentReq("gone", 1))), agent("a2")},
			actions: "start a1, release a1", phase: "Rolling", message: "a1 draining"},

		// What a node writes on its own Node is not the controller's
		// word: its answer counts only for a request the plan recorded,
		// and marks no plan recorded are taken off.
		{name: "a node's done is not believed unasked", nodes: []*corev1.Node{agent("a1", answered(areq, "done", "", now)), agent("a2")},
			actions: "start a1", phase: "Rolling", lines: "a1=draining(recorded) a2=waiting"},
		{name: "a node's failure is not believed unasked", nodes: []*corev1.Node{agent("a1", answered(areq, "failed", "forged", now)), agent("a2")},
			actions: "start a1", phase: "Rolling", message: "a1 draining"},
		{name: "a request no plan recorded is taken off", nodes: []*corev1.Node{server("s1", requestedBy(sreq)), agent("a1", annotate(upgradeapi.RequestKey, areq))},
			recs:    []upgradeapi.NodeProgress{recRequested("s1", sreq)},
			actions: "release a1", phase: "Rolling", message: "s1 downloading", lines: "s1=downloading(requested) a1=waiting"},
		{name: "a cordon mark no plan recorded is taken off", nodes: []*corev1.Node{server("s1", requestedBy(sreq)), agent("a1", cordoned, annotate(CordonedKey, "true"))},
			recs:    []upgradeapi.NodeProgress{recRequested("s1", sreq)},
			actions: "release a1", phase: "Rolling", message: "s1 downloading"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := planObj("v2", 1, t0, tc.spec)
			if tc.recs != nil {
				setStatus(u, Status{ObservedGeneration: 1, PlanStatus: upgradeapi.PlanStatus{Phase: upgradeapi.PlanRolling, Nodes: tc.recs}})
			}
			p, err := readPlan(u)
			if err != nil {
				t.Fatal(err)
			}
			d := decide(now, []*plan{p}, tc.nodes, tc.drains)
			var acts []string
			for _, a := range d.actions {
				acts = append(acts, fmt.Sprintf("%s %s", a.kind, a.node))
			}
			want(t, "actions", strings.Join(acts, ", "), tc.actions)
			want(t, "phase", d.plans[0].status.Phase, tc.phase)
			if tc.message != "" || tc.lines == "" {
				want(t, "message", d.plans[0].status.Message, tc.message)
			}
			if tc.lines != "" {
				want(t, "lines", lines(d.plans[0].status), tc.lines)
			}
		})
	}
}

// lines are a status's node lines as "name=phase", with "(recorded)" for
// a drain recorded and "(requested)" for a request.
func lines(st Status) string {
	var out []string
	for _, np := range st.Nodes {
		l := np.Name + "=" + np.Phase
		switch {
		case np.Requested:
			l += "(requested)"
		case np.DrainSince != nil:
			l += "(recorded)"
		}
		out = append(out, l)
	}
	return strings.Join(out, " ")
}

// TestSchemaMatchesTypes holds the CRD's schema to upgradeapi's types
// and Status: a field the schema lacks is pruned by the apiserver, one
// the types lack is never read.
func TestSchemaMatchesTypes(t *testing.T) {
	b, err := crds.YAML()
	if err != nil {
		t.Fatal(err)
	}
	var schema map[string]any
	for _, doc := range strings.Split(string(b), "\n---\n") {
		var u unstructured.Unstructured
		if err := yaml.Unmarshal([]byte(strings.TrimPrefix(doc, "---\n")), &u.Object); err != nil {
			t.Fatal(err)
		}
		if u.GetName() == "upgradeplans.rke2os.io" {
			versions, _, _ := unstructured.NestedSlice(u.Object, "spec", "versions")
			schema, _, _ = unstructured.NestedMap(versions[0].(map[string]any), "schema", "openAPIV3Schema")
		}
	}
	if schema == nil {
		t.Fatal("no UpgradePlan CRD")
	}
	props := func(path ...string) []string {
		var full []string
		for _, p := range path {
			full = append(full, "properties", p)
		}
		m, ok, _ := unstructured.NestedMap(schema, full...)
		if !ok {
			t.Fatalf("no %v in the schema", path)
		}
		if it, ok := m["items"].(map[string]any); ok {
			m = it
		}
		var out []string
		for k := range m["properties"].(map[string]any) {
			out = append(out, k)
		}
		slices.Sort(out)
		return out
	}
	for _, tc := range []struct {
		path []string
		typ  any
	}{
		{[]string{"spec"}, upgradeapi.PlanSpec{}},
		{[]string{"spec", "server"}, upgradeapi.Artifact{}},
		{[]string{"spec", "agent"}, upgradeapi.Artifact{}},
		{[]string{"status"}, Status{}},
		{[]string{"status", "nodes"}, upgradeapi.NodeProgress{}},
	} {
		want(t, strings.Join(tc.path, "."), strings.Join(props(tc.path...), " "), strings.Join(jsonFields(reflect.TypeOf(tc.typ)), " "))
	}
}

// jsonFields are the JSON names of a struct's fields, embedded structs'
// inlined.
func jsonFields(t reflect.Type) []string {
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if f.Anonymous && name == "" {
			out = append(out, jsonFields(f.Type)...)
			continue
		}
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// A node's answer is bounded: an oversized one is not read, a long or
// odd reason is shortened and made one plain line.
func TestStatusBounded(t *testing.T) {
	node := func(v string) *corev1.Node {
		return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n", Annotations: map[string]string{upgradeapi.StatusKey: v}}}
	}
	if _, ok := statusOf(node(`{"plan":"p","phase":"failed","reason":"` + strings.Repeat("x", maxStatus) + `"}`)); ok {
		t.Error("an oversized answer was read")
	}
	s, ok := statusOf(node(`{"plan":"p","phase":"failed","reason":"line\nbreak` + strings.Repeat("y", 2*maxReason) + `"}`))
	if !ok || len(s.Reason) > maxReason+3 || strings.ContainsAny(s.Reason, "\n") || !strings.HasPrefix(s.Reason, "line break") {
		t.Errorf("reason %q (%d bytes), ok %v", s.Reason, len(s.Reason), ok)
	}
}
