package rke2node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/rke2os/rke2os/init/rke2node/etcdmember"
	"github.com/rke2os/rke2os/init/shared/console"
	"github.com/rke2os/rke2os/internal/backoff"
)

// A further server whose cluster was restored from a snapshot on another
// server is outside the restored cluster's etcd: RKE2 asks its users to
// delete the server's db directory by hand and start it again. A node of
// this OS has no shell: it sees it by itself and rejoins. While it runs,
// it asks its server's etcd now and then whether it is still a member
// (watchStanding); out of it, in the same Kubernetes cluster (the
// kube-system Namespace's UID, which a restore keeps) but another etcd
// cluster (the ID each restore makes new), it records that it is to
// rejoin and reboots; at that boot, before etcd starts, its old data goes
// aside to db/etcd-old-<time> and it joins again as a learner
// (rejoinAtBoot). Anything else out of the cluster stays out, and says
// why: a member removed (its Node deleted) stays removed, as in RKE2; a
// cluster of other data is not joined; nor one that split away from the
// healthy cluster this server's etcd still answers for.

// standingEvery is how often a joined server asks its server's etcd
// whether it is still a member.
const standingEvery = 30 * time.Second

// kubeSystemKey is where the apiserver keeps the kube-system Namespace.
const kubeSystemKey = "/registry/namespaces/kube-system"

// namespaceUID is the UID of the Namespace the apiserver stored as b (in
// protobuf, as it writes it, or JSON).
func namespaceUID(b []byte) (string, error) {
	obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(b, nil, nil)
	if err != nil {
		return "", fmt.Errorf("etcd %s: %w", kubeSystemKey, err)
	}
	ns, ok := obj.(*corev1.Namespace)
	if !ok {
		return "", fmt.Errorf("etcd %s holds a %T, not a Namespace", kubeSystemKey, obj)
	}
	if ns.UID == "" {
		return "", fmt.Errorf("etcd %s: the Namespace has no UID", kubeSystemKey)
	}
	return string(ns.UID), nil
}

// clusterIdentity is which cluster c answers for: the kube-system
// Namespace's UID (the Kubernetes cluster, which a restore keeps) and
// etcd's cluster ID in hex (new at each restore). The read is
// linearizable.
func clusterIdentity(ctx context.Context, c *clientv3.Client) (uid, clusterID string, err error) {
	resp, err := c.Get(ctx, kubeSystemKey)
	if err != nil {
		return "", "", fmt.Errorf("etcd get %s: %w", kubeSystemKey, err)
	}
	clusterID = strconv.FormatUint(resp.Header.GetClusterId(), 16)
	if len(resp.Kvs) == 0 {
		return "", clusterID, fmt.Errorf("etcd holds no %s: no Kubernetes cluster there yet", kubeSystemKey)
	}
	uid, err = namespaceUID(resp.Kvs[0].Value)
	return uid, clusterID, err
}

// standing is what a server's etcd says of this server.
type standing struct {
	In             bool     // its members hold this server's
	UID, ClusterID string   // its identity (see clusterIdentity)
	PeerURLs       []string // its members' peer URLs
}

// askStanding asks the etcd c (this server's server's) whether it holds
// the member name with peerURL, and which cluster it is. An identity it
// cannot tell is an error only for a server out of it.
func askStanding(ctx context.Context, c *clientv3.Client, name, peerURL string) (standing, error) {
	var st standing
	ms, err := etcdmember.List(ctx, c)
	if err != nil {
		return st, err
	}
	for _, m := range ms {
		st.PeerURLs = append(st.PeerURLs, m.PeerURLs...)
	}
	if st.In, err = etcdmember.Holds(ctx, c, name, peerURL); err != nil {
		return st, err
	}
	st.UID, st.ClusterID, err = clusterIdentity(ctx, c)
	if err != nil && !st.In {
		return st, err
	}
	return st, nil
}

// rejoinDecision says whether a server out of its server's etcd (st)
// rejoins it, from what it recorded of the cluster it joined (j), and
// why (or why not).
func rejoinDecision(j *etcdJoin, st standing) (rejoin bool, reason string) {
	switch {
	case st.In:
		return false, ""
	case j.ClusterUID == "" || j.ClusterID == "":
		return false, fmt.Sprintf("this server is no member of the etcd at %v, and has no record of the cluster it joined (it joined before this OS kept one), so it cannot tell it is the same: it stays out; to join again, reset it (rke2os.reset) and boot", j.Endpoints)
	case st.UID != j.ClusterUID:
		return false, fmt.Sprintf("the etcd at %v holds another Kubernetes cluster (kube-system %s; this server joined kube-system %s): it stays out; to join that cluster, reset it (rke2os.reset) and boot", j.Endpoints, st.UID, j.ClusterUID)
	case st.ClusterID == j.ClusterID:
		return false, fmt.Sprintf("this server's member was removed from etcd cluster %s (its Node deleted, or etcdctl member remove): it stays out, as in RKE2; to join again, reset it (rke2os.reset) and boot", j.ClusterID)
	}
	return true, fmt.Sprintf("etcd cluster %s (kube-system %s) was restored from a snapshot: it is etcd cluster %s now, without this server's member", j.ClusterID, j.ClusterUID, st.ClusterID)
}

// splitFrom says whether this server's own etcd answers (linearizably:
// it has a quorum) for a cluster none of whose members is at a peer URL
// of the restored one: then the restored cluster is one that split away
// from the healthy cluster this server is in, and this server stays.
func splitFrom(own []etcdmember.Member, theirs []string) bool {
	for _, m := range own {
		for _, u := range m.PeerURLs {
			if slices.Contains(theirs, u) {
				return false
			}
		}
	}
	return true
}

