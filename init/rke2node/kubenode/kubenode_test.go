package kubenode

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func TestLabelWaitsForTheNode(t *testing.T) {
	c := fake.NewClientset()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	go func() {
		time.Sleep(50 * time.Millisecond)
		c.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node1",
			Labels: map[string]string{"zone": "a", "node-role.kubernetes.io/etcd": "false"}}}, metav1.CreateOptions{})
	}()
	if err := Label(ctx, c, "node1", ServerLabels, 10*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	n, err := c.CoreV1().Nodes().Get(ctx, "node1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range ServerLabels {
		if n.Labels[k] != v {
			t.Errorf("label %s=%q, want %q", k, n.Labels[k], v)
		}
	}
	if n.Labels["zone"] != "a" {
		t.Errorf("the node's own label was lost: %v", n.Labels)
	}
}

func TestLabelGivesUpWithContext(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := Label(ctx, fake.NewClientset(), "node1", ServerLabels, 10*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "Node node1 to be registered") {
		t.Fatalf("err = %v", err)
	}
}

func TestWaitReady(t *testing.T) {
	for _, tc := range []struct {
		name  string
		conds []corev1.NodeCondition
		ready bool
	}{
		{"no conditions", nil, false},
		{"not ready", []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionFalse, Message: "container runtime network not ready"}}, false},
		{"unknown", []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionUnknown}}, false},
		{"ready", []corev1.NodeCondition{{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse}, {Type: corev1.NodeReady, Status: corev1.ConditionTrue}}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := fake.NewClientset(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node1"}, Status: corev1.NodeStatus{Conditions: tc.conds}})
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			err := WaitReady(ctx, c, "node1", 10*time.Millisecond)
			if (err == nil) != tc.ready {
				t.Fatalf("err = %v, want ready=%v", err, tc.ready)
			}
			if err != nil && tc.conds != nil && !strings.Contains(err.Error(), "Ready=") {
				t.Errorf("the error does not say why: %v", err)
			}
		})
	}
}

// A Node that becomes Ready while the server waits ends the wait.
func TestWaitReadyFollowsTheNode(t *testing.T) {
	c := fake.NewClientset(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node1"}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	go func() {
		time.Sleep(50 * time.Millisecond)
		n, _ := c.CoreV1().Nodes().Get(ctx, "node1", metav1.GetOptions{})
		n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}
		c.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{})
	}()
	if err := WaitReady(ctx, c, "node1", 10*time.Millisecond); err != nil {
		t.Fatal(err)
	}
}
