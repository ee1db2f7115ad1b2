// Package helmchart installs the charts of an RKE2 server: every HelmChart
// (helm.cattle.io/v1) is installed or upgraded as helm-controller does it,
// merged with the HelmChartConfig of the same name and RKE2's cluster
// values, but with the Helm SDK in this process instead of a Job per
// chart. A node runs offline and under TCG a Job's pod takes minutes to
// start; in-process, a bootstrap chart (the CNI) installs before any pod
// network exists, with nothing to schedule. What a user sees is
// helm-controller's: the HelmChart's status conditions, events, and Helm
// releases stored as Secrets.
package helmchart

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/rke2os/rke2os/init/rke2node/crds"
	"github.com/rke2os/rke2os/internal/backoff"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
)

// Finalizer is helm-controller's: a HelmChart being deleted keeps it until
// its release is uninstalled.
const Finalizer = "wrangler.cattle.io/on-helm-chart-remove"

// Controller keeps the cluster's HelmCharts installed.
type Controller struct {
	Dyn  dynamic.Interface
	Kube kubernetes.Interface
	Helm *Helm
	// Globals are RKE2's injected values (global.clusterCIDR, ...), set
	// on every chart before its own spec.set.
	Globals map[string]any
	// Every is how often the charts are looked at (default 10 s).
	Every time.Duration

	// state is per chart: the hash last applied, and the retry backoff
	// of a failing one.
	state map[string]*chartState
}

type chartState struct {
	applied string // hash of the last successful apply in this process
	failed  string // hash that failed
	retry   backoff.Backoff
	next    time.Time
}

// Run syncs at once and then every Every until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	every := c.Every
	if every <= 0 {
		every = 10 * time.Second
	}
	for {
		if err := c.Sync(ctx); err != nil && ctx.Err() == nil {
			slog.Warn("helm charts", "err", err)
		}
		if !backoff.Sleep(ctx, every) {
			return nil
		}
	}
}

