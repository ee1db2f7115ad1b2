package deploy

import (
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic/fake"
	clienttesting "k8s.io/client-go/testing"
)

var (
	cmGVR     = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	nsGVR     = schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}
	svcGVR    = schema.GroupVersionResource{Version: "v1", Resource: "services"}
	deployGVR = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
	crdGVR    = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	widgetGVR = schema.GroupVersionResource{Group: "example.com", Version: "v1", Resource: "widgets"}
	widgetGVK = schema.GroupVersionKind{Group: "example.com", Version: "v1", Kind: "Widget"}
)

// resettableMapper is a DefaultRESTMapper that, like a discovery mapper
// seeing a new CRD, may learn kinds when reset.
type resettableMapper struct {
	*meta.DefaultRESTMapper
	resets  int
	onReset func(*meta.DefaultRESTMapper)
}

func (m *resettableMapper) Reset() {
	m.resets++
	if m.onReset != nil {
		m.onReset(m.DefaultRESTMapper)
	}
}

type env struct {
	t      *testing.T
	dir    string
	dyn    *fake.FakeDynamicClient
	mapper *resettableMapper
	c      *Controller
}

func newEnv(t *testing.T) *env {
	t.Helper()
	m := meta.NewDefaultRESTMapper(nil)
	m.Add(schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}, meta.RESTScopeNamespace)
	m.Add(schema.GroupVersionKind{Version: "v1", Kind: "Service"}, meta.RESTScopeNamespace)
	m.Add(schema.GroupVersionKind{Version: "v1", Kind: "Namespace"}, meta.RESTScopeRoot)
	m.Add(schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}, meta.RESTScopeNamespace)
	m.Add(schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"}, meta.RESTScopeRoot)
	m.Add(addonGVK, meta.RESTScopeNamespace)
	dyn := fake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{
		cmGVR: "ConfigMapList", nsGVR: "NamespaceList", svcGVR: "ServiceList", deployGVR: "DeploymentList",
		crdGVR: "CustomResourceDefinitionList", widgetGVR: "WidgetList", addonGVR: "AddonList",
	})
	fakeApply(dyn)
	e := &env{t: t, dir: t.TempDir(), dyn: dyn, mapper: &resettableMapper{DefaultRESTMapper: m}}
	e.c = &Controller{Dir: e.dir, Dyn: dyn, Mapper: e.mapper}
	return e
}

// fakeApply makes the fake client's server-side apply work: its own only
// patches objects that exist, by strategic merge. This one creates or
// replaces the object, which is what SSA with Force does when this
// manager owns all its fields, and checks the options SSA needs.
func fakeApply(dyn *fake.FakeDynamicClient) {
	dyn.PrependReactor("patch", "*", func(a clienttesting.Action) (bool, runtime.Object, error) {
		pa, ok := a.(clienttesting.PatchActionImpl)
		if !ok || pa.GetPatchType() != types.ApplyPatchType {
			return false, nil, nil
		}
		if pa.PatchOptions.FieldManager != FieldManager || pa.PatchOptions.Force == nil || !*pa.PatchOptions.Force {
			return true, nil, fmt.Errorf("apply options %+v", pa.PatchOptions)
		}
		obj := &unstructured.Unstructured{}
		if err := obj.UnmarshalJSON(pa.GetPatch()); err != nil {
			return true, nil, err
		}
		if obj.GetName() != pa.GetName() || obj.GetNamespace() != pa.GetNamespace() {
			return true, nil, fmt.Errorf("object %s/%s applied as %s/%s", obj.GetNamespace(), obj.GetName(), pa.GetNamespace(), pa.GetName())
		}
		tr, gvr, ns := dyn.Tracker(), pa.GetResource(), pa.GetNamespace()
		_, err := tr.Get(gvr, ns, obj.GetName())
		switch {
		case apierrors.IsNotFound(err):
			err = tr.Create(gvr, obj, ns)
		case err == nil:
			err = tr.Update(gvr, obj, ns)
		}
		return true, obj, err
	})
}

