package rke2node

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rke2os/rke2os/init/shared/nodesteps"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

// A further server given a bare secret refuses to join unless PID 1 says
// the config trusts on first use (--trust-on-first-use, from
// join.trust_on_first_use); with it, the step goes on to ask the server
// (which here answers /cacerts with no CA, a refusal of its own).
func TestEtcdFurtherServerTrust(t *testing.T) {
	var asked int
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked++
		w.Write([]byte("no certificate here"))
	}))
	defer ts.Close()
	for _, tc := range []struct {
		name  string
		flags []string
		want  string
		asked bool
	}{
		{"no flag", nil, "join.trust_on_first_use: true", false},
		{"false", []string{"--trust-on-first-use=false"}, "join.trust_on_first_use: true", false},
		{"true", []string{"--trust-on-first-use"}, "answers /cacerts with no CA certificate", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			asked = 0
			env := testEnv(t)
			os.MkdirAll(env.Paths.EtcDir, 0o700)
			os.WriteFile(filepath.Join(env.Paths.EtcDir, "config.yaml"), []byte("server: "+ts.URL+"\ntoken: bare-secret\n"), 0o600)
			code, m := run(t, env, append([]string{nodesteps.StepEtcd, "--node-name=server2", "--node-ip=10.0.2.16"}, tc.flags...)...)
			if code != 1 || !strings.Contains(m["error"].(string), tc.want) {
				t.Fatalf("exit %d, answer %v: want exit 1 and %q", code, m, tc.want)
			}
			if (asked > 0) != tc.asked {
				t.Errorf("the server was asked %d times", asked)
			}
		})
	}
}

// TestRemoveDeletedServers: the member of every deleted server Node (the
// etcd role label) is removed, several deletions in a row included; agents
// and this server itself are left alone, and the watch ends with the
// context. (The old watch loop dropped its errors and slept through the
// context; deletions during its restarts were lost.)
func TestRemoveDeletedServers(t *testing.T) {
	node := func(name string, server bool) *corev1.Node {
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
		if server {
			n.Labels = map[string]string{"node-role.kubernetes.io/etcd": "true"}
		}
		return n
	}
	kc := fake.NewSimpleClientset(node("self", true), node("server2", true), node("server3", true), node("agent1", false))
	removed := make(chan string, 8)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		testEnv(t).removeDeletedServers(ctx, kc, "self", func(_ context.Context, name string) { removed <- name })
	}()
	// The informer has listed the Nodes once it answers for them.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := kc.CoreV1().Nodes().Get(ctx, "server2", metav1.GetOptions{}); err == nil && len(kc.Actions()) > 0 && hasWatch(kc) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the informer never watched the Nodes")
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, name := range []string{"agent1", "self", "server2", "server3"} {
		if err := kc.CoreV1().Nodes().Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	got := map[string]bool{}
	for len(got) < 2 {
		select {
		case n := <-removed:
			got[n] = true
		case <-time.After(30 * time.Second):
			t.Fatalf("removed %v, want server2 and server3", got)
		}
	}
	select {
	case n := <-removed:
		t.Errorf("also removed %s (an agent or this server)", n)
	case <-time.After(200 * time.Millisecond):
	}
	if !got["server2"] || !got["server3"] {
		t.Errorf("removed %v, want server2 and server3", got)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("removeDeletedServers did not end with its context")
	}
}

// hasWatch says whether the fake clientset was asked to watch Nodes.
func hasWatch(kc *fake.Clientset) bool {
	for _, a := range kc.Actions() {
		if a.GetVerb() == "watch" && a.GetResource().Resource == "nodes" {
			return true
		}
	}
	return false
}
