package rke2node

import (
	"context"
	"log/slog"
	"time"

	"github.com/rke2os/rke2os/init/rke2node/kubenode"
	"github.com/rke2os/rke2os/init/rke2node/snapshotctl"
	"github.com/rke2os/rke2os/init/rke2node/supervisorapi"
	"github.com/rke2os/rke2os/init/shared/config"
	"github.com/rke2os/rke2os/init/shared/goroutine"
	"github.com/rke2os/rke2os/internal/backoff"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
)

// snapshots runs the server's etcd snapshots, as RKE2 takes them on every
// server with etcd: on the schedule, and on demand through the
// supervisor (sup). Once the apiserver answers, for the records; until
// ctx ends; a failure to start is retried, a panic restarts it.
func (e Env) snapshots(ctx context.Context, rc config.RKE2Config, sup *supervisorapi.Server, nodeName string) {
	goroutine.Restart(ctx, "etcd snapshots", func(ctx context.Context) {
		for {
			err := e.runSnapshots(ctx, rc, sup, nodeName)
			if ctx.Err() != nil {
				return
			}
			slog.Warn("etcd snapshots", "err", err)
			if !backoff.Sleep(ctx, 10*time.Second) {
				return
			}
		}
	})
}

func (e Env) runSnapshots(ctx context.Context, rc config.RKE2Config, sup *supervisorapi.Server, nodeName string) error {
	set := rc.EtcdSnapshots()
	dir := set.Dir
	if dir == "" {
		dir = e.Paths.Server("db", "snapshots")
	}
	etcd, err := e.etcdClient([]string{e.EtcdURL})
	if err != nil {
		return err
	}
	defer etcd.Close()
	restConfig, err := kubenode.Config(e.Paths.Server("cred", "supervisor.kubeconfig"), e.APIServerURL)
	if err != nil {
		return err
	}
	restConfig.UserAgent = "rke2os-etcd-snapshots"
	dyn, err := dynamic.NewForConfig(restConfig)
	if err != nil {
		return err
	}
	kube, err := kubernetes.NewForConfig(restConfig)
	if err != nil {
		return err
	}
	svc := &snapshotctl.Service{Settings: set, Dir: dir, Node: nodeName, Etcd: etcd, Records: &snapshotctl.Records{Dyn: dyn, Kube: kube}}
	sup.SetSnapshots(svc)
	defer sup.SetSnapshots(nil)
	return svc.Run(ctx)
}