// standingVerdict asks this server's server's etcd, and its own, whether
// it rejoins (see rejoinDecision, splitFrom); an error is no answer.
func (e Env) standingVerdict(ctx context.Context, j *etcdJoin, name string) (rejoin bool, reason string, err error) {
	c, err := e.etcdClient(j.Endpoints)
	if err != nil {
		return false, "", err
	}
	defer c.Close()
	actx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	st, err := askStanding(actx, c, name, j.PeerURL)
	if err != nil {
		return false, "", err
	}
	if st.In {
		if st.UID != "" && (st.UID != j.ClusterUID || st.ClusterID != j.ClusterID) {
			e.recordCluster(j, st.UID, st.ClusterID)
		}
		return false, "", nil
	}
	if rejoin, reason = rejoinDecision(j, st); !rejoin {
		return false, reason, nil
	}
	own, err := e.etcdClient([]string{e.EtcdURL})
	if err != nil {
		return false, "", err
	}
	defer own.Close()
	octx, ocancel := context.WithTimeout(ctx, 10*time.Second)
	defer ocancel()
	if ms, err := etcdmember.List(octx, own); err == nil && splitFrom(ms, st.PeerURLs) {
		return false, fmt.Sprintf("the etcd at %v (cluster %s) holds none of the members of the cluster this server's etcd answers for, which has a quorum: that one split away; this server stays", j.Endpoints, st.ClusterID), nil
	}
	return true, reason, nil
}

// recordCluster records the identity of the cluster this server is a
// member of, for rejoinDecision.
func (e Env) recordCluster(j *etcdJoin, uid, clusterID string) {
	j.ClusterUID, j.ClusterID = uid, clusterID
	if err := e.writeEtcdJoin(j); err != nil {
		slog.Warn("etcd: cannot record the cluster's identity", "err", err)
		return
	}
	slog.Info("etcd: the cluster's identity recorded", "kube_system_uid", uid, "cluster_id", clusterID)
}

// watchStanding asks every `every` whether this joined server is out of
// its server's etcd and to rejoin it (ask); two such answers in a row
// record it and reboot the node (rejoinAtBoot does the rest). A refusal
// is said once per reason; no answer changes nothing.
func (e Env) watchStanding(ctx context.Context, every time.Duration, ask func(context.Context, *etcdJoin) (bool, string, error), reboot func() error) {
	var outs int
	var said string
	for backoff.Sleep(ctx, every) {
		j, err := e.readEtcdJoin()
		if err != nil {
			slog.Warn("etcd standing: cannot read the join record", "err", err)
			continue
		}
		if !j.Promoted || j.Rejoin {
			continue
		}
		rejoin, reason, err := ask(ctx, j)
		if err != nil {
			outs = 0
			slog.Debug("etcd standing: no answer", "err", err)
			continue
		}
		if !rejoin {
			outs = 0
			if reason != "" && reason != said {
				said = reason
				slog.Warn("etcd: this server is out of its cluster and does not rejoin", "reason", reason)
				console.Event(console.EventEtcdRejoin, "outcome", "refused", "reason", reason)
			}
			continue
		}
		if outs++; outs < 2 {
			slog.Info("etcd: this server is out of its cluster; asking again before it rejoins", "reason", reason)
			continue
		}
		j.Rejoin, j.RejoinReason = true, reason
		if err := e.writeEtcdJoin(j); err != nil {
			slog.Error("etcd: cannot record the rejoin", "err", err)
			continue
		}
		slog.Warn("etcd: this server rejoins its cluster at the next boot: rebooting", "reason", reason)
		console.Event(console.EventEtcdRejoin, "outcome", "rebooting", "reason", reason)
		if err := reboot(); err != nil {
			slog.Error("etcd: reboot for the rejoin", "err", err)
		}
		return
	}
}

// localEtcdAddrs are where this node's etcd answers while it runs.
func localEtcdAddrs(nodeIP string) []string {
	addrs := []string{"127.0.0.1:2379", "127.0.0.1:2381"}
	if nodeIP != "" {
		addrs = append(addrs, net.JoinHostPort(nodeIP, "2380"))
	}
	return addrs
}

// rejoinAtBoot carries out a rejoin watchStanding recorded: etcd's data
// goes aside to db/etcd-old-<unix time> (never deleted) and the join
// record goes, so that the server joins again as a learner. It refuses
// while an etcd answers at one of addrs: its data is never moved under
// it (the step also runs again after a clock step, etcd running).
func (e Env) rejoinAtBoot(j *etcdJoin, addrs []string, now time.Time) error {
	for _, a := range addrs {
		if c, err := net.DialTimeout("tcp", a, time.Second); err == nil {
			c.Close()
			return fmt.Errorf("etcd rejoin: an etcd answers at %s: its data is not moved while it runs; the rejoin waits for the next boot", a)
		}
	}
	data := e.Paths.Server("db", "etcd")
	moved := ""
	if _, err := os.Stat(data); err == nil {
		moved = data + "-old-" + strconv.FormatInt(now.Unix(), 10)
		for n := 1; fileExists(moved); n++ {
			moved = data + "-old-" + strconv.FormatInt(now.Unix(), 10) + "-" + strconv.Itoa(n)
		}
		if err := os.Rename(data, moved); err != nil {
			return fmt.Errorf("etcd rejoin: move the old data aside: %w", err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("etcd rejoin: %w", err)
	}
	if err := os.Remove(e.etcdJoinPath()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("etcd rejoin: %w", err)
	}
	slog.Warn("etcd: the old data is set aside; joining the cluster again as a learner", "moved_to", moved, "reason", j.RejoinReason)
	console.Event(console.EventEtcdRejoin, "outcome", "rejoining", "moved_to", moved, "reason", j.RejoinReason)
	return nil
}