func (e *env) write(name, content string) {
	e.t.Helper()
	p := filepath.Join(e.dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) sync() error {
	e.t.Helper()
	return e.c.Sync(context.Background())
}

func (e *env) mustSync() {
	e.t.Helper()
	if err := e.sync(); err != nil {
		e.t.Fatalf("Sync: %v", err)
	}
}

// get reads from the tracker, so that it is not counted as an action.
func (e *env) get(gvr schema.GroupVersionResource, ns, name string) *unstructured.Unstructured {
	e.t.Helper()
	o, err := e.dyn.Tracker().Get(gvr, ns, name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		e.t.Fatal(err)
	}
	return o.(*unstructured.Unstructured)
}

func (e *env) addon(name string) *unstructured.Unstructured {
	e.t.Helper()
	return e.get(addonGVR, "kube-system", name)
}

// writes are the write actions since the last call, as "verb resource ns/name".
func (e *env) writes() []string {
	var out []string
	for _, a := range e.dyn.Actions() {
		var name string
		switch a := a.(type) {
		case clienttesting.CreateAction:
			name = a.GetObject().(*unstructured.Unstructured).GetName()
		case clienttesting.UpdateAction:
			name = a.GetObject().(*unstructured.Unstructured).GetName()
		case clienttesting.PatchAction:
			name = a.GetName()
		case clienttesting.DeleteAction:
			name = a.GetName()
		default:
			continue
		}
		out = append(out, fmt.Sprintf("%s %s %s/%s", a.GetVerb(), a.GetResource().Resource, a.GetNamespace(), name))
	}
	e.dyn.ClearActions()
	slices.Sort(out)
	return out
}

func checksumOf(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

const appV1 = `# two objects and an empty document
apiVersion: v1
kind: ConfigMap
metadata:
  name: one
  namespace: apps
data: {a: "1"}
---
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  ports: [{port: 80}]
`

const appV2 = `apiVersion: v1
kind: ConfigMap
metadata:
  name: one
  namespace: apps
data: {a: "2"}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
`

func TestLifecycle(t *testing.T) {
	e := newEnv(t)
	e.write("app.yaml", appV1)

	// First pass: objects applied, Addon created with checksum and kinds.
	e.mustSync()
	if got, want := e.writes(), []string{
		"create addons kube-system/app",
		"patch configmaps apps/one",
		"patch services default/web",
	}; !slices.Equal(got, want) {
		t.Fatalf("first pass writes %q, want %q", got, want)
	}
	a := e.addon("app")
	if a == nil {
		t.Fatal("no Addon")
	}
	if got, _, _ := unstructured.NestedString(a.Object, "spec", "checksum"); got != checksumOf(appV1) {
		t.Errorf("checksum %q, want %q", got, checksumOf(appV1))
	}
	if got, _, _ := unstructured.NestedString(a.Object, "spec", "source"); got != filepath.Join(e.dir, "app.yaml") {
		t.Errorf("source %q", got)
	}
	if got, _, _ := unstructured.NestedStringSlice(a.Object, "status", "gvks"); !slices.Equal(got, []string{"/v1, Kind=ConfigMap", "/v1, Kind=Service"}) {
		t.Errorf("gvks %q", got)
	}

	// Unchanged: nothing written.
	e.mustSync()
	if got := e.writes(); len(got) != 0 {
		t.Fatalf("unchanged file wrote %q", got)
	}

	// Objects of other owners, or of none, are never pruned.
	other := &unstructured.Unstructured{}
	other.SetAPIVersion("v1")
	other.SetKind("Service")
	other.SetNamespace("default")
	other.SetName("other")
	other.SetLabels(map[string]string{labelHash: newOwner("other").hash})
	if err := e.dyn.Tracker().Create(svcGVR, other, "default"); err != nil {
		t.Fatal(err)
	}

	// Changed: the Service, a kind the file no longer has, is pruned; the
	// Deployment is created; the ConfigMap is applied again.
	e.write("app.yaml", appV2)
	e.mustSync()
	if got, want := e.writes(), []string{
		"delete services default/web",
		"patch configmaps apps/one",
		"patch deployments default/web",
		"update addons kube-system/app",
	}; !slices.Equal(got, want) {
		t.Fatalf("changed file writes %q, want %q", got, want)
	}
	if e.get(svcGVR, "default", "web") != nil {
		t.Error("Service web not pruned")
	}
	if e.get(svcGVR, "default", "other") == nil {
		t.Error("Service of another addon pruned")
	}
	if cm := e.get(cmGVR, "apps", "one"); cm == nil {
		t.Error("ConfigMap gone")
	} else if v, _, _ := unstructured.NestedString(cm.Object, "data", "a"); v != "2" {
		t.Errorf("ConfigMap data.a = %q, want 2", v)
	}
	a = e.addon("app")
	if got, _, _ := unstructured.NestedString(a.Object, "spec", "checksum"); got != checksumOf(appV2) {
		t.Errorf("checksum not updated: %q", got)
	}
	if got, _, _ := unstructured.NestedStringSlice(a.Object, "status", "gvks"); !slices.Equal(got, []string{"/v1, Kind=ConfigMap", "apps/v1, Kind=Deployment"}) {
		t.Errorf("gvks %q", got)
	}

	// A new process applies every file once, as k3s does at startup, to
	// put back what was changed by hand; the Addon, unchanged, is not
	// written.
	e.c = &Controller{Dir: e.dir, Dyn: e.dyn, Mapper: e.mapper}
	e.mustSync()
	if got, want := e.writes(), []string{
		"patch configmaps apps/one",
		"patch deployments default/web",
	}; !slices.Equal(got, want) {
		t.Fatalf("restart writes %q, want %q", got, want)
	}

	// Skipped, then removed: the objects stay.
	e.write("app.yaml.skip", "")
	e.write("app.yaml", appV1)
	e.mustSync()
	if err := os.Remove(filepath.Join(e.dir, "app.yaml")); err != nil {
		t.Fatal(err)
	}
	e.mustSync()
	if got := e.writes(); len(got) != 0 {
		t.Fatalf("skipped and removed file wrote %q", got)
	}
	if e.get(deployGVR, "default", "web") == nil || e.addon("app") == nil {
		t.Error("objects of a skipped file were removed")
	}
}

func TestEmptiedFilePrunesAll(t *testing.T) {
	e := newEnv(t)
	e.write("app.yaml", appV1)
	e.mustSync()
	e.write("app.yaml", "# nothing left\n")
	e.mustSync()
	if e.get(cmGVR, "apps", "one") != nil || e.get(svcGVR, "default", "web") != nil {
		t.Error("objects of an emptied file not pruned")
	}
	if got, _, _ := unstructured.NestedStringSlice(e.addon("app").Object, "status", "gvks"); len(got) != 0 {
		t.Errorf("gvks %q, want none", got)
	}
}

type ref struct {
	gvr       schema.GroupVersionResource
	namespace string
	name      string
}

func TestSync(t *testing.T) {
	cm := func(name string) string {
		return "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: " + name + "\n"
	}
	tests := []struct {
		name    string
		files   map[string]string
		wantErr []string // substrings; none means no error
		want    []ref
		absent  []ref
		addons  []string
	}{{
		name:   "skip file",
		files:  map[string]string{"a.yaml": cm("a"), "a.yaml.skip": ""},
		absent: []ref{{cmGVR, "default", "a"}},
	}, {
		name:   "other files ignored",
		files:  map[string]string{".hidden.yaml": cm("h"), "notes.txt": cm("t"), ".git/x.yaml": cm("g"), "a.yaml.skip": cm("s")},
		absent: []ref{{cmGVR, "default", "h"}, {cmGVR, "default", "t"}, {cmGVR, "default", "g"}, {cmGVR, "default", "s"}},
	}, {
		name: "list flattened",
		files: map[string]string{"list.yml": `apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: l1}
- apiVersion: v1
  kind: Namespace
  metadata: {name: l2, namespace: ignored}
`},
		want:   []ref{{cmGVR, "default", "l1"}, {nsGVR, "", "l2"}},
		addons: []string{"list"},
	}, {
		name: "json stream",
		files: map[string]string{"j.JSON": `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"j1"}}
{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"j2","namespace":"x"}}`},
		want:   []ref{{cmGVR, "default", "j1"}, {cmGVR, "x", "j2"}},
		addons: []string{"j"},
	}, {
		name:   "subdirectory",
		files:  map[string]string{"sub/deeper/s.yaml": cm("s")},
		want:   []ref{{cmGVR, "default", "s"}},
		addons: []string{"s"},
	}, {
		name:    "bad yaml beside good",
		files:   map[string]string{"bad.yaml": cm("x") + "---\nkind: [oops\n", "good.yaml": cm("g")},
		wantErr: []string{"bad.yaml", "document 2"},
		want:    []ref{{cmGVR, "default", "g"}},
		absent:  []ref{{cmGVR, "default", "x"}},
		addons:  []string{"good"},
	}, {
		name:    "object without name",
		files:   map[string]string{"noname.yaml": "apiVersion: v1\nkind: ConfigMap\n"},
		wantErr: []string{"noname.yaml", "metadata.name"},
	}, {
		name:    "name clash",
		files:   map[string]string{"a.yaml": cm("first"), "z/a.yml": cm("second")},
		wantErr: []string{"z/a.yml", `addon "a"`},
		want:    []ref{{cmGVR, "default", "first"}},
		absent:  []ref{{cmGVR, "default", "second"}},
		addons:  []string{"a"},
	}, {
		name:    "bad addon name",
		files:   map[string]string{"Bad_Name.yaml": cm("b")},
		wantErr: []string{"Bad_Name.yaml", `"Bad_Name"`},
		absent:  []ref{{cmGVR, "default", "b"}},
	}, {
		name: "unknown kind",
		files: map[string]string{"u.yaml": cm("before") + `---
apiVersion: example.com/v1
kind: Gadget
metadata: {name: g}
`},
		wantErr: []string{"u.yaml", "Gadget g", "no matches for kind"},
		want:    []ref{{cmGVR, "default", "before"}}, // applied; the Addon is not
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			for name, content := range tt.files {
				e.write(name, content)
			}
			err := e.sync()
			if len(tt.wantErr) == 0 && err != nil {
				t.Fatalf("Sync: %v", err)
			}
			if len(tt.wantErr) > 0 && err == nil {
				t.Fatalf("Sync: no error, want one with %q", tt.wantErr)
			}
			for _, s := range tt.wantErr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
			for _, r := range tt.want {
				if e.get(r.gvr, r.namespace, r.name) == nil {
					t.Errorf("%s %s/%s not applied", r.gvr.Resource, r.namespace, r.name)
				}
			}
			for _, r := range tt.absent {
				if e.get(r.gvr, r.namespace, r.name) != nil {
					t.Errorf("%s %s/%s applied", r.gvr.Resource, r.namespace, r.name)
				}
			}
			list, lerr := e.dyn.Tracker().List(addonGVR, addonGVK, "kube-system")
			if lerr != nil {
				t.Fatal(lerr)
			}
			var names []string
			for _, a := range list.(*unstructured.UnstructuredList).Items {
				names = append(names, a.GetName())
			}
			slices.Sort(names)
			if !slices.Equal(names, tt.addons) {
				t.Errorf("Addons %q, want %q", names, tt.addons)
			}
		})
	}
}

func TestOwnership(t *testing.T) {
	e := newEnv(t)
	e.write("demo.yaml", `apiVersion: v1
kind: ConfigMap
metadata:
  name: c
  labels: {mine: "yes"}
  annotations: {note: kept}
`)
	e.mustSync()
	cm := e.get(cmGVR, "default", "c")
	if cm == nil {
		t.Fatal("ConfigMap not applied")
	}
	// wrangler's hash: SHA-1 of set ID (empty for k3s), owner GVK, name, namespace.
	h := sha1.Sum([]byte("" + "k3s.cattle.io/v1, Kind=Addon" + "demo" + "kube-system"))
	wantLabels := map[string]string{"mine": "yes", "objectset.rio.cattle.io/hash": hex.EncodeToString(h[:])}
	wantAnn := map[string]string{
		"note":                                    "kept",
		"objectset.rio.cattle.io/id":              "",
		"objectset.rio.cattle.io/owner-gvk":       "k3s.cattle.io/v1, Kind=Addon",
		"objectset.rio.cattle.io/owner-name":      "demo",
		"objectset.rio.cattle.io/owner-namespace": "kube-system",
	}
	if got := cm.GetLabels(); !mapsEqual(got, wantLabels) {
		t.Errorf("labels %v, want %v", got, wantLabels)
	}
	if got := cm.GetAnnotations(); !mapsEqual(got, wantAnn) {
		t.Errorf("annotations %v, want %v", got, wantAnn)
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

const crdAndWidget = `apiVersion: v1
kind: Namespace
metadata: {name: w}
---
apiVersion: example.com/v1
kind: Widget
metadata: {name: w1, namespace: w}
---
apiVersion: example.com/v1
kind: Widget
metadata: {name: w2, namespace: w}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
`

func TestCRDInSameFile(t *testing.T) {
	e := newEnv(t)
	// As discovery would: the kind is served once its CRD exists.
	e.mapper.onReset = func(m *meta.DefaultRESTMapper) {
		if e.get(crdGVR, "", "widgets.example.com") != nil {
			m.Add(widgetGVK, meta.RESTScopeNamespace)
		}
	}
	e.write("w.yaml", crdAndWidget)
	e.mustSync()
	if e.get(widgetGVR, "w", "w1") == nil || e.get(widgetGVR, "w", "w2") == nil {
		t.Error("Widgets not applied")
	}
	if e.mapper.resets != 1 {
		t.Errorf("mapper reset %d times, want 1", e.mapper.resets)
	}
}

func TestCRDNotServedYet(t *testing.T) {
	e := newEnv(t)
	e.write("w.yaml", crdAndWidget)
	err := e.sync()
	if err == nil || !strings.Contains(err.Error(), "Widget w/w1") || !strings.Contains(err.Error(), "Widget w/w2") {
		t.Fatalf("Sync: %v, want errors for both Widgets", err)
	}
	if e.mapper.resets != 1 {
		t.Errorf("mapper reset %d times in one pass, want 1", e.mapper.resets)
	}
	if e.addon("w") != nil {
		t.Error("Addon written for a failed apply")
	}
	// Next pass, the CRD is served.
	e.mapper.Add(widgetGVK, meta.RESTScopeNamespace)
	e.mustSync()
	if e.get(widgetGVR, "w", "w1") == nil || e.addon("w") == nil {
		t.Error("not applied once the kind is served")
	}
}

func TestRecordedGVKs(t *testing.T) {
	tests := []struct {
		name  string
		addon map[string]any
		want  []string
	}{
		{"none", map[string]any{}, nil},
		{"strings", map[string]any{"status": map[string]any{"gvks": []any{"/v1, Kind=ConfigMap", "apps/v1, Kind=Deployment", "junk", "/v1, Kind="}}},
			[]string{"/v1, Kind=ConfigMap", "apps/v1, Kind=Deployment"}},
		{"not strings", map[string]any{"status": map[string]any{"gvks": []any{map[string]any{"kind": "Deployment"}}}}, nil},
		{"k3s annotation", map[string]any{"metadata": map[string]any{"annotations": map[string]any{k3sGVKAnnotation: "/v1, Kind=Service;batch/v1, Kind=Job"}}},
			[]string{"/v1, Kind=Service", "batch/v1, Kind=Job"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, gvk := range recordedGVKs(&unstructured.Unstructured{Object: tt.addon}) {
				got = append(got, gvk.String())
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestRun(t *testing.T) {
	e := newEnv(t)
	e.c.Every = 5 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- e.c.Run(ctx) }()
	// Written after Run started: found by a later pass.
	time.Sleep(20 * time.Millisecond)
	e.write("late.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: late}\n")
	deadline := time.Now().Add(5 * time.Second)
	for e.get(cmGVR, "default", "late") == nil {
		if time.Now().After(deadline) {
			t.Fatal("Run did not apply the manifest")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}

func TestMissingDir(t *testing.T) {
	e := newEnv(t)
	e.c.Dir = filepath.Join(e.dir, "absent")
	e.mustSync()
	if err := (&Controller{Dir: e.dir}).Sync(context.Background()); err == nil {
		t.Error("Sync without clients: no error")
	}
}

func TestReaddedFileApplied(t *testing.T) {
	e := newEnv(t)
	const cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: back}\n"
	e.write("a.yaml", cm)
	e.mustSync()
	if err := os.Remove(filepath.Join(e.dir, "a.yaml")); err != nil {
		t.Fatal(err)
	}
	e.mustSync()
	if e.get(cmGVR, "default", "back") == nil {
		t.Fatal("object of a removed file deleted")
	}
	if err := e.dyn.Tracker().Delete(cmGVR, "default", "back"); err != nil {
		t.Fatal(err)
	}
	// Back with the same checksum as its Addon: applied all the same.
	e.write("a.yaml", cm)
	e.mustSync()
	if e.get(cmGVR, "default", "back") == nil {
		t.Error("re-added file not applied")
	}
}

func TestServerFieldsDropped(t *testing.T) {
	e := newEnv(t)
	e.write("saved.yaml", `apiVersion: v1
kind: ConfigMap
metadata:
  name: saved
  uid: 0b7e-old
  resourceVersion: "42"
  creationTimestamp: "2020-01-01T00:00:00Z"
  managedFields: [{manager: kubectl}]
`)
	e.mustSync()
	for _, a := range e.dyn.Actions() {
		pa, ok := a.(clienttesting.PatchAction)
		if !ok {
			continue
		}
		obj := &unstructured.Unstructured{}
		if err := obj.UnmarshalJSON(pa.GetPatch()); err != nil {
			t.Fatal(err)
		}
		md := obj.Object["metadata"].(map[string]any)
		for _, f := range []string{"uid", "resourceVersion", "creationTimestamp", "managedFields"} {
			if _, ok := md[f]; ok {
				t.Errorf("applied with metadata.%s", f)
			}
		}
		return
	}
	t.Fatal("nothing applied")
}
