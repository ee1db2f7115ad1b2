// Package deploy applies the manifests an RKE2 server finds in
// /var/lib/rancher/rke2/server/manifests, as k3s's deploy controller
// (pkg/deploy) does, so that users and RKE2's own packaged components
// can keep dropping YAML there.
//
// Every .yaml, .yml or .json file under the directory is an addon, named
// after the file without its extension, and tracked by an Addon object
// (k3s.cattle.io/v1, in kube-system): spec.source is the file's path,
// spec.checksum the hex SHA-256 of its bytes, and status.gvks the kinds
// it applied, as GroupVersionKind strings ("apps/v1, Kind=Deployment",
// "/v1, Kind=ConfigMap"); k3s's addon.k3s.cattle.io/gvks annotation is
// read as well.
//
// A file is applied when its checksum differs from its Addon's, and also
// once after each start of the process, as k3s does, which puts back
// objects that were edited or deleted by hand. Its objects are applied
// with server-side apply and carry wrangler's objectset labels and
// annotations, with the same hash as k3s gives them, so objects applied
// by a stock RKE2 are recognised. Objects that a new version of the file
// no longer holds are deleted. A removed or .skip'ed file leaves its
// objects in place, as in k3s.
package deploy

import (
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/dynamic"
)

// DefaultEvery is how often Run looks at the directory when Controller.Every
// is zero: k3s's period.
const DefaultEvery = 15 * time.Second

// FieldManager is the server-side apply field manager of what this
// package applies.
const FieldManager = "rke2os-deploy"

const (
	addonNamespace = metav1.NamespaceSystem

	// wrangler's objectset keys, which k3s's deploy controller sets.
	labelHash                = "objectset.rio.cattle.io/hash"
	annotationID             = "objectset.rio.cattle.io/id"
	annotationOwnerGVK       = "objectset.rio.cattle.io/owner-gvk"
	annotationOwnerName      = "objectset.rio.cattle.io/owner-name"
	annotationOwnerNamespace = "objectset.rio.cattle.io/owner-namespace"

	// k3sGVKAnnotation is where k3s keeps an Addon's kinds.
	k3sGVKAnnotation = "addon.k3s.cattle.io/gvks"
)

var (
	addonGVK = schema.GroupVersionKind{Group: "k3s.cattle.io", Version: "v1", Kind: "Addon"}
	addonGVR = addonGVK.GroupVersion().WithResource("addons")
)

// Controller keeps the objects of the manifests in Dir applied. Dyn and
// Mapper are required; Mapper should be a discovery-backed mapper that
// implements meta.ResettableRESTMapper, so that kinds made by CRDs in the
// manifests themselves are found. A Controller must not be copied once
// used.
type Controller struct {
	// Dir is the manifests directory, such as
	// /var/lib/rancher/rke2/server/manifests.
	Dir string
	// Dyn applies, lists and deletes the objects, and reads and writes
	// the Addons.
	Dyn dynamic.Interface
	// Mapper maps kinds to resources and tells which are namespaced.
	Mapper meta.RESTMapper
	// Every is Run's period; DefaultEvery if zero.
	Every time.Duration

	mu sync.Mutex
	// applied is, for each file applied since this Controller was made,
	// the checksum applied: a file missing here is applied even when its
	// Addon's checksum matches, which gives k3s's apply at startup.
	applied map[string]string
	// reset holds the kinds for which Mapper was reset in this pass, so
	// that a kind that stays unknown costs one rediscovery per pass and
	// not one per object.
	reset map[schema.GroupKind]bool
}

