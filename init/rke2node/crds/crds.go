// Package crds installs the custom resources an RKE2 server serves besides
// Kubernetes' own: helm.cattle.io's HelmChart and HelmChartConfig (the
// charts of server/manifests) and k3s.cattle.io's Addon (one per plain
// manifest file), whose schemas keep unknown fields, as helm-controller's
// do for values, so that a manifest written for RKE2 is accepted as it is;
// rke2os.io's UpgradePlan (the upgrade controller's), whose schema is
// exact and validated; and k3s.cattle.io's ETCDSnapshotFile, one per etcd
// snapshot of a server.
package crds

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/yaml"

	"github.com/rke2os/rke2os/init/rke2node/upgradeapi"
	"github.com/rke2os/rke2os/internal/backoff"
)

// The resources, as RKE2's controllers name them.
var (
	HelmChart       = schema.GroupVersionResource{Group: "helm.cattle.io", Version: "v1", Resource: "helmcharts"}
	HelmChartConfig = schema.GroupVersionResource{Group: "helm.cattle.io", Version: "v1", Resource: "helmchartconfigs"}
	Addon           = schema.GroupVersionResource{Group: "k3s.cattle.io", Version: "v1", Resource: "addons"}
	UpgradePlan     = schema.GroupVersionResource{Group: upgradeapi.Group, Version: upgradeapi.Version, Resource: upgradeapi.Resource}
	// ETCDSnapshotFile records one etcd snapshot of a server, as RKE2's
	// records them: kubectl get etcdsnapshotfiles lists every server's.
	ETCDSnapshotFile = schema.GroupVersionResource{Group: "k3s.cattle.io", Version: "v1", Resource: "etcdsnapshotfiles"}
)

var crdResource = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// definition is one CRD: its names, the columns kubectl prints, whether
// status is a subresource, whether it is cluster-scoped, and its schema
// (nil: spec and status keep whatever they are given).
type definition struct {
	gvr            schema.GroupVersionResource
	kind, singular string
	shortNames     []string
	status         bool
	cluster        bool
	columns        []map[string]any
	schema         map[string]any
}

