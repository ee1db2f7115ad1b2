package rke2node

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"time"

	"github.com/rke2os/rke2os/init/rke2node/etcdmember"
	"github.com/rke2os/rke2os/init/rke2node/join"
	"github.com/rke2os/rke2os/init/shared/config"
	"github.com/rke2os/rke2os/internal/backoff"
	"github.com/rke2os/rke2os/internal/durable"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// A further server (role server with server: set) joins the cluster as
// RKE2's does: it takes the cluster's CAs and keys from the supervisor,
// makes its own certificates with them, is added to etcd as a learner and
// starts its member with the cluster's members as initial cluster, and is
// promoted to a voter once in sync, before its apiserver starts.

// etcdJoin is what a further server keeps of its etcd join, so that its
// static pod stays the same at every boot and the promotion is done once.
type etcdJoin struct {
	InitialCluster string   `json:"initial_cluster"`
	PeerURL        string   `json:"peer_url"`
	Endpoints      []string `json:"endpoints"`
	Promoted       bool     `json:"promoted"`
	// The cluster joined: its kube-system Namespace's UID and etcd's
	// cluster ID (see clusterIdentity), for rejoinDecision.
	ClusterUID string `json:"cluster_uid,omitempty"`
	ClusterID  string `json:"cluster_id,omitempty"`
	// Rejoin says the server found itself out of its restored cluster
	// and joins it again at its next boot (rejoinAtBoot), and why.
	Rejoin       bool   `json:"rejoin,omitempty"`
	RejoinReason string `json:"rejoin_reason,omitempty"`
}

func (e Env) etcdJoinPath() string { return e.Paths.Server("db", "rke2os-etcd-join.json") }

func (e Env) readEtcdJoin() (*etcdJoin, error) {
	b, err := os.ReadFile(e.etcdJoinPath())
	if err != nil {
		return nil, err
	}
	var j etcdJoin
	if err := json.Unmarshal(b, &j); err != nil {
		return nil, fmt.Errorf("%s: %w", e.etcdJoinPath(), err)
	}
	return &j, nil
}

func (e Env) writeEtcdJoin(j *etcdJoin) error {
	b, _ := json.MarshalIndent(j, "", "  ")
	return durable.WriteFile(e.etcdJoinPath(), append(b, '\n'), 0o600)
}

// bootstrapServer takes the cluster's shared secrets from the server the
// config names, waiting while it is not ready; a refusal ends the wait.
// With a bare secret it trusts the server's CA on first use only if
// trustOnFirstUse (join.trust_on_first_use) says so.
func (e Env) bootstrapServer(ctx context.Context, rc config.RKE2Config, nodeName string, trustOnFirstUse bool) error {
	o := join.Options{Server: rc.Server(), Token: rc.Token(), NodeName: nodeName, Paths: e.Paths, TrustOnFirstUse: trustOnFirstUse}
	if o.Token == "" {
		return errors.New("join: a further server needs the cluster's token: set rke2.token (the first server's /var/lib/rancher/rke2/server/token)")
	}
	wait := ctx
	if _, err := os.Stat(e.etcdJoinPath()); err == nil {
		// Joined before: this server holds the cluster's data and its
		// etcd member. When the whole cluster starts at once, its server
		// answers only once etcd has a quorum, this member's vote among
		// it: a wait without end here was a cluster that never came
		// back. It waits a little, then starts on what it holds.
		var cancel context.CancelFunc
		wait, cancel = context.WithTimeout(ctx, joinedBootstrapWait)
		defer cancel()
	}
	err := backoff.Poll(wait, 5*time.Second, "the server "+o.Server+" to hand over the cluster's bootstrap data", func(ctx context.Context) error {
		written, err := join.Bootstrap(ctx, o)
		if err == nil && len(written) > 0 {
			slog.Info("cluster bootstrap data taken", "server", o.Server, "files", len(written))
		}
		return err
	})
	var p interface{ Permanent() bool }
	if err != nil && ctx.Err() == nil && wait.Err() != nil && !(errors.As(err, &p) && p.Permanent()) {
		slog.Warn("the server does not answer; this server joined before and starts on the cluster's data it holds", "server", o.Server, "after", joinedBootstrapWait, "last", err)
		return nil
	}
	return err
}

// joinedBootstrapWait is how long a server that joined before waits for
// its server to hand over the bootstrap data at a start.
var joinedBootstrapWait = 30 * time.Second