// Sync looks at every HelmChart once.
func (c *Controller) Sync(ctx context.Context) error {
	if c.state == nil {
		c.state = map[string]*chartState{}
	}
	list, err := c.Dyn.Resource(crds.HelmChart).Namespace(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("list HelmCharts: %w", err)
	}
	var errs []error
	for i := range list.Items {
		if err := c.sync(ctx, &list.Items[i]); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (c *Controller) sync(ctx context.Context, hc *unstructured.Unstructured) error {
	key := hc.GetNamespace() + "/" + hc.GetName()
	s, err := readSpec(hc)
	if err != nil {
		return c.fail(ctx, hc, err)
	}
	ns := s.TargetNamespace
	if ns == "" {
		ns = hc.GetNamespace()
	}
	if hc.GetDeletionTimestamp() != nil {
		if !slices.Contains(hc.GetFinalizers(), Finalizer) {
			return nil
		}
		if err := c.Helm.uninstall(ns, hc.GetName()); err != nil {
			return c.fail(ctx, hc, err)
		}
		slog.Info("helm chart removed", "chart", key)
		delete(c.state, key)
		return c.setFinalizers(ctx, hc, slices.DeleteFunc(hc.GetFinalizers(), func(f string) bool { return f == Finalizer }))
	}
	if !slices.Contains(hc.GetFinalizers(), Finalizer) {
		if err := c.setFinalizers(ctx, hc, append(hc.GetFinalizers(), Finalizer)); err != nil {
			return err
		}
	}
	configValues, err := c.configValues(ctx, hc)
	if err != nil {
		return c.fail(ctx, hc, err)
	}
	vals, err := values(s, configValues, c.Globals)
	if err != nil {
		return c.fail(ctx, hc, err)
	}
	want := hash(s, vals)
	st := c.state[key]
	if st == nil {
		st = &chartState{}
		c.state[key] = st
	}
	if st.applied == want {
		return nil
	}
	if st.failed == want && (s.FailurePolicy == "abort" || time.Now().Before(st.next)) {
		return nil
	}
	// After a restart of this process: the release may already be what
	// is wanted.
	if last, err := c.Helm.last(ns, hc.GetName()); err == nil && last != nil &&
		last.Info.Status == "deployed" && last.Labels[hashLabel] == want {
		st.applied = want
		return nil
	}
	chrt, err := loadChart(s)
	if err != nil {
		return c.failed(ctx, hc, st, want, err)
	}
	timeout := 5 * time.Minute
	if s.Timeout != "" {
		if timeout, err = time.ParseDuration(s.Timeout); err != nil {
			return c.failed(ctx, hc, st, want, fmt.Errorf("spec.timeout %q is not a duration like \"300s\"", s.Timeout))
		}
	}
	start := time.Now()
	how, err := c.Helm.apply(ctx, ns, hc.GetName(), chrt, vals, applyOptions{hash: want, createNamespace: s.CreateNamespace, timeout: timeout})
	if err != nil && s.FailurePolicy != "abort" {
		// helm-controller's default policy, reinstall: remove the
		// release and install it again.
		slog.Warn("helm chart failed; reinstalling it", "chart", key, "err", err)
		if uerr := c.Helm.uninstall(ns, hc.GetName()); uerr == nil {
			how, err = c.Helm.apply(ctx, ns, hc.GetName(), chrt, vals, applyOptions{hash: want, createNamespace: s.CreateNamespace, timeout: timeout})
		}
	}
	if err != nil {
		return c.failed(ctx, hc, st, want, fmt.Errorf("helm install %s into %s: %w", hc.GetName(), ns, err))
	}
	*st = chartState{applied: want}
	slog.Info("helm chart "+how, "chart", key, "namespace", ns, "chart_version", chrt.Metadata.Version, "took", time.Since(start).Round(time.Millisecond))
	c.event(ctx, hc, corev1.EventTypeNormal, "Installed", fmt.Sprintf("Helm chart %s %s %s into %s", chrt.Metadata.Name, chrt.Metadata.Version, how, ns))
	return c.setCondition(ctx, hc, "False", "Installed", fmt.Sprintf("%s %s %s", chrt.Metadata.Name, chrt.Metadata.Version, how))
}

// failed records a failure of the wanted state: waits doubling from 10 s
// to 5 min before the same state is tried again.
func (c *Controller) failed(ctx context.Context, hc *unstructured.Unstructured, st *chartState, want string, err error) error {
	if st.failed != want {
		st.failed, st.retry = want, backoff.Backoff{Initial: 10 * time.Second, Max: 5 * time.Minute}
	}
	st.next = time.Now().Add(st.retry.Next(0))
	return c.fail(ctx, hc, err)
}

// fail says why a chart is not installed where a user looks: the
// HelmChart's Failed condition, an event, and the log.
func (c *Controller) fail(ctx context.Context, hc *unstructured.Unstructured, err error) error {
	c.event(ctx, hc, corev1.EventTypeWarning, "Failed", err.Error())
	if serr := c.setCondition(ctx, hc, "True", "Error", err.Error()); serr != nil {
		slog.Warn("helm chart status", "chart", hc.GetNamespace()+"/"+hc.GetName(), "err", serr)
	}
	return fmt.Errorf("HelmChart %s/%s: %w", hc.GetNamespace(), hc.GetName(), err)
}

// configValues is the valuesContent of the HelmChartConfig of the same
// name and namespace, "" if there is none.
func (c *Controller) configValues(ctx context.Context, hc *unstructured.Unstructured) (string, error) {
	cfg, err := c.Dyn.Resource(crds.HelmChartConfig).Namespace(hc.GetNamespace()).Get(ctx, hc.GetName(), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("HelmChartConfig: %w", err)
	}
	v, _, _ := unstructured.NestedString(cfg.Object, "spec", "valuesContent")
	return v, nil
}

// setCondition sets status.conditions' Failed condition, as
// helm-controller reports it, when it changed.
func (c *Controller) setCondition(ctx context.Context, hc *unstructured.Unstructured, status, reason, message string) error {
	conds, _, _ := unstructured.NestedSlice(hc.Object, "status", "conditions")
	cond := map[string]any{"type": "Failed", "status": status, "reason": reason, "message": message}
	var out []any
	for _, x := range conds {
		if m, ok := x.(map[string]any); ok && m["type"] == "Failed" {
			if m["status"] == status && m["reason"] == reason && m["message"] == message {
				return nil
			}
			continue
		}
		out = append(out, x)
	}
	out = append(out, cond)
	obj := hc.DeepCopy()
	if err := unstructured.SetNestedSlice(obj.Object, out, "status", "conditions"); err != nil {
		return err
	}
	updated, err := c.Dyn.Resource(crds.HelmChart).Namespace(hc.GetNamespace()).UpdateStatus(ctx, obj, metav1.UpdateOptions{})
	if err != nil {
		return fmt.Errorf("update status: %w", err)
	}
	hc.Object = updated.Object
	return nil
}

func (c *Controller) setFinalizers(ctx context.Context, hc *unstructured.Unstructured, finalizers []string) error {
	obj := hc.DeepCopy()
	obj.SetFinalizers(finalizers)
	updated, err := c.Dyn.Resource(crds.HelmChart).Namespace(hc.GetNamespace()).Update(ctx, obj, metav1.UpdateOptions{})
	if err != nil {
		return fmt.Errorf("HelmChart %s/%s: finalizer: %w", hc.GetNamespace(), hc.GetName(), err)
	}
	hc.Object = updated.Object
	return nil
}

// event records an Event on the HelmChart (kubectl describe shows it).
func (c *Controller) event(ctx context.Context, hc *unstructured.Unstructured, typ, reason, message string) {
	if c.Kube == nil {
		return
	}
	now := metav1.Now()
	ev := &corev1.Event{
		// Named as client-go's recorder names events.
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s.%x", hc.GetName(), now.UnixNano()), Namespace: hc.GetNamespace()},
		InvolvedObject: corev1.ObjectReference{APIVersion: "helm.cattle.io/v1", Kind: "HelmChart", Name: hc.GetName(),
			Namespace: hc.GetNamespace(), UID: hc.GetUID(), ResourceVersion: hc.GetResourceVersion()},
		Type: typ, Reason: reason, Message: message, FirstTimestamp: now, LastTimestamp: now, Count: 1,
		Source: corev1.EventSource{Component: "helm-controller"}, ReportingController: "rke2os/helm-controller",
	}
	if _, err := c.Kube.CoreV1().Events(hc.GetNamespace()).Create(ctx, ev, metav1.CreateOptions{}); err != nil {
		slog.Debug("helm chart event", "err", err)
	}
}
