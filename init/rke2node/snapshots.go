package rke2node

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/rke2os/rke2os/init/rke2node/etcdsnap/s3store"
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
	if s3 := rc.EtcdS3(); s3.Enabled {
		svc.S3 = &lazyS3{cfg: s3Config(s3)}
	}
	sup.SetSnapshots(svc)
	defer sup.SetSnapshots(nil)
	return svc.Run(ctx)
}

// s3Config is the S3 store's config of the etcd-s3 keys.
func s3Config(c config.EtcdS3) s3store.Config {
	return s3store.Config{Endpoint: c.Endpoint, EndpointCA: c.EndpointCA, SkipSSLVerify: c.SkipSSLVerify, Insecure: c.Insecure,
		AccessKey: c.AccessKey, SecretKey: c.SecretKey, SessionToken: c.SessionToken, Bucket: c.Bucket, Region: c.Region,
		Folder: c.Folder, Timeout: c.Timeout, BucketLookup: c.BucketLookup}
}

// lazyS3 connects to the bucket when first used, and again after a
// failure: an endpoint down at boot fails uploads (each said) until it
// answers, not the server.
type lazyS3 struct {
	cfg   s3store.Config
	mu    sync.Mutex
	store *s3store.Store
	// failed and failedAt: the last failure to connect, answered again
	// for a minute without trying (an endpoint that does not answer costs
	// minio's retries each time).
	failed   error
	failedAt time.Time
}

func (l *lazyS3) get(ctx context.Context) (*s3store.Store, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.store != nil {
		return l.store, nil
	}
	if l.failed != nil && time.Since(l.failedAt) < time.Minute {
		return nil, l.failed
	}
	if err := l.cfg.Validate(); err != nil {
		return nil, err
	}
	st, err := s3store.New(ctx, l.cfg)
	if err != nil {
		l.failed, l.failedAt = err, time.Now()
		return nil, err
	}
	l.store = st
	return st, nil
}

func (l *lazyS3) Upload(ctx context.Context, path, node string) (s3store.Object, error) {
	st, err := l.get(ctx)
	if err != nil {
		return s3store.Object{}, err
	}
	return st.Upload(ctx, path, node)
}

func (l *lazyS3) List(ctx context.Context, prefix string) ([]s3store.Object, error) {
	st, err := l.get(ctx)
	if err != nil {
		return nil, err
	}
	return st.List(ctx, prefix)
}

func (l *lazyS3) Delete(ctx context.Context, name string) error {
	st, err := l.get(ctx)
	if err != nil {
		return err
	}
	return st.Delete(ctx, name)
}

func (l *lazyS3) Owner(ctx context.Context, name string) (string, error) {
	st, err := l.get(ctx)
	if err != nil {
		return "", err
	}
	return st.Owner(ctx, name)
}
