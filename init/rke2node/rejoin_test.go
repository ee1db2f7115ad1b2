package rke2node

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/rke2os/rke2os/init/rke2node/etcdmember"
)

// storedNamespace is a Namespace as the apiserver writes it into etcd:
// protobuf, with its "k8s\x00" prefix.
func storedNamespace(t testing.TB, name, uid string) []byte {
	t.Helper()
	ns := &corev1.Namespace{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"}, ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID(uid)}}
	var b bytes.Buffer
	if err := protobuf.NewSerializer(scheme.Scheme, scheme.Scheme).Encode(ns, &b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestNamespaceUID(t *testing.T) {
	var cm bytes.Buffer
	if err := protobuf.NewSerializer(scheme.Scheme, scheme.Scheme).Encode(&corev1.ConfigMap{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Name: "kube-system", UID: "u"}}, &cm); err != nil {
		t.Fatal(err)
	}
	stored := storedNamespace(t, "kube-system", "0b5c6a2e-1111-4bbb-8ccc-123456789abc")
	for _, tc := range []struct {
		name string
		in   []byte
		want string // "" wants an error
		says string
	}{
		{"protobuf, as the apiserver stores it", stored, "0b5c6a2e-1111-4bbb-8ccc-123456789abc", ""},
		{"json", []byte(`{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"kube-system","uid":"json-uid"}}`), "json-uid", ""},
		{"no uid", storedNamespace(t, "kube-system", ""), "", "no UID"},
		{"another kind", cm.Bytes(), "", "not a Namespace"},
		{"truncated", stored[:len(stored)/2], "", kubeSystemKey},
		{"garbage", []byte("k8s\x00garbage"), "", kubeSystemKey},
		{"empty", nil, "", kubeSystemKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := namespaceUID(tc.in)
			if tc.want == "" {
				if err == nil || !strings.Contains(err.Error(), tc.says) {
					t.Fatalf("namespaceUID = %q, %v; want an error saying %q", got, err, tc.says)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("namespaceUID = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// FuzzNamespaceUID: what etcd holds under the key is read from the
// server's etcd, untrusted; no input panics, and a UID is never empty.
func FuzzNamespaceUID(f *testing.F) {
	f.Add(storedNamespace(f, "kube-system", "uid"))
	f.Add([]byte(`{"apiVersion":"v1","kind":"Namespace","metadata":{"uid":"x"}}`))
	f.Add([]byte("k8s\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		uid, err := namespaceUID(b)
		if err == nil && uid == "" {
			t.Fatal("no error and no UID")
		}
	})
}

func TestRejoinDecision(t *testing.T) {
	joined := &etcdJoin{Endpoints: []string{"https://10.0.0.1:2379"}, PeerURL: "https://10.0.0.2:2380", ClusterUID: "uid-1", ClusterID: "c1"}
	for _, tc := range []struct {
		name   string
		j      *etcdJoin
		st     standing
		rejoin rejoinVerdict
		says   string
	}{
		{"a member", joined, standing{In: true, UID: "uid-1", ClusterID: "c1"}, stay, ""},
		{"a member of a cluster restored", joined, standing{In: true, UID: "uid-1", ClusterID: "c2", RestoredFrom: "c1"}, stay, ""},
		{"restored from its cluster", joined, standing{UID: "uid-1", ClusterID: "c2", RestoredFrom: "c1"}, rejoinRestored, "etcd cluster c1 (kube-system uid-1) was restored from a snapshot: it is etcd cluster c2 now"},
		{"restored, unsaid from which", joined, standing{UID: "uid-1", ClusterID: "c2"}, rejoinWithoutQuorum, "is etcd cluster c2 of this Kubernetes cluster (kube-system uid-1), without this server's member; it does not say which cluster it was restored from, not this server's c1"},
		{"restored from another", joined, standing{UID: "uid-1", ClusterID: "c3", RestoredFrom: "c2"}, rejoinWithoutQuorum, "says it was restored from etcd cluster c2, not this server's c1"},
		{"removed", joined, standing{UID: "uid-1", ClusterID: "c1"}, stay, "removed from etcd cluster c1"},
		{"removed, marked restored long ago", joined, standing{UID: "uid-1", ClusterID: "c1", RestoredFrom: "c0"}, stay, "removed from etcd cluster c1"},
		{"another Kubernetes cluster", joined, standing{UID: "uid-2", ClusterID: "c2", RestoredFrom: "c1"}, stay, "holds another Kubernetes cluster (kube-system uid-2; this server joined kube-system uid-1)"},
		{"no record of the cluster", &etcdJoin{Endpoints: joined.Endpoints}, standing{UID: "uid-1", ClusterID: "c2"}, stay, "no record of the cluster it joined"},
		{"no cluster ID recorded", &etcdJoin{ClusterUID: "uid-1"}, standing{UID: "uid-1", ClusterID: "c2", RestoredFrom: ""}, stay, "no record"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rejoin, reason := rejoinDecision(tc.j, tc.st)
			if rejoin != tc.rejoin || !strings.Contains(reason, tc.says) || (tc.says == "") != (reason == "") {
				t.Fatalf("rejoinDecision = %v, %q; want %v, %q", rejoin, reason, tc.rejoin, tc.says)
			}
		})
	}
}

func TestSplitFrom(t *testing.T) {
	m := func(urls ...string) etcdmember.Member { return etcdmember.Member{PeerURLs: urls} }
	restored := []string{"https://10.0.0.1:2380"}
	for _, tc := range []struct {
		name  string
		own   []etcdmember.Member
		split bool
	}{
		// The old cluster still answers with the restored server's
		// old member in it: the restore is the cluster's, rejoin.
		{"the old cluster holds the restored server", []etcdmember.Member{m("https://10.0.0.1:2380"), m("https://10.0.0.2:2380"), m("https://10.0.0.3:2380")}, false},
		{"one of several peer URLs", []etcdmember.Member{m("https://10.0.0.9:2380", "https://10.0.0.1:2380")}, false},
		// A healthy cluster that removed the restored server long
		// ago: that one split away, stay.
		{"a healthy cluster without it", []etcdmember.Member{m("https://10.0.0.2:2380"), m("https://10.0.0.3:2380")}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := splitFrom(tc.own, restored); got != tc.split {
				t.Fatalf("splitFrom = %v, want %v", got, tc.split)
			}
		})
	}
}

func TestOwnQuorumVerdict(t *testing.T) {
	m := func(urls ...string) etcdmember.Member { return etcdmember.Member{PeerURLs: urls} }
	theirs := []string{"https://10.0.0.1:2380"}
	old := []etcdmember.Member{m("https://10.0.0.1:2380"), m("https://10.0.0.2:2380"), m("https://10.0.0.3:2380")}
	without := []etcdmember.Member{m("https://10.0.0.2:2380"), m("https://10.0.0.3:2380")}
	noQuorum := errors.New("context deadline exceeded")
	for _, tc := range []struct {
		name   string
		v      rejoinVerdict
		ms     []etcdmember.Member
		err    error
		rejoin bool
		says   string
	}{
		{"stay", stay, nil, noQuorum, false, "r"},
		{"restored from ours, own cluster holds the restorer", rejoinRestored, old, nil, true, "r"},
		{"restored from ours, own etcd without quorum", rejoinRestored, nil, noQuorum, true, "r"},
		{"restored from ours by a server ours removed", rejoinRestored, without, nil, false, "split away"},
		{"unsaid, own quorum", rejoinWithoutQuorum, old, nil, false, "answers with a quorum: it stays"},
		{"unsaid, no quorum", rejoinWithoutQuorum, nil, noQuorum, true, "has no quorum (context deadline exceeded)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rejoin, reason := ownQuorumVerdict(tc.v, "r", tc.ms, tc.err, theirs)
			if rejoin != tc.rejoin || !strings.Contains(reason, tc.says) {
				t.Fatalf("ownQuorumVerdict = %v, %q; want %v, %q", rejoin, reason, tc.rejoin, tc.says)
			}
		})
	}
}

// startEmbeddedEtcd starts a one-member etcd over plain http and answers
// its client and its peer URL.
func startEmbeddedEtcd(t *testing.T, name string) (*clientv3.Client, string) {
	t.Helper()
	var urls []url.URL
	for range 2 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		urls = append(urls, url.URL{Scheme: "http", Host: l.Addr().String()})
		l.Close()
	}
	cfg := embed.NewConfig()
	cfg.Name, cfg.Dir = name, t.TempDir()
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = urls[:1], urls[:1]
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = urls[1:], urls[1:]
	cfg.InitialCluster = name + "=" + urls[0].String()
	cfg.LogLevel, cfg.LogOutputs = "error", []string{"stderr"}
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(time.Minute):
		t.Fatal("etcd not ready")
	}
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{urls[1].String()}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, urls[0].String()
}

// TestAskStanding asks a real etcd: its member is in, a stranger is out;
// the identity is the stored Namespace's UID and the cluster's ID; with no
// Namespace stored, only a member gets an answer.
func TestAskStanding(t *testing.T) {
	c, peer := startEmbeddedEtcd(t, "server1")
	ctx := context.Background()
	st, err := askStanding(ctx, c, "server1", peer)
	if err != nil || !st.In || st.UID != "" {
		t.Fatalf("the member, before any Namespace: %+v %v", st, err)
	}
	if _, err := askStanding(ctx, c, "server2", "http://10.0.0.2:2380"); err == nil || !strings.Contains(err.Error(), "no Kubernetes cluster") {
		t.Fatalf("a stranger, before any Namespace: %v", err)
	}
	if _, err := c.Put(ctx, kubeSystemKey, string(storedNamespace(t, "kube-system", "uid-1"))); err != nil {
		t.Fatal(err)
	}
	ml, err := c.MemberList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	id := strconv.FormatUint(ml.Header.ClusterId, 16)
	st, err = askStanding(ctx, c, "server2", "http://10.0.0.2:2380")
	if err != nil || st.In || st.UID != "uid-1" || st.ClusterID != id || len(st.PeerURLs) != 1 || st.PeerURLs[0] != peer {
		t.Fatalf("a stranger: %+v %v; want out, uid-1, cluster %s, peers [%s]", st, err, id, peer)
	}
	// Its peer URL under another name is not this server.
	if st, err := askStanding(ctx, c, "server2", peer); err != nil || st.In {
		t.Fatalf("another name at the member's peer URL: %+v %v", st, err)
	}
	if st, err := askStanding(ctx, c, "server1", peer); err != nil || !st.In || st.UID != "uid-1" {
		t.Fatalf("the member: %+v %v", st, err)
	}
	if _, err := c.Put(ctx, restoredFromKey, "c0ffee"); err != nil {
		t.Fatal(err)
	}
	if st, err := askStanding(ctx, c, "server2", "http://10.0.0.2:2380"); err != nil || st.RestoredFrom != "c0ffee" {
		t.Fatalf("a stranger, the cluster marked restored: %+v %v", st, err)
	}
}

// TestMarkCluster: a server records the cluster ID its etcd answers for;
// a restore takes that record as the marker the restored etcd then
// holds; a server that never recorded one marks nothing.
func TestMarkCluster(t *testing.T) {
	env := testEnv(t)
	os.MkdirAll(env.Paths.Server("db"), 0o700)
	c, _ := startEmbeddedEtcd(t, "server1")
	ctx := context.Background()
	if err := env.markRestore(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(env.restoredFromPath()); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a marker with no cluster recorded: %v", err)
	}
	if err := env.markClusterWith(ctx, c); err != nil {
		t.Fatal(err)
	}
	ml, err := c.MemberList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	id := strconv.FormatUint(ml.Header.ClusterId, 16)
	if b, err := os.ReadFile(env.clusterIDPath()); err != nil || string(b) != id {
		t.Fatalf("the cluster ID recorded: %q %v, want %s", b, err, id)
	}
	if resp, err := c.Get(ctx, restoredFromKey); err != nil || len(resp.Kvs) != 0 {
		t.Fatalf("a marker put with none pending: %v %v", resp, err)
	}
	// A restore: the recorded ID becomes the marker, put once etcd runs.
	os.WriteFile(env.clusterIDPath(), []byte("c1"), 0o600)
	if err := env.markRestore(); err != nil {
		t.Fatal(err)
	}
	if err := env.markClusterWith(ctx, c); err != nil {
		t.Fatal(err)
	}
	if resp, err := c.Get(ctx, restoredFromKey); err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "c1" {
		t.Fatalf("the marker: %v %v, want c1", resp, err)
	}
	if _, err := os.Stat(env.restoredFromPath()); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the pending marker left: %v", err)
	}
	if b, _ := os.ReadFile(env.clusterIDPath()); string(b) != id {
		t.Fatalf("the cluster ID recorded after: %q, want %s", b, id)
	}
}

// TestRejoinIfConfirmed: a rejoin recorded is carried out at boot only
// when the server's etcd says so again; a member again, or no answer,
// forgets it and keeps the data.
func TestRejoinIfConfirmed(t *testing.T) {
	defer func(d time.Duration) { rejoinConfirmWait = d }(rejoinConfirmWait)
	rejoinConfirmWait = 300 * time.Millisecond
	for _, tc := range []struct {
		name   string
		rejoin bool
		err    error
		moved  bool
	}{
		{"confirmed", true, nil, true},
		{"a member again", false, nil, false},
		{"refused now", false, nil, false},
		{"no answer", false, errors.New("connection refused"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := testEnv(t)
			data := env.Paths.Server("db", "etcd")
			os.MkdirAll(filepath.Join(data, "member"), 0o700)
			j := &etcdJoin{PeerURL: "https://10.0.0.2:2380", Promoted: true, Rejoin: true, RejoinReason: "restored"}
			if err := env.writeEtcdJoin(j); err != nil {
				t.Fatal(err)
			}
			ask := func(context.Context, *etcdJoin) (bool, string, error) { return tc.rejoin, "why", tc.err }
			if err := env.rejoinIfConfirmed(context.Background(), j, ask, []string{"127.0.0.1:1"}); err != nil {
				t.Fatal(err)
			}
			_, serr := os.Stat(filepath.Join(data, "member"))
			got, jerr := env.readEtcdJoin()
			if tc.moved {
				if !errors.Is(serr, os.ErrNotExist) || !errors.Is(jerr, os.ErrNotExist) {
					t.Fatalf("confirmed: data %v, record %+v %v", serr, got, jerr)
				}
				return
			}
			if serr != nil || jerr != nil || got.Rejoin || !got.Promoted {
				t.Fatalf("not confirmed: data %v, record %+v %v", serr, got, jerr)
			}
		})
	}
}

// TestRejoinAtBoot: the old data goes aside beside it (a name taken gets
// a suffix), the join record goes, and nothing moves while an etcd
// answers.
func TestRejoinAtBoot(t *testing.T) {
	env := testEnv(t)
	data := env.Paths.Server("db", "etcd")
	if err := os.MkdirAll(filepath.Join(data, "member"), 0o700); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(data, "member", "old"), []byte("the old member"), 0o600)
	j := &etcdJoin{PeerURL: "https://10.0.0.2:2380", Promoted: true, Rejoin: true, RejoinReason: "restored"}
	if err := env.writeEtcdJoin(j); err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1796644800, 0)
	os.MkdirAll(data+"-old-1796644800", 0o700) // an earlier restore's, same second

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	err = env.rejoinAtBoot(j, []string{"127.0.0.1:1", l.Addr().String()}, now)
	l.Close()
	if err == nil || !strings.Contains(err.Error(), "answers at "+l.Addr().String()) {
		t.Fatalf("with an etcd answering: %v", err)
	}
	if _, err := os.Stat(filepath.Join(data, "member", "old")); err != nil {
		t.Fatalf("the data moved under a running etcd: %v", err)
	}
	if _, err := env.readEtcdJoin(); err != nil {
		t.Fatalf("the record went: %v", err)
	}

	if err := env.rejoinAtBoot(j, []string{"127.0.0.1:1"}, now); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(data+"-old-1796644800-1", "member", "old")); err != nil || string(b) != "the old member" {
		t.Fatalf("the old data: %q %v", b, err)
	}
	if _, err := os.Stat(data); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("db/etcd still there: %v", err)
	}
	if _, err := env.readEtcdJoin(); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the join record: %v", err)
	}
	// Again (a crash after the move): nothing to move, no error.
	if err := env.rejoinAtBoot(j, nil, now); err != nil {
		t.Fatal(err)
	}
}

