package main

import (
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/rke2os/rke2os/qemu-test/qemu"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
)

// podStartupSLO is Kubernetes' pod startup latency SLO: 5 s at p99, from
// a stateless pod's creation to all its containers started and seen
// through a watch, its image already on the node (on real hardware).
const podStartupSLO = 5.0

// podCount is how many pods the benchmark starts, one after the other.
const podCount = 20

// benchPods measures pod startup latency as the SLO defines it on a Ready
// server: podCount pods of the test workload (imported from the test
// archive at boot: no pull, imagePullPolicy Never), created one at a time,
// each timed from its Create call to the watch event that shows it
// Running with its container started; p50 and p99 (nearest rank) beside
// the SLO's 5 s.
func benchPods(tb *benchTB, images clusterImages, bin string) []row {
	api := freePort()
	rc := adminConfig(tb, images, bin, api)
	kc := kubernetes.NewForConfigOrDie(rc)
	// A watch lasts as long as its pod takes (startPod bounds it), not
	// the requests' 30 s.
	wrc := *rc
	wrc.Timeout = 0
	wc := kubernetes.NewForConfigOrDie(&wrc)

	cfg := qemu.Config{Machine: "q35", MemoryMiB: 4096, CPUs: 2, Disk: qemu.Overlay(tb, images.server, 8<<30),
		NetdevOpts: fmt.Sprintf("hostfwd=tcp:127.0.0.1:%d-10.0.2.15:6443", api),
		Extra:      qemu.CIDataDrive(qemu.CIData(tb, "#cloud-config\nhostname: node1\n", "instance-id: node1\n"))}
	vm := qemu.Start(tb, cfg)
	waitReady(vm)
	ctx := context.Background()
	// A pod is admitted once its namespace's ServiceAccount exists.
	poll("the default ServiceAccount", lifecycleTimeout, func() error {
		_, err := kc.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		return err
	})

	var lat []float64
	for i := range podCount {
		name := fmt.Sprintf("startup-%02d", i)
		d, err := startPod(ctx, kc, wc, name)
		check(err)
		lat = append(lat, d.Seconds())
	}
	tb.Logf("pods: startup latencies (s) %v", lat)
	// The pods go with the machine's disk (an overlay of this run).
	check(vm.Powerdown())
	check(vm.WaitExit(5 * time.Minute))

	p50, p99 := nearestRank(lat, 50), nearestRank(lat, 99)
	return []row{
		ratioRow(fmt.Sprintf("pod startup latency p50, %d pods one at a time, image on the node (s)", podCount), p50, "SLO p99 (real hardware)", podStartupSLO),
		ratioRow(fmt.Sprintf("pod startup latency p99, %d pods one at a time, image on the node (s)", podCount), p99, "SLO p99 (real hardware)", podStartupSLO),
	}
}

// startPod creates one pod of the test workload (through kc) and answers
// the time from its Create call to the watch event (through wc, whose
// requests have no timeout of their own) that shows it Running with every
// container started.
func startPod(ctx context.Context, kc, wc kubernetes.Interface, name string) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	pods := kc.CoreV1().Pods("default")
	w, err := wc.CoreV1().Pods("default").Watch(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", name).String()})
	if err != nil {
		return 0, fmt.Errorf("watch pod %s: %w", name, err)
	}
	defer w.Stop()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"rke2os.bench": "startup"}},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: new(int64),
			Containers: []corev1.Container{{
				Name: "serve", Image: "rke2os/testworkload:v1", Args: []string{"serve"}, ImagePullPolicy: corev1.PullNever,
				Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
					corev1.ResourceCPU: resource.MustParse("1m"), corev1.ResourceMemory: resource.MustParse("8Mi")}},
			}},
		},
	}
	start := time.Now()
	if _, err := pods.Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		return 0, fmt.Errorf("create pod %s: %w", name, err)
	}
	for ev := range w.ResultChan() {
		if ev.Type == watch.Error {
			return 0, fmt.Errorf("watch pod %s: %v", name, ev.Object)
		}
		p, ok := ev.Object.(*corev1.Pod)
		if ok && started(p) {
			return time.Since(start), nil
		}
	}
	return 0, fmt.Errorf("pod %s not running after %s: its watch ended (%v)", name, time.Since(start).Round(time.Second), ctx.Err())
}

// started says the pod is Running and every container of it started.
func started(p *corev1.Pod) bool {
	if p.Status.Phase != corev1.PodRunning || len(p.Status.ContainerStatuses) != len(p.Spec.Containers) {
		return false
	}
	for _, c := range p.Status.ContainerStatuses {
		if c.State.Running == nil {
			return false
		}
	}
	return true
}

// nearestRank is the p-th percentile of v by the nearest-rank method (of
// 20 values, p99 is the largest).
func nearestRank(v []float64, p float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Sorted(slices.Values(v))
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}
