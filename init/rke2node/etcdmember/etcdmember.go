// Package etcdmember is how a server takes its place in the etcd cluster
// and leaves it, the way RKE2 does it. A further server is added as a
// learner (a member that gets the data but has no vote), starts its etcd
// with --initial-cluster built from the member list and
// --initial-cluster-state=existing, and is promoted to a voter once it
// has caught up with the leader. A server whose Kubernetes Node is
// deleted is removed from the members.
//
// The functions take a client the caller has built (with the etcd client
// certificate); they only ask etcd, and change nothing on this machine.
package etcdmember

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rke2os/rke2os/internal/backoff"
)

// Member is one etcd member as the supervisor's /db/info and the logs
// show it. ID is in hex, as etcdctl prints it and takes it; Name is ""
// for a member that was added but has not started yet.
type Member struct {
	ID         string
	Name       string
	PeerURLs   []string
	ClientURLs []string
	Learner    bool
}

// member is a Member as etcd answers it, with its numeric ID.
type member struct {
	Member
	id uint64
}

// hexID is an etcd member ID as etcdctl writes it.
func hexID(id uint64) string { return strconv.FormatUint(id, 16) }

// List is the cluster's members, in etcd's order.
func List(ctx context.Context, c *clientv3.Client) ([]Member, error) {
	ms, err := list(ctx, c)
	if err != nil {
		return nil, fmt.Errorf("etcd member list: %w", err)
	}
	out := make([]Member, len(ms))
	for i, m := range ms {
		out[i] = m.Member
	}
	return out, nil
}

// list asks etcd for its members (a linearizable read, so a member just
// added or removed is seen).
func list(ctx context.Context, c *clientv3.Client) ([]member, error) {
	resp, err := c.MemberList(ctx)
	if err != nil {
		return nil, err
	}
	return convert(resp.Members), nil
}

// convert turns etcd's members into ours.
func convert(in []*etcdserverpb.Member) []member {
	out := make([]member, 0, len(in))
	for _, m := range in {
		out = append(out, member{id: m.GetID(), Member: Member{
			ID:         hexID(m.GetID()),
			Name:       m.GetName(),
			PeerURLs:   append([]string(nil), m.GetPeerURLs()...),
			ClientURLs: append([]string(nil), m.GetClientURLs()...),
			Learner:    m.GetIsLearner(),
		}})
	}
	return out
}

// has tells whether urls holds u.
func has(urls []string, u string) bool {
	for _, v := range urls {
		if v == u {
			return true
		}
	}
	return false
}

// Add adds the member name, whose etcd listens for peers on peerURL, to
// the cluster as a learner, and returns what that member's etcd must be
// started with as --initial-cluster (with --initial-cluster-state=existing).
//
// It can be called again after a failed start: a member that already has
// peerURL, whether it was added by an earlier attempt that did not start
// or has started since, is kept and not added a second time. A member
// that holds name with another peer URL is an error that says which it
// is and how to remove it; it is never replaced here.
//
// The returned value is "name=peerURL" for every peer URL of every
// member, comma separated and sorted by name (then URL). A member added but not started has no name in etcd's
// list yet: the one with peerURL is this one and gets name; any other is
// an error, because etcd refuses to start when a member of the cluster is
// missing from --initial-cluster, and such a member has no name to give.
// Nothing is added when the list shows one of these errors.
func Add(ctx context.Context, c *clientv3.Client, name, peerURL string) (initialCluster string, err error) {
	if name == "" || peerURL == "" {
		return "", fmt.Errorf("etcd member add %q: name and peer URL (%q) must not be empty", name, peerURL)
	}
	ms, err := list(ctx, c)
	if err != nil {
		return "", fmt.Errorf("etcd member add %s: %w", name, err)
	}
	initialCluster, found, err := joinCluster(ms, name, peerURL)
	if err != nil {
		return "", fmt.Errorf("etcd member add %s: %w", name, err)
	}
	if found != nil {
		slog.Info("etcd member already there, not added again", "name", name, "id", found.ID,
			"peerURL", peerURL, "learner", found.Learner, "started", found.Name != "")
		return initialCluster, nil
	}

	resp, err := c.MemberAddAsLearner(ctx, []string{peerURL})
	if err != nil {
		if isErr(err, rpctypes.ErrGRPCTooManyLearners) {
			return "", fmt.Errorf("etcd member add %s: %w (another learner has not been promoted yet; see etcdctl member list)", name, err)
		}
		return "", fmt.Errorf("etcd member add %s: %w", name, err)
	}
	id := resp.Member.GetID()
	slog.Info("etcd member added as learner", "name", name, "id", hexID(id), "peerURL", peerURL)
	// The answer lists the members after the add, this one included; a
	// member added by someone else in between shows here too.
	initialCluster, _, err = joinCluster(convert(resp.Members), name, peerURL)
	if err != nil {
		return "", fmt.Errorf("etcd member add %s: added as %s, but: %w", name, hexID(id), err)
	}
	return initialCluster, nil
}

