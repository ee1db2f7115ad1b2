package helmchart

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rke2os/rke2os/init/rke2node/crds"
	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chartutil"
	kubefake "helm.sh/helm/v3/pkg/kube/fake"
	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/storage"
	"helm.sh/helm/v3/pkg/storage/driver"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"
)

// demoChart is a chart with one ConfigMap that shows its values, packed
// as chartContent.
func demoChart(t *testing.T, version string) string {
	t.Helper()
	c := &chart.Chart{
		Metadata: &chart.Metadata{APIVersion: "v2", Name: "demo", Version: version},
		// chartutil.Save writes values.yaml from Raw, not from Values.
		Raw: []*chart.File{{Name: "values.yaml", Data: []byte("greeting: hello\nreplicas: 1\n")}},
		Templates: []*chart.File{{Name: "templates/cm.yaml", Data: []byte(
			"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: demo\ndata:\n  greeting: {{ .Values.greeting | quote }}\n  replicas: {{ .Values.replicas | quote }}\n  cidr: {{ .Values.global.clusterCIDR | quote }}\n")}},
	}
	dir := t.TempDir()
	p, err := chartutil.Save(c, dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

func helmChart(name string, spec map[string]any) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "helm.cattle.io/v1", "kind": "HelmChart",
		"metadata": map[string]any{"name": name, "namespace": "kube-system"},
		"spec":     spec,
	}}
}

// testController is a controller on fake clients whose Helm keeps its
// releases in memory.
func testController(t *testing.T, objs ...runtime.Object) (*Controller, *storage.Storage, *dynamicfake.FakeDynamicClient, *fake.Clientset) {
	t.Helper()
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{
		crds.HelmChart: "HelmChartList", crds.HelmChartConfig: "HelmChartConfigList"}, objs...)
	store := storage.Init(driver.NewMemory())
	h := &Helm{newConfig: func(string) (*action.Configuration, error) {
		return &action.Configuration{Releases: store, KubeClient: &kubefake.PrintingKubeClient{Out: io.Discard},
			Capabilities: chartutil.DefaultCapabilities, Log: func(string, ...any) {}}, nil
	}}
	kube := fake.NewClientset()
	return &Controller{Dyn: dyn, Kube: kube, Helm: h, Globals: map[string]any{"global.clusterCIDR": "10.42.0.0/16"}}, store, dyn, kube
}

func manifest(t *testing.T, store *storage.Storage, name string) *release.Release {
	t.Helper()
	r, err := store.Last(name)
	if err != nil {
		t.Fatalf("release %s: %v", name, err)
	}
	return r
}

