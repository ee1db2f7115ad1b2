package rke2node

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rke2os/rke2os/init/rke2node/etcdsnap/s3store"
	"github.com/rke2os/rke2os/init/rke2node/snapshotctl"
	"github.com/rke2os/rke2os/init/rke2node/supervisorapi"
	"github.com/rke2os/rke2os/init/shared/config"
	"github.com/rke2os/rke2os/init/shared/goroutine"
	"github.com/rke2os/rke2os/internal/backoff"
	"github.com/rke2os/rke2os/internal/durable"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
	c, err := e.supervisorClients("rke2os-etcd-snapshots", false)
	if err != nil {
		return err
	}
	kube := c.kube
	svc := &snapshotctl.Service{Settings: set, Dir: dir, Node: nodeName, Etcd: etcd, Records: &snapshotctl.Records{Dyn: c.dyn, Kube: kube}}
	if s3 := rc.EtcdS3(); s3.Enabled {
		load := func(context.Context) (s3store.Config, error) { return s3Config(s3), nil }
		if s3.ConfigSecret != "" && s3.FromKeysOnly() {
			load = func(ctx context.Context) (s3store.Config, error) {
				return e.secretS3Config(ctx, kube, s3.ConfigSecret)
			}
		} else if s3.ConfigSecret != "" {
			slog.Warn("etcd snapshots: etcd-s3-* keys are set, so etcd-s3-config-secret is not read (as RKE2)", "secret", s3.ConfigSecret)
		}
		svc.S3 = &lazyS3{load: load}
	}
	sup.SetSnapshots(svc)
	defer sup.SetSnapshots(nil)
	return svc.Run(ctx)
}

// s3Config is the S3 store's config of the etcd-s3 keys.
func s3Config(c config.EtcdS3) s3store.Config {
	return s3store.Config{Endpoint: c.Endpoint, EndpointCA: c.EndpointCA, SkipSSLVerify: c.SkipSSLVerify, Insecure: c.Insecure,
		AccessKey: c.AccessKey, SecretKey: c.SecretKey, SessionToken: c.SessionToken, Bucket: c.Bucket, Region: c.Region,
		Folder: c.Folder, Timeout: c.Timeout, BucketLookup: c.BucketLookup, Proxy: c.Proxy}
}

// lazyS3 connects to the bucket when first used, and again after a
// failure: an endpoint down at boot fails uploads (each said) until it
// answers, not the server.
type lazyS3 struct {
	// load is the S3 config, read at each connect (a Secret may change).
	load  func(context.Context) (s3store.Config, error)
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
	cfg, err := l.load(ctx)
	if err == nil {
		err = cfg.Validate()
	}
	if err != nil {
		l.failed, l.failedAt = err, time.Now()
		return nil, err
	}
	st, err := s3store.New(ctx, cfg)
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

// secretS3Config is the S3 config the kube-system Secret name holds, in
// RKE2's keys (etcd-s3-endpoint, etcd-s3-access-key, ...; etcd-s3-endpoint-ca
// is the CA's PEM, written beside the server's credentials).
func (e Env) secretS3Config(ctx context.Context, kube kubernetes.Interface, name string) (s3store.Config, error) {
	sec, err := kube.CoreV1().Secrets(metav1.NamespaceSystem).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return s3store.Config{}, fmt.Errorf("etcd-s3-config-secret: secret kube-system/%s: %w (create it with the etcd-s3-* keys as its data)", name, err)
	}
	str := func(k string) string { return strings.TrimSpace(string(sec.Data[k])) }
	boolean := func(k string) (bool, error) {
		if str(k) == "" {
			return false, nil
		}
		v, err := strconv.ParseBool(str(k))
		if err != nil {
			return false, fmt.Errorf("etcd-s3-config-secret: secret kube-system/%s: %s is %q, not true or false", name, k, str(k))
		}
		return v, nil
	}
	c := s3store.Config{Endpoint: str("etcd-s3-endpoint"), AccessKey: str("etcd-s3-access-key"), SecretKey: str("etcd-s3-secret-key"),
		SessionToken: str("etcd-s3-session-token"), Bucket: str("etcd-s3-bucket"), Region: str("etcd-s3-region"),
		Folder: str("etcd-s3-folder"), BucketLookup: str("etcd-s3-bucket-lookup-type"), Proxy: str("etcd-s3-proxy")}
	if _, err := s3store.ParseProxy(c.Proxy); err != nil {
		return s3store.Config{}, fmt.Errorf("etcd-s3-config-secret: secret kube-system/%s: etcd-s3-proxy %w", name, err)
	}
	if c.SkipSSLVerify, err = boolean("etcd-s3-skip-ssl-verify"); err != nil {
		return s3store.Config{}, err
	}
	if c.Insecure, err = boolean("etcd-s3-insecure"); err != nil {
		return s3store.Config{}, err
	}
	if t := str("etcd-s3-timeout"); t != "" {
		if c.Timeout, err = time.ParseDuration(t); err != nil {
			return s3store.Config{}, fmt.Errorf("etcd-s3-config-secret: secret kube-system/%s: etcd-s3-timeout is %q, not a duration like 5m0s", name, t)
		}
	}
	if pem := sec.Data["etcd-s3-endpoint-ca"]; len(pem) > 0 {
		c.EndpointCA = e.Paths.Server("cred", "etcd-s3-endpoint-ca.pem")
		if err := durable.WriteFile(c.EndpointCA, pem, 0o600); err != nil {
			return s3store.Config{}, fmt.Errorf("etcd-s3-config-secret: %w", err)
		}
	}
	return c, nil
}
