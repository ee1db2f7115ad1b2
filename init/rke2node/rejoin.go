package rke2node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/rke2os/rke2os/init/rke2node/etcdmember"
	"github.com/rke2os/rke2os/init/shared/console"
	"github.com/rke2os/rke2os/internal/backoff"
	"github.com/rke2os/rke2os/internal/durable"
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
// (rejoinAtBoot), once its server's etcd has said so again. The restored
// cluster says which cluster it was restored from (restoredFromKey, put
// by the server that restored it): from this server's, it is rejoined,
// unless this server's own etcd still answers with a quorum for a cluster
// that holds none of the restored one's members (that one split away);
// from another or unsaid (a restore on a machine that never ran the old
// cluster), only if this server's own etcd has lost its quorum. Anything
// else out of the cluster stays out, and says why: a member removed (its
// Node deleted) stays removed, as in RKE2; a cluster of other data is not
// joined.

// standingEvery is how often a joined server asks its server's etcd
// whether it is still a member.
const standingEvery = 30 * time.Second

// kubeSystemKey is where the apiserver keeps the kube-system Namespace.
const kubeSystemKey = "/registry/namespaces/kube-system"

// restoredFromKey is where a restored cluster's etcd says, in hex, the
// etcd cluster ID of the cluster it was restored from (outside
// /registry: no Kubernetes object).
const restoredFromKey = "/rke2os/restored-from"

// The server's records beside etcd's data (in db/, which a restore keeps):
// the etcd cluster ID it last saw its etcd answer for, and a restore's
// marker not yet put into the restored etcd.
func (e Env) clusterIDPath() string    { return e.Paths.Server("db", "rke2os-etcd-cluster-id") }
func (e Env) restoredFromPath() string { return e.Paths.Server("db", "rke2os-restored-from") }

// markRestore records, at a restore, the ID of the cluster being
// replaced, for markCluster to put into the restored etcd; a server that
// never saw its etcd answer has none to give.
func (e Env) markRestore() error {
	id, err := os.ReadFile(e.clusterIDPath())
	if errors.Is(err, os.ErrNotExist) {
		slog.Info("cluster-reset: no record of the cluster replaced: the restored cluster will not say which it was restored from")
		return nil
	}
	if err != nil {
		return err
	}
	return durable.WriteFile(e.restoredFromPath(), id, 0o600)
}

// markCluster, with this server's etcd answering (a voter): a restore's
// marker goes into etcd, then the cluster ID it answers for is recorded.
func (e Env) markCluster(ctx context.Context) error {
	c, err := e.etcdClient([]string{e.EtcdURL})
	if err != nil {
		return err
	}
	defer c.Close()
	return e.markClusterWith(ctx, c)
}

func (e Env) markClusterWith(ctx context.Context, c *clientv3.Client) error {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	pending, err := os.ReadFile(e.restoredFromPath())
	switch {
	case err == nil:
		from := strings.TrimSpace(string(pending))
		if _, err := c.Put(ctx, restoredFromKey, from); err != nil {
			return fmt.Errorf("etcd put %s: %w", restoredFromKey, err)
		}
		if err := os.Remove(e.restoredFromPath()); err != nil {
			return err
		}
		slog.Info("etcd: the restored cluster says which it was restored from", "key", restoredFromKey, "cluster_id", from)
	case !errors.Is(err, os.ErrNotExist):
		return err
	}
	resp, err := c.MemberList(ctx)
	if err != nil {
		return fmt.Errorf("etcd member list: %w", err)
	}
	id := strconv.FormatUint(resp.Header.GetClusterId(), 16)
	if have, err := os.ReadFile(e.clusterIDPath()); err == nil && string(have) == id {
		return nil
	}
	return durable.WriteFile(e.clusterIDPath(), []byte(id), 0o600)
}

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
	RestoredFrom   string   // the cluster ID it says it was restored from
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
	st.In = etcdmember.Held(ms, name, peerURL)
	st.UID, st.ClusterID, err = clusterIdentity(ctx, c)
	if err != nil {
		if st.In {
			return st, nil
		}
		return st, err
	}
	resp, err := c.Get(ctx, restoredFromKey)
	if err != nil {
		return st, fmt.Errorf("etcd get %s: %w", restoredFromKey, err)
	}
	if len(resp.Kvs) > 0 {
		st.RestoredFrom = string(resp.Kvs[0].Value)
	}
	return st, nil
}

// rejoinVerdict is what a server out of its server's etcd does.
type rejoinVerdict int

const (
	stay rejoinVerdict = iota
	// rejoinRestored: the cluster says it was restored from this
	// server's.
	rejoinRestored
	// rejoinWithoutQuorum: it does not say so; rejoin only if this
	// server's own etcd has lost its quorum.
	rejoinWithoutQuorum
)

