// Package kubenode is what a server does with this machine's Node object
// once the apiserver answers: it gives the Node the role labels RKE2's
// server sets (the kubelet may not set node-role.kubernetes.io labels on
// itself), and it tells when the Node's Ready condition is true.
package kubenode

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/rke2os/rke2os/internal/backoff"
)

// ServerLabels are the role labels RKE2 gives a server's Node (etcd and
// the control plane on one machine).
var ServerLabels = map[string]string{
	"node-role.kubernetes.io/control-plane": "true",
	"node-role.kubernetes.io/master":        "true",
	"node-role.kubernetes.io/etcd":          "true",
}

// Config is the client configuration of a kubeconfig file (server/cred's,
// or the agent's), with a timeout on every request; host, if not "",
// replaces the kubeconfig's server URL.
func Config(kubeconfig, host string) (*rest.Config, error) {
	rc, err := clientcmd.BuildConfigFromFlags(host, kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", kubeconfig, err)
	}
	rc.Timeout = 15 * time.Second
	rc.UserAgent = "rke2os"
	return rc, nil
}

// Client is a clientset of Config(kubeconfig, host).
func Client(kubeconfig, host string) (kubernetes.Interface, error) {
	rc, err := Config(kubeconfig, host)
	if err != nil {
		return nil, err
	}
	return kubernetes.NewForConfig(rc)
}

// Label waits for the Node to be registered, then sets those of labels
// that it does not carry with that value yet, in one merge patch; its
// other labels stay as they are.
func Label(ctx context.Context, c kubernetes.Interface, name string, labels map[string]string, every time.Duration) error {
	return backoff.Poll(ctx, every, "Node "+name+" to be registered", func(ctx context.Context) error {
		n, err := c.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return fmt.Errorf("not registered yet")
		}
		if err != nil {
			return err
		}
		missing := map[string]string{}
		for k, v := range labels {
			if n.Labels[k] != v {
				missing[k] = v
			}
		}
		if len(missing) == 0 {
			return nil
		}
		patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"labels": missing}})
		if err != nil {
			return err
		}
		if _, err := c.CoreV1().Nodes().Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
			return fmt.Errorf("label Node %s: %w", name, err)
		}
		slog.Info("node labelled", "node", name, "labels", missing)
		return nil
	})
}

// WaitReady waits until the Node's Ready condition is True, saying about
// every minute why it is not (the kubelet's own reason, such as the CNI
// not being ready yet).
func WaitReady(ctx context.Context, c kubernetes.Interface, name string, every time.Duration) error {
	return backoff.Poll(ctx, every, "Node "+name+" to be Ready", func(ctx context.Context) error {
		n, err := c.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		ready := Ready(n)
		if ready == nil {
			return fmt.Errorf("no Ready condition yet")
		}
		if ready.Status != corev1.ConditionTrue {
			return fmt.Errorf("Ready=%s: %s", ready.Status, ready.Message)
		}
		return nil
	})
}

// Ready is the Node's Ready condition, nil if it has none yet.
func Ready(n *corev1.Node) *corev1.NodeCondition {
	for i := range n.Status.Conditions {
		if n.Status.Conditions[i].Type == corev1.NodeReady {
			return &n.Status.Conditions[i]
		}
	}
	return nil
}
