package etcdmember

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
)

func TestJoinCluster(t *testing.T) {
	pb := func(id uint64, name string, learner bool, peers ...string) *etcdserverpb.Member {
		return &etcdserverpb.Member{ID: id, Name: name, PeerURLs: peers, IsLearner: learner}
	}
	tests := []struct {
		name    string
		members []*etcdserverpb.Member
		want    string
		found   string // ID of the member reused, "" if none
		wantErr []string
	}{{
		name:    "new member sorted in",
		members: []*etcdserverpb.Member{pb(0xc, "c", false, "http://c:2380"), pb(0xa, "a", false, "http://a:2380")},
		want:    "a=http://a:2380,b=http://b:2380,c=http://c:2380",
	}, {
		name:    "ours added but not started",
		members: []*etcdserverpb.Member{pb(0xa, "a", false, "http://a:2380"), pb(0xb, "", true, "http://b:2380")},
		want:    "a=http://a:2380,b=http://b:2380",
		found:   "b",
	}, {
		name:    "ours started",
		members: []*etcdserverpb.Member{pb(0xb, "b", false, "http://b:2380"), pb(0xa, "a", false, "http://a:2380")},
		want:    "a=http://a:2380,b=http://b:2380",
		found:   "b",
	}, {
		name:    "other member with several peer URLs",
		members: []*etcdserverpb.Member{pb(0xa, "a", false, "http://a2:2380", "http://a1:2380")},
		want:    "a=http://a1:2380,a=http://a2:2380,b=http://b:2380",
	}, {
		name:    "name held by another peer URL",
		members: []*etcdserverpb.Member{pb(0xa, "a", false, "http://a:2380"), pb(0xbad, "b", false, "http://old-b:2380")},
		wantErr: []string{"name b is held by member bad", "http://old-b:2380", "etcdctl member remove bad"},
	}, {
		name:    "other member not started",
		members: []*etcdserverpb.Member{pb(0xa, "a", false, "http://a:2380"), pb(0xd, "", true, "http://d:2380")},
		wantErr: []string{"member d (peer URLs http://d:2380) was added but has not started", "etcdctl member remove"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, found, err := joinCluster(convert(tt.members), "b", "http://b:2380")
			if len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatalf("no error, got %q", got)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not say %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("initial cluster = %q, want %q", got, tt.want)
			}
			foundID := ""
			if found != nil {
				foundID = found.ID
			}
			if foundID != tt.found {
				t.Errorf("reused member %q, want %q", foundID, tt.found)
			}
		})
	}
}

func TestIsErr(t *testing.T) {
	notReady, notLearner := rpctypes.ErrGRPCLearnerNotReady, rpctypes.ErrGRPCMemberNotLearner
	tests := []struct {
		name      string
		err, want error
		is        bool
	}{
		{"grpc status", notReady, notReady, true},
		{"client error", rpctypes.ErrMemberLearnerNotReady, notReady, true},
		{"wrapped", fmt.Errorf("x: %w", rpctypes.ErrMemberLearnerNotReady), notReady, true},
		{"message only", fmt.Errorf("rpc error: %s", "etcdserver: can only promote a learner member which is in sync with leader"), notReady, true},
		{"other error", notLearner, notReady, false},
		// The message of notLearner is the start of notReady's.
		{"longer message", rpctypes.ErrMemberLearnerNotReady, notLearner, false},
		{"longer message, status", notReady, notLearner, false},
		{"not learner", rpctypes.ErrMemberNotLearner, notLearner, true},
		{"nil", nil, notReady, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := isErr(tt.err, tt.want); got != tt.is {
				t.Errorf("isErr(%v) = %v, want %v", tt.err, got, tt.is)
			}
		})
	}
}

// freeURLs are n http URLs on 127.0.0.1 on distinct free ports: every listener is held
// until all are chosen (one at a time, two could get the same port).
func freeURLs(t *testing.T, n int) []string {
	t.Helper()
	var urls []string
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		urls = append(urls, "http://"+l.Addr().String())
	}
	return urls
}

// startEtcd starts an in-process etcd member and waits until it serves.
func startEtcd(t *testing.T, name, peerURL, clientURL, initialCluster, state string) *embed.Etcd {
	t.Helper()
	pu, err := url.Parse(peerURL)
	if err != nil {
		t.Fatal(err)
	}
	cu, err := url.Parse(clientURL)
	if err != nil {
		t.Fatal(err)
	}
	cfg := embed.NewConfig()
	cfg.Name = name
	cfg.Dir = t.TempDir()
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
	cfg.InitialCluster = initialCluster
	cfg.ClusterState = state
	cfg.InitialClusterToken = "etcdmember-test"
	cfg.TickMs, cfg.ElectionMs = 50, 500
	cfg.LogLevel = "error"
	cfg.LogOutputs = []string{"stderr"}
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		t.Fatalf("start etcd %s: %v", name, err)
	}
	t.Cleanup(e.Close)
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		t.Fatalf("etcd %s: %v", name, err)
	case <-time.After(time.Minute):
		t.Fatalf("etcd %s not ready after a minute", name)
	}
	return e
}

func mustList(t *testing.T, ctx context.Context, c *clientv3.Client) []Member {
	t.Helper()
	ms, err := List(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

func byName(ms []Member, name string) *Member {
	for i := range ms {
		if ms[i].Name == name {
			return &ms[i]
		}
	}
	return nil
}

func wantErr(t *testing.T, err error, says ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one saying %q", says)
	}
	for _, s := range says {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not say %q", err, s)
		}
	}
}