// joinCluster checks the members for name and peerURL and builds the
// --initial-cluster value; found is the member that already has peerURL,
// nil if none.
func joinCluster(ms []member, name, peerURL string) (initialCluster string, found *Member, err error) {
	type entry struct{ name, url string }
	var entries []entry
	var unstarted []string
	for i := range ms {
		m := &ms[i]
		if has(m.PeerURLs, peerURL) {
			if m.Name != "" && m.Name != name {
				slog.Warn("etcd member with this peer URL has another name; reusing it under the new name",
					"id", m.ID, "name", m.Name, "newName", name, "peerURL", peerURL)
			}
			found = &m.Member
			entries = append(entries, entry{name, peerURL})
			continue
		}
		switch m.Name {
		case name:
			return "", nil, fmt.Errorf("name %s is held by member %s with peer URLs %s; if that server is gone, remove it with `etcdctl member remove %s`",
				name, m.ID, strings.Join(m.PeerURLs, ","), m.ID)
		case "":
			unstarted = append(unstarted, fmt.Sprintf("%s (peer URLs %s)", m.ID, strings.Join(m.PeerURLs, ",")))
		default:
			for _, u := range m.PeerURLs {
				entries = append(entries, entry{m.Name, u})
			}
		}
	}
	if len(unstarted) > 0 {
		return "", nil, fmt.Errorf("member %s was added but has not started, so it has no name for --initial-cluster, and etcd refuses to start with a member missing from it; start that server, or remove the member with `etcdctl member remove <id>`",
			strings.Join(unstarted, ", "))
	}
	if found == nil {
		entries = append(entries, entry{name, peerURL})
	}
	sort.Slice(entries, func(i, j int) bool {
		if entries[i].name != entries[j].name {
			return entries[i].name < entries[j].name
		}
		return entries[i].url < entries[j].url
	})
	parts := make([]string, len(entries))
	for i, e := range entries {
		parts[i] = e.name + "=" + e.url
	}
	return strings.Join(parts, ","), found, nil
}

// isErr tells whether err is the etcd server error want (one of
// rpctypes.ErrGRPC...), whether it comes as the gRPC status, as the
// client's rpctypes.EtcdError, or only as a message that ends with its
// text (not just contains it: "can only promote a learner member" is the
// start of another error's message).
func isErr(err, want error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, want) || errors.Is(err, rpctypes.Error(want)) {
		return true
	}
	return strings.HasSuffix(err.Error(), rpctypes.ErrorDesc(want))
}