var definitions = []definition{
	{gvr: HelmChart, kind: "HelmChart", singular: "helmchart", status: true, columns: []map[string]any{
		{"name": "Job", "type": "string", "jsonPath": ".status.jobName"},
		{"name": "Chart", "type": "string", "jsonPath": ".spec.chart"},
		{"name": "TargetNamespace", "type": "string", "jsonPath": ".spec.targetNamespace"},
		{"name": "Version", "type": "string", "jsonPath": ".spec.version"},
		{"name": "Repo", "type": "string", "jsonPath": ".spec.repo"},
		{"name": "HelmVersion", "type": "string", "jsonPath": ".spec.helmVersion"},
		{"name": "Bootstrap", "type": "string", "jsonPath": ".spec.bootstrap"},
	}},
	{gvr: HelmChartConfig, kind: "HelmChartConfig", singular: "helmchartconfig"},
	{gvr: Addon, kind: "Addon", singular: "addon", columns: []map[string]any{
		{"name": "Source", "type": "string", "jsonPath": ".spec.source"},
		{"name": "Checksum", "type": "string", "jsonPath": ".spec.checksum"},
	}},
	{gvr: UpgradePlan, kind: upgradeapi.Kind, singular: "upgradeplan", shortNames: []string{"up"},
		status: true, cluster: true, schema: upgradePlanSchema(), columns: []map[string]any{
			{"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
			{"name": "Done", "type": "integer", "jsonPath": ".status.done"},
			{"name": "Total", "type": "integer", "jsonPath": ".status.total"},
			{"name": "Message", "type": "string", "jsonPath": ".status.message"},
			// Columns of its own replace kubectl's AGE: it is asked for.
			{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
		}},
	{gvr: ETCDSnapshotFile, kind: "ETCDSnapshotFile", singular: "etcdsnapshotfile",
		status: true, cluster: true, schema: etcdSnapshotFileSchema(), columns: []map[string]any{
			{"name": "SnapshotName", "type": "string", "jsonPath": ".spec.snapshotName"},
			{"name": "Node", "type": "string", "jsonPath": ".spec.nodeName"},
			{"name": "Location", "type": "string", "jsonPath": ".spec.location"},
			{"name": "Size", "type": "string", "jsonPath": ".status.size"},
			{"name": "CreationTime", "type": "date", "jsonPath": ".status.creationTime"},
		}},
}

// etcdSnapshotFileSchema is k3s.cattle.io/v1 ETCDSnapshotFile's schema,
// the fields RKE2 sets.
func etcdSnapshotFileSchema() map[string]any {
	str := map[string]any{"type": "string"}
	return map[string]any{"type": "object", "properties": map[string]any{
		"spec": map[string]any{"type": "object", "required": []any{"snapshotName", "nodeName"}, "properties": map[string]any{
			"snapshotName": str, "nodeName": str, "location": str,
			"metadata": map[string]any{"type": "object", "additionalProperties": str},
			"s3":       map[string]any{"type": "object", "x-kubernetes-preserve-unknown-fields": true},
		}},
		"status": map[string]any{"type": "object", "properties": map[string]any{
			"readyToUse":   map[string]any{"type": "boolean"},
			"size":         map[string]any{"x-kubernetes-int-or-string": true, "anyOf": []any{map[string]any{"type": "integer"}, str}},
			"creationTime": map[string]any{"type": "string", "format": "date-time"},
			"error": map[string]any{"type": "object", "properties": map[string]any{
				"time": map[string]any{"type": "string", "format": "date-time"}, "message": str,
			}},
		}},
	}}
}

// object is the CRD as the apiserver takes it.
func (d definition) object() *unstructured.Unstructured {
	preserve := map[string]any{"type": "object", "x-kubernetes-preserve-unknown-fields": true}
	openAPI := d.schema
	if openAPI == nil {
		openAPI = map[string]any{"type": "object", "properties": map[string]any{"spec": preserve, "status": preserve}}
	}
	version := map[string]any{
		"name": d.gvr.Version, "served": true, "storage": true,
		"schema": map[string]any{"openAPIV3Schema": openAPI},
	}
	if d.status {
		version["subresources"] = map[string]any{"status": map[string]any{}}
	}
	if len(d.columns) > 0 {
		cols := make([]any, len(d.columns))
		for i, c := range d.columns {
			cols[i] = c
		}
		version["additionalPrinterColumns"] = cols
	}
	names := map[string]any{"kind": d.kind, "listKind": d.kind + "List", "plural": d.gvr.Resource, "singular": d.singular}
	if len(d.shortNames) > 0 {
		short := make([]any, len(d.shortNames))
		for i, n := range d.shortNames {
			short[i] = n
		}
		names["shortNames"] = short
	}
	scope := "Namespaced"
	if d.cluster {
		scope = "Cluster"
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1",
		"kind":       "CustomResourceDefinition",
		"metadata":   map[string]any{"name": d.gvr.Resource + "." + d.gvr.Group},
		"spec": map[string]any{
			"group": d.gvr.Group, "names": names, "scope": scope,
			"versions": []any{version},
		},
	}}
}

// YAML is every definition as YAML documents, for the golden file and for
// users who want to see what the node installs.
func YAML() ([]byte, error) {
	var out []byte
	for _, d := range definitions {
		b, err := yaml.Marshal(d.object().Object)
		if err != nil {
			return nil, err
		}
		out = append(append(out, "---\n"...), b...)
	}
	return out, nil
}

// Ensure applies the definitions (server-side apply: a changed definition
// is updated, an unchanged one costs a request) and waits until the
// apiserver serves each of them.
func Ensure(ctx context.Context, dyn dynamic.Interface) error {
	for _, d := range definitions {
		obj := d.object()
		body, err := obj.MarshalJSON()
		if err != nil {
			return err
		}
		if _, err := dyn.Resource(crdResource).Patch(ctx, obj.GetName(), types.ApplyPatchType, body,
			metav1.PatchOptions{FieldManager: "rke2os", Force: ptr(true)}); err != nil {
			return fmt.Errorf("apply CRD %s: %w", obj.GetName(), err)
		}
	}
	for _, d := range definitions {
		if err := waitServed(ctx, dyn, d.gvr); err != nil {
			return err
		}
	}
	slog.Info("custom resources served", "crds", len(definitions))
	return nil
}

// waitServed waits until a list of gvr succeeds: the CRD is established.
func waitServed(ctx context.Context, dyn dynamic.Interface, gvr schema.GroupVersionResource) error {
	for {
		_, err := dyn.Resource(gvr).List(ctx, metav1.ListOptions{Limit: 1})
		if err == nil {
			return nil
		}
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("list %s: %w", gvr.Resource, err)
		}
		if !backoff.Sleep(ctx, 500*time.Millisecond) {
			return fmt.Errorf("waiting for %s to be served: %w", gvr.Resource, ctx.Err())
		}
	}
}

func ptr[T any](v T) *T { return &v }
