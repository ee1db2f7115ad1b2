package upgradectl

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
)

// MirrorKey marks a static pod's mirror: the kubelet runs it from its
// manifests, the API cannot evict it (kubectl drain leaves it too).
const MirrorKey = "kubernetes.io/config.mirror"

// drain is one step of a node's drain: it cordons the node if it is not
// (its start was recorded, its cordon not done), asks for the eviction
// of every pod still on the node that a drain takes (a
// PodDisruptionBudget that refuses, 429, is asked again next step), and
// says whether the node is drained, or failed to drain by its deadline.
// The pass's next round records that in the plan's status, and only then
// asks the node, or uncordons it.
func (c *Controller) drain(ctx context.Context, n *corev1.Node, a action) (drainOutcome, *corev1.Node, error) {
	out := drainOutcome{plan: a.plan}
	var updated *corev1.Node
	if !n.Spec.Unschedulable {
		ann := map[string]any{CordonedKey: "true"}
		clearAnswer(n, a.plan, ann)
		u, err := c.patchNode(ctx, n.Name, map[string]any{
			"metadata": map[string]any{"annotations": ann},
			"spec":     map[string]any{"unschedulable": true}})
		if err != nil {
			return out, nil, err
		}
		updated = u
	}
	pods, err := c.Kube.CoreV1().Pods(metav1.NamespaceAll).List(ctx, metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("spec.nodeName", n.Name).String()})
	if err != nil {
		return out, updated, fmt.Errorf("list the pods of %s: %w", n.Name, err)
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
		slog.Info("upgrade: node drained", "node", n.Name, "plan", a.plan)
		out.drained = true
		return out, updated, nil
	}
	if c.now().Sub(a.since) < a.timeout {
		return out, updated, nil
	}
	const most = 5
	if len(left) > most {
		left = append(left[:most], fmt.Sprintf("and %d more", len(left)-most))
	}
	out.failed = fmt.Sprintf("drain: not done after %s: %s", a.timeout, strings.Join(left, "; "))
	slog.Warn("upgrade: node failed", "node", n.Name, "plan", a.plan, "reason", out.failed)
	return out, updated, nil
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