// Run syncs at once and then every Every (DefaultEvery if zero) until ctx
// ends, when it returns nil. Failures are logged by Sync and retried on
// the next pass, so Run only stops early when Dyn or Mapper is missing.
func (c *Controller) Run(ctx context.Context) error {
	if err := c.check(); err != nil {
		return err
	}
	every := c.Every
	if every <= 0 {
		every = DefaultEvery
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		_ = c.Sync(ctx) // logged there
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Sync makes one pass over Dir: every manifest is tried, and the errors
// of those that failed are joined, each naming its file. Every failure is
// also logged with slog as it happens. A failed file's Addon keeps its
// old checksum, so the next pass tries the file again.
func (c *Controller) Sync(ctx context.Context) error {
	if err := c.check(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.applied == nil {
		c.applied = map[string]string{}
	}
	c.reset = map[schema.GroupKind]bool{}

	paths, err := manifestFiles(c.Dir)
	if err != nil {
		slog.Error("listing manifests", "dir", c.Dir, "err", err)
	}
	errs := []error{err}
	// Forget files that are gone or skipped: if one comes back, it is
	// applied again even if unchanged, since its objects may have gone.
	for p := range c.applied {
		if !slices.Contains(paths, p) {
			delete(c.applied, p)
		}
	}
	if len(paths) == 0 {
		return errors.Join(errs...)
	}
	addons, err := c.listAddons(ctx)
	if err != nil {
		slog.Error("listing Addons", "err", err)
		return errors.Join(append(errs, err)...)
	}
	claimed := map[string]string{} // addon name → file that has it
	for _, p := range paths {
		if ctx.Err() != nil {
			return errors.Join(append(errs, ctx.Err())...)
		}
		name := addonName(p)
		if other, ok := claimed[name]; ok {
			err := fmt.Errorf("manifest %s: addon %q is already the manifest %s", p, name, other)
			slog.Error("manifest not applied", "file", p, "err", err)
			errs = append(errs, err)
			continue
		}
		claimed[name] = p
		if err := c.syncFile(ctx, p, name, addons[name]); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (c *Controller) check() error {
	if c.Dyn == nil || c.Mapper == nil {
		return errors.New("deploy: Controller needs Dyn and Mapper")
	}
	return nil
}

func (c *Controller) listAddons(ctx context.Context) (map[string]*unstructured.Unstructured, error) {
	list, err := c.Dyn.Resource(addonGVR).Namespace(addonNamespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list Addons: %w", err)
	}
	addons := make(map[string]*unstructured.Unstructured, len(list.Items))
	for i := range list.Items {
		addons[list.Items[i].GetName()] = &list.Items[i]
	}
	return addons, nil
}

// syncFile applies one manifest if needed; addon is its Addon, nil if
// there is none yet. It logs its own failures.
func (c *Controller) syncFile(ctx context.Context, path, name string, addon *unstructured.Unstructured) error {
	log := slog.With("file", path, "addon", name)
	fail := func(err error) error {
		err = fmt.Errorf("manifest %s: %w", path, err)
		log.Error("manifest not applied", "err", err)
		return err
	}
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		return fail(fmt.Errorf("addon name %q: %s", name, strings.Join(errs, "; ")))
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return fail(err)
	}
	sum := sha256.Sum256(data)
	checksum := hex.EncodeToString(sum[:])
	if addon != nil && c.applied[path] == checksum {
		if old, _, _ := unstructured.NestedString(addon.Object, "spec", "checksum"); old == checksum {
			return nil
		}
	}
	objs, err := parseManifest(data)
	if err != nil {
		return fail(err)
	}
	o := newOwner(name)
	desired, gvks, err := c.applyAll(ctx, log, o, objs)
	if err != nil {
		return fmt.Errorf("manifest %s: %w", path, err) // logged per object
	}
	// Look for leftovers under the kinds applied before too: an object
	// whose kind the file no longer holds must go as well.
	if err := c.prune(ctx, log, o, desired, append(recordedGVKs(addon), gvks...)); err != nil {
		return fail(err)
	}
	if err := c.writeAddon(ctx, addon, name, path, checksum, gvks); err != nil {
		return fail(err)
	}
	c.applied[path] = checksum
	log.Info("manifest applied", "objects", len(objs))
	return nil
}

// owner is what wrangler's objectset stamps on the objects of one Addon.
type owner struct {
	name string
	hash string
}

// newOwner computes the hash as wrangler does (SHA-1 of set ID, owner GVK,
// name and namespace; k3s's set ID is empty), so that objects applied by
// k3s's own controller are pruned by this one.
func newOwner(name string) owner {
	sum := sha1.Sum([]byte(addonGVK.String() + name + addonNamespace))
	return owner{name: name, hash: hex.EncodeToString(sum[:])}
}

func (o owner) stamp(obj *unstructured.Unstructured) {
	labels := obj.GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	labels[labelHash] = o.hash
	obj.SetLabels(labels)
	ann := obj.GetAnnotations()
	if ann == nil {
		ann = map[string]string{}
	}
	ann[annotationID] = ""
	ann[annotationOwnerGVK] = addonGVK.String()
	ann[annotationOwnerName] = o.name
	ann[annotationOwnerNamespace] = addonNamespace
	obj.SetAnnotations(ann)
}

// objKey identifies an object across API versions of its kind, so that a
// file moving from one version to another does not prune what it applies.
type objKey struct {
	gk        schema.GroupKind
	namespace string
	name      string
}

// applyAll applies objs, Namespaces and CRDs first so that what depends
// on them can follow in the same pass. It goes on past a failed object,
// so that one bad object does not hold back the others, and returns the
// keys and kinds of what it applied.
func (c *Controller) applyAll(ctx context.Context, log *slog.Logger, o owner, objs []*unstructured.Unstructured) (map[objKey]bool, []schema.GroupVersionKind, error) {
	objs = slices.Clone(objs)
	slices.SortStableFunc(objs, func(a, b *unstructured.Unstructured) int {
		return applyRank(a) - applyRank(b)
	})
	desired := map[objKey]bool{}
	var gvks []schema.GroupVersionKind
	var errs []error
	for _, obj := range objs {
		gvk := obj.GroupVersionKind()
		err := c.apply(ctx, o, obj)
		if err != nil {
			log.Error("object not applied", "kind", gvk.Kind, "namespace", obj.GetNamespace(), "name", obj.GetName(), "err", err)
			errs = append(errs, fmt.Errorf("%s %s: %w", gvk.Kind, objName(obj), err))
			continue
		}
		desired[objKey{gvk.GroupKind(), obj.GetNamespace(), obj.GetName()}] = true
		if !slices.Contains(gvks, gvk) {
			gvks = append(gvks, gvk)
		}
	}
	return desired, gvks, errors.Join(errs...)
}

func applyRank(obj *unstructured.Unstructured) int {
	switch obj.GroupVersionKind().GroupKind() {
	case schema.GroupKind{Kind: "Namespace"}, schema.GroupKind{Group: "apiextensions.k8s.io", Kind: "CustomResourceDefinition"}:
		return 0
	}
	return 1
}

func objName(obj *unstructured.Unstructured) string {
	if ns := obj.GetNamespace(); ns != "" {
		return ns + "/" + obj.GetName()
	}
	return obj.GetName()
}

// apply server-side applies one object, in namespace "default" if its
// kind is namespaced and it names none (as kubectl does).
func (c *Controller) apply(ctx context.Context, o owner, obj *unstructured.Unstructured) error {
	m, err := c.mapping(ctx, obj.GroupVersionKind())
	if err != nil {
		return err
	}
	var ri dynamic.ResourceInterface = c.Dyn.Resource(m.Resource)
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		if obj.GetNamespace() == "" {
			obj.SetNamespace(metav1.NamespaceDefault)
		}
		ri = c.Dyn.Resource(m.Resource).Namespace(obj.GetNamespace())
	} else {
		// The apiserver refuses a namespace on a cluster-scoped object.
		obj.SetNamespace("")
	}
	// Manifests are often saved from kubectl get -o yaml: fields the
	// server keeps would be preconditions (resourceVersion, uid) or are
	// refused by apply (managedFields).
	for _, f := range []string{"resourceVersion", "uid", "managedFields", "creationTimestamp", "generation", "selfLink"} {
		unstructured.RemoveNestedField(obj.Object, "metadata", f)
	}
	o.stamp(obj)
	_, err = ri.Apply(ctx, obj.GetName(), obj, metav1.ApplyOptions{FieldManager: FieldManager, Force: true})
	return err
}

// mapping finds the resource of gvk. A kind the mapper does not know may
// come from a CRD applied moments ago, so the mapper is reset (once per
// kind and pass) and asked again; if the kind is still unknown, the CRD
// is not served yet and the next pass will try again.
func (c *Controller) mapping(ctx context.Context, gvk schema.GroupVersionKind) (*meta.RESTMapping, error) {
	mapper := meta.ToRESTMapperWithContext(c.Mapper)
	m, err := mapper.RESTMappingWithContext(ctx, gvk.GroupKind(), gvk.Version)
	if err == nil || !meta.IsNoMatchError(err) || c.reset[gvk.GroupKind()] {
		return m, err
	}
	switch r := c.Mapper.(type) {
	case meta.ResettableRESTMapperWithContext:
		r.ResetWithContext(ctx)
	case meta.ResettableRESTMapper:
		r.Reset()
	default:
		return nil, err
	}
	c.reset[gvk.GroupKind()] = true
	return mapper.RESTMappingWithContext(ctx, gvk.GroupKind(), gvk.Version)
}

// prune deletes the objects of o, under the given kinds, that are not in
// desired. Kinds the server no longer has are passed over: their objects
// are gone with them.
func (c *Controller) prune(ctx context.Context, log *slog.Logger, o owner, desired map[objKey]bool, gvks []schema.GroupVersionKind) error {
	mapper := meta.ToRESTMapperWithContext(c.Mapper)
	done := map[schema.GroupKind]bool{}
	var errs []error
	for _, gvk := range gvks {
		gk := gvk.GroupKind()
		if done[gk] {
			continue
		}
		done[gk] = true
		m, err := mapper.RESTMappingWithContext(ctx, gk, gvk.Version)
		if meta.IsNoMatchError(err) { // maybe an old version; any will do
			m, err = mapper.RESTMappingWithContext(ctx, gk)
		}
		if meta.IsNoMatchError(err) {
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("prune %s: %w", gk, err))
			continue
		}
		list, err := c.Dyn.Resource(m.Resource).List(ctx, metav1.ListOptions{LabelSelector: labelHash + "=" + o.hash})
		if err != nil {
			errs = append(errs, fmt.Errorf("prune %s: %w", gk, err))
			continue
		}
		for i := range list.Items {
			item := &list.Items[i]
			if desired[objKey{gk, item.GetNamespace(), item.GetName()}] {
				continue
			}
			background := metav1.DeletePropagationBackground
			opts := metav1.DeleteOptions{PropagationPolicy: &background}
			if uid := item.GetUID(); uid != "" {
				// Not an object made again under the same name since the List.
				opts.Preconditions = &metav1.Preconditions{UID: &uid}
			}
			err := c.Dyn.Resource(m.Resource).Namespace(item.GetNamespace()).Delete(ctx, item.GetName(), opts)
			if err != nil && !apierrors.IsNotFound(err) {
				errs = append(errs, fmt.Errorf("prune %s %s: %w", gk.Kind, objName(item), err))
				continue
			}
			log.Info("object no longer in manifest deleted", "kind", gk.Kind, "namespace", item.GetNamespace(), "name", item.GetName())
		}
	}
	return errors.Join(errs...)
}

// recordedGVKs reads the kinds an Addon says were applied: status.gvks,
// and k3s's annotation for an Addon that stock RKE2 wrote.
func recordedGVKs(addon *unstructured.Unstructured) []schema.GroupVersionKind {
	if addon == nil {
		return nil
	}
	strs, _, _ := unstructured.NestedStringSlice(addon.Object, "status", "gvks")
	strs = append(strs, strings.Split(addon.GetAnnotations()[k3sGVKAnnotation], ";")...)
	var out []schema.GroupVersionKind
	for _, s := range strs {
		if gvk, ok := parseGVK(s); ok {
			out = append(out, gvk)
		}
	}
	return out
}

// parseGVK reverses schema.GroupVersionKind.String.
func parseGVK(s string) (schema.GroupVersionKind, bool) {
	gv, kind, ok := strings.Cut(s, ", Kind=")
	if !ok || kind == "" {
		return schema.GroupVersionKind{}, false
	}
	v, err := schema.ParseGroupVersion(gv)
	if err != nil || v.Version == "" {
		return schema.GroupVersionKind{}, false
	}
	return v.WithKind(kind), true
}

// writeAddon records a successful apply: it creates the Addon, or updates
// it if anything changed (an Update conflict fails the file, which is then
// applied again next pass).
func (c *Controller) writeAddon(ctx context.Context, addon *unstructured.Unstructured, name, path, checksum string, gvks []schema.GroupVersionKind) error {
	strs := make([]string, len(gvks))
	for i, gvk := range gvks {
		strs[i] = gvk.String()
	}
	slices.Sort(strs)
	ri := c.Dyn.Resource(addonGVR).Namespace(addonNamespace)
	a := &unstructured.Unstructured{Object: map[string]any{}}
	if addon != nil {
		a = addon.DeepCopy()
	}
	a.SetGroupVersionKind(addonGVK)
	a.SetNamespace(addonNamespace)
	a.SetName(name)
	err := errors.Join(
		unstructured.SetNestedField(a.Object, path, "spec", "source"),
		unstructured.SetNestedField(a.Object, checksum, "spec", "checksum"),
		unstructured.SetNestedStringSlice(a.Object, strs, "status", "gvks"))
	if err != nil { // spec or status of another type than an object
		return fmt.Errorf("Addon %s: %w", name, err)
	}
	switch {
	case addon == nil:
		_, err = ri.Create(ctx, a, metav1.CreateOptions{FieldManager: FieldManager})
	case reflect.DeepEqual(a.Object, addon.Object):
		return nil
	default:
		_, err = ri.Update(ctx, a, metav1.UpdateOptions{FieldManager: FieldManager})
	}
	if err != nil {
		return fmt.Errorf("write Addon %s: %w", name, err)
	}
	return nil
}