// joinEtcd adds this server's member to the cluster as a learner, once,
// and answers its initial cluster.
func (e Env) joinEtcd(ctx context.Context, rc config.RKE2Config, nodeName, nodeIP string) (*etcdJoin, error) {
	if j, err := e.readEtcdJoin(); err == nil {
		return j, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if _, err := os.Stat(e.Paths.Server("db", "etcd", "member")); err == nil {
		return nil, fmt.Errorf("etcd: %s holds a member of a cluster this server started on its own; it cannot join %s with it: wipe the state partition to join, or remove rke2.server", e.Paths.Server("db", "etcd"), rc.Server())
	}
	u, err := url.Parse(rc.Server())
	if err != nil {
		return nil, err
	}
	if nodeIP == "" {
		return nil, errors.New("etcd: a joining server needs its node IP")
	}
	j := &etcdJoin{PeerURL: "https://" + net.JoinHostPort(nodeIP, "2380"), Endpoints: []string{"https://" + net.JoinHostPort(u.Hostname(), "2379")}}
	c, err := e.etcdClient(j.Endpoints)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	err = backoff.Poll(ctx, 5*time.Second, "etcd at "+j.Endpoints[0]+" to add this member", func(ctx context.Context) error {
		actx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		var err error
		j.InitialCluster, err = etcdmember.Add(actx, c, nodeName, j.PeerURL)
		return err
	})
	if err != nil {
		return nil, err
	}
	slog.Info("etcd member added as a learner", "peer", j.PeerURL, "initial_cluster", j.InitialCluster)
	// The cluster joined, for a rejoin's decision; the promotion records
	// it if it cannot be read now.
	ictx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if uid, id, err := clusterIdentity(ictx, c); err == nil {
		j.ClusterUID, j.ClusterID = uid, id
	} else {
		slog.Warn("etcd: the joined cluster's identity not read yet", "err", err)
	}
	return j, e.writeEtcdJoin(j)
}

// promoteEtcd makes this server's learner a voter once in sync, through
// the cluster's other members, and records it.
func (e Env) promoteEtcd(ctx context.Context, j *etcdJoin) error {
	c, err := e.etcdClient(j.Endpoints)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := etcdmember.Promote(ctx, c, j.PeerURL, 2*time.Second); err != nil {
		return err
	}
	j.Promoted = true
	ictx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if uid, id, err := clusterIdentity(ictx, c); err == nil {
		j.ClusterUID, j.ClusterID = uid, id
	} else if j.ClusterUID == "" {
		slog.Warn("etcd: the cluster's identity not read; the standing watch records it", "err", err)
	}
	return e.writeEtcdJoin(j)
}

// etcdClient is an etcd v3 client of endpoints with the server's etcd
// client certificate.
func (e Env) etcdClient(endpoints []string) (*clientv3.Client, error) {
	ca, err := os.ReadFile(e.Paths.EtcdTLS("server-ca.crt"))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	pair, err := tls.LoadX509KeyPair(e.Paths.EtcdTLS("client.crt"), e.Paths.EtcdTLS("client.key"))
	if err != nil {
		return nil, err
	}
	return clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 10 * time.Second, Logger: zap.NewNop(),
		TLS: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}})
}

// removeDeletedServers removes from etcd the member of every server Node
// deleted while this server runs, as RKE2 does: a server's Node deleted is
// the server gone from the cluster. An informer lists and watches the
// Nodes and lists again after a broken watch, so that a deletion between
// two watches still arrives (as a tombstone) rather than being lost.
func (e Env) removeDeletedServers(ctx context.Context, kc kubernetes.Interface, self string, remove func(context.Context, string)) {
	factory := informers.NewSharedInformerFactory(kc, 0)
	defer factory.Shutdown()
	_, err := factory.Core().V1().Nodes().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{DeleteFunc: func(obj any) {
		if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = t.Obj
		}
		n, ok := obj.(*corev1.Node)
		if !ok || n.Name == self {
			return
		}
		if _, ok := n.Labels["node-role.kubernetes.io/etcd"]; !ok {
			return
		}
		go remove(ctx, n.Name)
	}})
	if err != nil {
		slog.Error("etcd member removal: cannot watch Nodes", "err", err)
		return
	}
	factory.Start(ctx.Done())
	<-ctx.Done()
}

func (e Env) removeMember(ctx context.Context, name string) {
	c, err := e.etcdClient([]string{e.EtcdURL})
	if err != nil {
		slog.Warn("etcd member removal", "node", name, "err", err)
		return
	}
	defer c.Close()
	// etcd refuses for a few seconds after a reconnection: try for a while.
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	err = backoff.Poll(ctx, 5*time.Second, "etcd to remove the member of the deleted Node "+name, func(ctx context.Context) error {
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		return etcdmember.Remove(rctx, c, name)
	})
	if err != nil {
		slog.Warn("etcd member removal", "node", name, "err", err)
		return
	}
	slog.Info("etcd member of the deleted Node removed", "node", name)
}