// TestJoinAndLeave runs a second member through what a joining server
// does (add as learner, start with the returned initial cluster, promote)
// and what deleting its Node does (remove), against in-process etcd.
func TestJoinAndLeave(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	u := freeURLs(t, 5)
	aPeer, aClient, bPeer, bClient, otherPeer := u[0], u[1], u[2], u[3], u[4]

	startEtcd(t, "a", aPeer, aClient, "a="+aPeer, embed.ClusterStateFlagNew)
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{aClient}, DialTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	ms := mustList(t, ctx, c)
	if len(ms) != 1 || ms[0].Name != "a" || ms[0].Learner || len(ms[0].PeerURLs) != 1 || ms[0].PeerURLs[0] != aPeer {
		t.Fatalf("members at start = %+v", ms)
	}
	aID := ms[0].ID

	wantCluster := "a=" + aPeer + ",b=" + bPeer
	for i := range 2 { // the second time finds the member the first added
		got, err := Add(ctx, c, "b", bPeer)
		if err != nil {
			t.Fatalf("add b (%d): %v", i+1, err)
		}
		if got != wantCluster {
			t.Fatalf("add b (%d) = %q, want %q", i+1, got, wantCluster)
		}
		ms = mustList(t, ctx, c)
		if len(ms) != 2 {
			t.Fatalf("members after add b (%d) = %+v", i+1, ms)
		}
	}
	var bID string
	for _, m := range ms {
		if m.ID != aID {
			bID = m.ID
			if m.Name != "" || !m.Learner || len(m.PeerURLs) != 1 || m.PeerURLs[0] != bPeer {
				t.Fatalf("b before start = %+v", m)
			}
		}
	}

	wantHolds(t, ctx, c, "b", bPeer, true) // added, not started: no name yet
	wantHolds(t, ctx, c, "b", otherPeer, false)

	// b is added but not started: no one else can join until it has.
	_, err = Add(ctx, c, "c", otherPeer)
	wantErr(t, err, "etcd member add c", bID, "has not started")
	if ms = mustList(t, ctx, c); len(ms) != 2 {
		t.Fatalf("members after refused add c = %+v", ms)
	}

	// A learner that has not started is never in sync: Promote keeps
	// asking until its context ends, and says why it could not.
	sctx, scancel := context.WithTimeout(ctx, time.Second)
	err = Promote(sctx, c, bPeer, 100*time.Millisecond)
	scancel()
	wantErr(t, err, "etcd member promote "+bPeer, bID, "in sync with leader")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("promote of an unstarted learner: %v, want the context's deadline", err)
	}

	startEtcd(t, "b", bPeer, bClient, wantCluster, embed.ClusterStateFlagExisting)

	pctx, pcancel := context.WithTimeout(ctx, time.Minute)
	defer pcancel()
	if err := Promote(pctx, c, bPeer, 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	ms = mustList(t, ctx, c)
	if len(ms) != 2 || byName(ms, "a") == nil || byName(ms, "b") == nil || ms[0].Learner || ms[1].Learner {
		t.Fatalf("members after promote = %+v", ms)
	}
	if b := byName(ms, "b"); b.ID != bID || len(b.ClientURLs) != 1 || b.ClientURLs[0] != bClient {
		t.Fatalf("b after promote = %+v, want ID %s", b, bID)
	}
	if err := Promote(pctx, c, bPeer, 100*time.Millisecond); err != nil {
		t.Fatalf("promote of a voter: %v", err)
	}
	wantErr(t, Promote(pctx, c, otherPeer, 100*time.Millisecond), otherPeer, "no member")

	wantHolds(t, ctx, c, "b", bPeer, true)
	wantHolds(t, ctx, c, "c", bPeer, false) // b's address under another name is not c
	wantHolds(t, ctx, c, "a", aPeer, true)

	// b started: adding it again still answers, and its name is b's.
	if got, err := Add(ctx, c, "b", bPeer); err != nil || got != wantCluster {
		t.Fatalf("add b after start = %q, %v; want %q", got, err, wantCluster)
	}
	_, err = Add(ctx, c, "b", otherPeer)
	wantErr(t, err, "etcd member add b", "held by member "+bID, bPeer, "etcdctl member remove "+bID)
	if ms = mustList(t, ctx, c); len(ms) != 2 {
		t.Fatalf("members after refused add b = %+v", ms)
	}

	for _, tt := range []struct {
		remove  string
		left    int
		wantErr []string
	}{
		{remove: "b", left: 1},
		{remove: "b", left: 1},
		{remove: "nosuch", left: 1},
		{remove: "a", left: 1, wantErr: []string{"etcd member remove a", aID, "last voting member"}},
	} {
		err := Remove(ctx, c, tt.remove)
		// etcd refuses to remove a voter that is up until the leader has
		// been connected to a quorum without it for 5 s (its
		// HealthInterval), and b has only just joined.
		for deadline := time.Now().Add(30 * time.Second); isErr(err, rpctypes.ErrGRPCUnhealthy) && time.Now().Before(deadline); {
			time.Sleep(200 * time.Millisecond)
			err = Remove(ctx, c, tt.remove)
		}
		if tt.wantErr != nil {
			wantErr(t, err, tt.wantErr...)
		} else if err != nil {
			t.Fatalf("remove %s: %v", tt.remove, err)
		}
		if ms = mustList(t, ctx, c); len(ms) != tt.left || ms[0].Name != "a" {
			t.Fatalf("members after remove %s = %+v", tt.remove, ms)
		}
	}
	wantHolds(t, ctx, c, "b", bPeer, false)
}

func wantHolds(t *testing.T, ctx context.Context, c *clientv3.Client, name, peerURL string, want bool) {
	t.Helper()
	got, err := Holds(ctx, c, name, peerURL)
	if err != nil || got != want {
		t.Errorf("Holds(%s, %s) = %v, %v; want %v", name, peerURL, got, err, want)
	}
}