// TestWatchStanding: only two answers in a row that say rejoin record it
// and reboot; no answer or a refusal between starts the count again; a
// learner and a server already rejoining are not asked.
func TestWatchStanding(t *testing.T) {
	type answer struct {
		rejoin bool
		err    error
	}
	no := errors.New("no answer")
	for _, tc := range []struct {
		name    string
		j       etcdJoin
		answers []answer
		reboot  bool
		asked   int
	}{
		{"in", etcdJoin{Promoted: true}, []answer{{}, {}, {}}, false, 3},
		{"out twice", etcdJoin{Promoted: true}, []answer{{rejoin: true}, {rejoin: true}}, true, 2},
		{"out, no answer, out", etcdJoin{Promoted: true}, []answer{{rejoin: true}, {err: no}, {rejoin: true}, {}}, false, 4},
		{"out, in, out", etcdJoin{Promoted: true}, []answer{{rejoin: true}, {}, {rejoin: true}, {rejoin: true}}, true, 4},
		{"a learner", etcdJoin{}, nil, false, 0},
		{"rejoining already", etcdJoin{Promoted: true, Rejoin: true}, nil, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := testEnv(t)
			j := tc.j
			j.PeerURL = "https://10.0.0.2:2380"
			if err := env.writeEtcdJoin(&j); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			asked, rebooted := 0, false
			ask := func(context.Context, *etcdJoin) (bool, string, error) {
				if asked == len(tc.answers) {
					cancel()
					return false, "", no
				}
				a := tc.answers[asked]
				asked++
				return a.rejoin, "restored", a.err
			}
			// Long enough for a loaded machine's fsyncs; a run that asks
			// ends when its answers do.
			go func() { time.Sleep(3 * time.Second); cancel() }()
			env.watchStanding(ctx, time.Millisecond, ask, func() error { rebooted = true; cancel(); return nil })
			if rebooted != tc.reboot || (asked != tc.asked && asked != tc.asked+1) {
				t.Fatalf("rebooted %v after %d answers; want %v after %d", rebooted, asked, tc.reboot, tc.asked)
			}
			got, err := env.readEtcdJoin()
			if err != nil {
				t.Fatal(err)
			}
			if tc.reboot && (!got.Rejoin || got.RejoinReason != "restored") {
				t.Errorf("the record after the reboot: %+v", got)
			}
			if !tc.reboot && got.Rejoin != tc.j.Rejoin {
				t.Errorf("the record: %+v", got)
			}
		})
	}
}

