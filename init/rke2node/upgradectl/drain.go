package upgradectl

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/rke2os/rke2os/init/rke2node/upgradeapi"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
)

// MirrorKey marks a static pod's mirror: the kubelet runs it from its
// manifests, the API cannot evict it (kubectl drain leaves it too).
const MirrorKey = "kubernetes.io/config.mirror"

// drain is one step of a node's drain: it asks for the eviction of every
// pod still on the node that a drain takes (a PodDisruptionBudget that
// refuses, 429, is asked again next step) and, once none is left, sets
// the node's request. A drain not done by its deadline fails the node:
// the reason is recorded in DrainKey and the node uncordoned.
func (c *Controller) drain(ctx context.Context, n *corev1.Node, a action) (*corev1.Node, error) {
	pods, err := c.Kube.CoreV1().Pods(metav1.NamespaceAll).List(ctx, metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("spec.nodeName", n.Name).String()})
	if err != nil {
		return nil, fmt.Errorf("list the pods of %s: %w", n.Name, err)
	}
	var left []string
	for i := range pods.Items {
		pod := &pods.Items[i]
		if pod.Spec.NodeName != n.Name || !Evicted(pod) {
			continue
		}
		name := pod.Namespace + "/" + pod.Name
		if pod.DeletionTimestamp != nil {
			left = append(left, name+": terminating")
			continue
		}
		err := c.Kube.PolicyV1().Evictions(pod.Namespace).Evict(ctx, &policyv1.Eviction{
			ObjectMeta: metav1.ObjectMeta{Name: pod.Name, Namespace: pod.Namespace}})
		switch {
		case err == nil:
			slog.Info("upgrade: pod evicted", "node", n.Name, "pod", name)
			left = append(left, name+": evicted")
		case apierrors.IsNotFound(err):
		case apierrors.IsTooManyRequests(err):
			// A PodDisruptionBudget's refusal: asked again next step.
			left = append(left, name+": "+err.Error())
		default:
			left = append(left, name+": "+err.Error())
		}
	}
	if len(left) == 0 {
		slog.Info("upgrade: node drained, requesting the upgrade", "node", n.Name, "plan", a.plan, "url", upgradeapi.RedactURL(a.req.URL))
		return c.patchNode(ctx, n.Name, annotations(map[string]any{
			upgradeapi.RequestKey: mustJSON(a.req), DrainKey: nil}))
	}
	if c.now().Sub(a.since) < a.timeout {
		return nil, nil
	}
	const most = 5
	if len(left) > most {
		left = append(left[:most], fmt.Sprintf("and %d more", len(left)-most))
	}
	reason := fmt.Sprintf("drain: not done after %s: %s", a.timeout, strings.Join(left, "; "))
	slog.Warn("upgrade: node failed", "node", n.Name, "plan", a.plan, "reason", reason)
	ann := map[string]any{DrainKey: mustJSON(drainRecord{Request: a.req, Since: metav1.NewTime(a.since), Failed: reason})}
	patch := annotations(ann)
	if n.Annotations[CordonedKey] == "true" {
		ann[CordonedKey] = nil
		patch["spec"] = map[string]any{"unschedulable": false}
	}
	return c.patchNode(ctx, n.Name, patch)
}

// Evicted reports whether a drain evicts the pod: every pod but a
// DaemonSet's (its controller would put it back on the node at once, and
// tolerates the cordon) and a static pod's mirror.
func Evicted(pod *corev1.Pod) bool {
	if _, ok := pod.Annotations[MirrorKey]; ok {
		return false
	}
	if ref := metav1.GetControllerOf(pod); ref != nil && ref.Kind == "DaemonSet" {
		return false
	}
	return true
}