// rejoinDecision says whether a server out of its server's etcd (st)
// rejoins it, from what it recorded of the cluster it joined (j), and
// why (or why not).
func rejoinDecision(j *etcdJoin, st standing) (v rejoinVerdict, reason string) {
	switch {
	case st.In:
		return stay, ""
	case j.ClusterUID == "" || j.ClusterID == "":
		return stay, fmt.Sprintf("this server is no member of the etcd at %v, and has no record of the cluster it joined (it joined before this OS kept one), so it cannot tell it is the same: it stays out; to join again, reset it (rke2os.reset) and boot", j.Endpoints)
	case st.UID != j.ClusterUID:
		return stay, fmt.Sprintf("the etcd at %v holds another Kubernetes cluster (kube-system %s; this server joined kube-system %s): it stays out; to join that cluster, reset it (rke2os.reset) and boot", j.Endpoints, st.UID, j.ClusterUID)
	case st.ClusterID == j.ClusterID:
		return stay, fmt.Sprintf("this server's member was removed from etcd cluster %s (its Node deleted, etcdctl member remove, or a cluster-reset without a snapshot): it stays out, as in RKE2; to join again, reset it (rke2os.reset) and boot", j.ClusterID)
	case st.RestoredFrom == j.ClusterID:
		return rejoinRestored, fmt.Sprintf("etcd cluster %s (kube-system %s) was restored from a snapshot: it is etcd cluster %s now, without this server's member", j.ClusterID, j.ClusterUID, st.ClusterID)
	}
	from := "does not say which cluster it was restored from"
	if st.RestoredFrom != "" {
		from = "says it was restored from etcd cluster " + st.RestoredFrom
	}
	return rejoinWithoutQuorum, fmt.Sprintf("the etcd at %v is etcd cluster %s of this Kubernetes cluster (kube-system %s), without this server's member; it %s, not this server's %s", j.Endpoints, st.ClusterID, j.ClusterUID, from, j.ClusterID)
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
	v, reason := rejoinDecision(j, st)
	if v == stay {
		return false, reason, nil
	}
	// This server's own etcd, asked linearizably: an answer is a quorum.
	own, err := e.etcdClient([]string{e.EtcdURL})
	if err != nil {
		return false, "", err
	}
	defer own.Close()
	octx, ocancel := context.WithTimeout(ctx, 10*time.Second)
	defer ocancel()
	ms, ownErr := etcdmember.List(octx, own)
	rejoin, reason = ownQuorumVerdict(v, reason, ms, ownErr, st.PeerURLs)
	return rejoin, reason, nil
}

// ownQuorumVerdict weighs a rejoin (v) against this server's own etcd:
// its members (ms) if it answered linearizably, which takes a quorum,
// else the error (ownErr); theirs are the peer URLs of the cluster to
// rejoin.
func ownQuorumVerdict(v rejoinVerdict, reason string, ms []etcdmember.Member, ownErr error, theirs []string) (bool, string) {
	switch {
	case v == stay:
		return false, reason
	case v == rejoinRestored && ownErr == nil && splitFrom(ms, theirs):
		return false, reason + "; but this server's own etcd answers with a quorum for a cluster that holds none of its members: that one split away, and this server stays"
	case v == rejoinWithoutQuorum && ownErr == nil:
		return false, reason + "; this server's own etcd answers with a quorum: it stays"
	case v == rejoinWithoutQuorum:
		return true, reason + "; this server's own etcd has no quorum (" + ownErr.Error() + ")"
	}
	return true, reason
}

// rejoinConfirmWait is how long a boot with a rejoin recorded asks its
// server's etcd to confirm it.
var rejoinConfirmWait = 2 * time.Minute

// rejoinIfConfirmed carries out the rejoin the record holds once the
// server's etcd confirms it at this boot (it may have changed since the
// reboot was asked for, or the reboot come much later); not confirmed,
// the record forgets it, and the server starts on its data as it is.
func (e Env) rejoinIfConfirmed(ctx context.Context, j *etcdJoin, ask func(context.Context, *etcdJoin) (bool, string, error), addrs []string) error {
	var rejoin bool
	var reason string
	wctx, cancel := context.WithTimeout(ctx, rejoinConfirmWait)
	defer cancel()
	err := backoff.Poll(wctx, 5*time.Second, "the server's etcd to confirm the rejoin", func(ctx context.Context) error {
		var err error
		rejoin, reason, err = ask(ctx, j)
		return err
	})
	if err == nil && rejoin {
		j.RejoinReason = reason
		return e.rejoinAtBoot(j, addrs, time.Now())
	}
	if err != nil {
		reason = "the rejoin recorded was not confirmed at this boot: " + err.Error()
	} else if reason == "" {
		reason = "the rejoin recorded was not confirmed at this boot: this server is a member again"
	}
	j.Rejoin, j.RejoinReason = false, ""
	if err := e.writeEtcdJoin(j); err != nil {
		return err
	}
	slog.Warn("etcd: no rejoin; etcd starts on this server's data", "reason", reason)
	console.Event(console.EventEtcdRejoin, "outcome", "refused", "reason", reason)
	return nil
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
			if reason == "" {
				said = ""
			} else if reason != said {
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
		if err := durable.SyncDir(filepath.Dir(data)); err != nil {
			return fmt.Errorf("etcd rejoin: %w", err)
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