// TestBootstrapOnce: a server that joined before waits only a while for
// a server that does not answer (the whole cluster starting at once),
// then starts on its own copy; one that never joined waits on; a refusal
// fails either way.
func TestBootstrapOnce(t *testing.T) {
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "etcd has no quorum yet", http.StatusServiceUnavailable)
	}))
	defer ts.Close()
	defer func(d time.Duration) { joinedBootstrapWait = d }(joinedBootstrapWait)
	joinedBootstrapWait = 200 * time.Millisecond
	for _, tc := range []struct {
		name    string
		joined  bool
		tofu    bool
		wantErr string
	}{
		{"joined before", true, true, ""},
		{"never joined", false, true, "deadline exceeded"},
		{"joined before, refused", true, false, "trust_on_first_use"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := testEnv(t)
			os.MkdirAll(env.Paths.EtcDir, 0o700)
			os.WriteFile(filepath.Join(env.Paths.EtcDir, "config.yaml"), []byte("server: "+ts.URL+"\ntoken: bare-secret\n"), 0o600)
			rc, err := env.rke2Config()
			if err != nil {
				t.Fatal(err)
			}
			if tc.joined {
				if err := env.writeEtcdJoin(&etcdJoin{Promoted: true}); err != nil {
					t.Fatal(err)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			err = env.bootstrapServer(ctx, rc, "server2", tc.tofu)
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("bootstrapServer: %v; want %q", err, tc.wantErr)
			}
		})
	}
}
