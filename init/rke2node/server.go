package rke2node

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/rke2os/rke2os/init/rke2node/kubenode"
	"github.com/rke2os/rke2os/init/rke2node/pods"
	"github.com/rke2os/rke2os/init/rke2node/upgradectl"
	"github.com/rke2os/rke2os/init/rke2node/upgrader"
	"github.com/rke2os/rke2os/init/shared/config"
	"github.com/rke2os/rke2os/init/shared/console"
	"github.com/rke2os/rke2os/init/shared/goroutine"
	"github.com/rke2os/rke2os/init/shared/procstat"
	"github.com/rke2os/rke2os/internal/backoff"
	"github.com/rke2os/rke2os/internal/durable"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
)

// pollEvery is how often the server looks at etcd and the apiserver while
// it waits for them.
const pollEvery = 2 * time.Second

// Server is the server's long-running side, what RKE2 runs in goroutines
// of its own process, here a service of PID 1 restarted with backoff: it
// waits for etcd to answer, writes the apiserver's static pod, waits for
// its /readyz, then writes the controller-manager's and the scheduler's.
// Then kube-proxy's pod; it labels the Node as RKE2's server does once the
// kubelet has registered it. It reports etcd-healthy, apiserver-ready and
// node-ready on the console, then stays, for the work that follows
// (manifests, joins).
func (e Env) Server(ctx context.Context, nodeName, nodeIP string) error {
	// A shutdown ends every wait below: that is no error.
	rel, err := e.release()
	if err != nil {
		return err
	}
	image := rel.Image("rancher/hardened-kubernetes")
	if image == "" {
		return fmt.Errorf("server: the image carries no rancher/hardened-kubernetes (release %s)", e.Release)
	}
	rc, err := e.rke2Config()
	if err != nil {
		return err
	}
	cp := pods.ControlPlane{Paths: e.Paths, Image: image, NodeName: nodeName, NodeIP: nodeIP,
		ClusterCIDR: rc.String("cluster-cidr"), ServiceCIDR: rc.String("service-cidr"), ClusterDomain: rc.String("cluster-domain"),
		ServiceNodePortRange: rc.String("service-node-port-range"), CADirs: pods.ExistingDirs(pods.SSLDirs)}

	etcd, err := e.tlsClient(e.Paths.EtcdTLS("server-ca.crt"), e.Paths.EtcdTLS("client.crt"), e.Paths.EtcdTLS("client.key"))
	if err != nil {
		return err
	}
	admin, err := e.tlsClient(e.Paths.Server("tls", "server-ca.crt"), e.Paths.Server("tls", "client-admin.crt"), e.Paths.Server("tls", "client-admin.key"))
	if err != nil {
		return err
	}
	// The supervisor answers from now on: a joining node waits on its
	// readyz until the apiserver is ready.
	sup, err := e.serveSupervisor(ctx, cp, rc, admin)
	if err != nil {
		return err
	}
	// A joined member is a learner until promoted: it answers only
	// serializable reads, and the apiserver must wait for its vote.
	j, err := e.readEtcdJoin()
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	// A joined server out of its restored cluster never sees its etcd
	// healthy again: the watch runs from before that wait.
	if j != nil && e.Reboot != nil {
		goroutine.Keep(ctx, "etcd standing", func(ctx context.Context) {
			e.watchStanding(ctx, standingEvery, func(ctx context.Context, j *etcdJoin) (bool, string, error) {
				return e.standingVerdict(ctx, j, nodeName)
			}, e.Reboot)
		})
	}
	health := e.EtcdURL + "/health"
	if j != nil && !j.Promoted {
		health += "?serializable=true"
	}
	if err := waitFor(ctx, "etcd", func(ctx context.Context) error { return etcdHealthy(ctx, etcd, health) }); err != nil {
		return stopped(ctx, err)
	}
	e.milestone("etcd-healthy")
	// After a cluster-reset without a snapshot: etcd answers as one
	// member; its next start must not force a new cluster again.
	if ended, err := e.endForceNewCluster(rc); err != nil {
		return err
	} else if ended {
		if err := waitFor(ctx, "etcd, restarted without --force-new-cluster", func(ctx context.Context) error { return etcdHealthy(ctx, etcd, health) }); err != nil {
			return stopped(ctx, err)
		}
	}
	if j != nil && !j.Promoted {
		if err := e.promoteEtcd(ctx, j); err != nil {
			return stopped(ctx, err)
		}
		e.milestone("etcd-voter")
	}
	// A voter now: a restore's marker goes into etcd, and the cluster's
	// ID is recorded, for the restores to come; beside the control
	// plane's start, which does not wait for it.
	goroutine.Go("etcd marks", func() {
		if err := waitFor(ctx, "etcd to take the cluster's marks", e.markCluster); err != nil && ctx.Err() == nil {
			slog.Warn("etcd marks", "err", err)
		}
	})

	api := pods.KubeAPIServerOptions{ControlPlane: cp, ExtraArgs: rc.Strings("kube-apiserver-arg"),
		PodSecurityConfigFile: rc.String("pod-security-admission-config-file")}
	if api.PodSecurityConfigFile == "" {
		if err := durable.WriteFile(pods.PodSecurityConfigPath(api), pods.PodSecurityConfig(), 0o600); err != nil {
			return fmt.Errorf("server: pod security config: %w", err)
		}
	}
	if err := e.writePod(rc, pods.KubeAPIServerPod(api)); err != nil {
		return err
	}
	readyz := e.APIServerURL + "/readyz"
	if err := waitFor(ctx, "kube-apiserver", func(ctx context.Context) error { return httpOK(ctx, admin, readyz) }); err != nil {
		return stopped(ctx, err)
	}
	e.milestone("apiserver-ready")

	if err := e.writePod(rc, pods.KubeControllerManagerPod(pods.KubeControllerManagerOptions{ControlPlane: cp, ExtraArgs: rc.Strings("kube-controller-manager-arg")})); err != nil {
		return err
	}
	if err := e.writePod(rc, pods.KubeSchedulerPod(pods.KubeSchedulerOptions{ControlPlane: cp, ExtraArgs: rc.Strings("kube-scheduler-arg")})); err != nil {
		return err
	}
	// kube-proxy as a static pod, as current RKE2 runs it on every node.
	// Not earlier: the apiserver's and kube-proxy's pods started together
	// unpack the same image twice at once, which a node whose state is in
	// memory had no room for (make test, TestNodeRunsEtcd).
	if _, err := e.writeKubeProxy(rc, image, nodeName, nodeIP, ""); err != nil {
		return fmt.Errorf("server: %w", err)
	}
	slog.Info("control plane started: kube-apiserver, kube-controller-manager, kube-scheduler, kube-proxy")
	kc, err := kubenode.Client(e.Paths.Server("cred", "supervisor.kubeconfig"), e.APIServerURL)
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	// server/manifests and the charts in them (the CNI among them) while
	// the Node waits for its network: on one server of the cluster at a
	// time, the holder of a lease, as RKE2's controllers are.
	go e.lead(ctx, kc, "rke2os-addons", nodeName, func(ctx context.Context) { e.addons(ctx, rc) })
	// The UpgradePlans, under a lease of their own: from before the Node
	// is Ready, since on a single server it is this node whose upgrade
	// the controller finishes after the reboot.
	go e.lead(ctx, kc, upgradectl.LeaseName, nodeName, e.upgrades)
	// etcd snapshots, on every server: each keeps its own member's.
	go e.snapshots(ctx, rc, sup, nodeName)

	// The Node, as RKE2's server treats its own: role labels once the
	// kubelet has registered it, then node-ready once it is Ready.
	if err := e.clusterReady(ctx, sup, kc, etcd, nodeName); err != nil {
		return stopped(ctx, err)
	}
	go e.removeDeletedServers(ctx, kc, nodeName, e.removeMember)
	if err := kubenode.Label(ctx, kc, nodeName, kubenode.ServerLabels, pollEvery); err != nil {
		return stopped(ctx, err)
	}
	return e.readyThenStay(ctx, kc, nodeName, config.RoleServer)
}

