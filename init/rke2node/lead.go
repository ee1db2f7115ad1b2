package rke2node

import (
	"context"
	"log/slog"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// lead runs work while this server holds the lease name in kube-system,
// so that of several servers one at a time applies the manifests and
// installs the charts; a lost lease stops the work, and the server
// campaigns again until ctx ends.
func (e Env) lead(ctx context.Context, kc kubernetes.Interface, name, identity string, work func(context.Context)) {
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Name: name, Namespace: metav1.NamespaceSystem},
		Client:     kc.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: identity},
	}
	for ctx.Err() == nil {
		// Timings for a slow machine: a leader that stops renewing is
		// replaced within a minute.
		leaderelection.RunOrDie(ctx, leaderelection.LeaderElectionConfig{
			Lock: lock, ReleaseOnCancel: true, Name: name,
			LeaseDuration: 60 * time.Second, RenewDeadline: 40 * time.Second, RetryPeriod: 5 * time.Second,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(ctx context.Context) {
					slog.Info("leading", "lease", name)
					work(ctx)
				},
				OnStoppedLeading: func() { slog.Info("stopped leading", "lease", name) },
				OnNewLeader: func(id string) {
					if id != identity {
						slog.Info("another server leads", "lease", name, "leader", id)
					}
				},
			},
		})
	}
}