func TestInstallUpgradeUninstall(t *testing.T) {
	ctx := context.Background()
	hc := helmChart("demo", map[string]any{"chartContent": demoChart(t, "0.1.0"), "valuesContent": "greeting: hi\n", "targetNamespace": "demo", "createNamespace": true})
	c, store, dyn, kube := testController(t, hc)
	if err := c.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	r := manifest(t, store, "demo")
	if r.Info.Status != release.StatusDeployed || r.Namespace != "demo" || r.Version != 1 {
		t.Fatalf("release %s in %s revision %d", r.Info.Status, r.Namespace, r.Version)
	}
	for _, want := range []string{`greeting: "hi"`, `replicas: "1"`, `cidr: "10.42.0.0/16"`} {
		if !strings.Contains(r.Manifest, want) {
			t.Errorf("manifest lacks %s:\n%s", want, r.Manifest)
		}
	}
	got, err := dyn.Resource(crds.HelmChart).Namespace("kube-system").Get(ctx, "demo", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if fs := got.GetFinalizers(); len(fs) != 1 || fs[0] != Finalizer {
		t.Errorf("finalizers %v", fs)
	}
	if cond := failedCondition(got); cond["status"] != "False" {
		t.Errorf("Failed condition %v, want False", cond)
	}

	// Unchanged: no new revision, also for a controller that restarted.
	if err := c.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	c2, _, _, _ := testController(t)
	c2.Dyn, c2.Helm = dyn, c.Helm
	if err := c2.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if r := manifest(t, store, "demo"); r.Version != 1 {
		t.Errorf("revision %d after syncs with nothing changed", r.Version)
	}

	// A HelmChartConfig of the same name changes a value: upgraded.
	cfg := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "helm.cattle.io/v1", "kind": "HelmChartConfig",
		"metadata": map[string]any{"name": "demo", "namespace": "kube-system"}, "spec": map[string]any{"valuesContent": "greeting: configured\n"}}}
	if _, err := dyn.Resource(crds.HelmChartConfig).Namespace("kube-system").Create(ctx, cfg, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := c.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if r := manifest(t, store, "demo"); r.Version != 2 || !strings.Contains(r.Manifest, `greeting: "configured"`) {
		t.Errorf("after the HelmChartConfig: revision %d\n%s", r.Version, r.Manifest)
	}
	evs, _ := kube.CoreV1().Events("kube-system").List(ctx, metav1.ListOptions{})
	if len(evs.Items) < 2 || evs.Items[0].Reason != "Installed" {
		t.Errorf("events %v", evs.Items)
	}

	// Deleted: uninstalled, the finalizer let go.
	got, _ = dyn.Resource(crds.HelmChart).Namespace("kube-system").Get(ctx, "demo", metav1.GetOptions{})
	now := metav1.NewTime(time.Now())
	got.SetDeletionTimestamp(&now)
	if _, err := dyn.Resource(crds.HelmChart).Namespace("kube-system").Update(ctx, got, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := c.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if r, err := store.Last("demo"); err == nil && r.Info.Status != release.StatusUninstalled {
		t.Errorf("release still %s after the HelmChart was deleted", r.Info.Status)
	}
	got, _ = dyn.Resource(crds.HelmChart).Namespace("kube-system").Get(ctx, "demo", metav1.GetOptions{})
	if len(got.GetFinalizers()) != 0 {
		t.Errorf("finalizers %v after uninstall", got.GetFinalizers())
	}
}

func failedCondition(obj *unstructured.Unstructured) map[string]any {
	conds, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
	for _, c := range conds {
		if m, ok := c.(map[string]any); ok && m["type"] == "Failed" {
			return m
		}
	}
	return nil
}

// A chart that cannot be installed says why in its status and an event,
// and is not tried again before its backoff.
func TestFailureIsReported(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		spec map[string]any
		want string
	}{
		{"no content", map[string]any{"chart": "traefik", "repo": "https://traefik.github.io/charts"}, "cannot fetch chart \"traefik\""},
		{"not base64", map[string]any{"chartContent": "%%%"}, "spec.chartContent is not base64"},
		{"not a chart", map[string]any{"chartContent": base64.StdEncoding.EncodeToString([]byte("hello"))}, "spec.chartContent:"},
		{"bad values", map[string]any{"chartContent": demoChart(t, "0.1.0"), "valuesContent": "a: [b"}, "spec.valuesContent"},
		{"bad timeout", map[string]any{"chartContent": demoChart(t, "0.1.0"), "timeout": "soon"}, `spec.timeout "soon"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, store, dyn, kube := testController(t, helmChart("bad", tc.spec))
			err := c.Sync(ctx)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			got, _ := dyn.Resource(crds.HelmChart).Namespace("kube-system").Get(ctx, "bad", metav1.GetOptions{})
			if cond := failedCondition(got); cond["status"] != "True" || !strings.Contains(cond["message"].(string), tc.want) {
				t.Errorf("Failed condition %v", cond)
			}
			evs, _ := kube.CoreV1().Events("kube-system").List(ctx, metav1.ListOptions{})
			if len(evs.Items) == 0 || evs.Items[0].Type != "Warning" {
				t.Errorf("events %v", evs.Items)
			}
			if _, err := store.Last("bad"); err == nil {
				t.Error("a release was made")
			}
			n := len(kube.Actions())
			c.Sync(ctx)
			if tc.name != "bad values" && len(kube.Actions()) != n {
				t.Error("tried again before the backoff")
			}
		})
	}
}

// A release left pending by a process that died mid-install is taken
// over, not refused as an operation in progress.
func TestPendingReleaseTakenOver(t *testing.T) {
	ctx := context.Background()
	c, store, _, _ := testController(t, helmChart("demo", map[string]any{"chartContent": demoChart(t, "0.1.0")}))
	if err := c.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	r := manifest(t, store, "demo")
	r.SetStatus(release.StatusPendingUpgrade, "cut")
	store.Update(r)
	c.state = nil
	hc := helmChart("demo", map[string]any{"chartContent": demoChart(t, "0.2.0")})
	c2, _, _, _ := testController(t, hc)
	c2.Helm = c.Helm
	if err := c2.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if r := manifest(t, store, "demo"); r.Info.Status != release.StatusDeployed || r.Chart.Metadata.Version != "0.2.0" {
		t.Errorf("release %s %s", r.Info.Status, r.Chart.Metadata.Version)
	}
}

func TestValues(t *testing.T) {
	s := spec{ValuesContent: "a: {b: 1, c: 2}\nlist: [x]\n", Set: map[string]any{"a.c": "3", "flag": "true", "n": float64(5), "name": "010"}}
	got, err := values(s, "a: {b: 10}\nlist: [w, z]\n", map[string]any{"global.clusterDNS": "10.43.0.10", "a.c": "global"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"a":    map[string]any{"b": float64(10), "c": "3"},
		"list": []any{"w", "z"},
		"flag": true, "n": int64(5), "name": "010",
		"global": map[string]any{"clusterDNS": "10.43.0.10"},
	}
	var g, w bytes.Buffer
	g.WriteString(strings.ReplaceAll(toYAML(t, got), "\n", ";"))
	w.WriteString(strings.ReplaceAll(toYAML(t, want), "\n", ";"))
	if g.String() != w.String() {
		t.Errorf("values\n got %s\nwant %s", g.String(), w.String())
	}
}

func toYAML(t *testing.T, v map[string]any) string {
	t.Helper()
	b, err := chartutil.Values(v).YAML()
	if err != nil {
		t.Fatal(err)
	}
	return b
}