// readyThenStay waits for the Node to be Ready, says node-ready with what
// the node's processes cost then, confirms the slot being tried, starts
// the upgrader and stays until ctx ends: the end of a server's and an
// agent's service alike. kc may be the kubelet's identity (an agent's):
// the upgrader needs no more.
func (e Env) readyThenStay(ctx context.Context, kc kubernetes.Interface, nodeName, role string) error {
	if err := kubenode.WaitReady(ctx, kc, nodeName, pollEvery); err != nil {
		return stopped(ctx, err)
	}
	e.milestone("node-ready")
	logResources("node-ready")
	confirmSlot()
	if e.Upgrade != nil {
		files := *e.Upgrade
		// The cluster's server CA, which both roles keep under agent/,
		// for an artifact served from inside the cluster over https.
		files.CAFiles = append(slices.Clip(files.CAFiles), e.Paths.Agent("server-ca.crt"))
		goroutine.Keep(ctx, "upgrader", func(ctx context.Context) {
			upgrader.Run(ctx, upgrader.Config{Files: files, NodeName: nodeName, Role: role, Client: kc})
		})
	}
	<-ctx.Done()
	return nil
}

// logResources logs what the node's processes cost at a milestone: this
// process's and PID 1's resident sets and the guest's memory in use (make
// bench reads the event).
func logResources(when string) {
	kv := []any{"when", when,
		"server_rss_kib", procstat.ProcKiB("/proc/self/status", "VmRSS"), "init_rss_kib", procstat.ProcKiB("/proc/1/status", "VmRSS"),
		"mem_used_kib", procstat.ProcKiB("/proc/meminfo", "MemTotal") - procstat.ProcKiB("/proc/meminfo", "MemAvailable")}
	slog.Info("server resources", kv...)
	console.Event(console.EventServerResources, kv...)
}