// Promote makes the learner whose peer URL is peerURL a voting member.
// etcd only promotes a learner that has caught up with the leader (and
// only once it has started and published its name): while it answers
// that the learner is not ready for that, Promote asks again every
// `every` until ctx ends, saying so at most once a minute. A member that
// is already a voter is success; no member with peerURL is an error.
func Promote(ctx context.Context, c *clientv3.Client, peerURL string, every time.Duration) error {
	ms, err := list(ctx, c)
	if err != nil {
		return fmt.Errorf("etcd member promote %s: %w", peerURL, err)
	}
	var m *member
	for i := range ms {
		if has(ms[i].PeerURLs, peerURL) {
			m = &ms[i]
			break
		}
	}
	if m == nil {
		return fmt.Errorf("etcd member promote %s: no member has that peer URL", peerURL)
	}
	if !m.Learner {
		return nil
	}
	start, said := time.Now(), time.Now()
	for {
		_, err := c.MemberPromote(ctx, m.id)
		switch {
		case err == nil:
			slog.Info("etcd learner promoted to voting member", "name", m.Name, "id", m.ID, "peerURL", peerURL,
				"after", time.Since(start).Round(time.Millisecond))
			return nil
		case isErr(err, rpctypes.ErrGRPCLearnerNotReady), isErr(err, rpctypes.ErrGRPCMemberNotEnoughStarted):
		case isErr(err, rpctypes.ErrGRPCMemberNotLearner):
			// Promoted by someone else since the list.
			return nil
		default:
			return fmt.Errorf("etcd member promote %s (%s): %w", peerURL, m.ID, err)
		}
		if time.Since(said) >= time.Minute {
			said = time.Now()
			slog.Info("etcd learner not ready to be promoted yet, retrying", "id", m.ID, "peerURL", peerURL,
				"for", time.Since(start).Round(time.Second), "last", err)
		}
		if !backoff.Sleep(ctx, every) {
			return fmt.Errorf("etcd member promote %s (%s): %w (last: %v)", peerURL, m.ID, ctx.Err(), err)
		}
	}
}

// Remove removes the member named name from the cluster (every one, if
// several carry the name); there being none is not an error. It refuses
// to remove the last voting member: that would leave the cluster without
// anyone to agree on anything. etcd itself refuses, for a few seconds
// after its members have (re)connected, to remove a voting member that
// is up ("etcdserver: unhealthy cluster"); that error is returned as it
// is, for the caller to try again later.
func Remove(ctx context.Context, c *clientv3.Client, name string) error {
	if name == "" {
		return fmt.Errorf("etcd member remove: empty name")
	}
	ms, err := list(ctx, c)
	if err != nil {
		return fmt.Errorf("etcd member remove %s: %w", name, err)
	}
	voters := 0
	for _, m := range ms {
		if !m.Learner {
			voters++
		}
	}
	for _, m := range ms {
		if m.Name != name {
			continue
		}
		if !m.Learner {
			if voters <= 1 {
				return fmt.Errorf("etcd member remove %s (%s): it is the last voting member of the cluster", name, m.ID)
			}
			voters--
		}
		if _, err := c.MemberRemove(ctx, m.id); err != nil && !isErr(err, rpctypes.ErrGRPCMemberNotFound) {
			return fmt.Errorf("etcd member remove %s (%s): %w", name, m.ID, err)
		}
		slog.Info("etcd member removed", "name", name, "id", m.ID, "peerURLs", m.PeerURLs, "learner", m.Learner)
	}
	return nil
}

// Holds tells whether the cluster c answers for has the member name
// with peerURL (see Held). The list is read linearizably, so a member
// that answers from a cluster that has gone on without it (a minority,
// or one left behind by a restore) gets an error, never a stale yes or
// no.
func Holds(ctx context.Context, c *clientv3.Client, name, peerURL string) (bool, error) {
	ms, err := List(ctx, c)
	if err != nil {
		return false, err
	}
	return Held(ms, name, peerURL), nil
}

// Held tells whether ms holds the member name with peerURL, or a member
// with peerURL not started yet (which has no name). A member with the
// peer URL under another name is not this one: the address was taken
// over.
func Held(ms []Member, name, peerURL string) bool {
	for _, m := range ms {
		if has(m.PeerURLs, peerURL) && (m.Name == name || m.Name == "") {
			return true
		}
	}
	return false
}
