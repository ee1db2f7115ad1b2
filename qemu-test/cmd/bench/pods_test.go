package main

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestNearestRank(t *testing.T) {
	twenty := make([]float64, 20)
	for i := range twenty {
		twenty[i] = float64(20 - i) // 20, 19, ..., 1: unsorted on purpose
	}
	for _, c := range []struct {
		v    []float64
		p    float64
		want float64
	}{
		{twenty, 50, 10},
		{twenty, 99, 20},
		{twenty, 95, 19},
		{twenty, 5, 1},
		{[]float64{3}, 99, 3},
		{[]float64{2, 1}, 50, 1},
	} {
		if got := nearestRank(c.v, c.p); got != c.want {
			t.Errorf("nearestRank(%v, %v) = %v, want %v", c.v, c.p, got, c.want)
		}
	}
	if twenty[0] != 20 {
		t.Errorf("nearestRank sorted its input in place: %v", twenty)
	}
}

func TestStarted(t *testing.T) {
	running := corev1.ContainerStatus{State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}
	waiting := corev1.ContainerStatus{State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}}}
	pod := func(phase corev1.PodPhase, containers int, st ...corev1.ContainerStatus) *corev1.Pod {
		return &corev1.Pod{Spec: corev1.PodSpec{Containers: make([]corev1.Container, containers)},
			Status: corev1.PodStatus{Phase: phase, ContainerStatuses: st}}
	}
	for _, c := range []struct {
		name string
		pod  *corev1.Pod
		want bool
	}{
		{"running, its container started", pod(corev1.PodRunning, 1, running), true},
		{"pending", pod(corev1.PodPending, 1, waiting), false},
		{"running, one of two containers waiting", pod(corev1.PodRunning, 2, running, waiting), false},
		{"running, a status missing", pod(corev1.PodRunning, 2, running), false},
		{"running, no status yet", pod(corev1.PodRunning, 1), false},
	} {
		if got := started(c.pod); got != c.want {
			t.Errorf("%s: started = %v, want %v", c.name, got, c.want)
		}
	}
}