// stopped is nil when ctx has ended (a shutdown is no error), else err.
func stopped(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("server: %w", err)
}

// writePod writes a static pod into the kubelet's manifests, with the
// config's probe settings, unchanged content left as it is.
func (e Env) writePod(rc config.RKE2Config, pod *corev1.Pod) error {
	changed, err := e.staticPod(rc, pod)
	if err != nil {
		return fmt.Errorf("server: %s: %w", pod.Name, err)
	}
	slog.Info("static pod", "name", pod.Name, "changed", changed)
	return nil
}

// staticPod writes pod into the kubelet's manifests with the config's
// probe settings (control-plane-probe-configuration) and says whether it
// changed: every static pod of the node is written through it.
func (e Env) staticPod(rc config.RKE2Config, pod *corev1.Pod) (bool, error) {
	pods.SetProbes(pod, rc.ProbeConfiguration())
	return pods.StaticPod(e.Paths.PodManifests(), pod)
}

// milestone logs a timeline milestone on the console, once per boot: the
// service restarts, the marks in MilestoneDir (a tmpfs) stay.
func (e Env) milestone(name string) {
	mark := filepath.Join(e.MilestoneDir, name)
	if _, err := os.Stat(mark); err == nil {
		return
	}
	console.Milestone(name)
	if err := os.MkdirAll(e.MilestoneDir, 0o755); err == nil {
		_ = os.WriteFile(mark, nil, 0o644)
	}
}

// tlsClient is an HTTPS client that trusts ca and presents cert/key.
func (e Env) tlsClient(ca, cert, key string) (*http.Client, error) {
	pem, err := os.ReadFile(ca)
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("server: %s holds no certificate", ca)
	}
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}, ServerName: "localhost"},
	}}, nil
}

// waitFor polls check until it succeeds or ctx ends, saying about every
// minute what it waits for, and how long it took.
func waitFor(ctx context.Context, what string, check func(context.Context) error) error {
	start := time.Now()
	if err := backoff.Poll(ctx, pollEvery, what, check); err != nil {
		return err
	}
	slog.Info(what+" answers", "after", time.Since(start).Round(100*time.Millisecond))
	return nil
}

// etcdHealthy asks etcd's /health, which answers {"health":"true"} once
// the member has a leader and serves.
func etcdHealthy(ctx context.Context, c *http.Client, url string) error {
	resp, body, err := get(ctx, c, url, 4096)
	if err != nil {
		return err
	}
	var h struct {
		Health string `json:"health"`
		Reason string `json:"reason"`
	}
	if err := json.Unmarshal(body, &h); err != nil {
		return fmt.Errorf("etcd /health: %s: %w", resp.Status, err)
	}
	if h.Health != "true" {
		return fmt.Errorf("etcd /health: %s %s", h.Health, h.Reason)
	}
	return nil
}

// get GETs url and reads at most limit bytes of its body.
func get(ctx context.Context, c *http.Client, url string, limit int64) (*http.Response, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit))
	return resp, body, err
}

// httpOK GETs url and wants 200.
func httpOK(ctx context.Context, c *http.Client, url string) error {
	resp, body, err := get(ctx, c, url, 16<<10)
	if err != nil && resp == nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s %s", url, resp.Status, failedChecks(body))
	}
	return nil
}

// failedChecks is what to say of a health endpoint's answer: the checks it
// reports failed ("[-]name failed: ..."), the answer's start if none.
func failedChecks(body []byte) string {
	var failed []string
	for _, l := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(l, "[-]") {
			failed = append(failed, l)
		}
	}
	if len(failed) == 0 {
		return string(body[:min(len(body), 512)])
	}
	return strings.Join(failed, "; ")
}
