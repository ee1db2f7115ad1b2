// Package rke2node is the rke2-node program: each step is what the rke2
// binary does at that point of its start, run once in its own process and
// answered as one JSON object on stdout (see package nodesteps), and the
// long-running services of the two RKE2 roles: the server's (control
// plane, HA etcd, the supervisor API, addons; server.go, ha.go,
// supervisor.go, addons.go) and the agent's (joining and the apiserver
// load balancer; agent.go). Its subpackages are linked into rke2-node
// only: client-go, Helm and containerd's client never reach PID 1.
package rke2node

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rke2os/rke2os/init/rke2node/airgap"
	"github.com/rke2os/rke2os/init/rke2node/pods"
	"github.com/rke2os/rke2os/init/rke2node/upgrader"
	"github.com/rke2os/rke2os/init/shared/config"
	"github.com/rke2os/rke2os/init/shared/console"
	"github.com/rke2os/rke2os/init/shared/content"
	"github.com/rke2os/rke2os/init/shared/layout"
	"github.com/rke2os/rke2os/init/shared/nodesteps"
	"github.com/rke2os/rke2os/init/shared/serverpki"
	"gopkg.in/yaml.v3"
)

// Env is where the steps find the node: its paths and the image's release
// file. Tests point it at a temporary tree.
type Env struct {
	Paths     layout.Paths
	Release   string // layout.Release
	MediumDir string // layout.MediumDir
	// The server's view of its control plane: etcd's and the apiserver's
	// addresses, and where it records the milestones of this boot.
	EtcdURL, APIServerURL string
	MilestoneDir          string
	// Secrets is where a server image carries the cluster's secrets
	// (rke2-build image --secrets); "" or a missing directory is none.
	Secrets string
	// SupervisorAddr is where a server's supervisor listens (:9345);
	// LBAddr is where an agent's load balancer in front of the apiservers
	// listens (127.0.0.1:6443), and its kubeconfigs point.
	SupervisorAddr, LBAddr string
	// NodePasswordFile is the node's password (/etc/rancher/node/password).
	NodePasswordFile string
	// Upgrade is where the upgrader keeps its files and finds the image's
	// upgrade key; nil runs no upgrader (tests).
	Upgrade *upgrader.Files
	// Reboot asks PID 1 to reboot the node in order (a server rejoining
	// its restored cluster).
	Reboot func() error
}

// DefaultEnv is the node's own.
var DefaultEnv = Env{Paths: layout.DefaultPaths, Release: layout.Release, MediumDir: layout.MediumDir,
	EtcdURL: "https://127.0.0.1:2379", APIServerURL: "https://127.0.0.1:6443", MilestoneDir: "/run/rke2os/milestones",
	Secrets: layout.BakedSecrets, SupervisorAddr: ":9345", LBAddr: "127.0.0.1:6443", NodePasswordFile: layout.NodePassword,
	Upgrade: &upgrader.DefaultFiles, Reboot: upgrader.NodeSystem{}.Reboot}

// Main runs the step named by args[0] and writes its answer to stdout;
// the exit status is 0 on success, 1 on a failed step, 2 on bad usage.
func Main(env Env, args []string, stdout io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintf(os.Stderr, "usage: rke2-node %s|%s|%s [flags]\n", nodesteps.StepContent, nodesteps.StepImport, nodesteps.StepEtcd)
		return 2
	}
	fs := flag.NewFlagSet("rke2-node "+args[0], flag.ContinueOnError)
	var run func(context.Context) (any, error)
	switch args[0] {
	case nodesteps.StepContent:
		server := fs.Bool("server", false, "copy the runtime's charts into server/manifests")
		run = func(ctx context.Context) (any, error) { return env.Content(ctx, *server) }
	case nodesteps.StepImport:
		server := fs.Bool("server", false, "unpack the control plane's images too")
		run = func(ctx context.Context) (any, error) { return env.Import(ctx, *server) }
	case nodesteps.StepEtcd:
		name := fs.String("node-name", "", "the node's name")
		ip := fs.String("node-ip", "", "the node's IP address")
		tofu := fs.Bool(nodesteps.FlagTrustOnFirstUse, false, "a further server with a bare secret trusts the CA its server presents at its first join (the config's join.trust_on_first_use)")
		atBoot := fs.Bool(nodesteps.FlagAtBoot, false, "the run at boot, before the kubelet starts (etcd not running): a rejoin recorded is carried out only then")
		run = func(ctx context.Context) (any, error) { return env.Etcd(ctx, *name, *ip, *tofu, *atBoot) }
	case nodesteps.StepJoin:
		name := fs.String("node-name", "", "the node's name")
		ip := fs.String("node-ip", "", "the node's IP address")
		run = func(ctx context.Context) (any, error) { return env.Join(ctx, *name, *ip) }
	case nodesteps.StepInstall:
		in := installFlags(fs)
		run = func(ctx context.Context) (any, error) { return env.Install(ctx, in()) }
	case nodesteps.StepUnpack:
		if err := fs.Parse(args[1:]); err != nil {
			return 2
		}
		console.Open()
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
		defer stop()
		env.UnpackAll(ctx)
		return 0
	case nodesteps.StepServer, nodesteps.StepAgent:
		name := fs.String("node-name", "", "the node's name")
		ip := fs.String("node-ip", "", "the node's IP address")
		if err := fs.Parse(args[1:]); err != nil {
			return 2
		}
		// A service: its milestones go to the console, its logs to its
		// log file (and the console in debug mode).
		console.Open()
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
		defer stop()
		service := env.Server
		if args[0] == nodesteps.StepAgent {
			service = env.Agent
		}
		if err := service(ctx, *name, *ip); err != nil {
			slog.Error(args[0], "err", err)
			return 1
		}
		return 0
	default:
		fmt.Fprintf(os.Stderr, "rke2-node: unknown step %q\n", args[0])
		return 2
	}
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	result, err := run(context.Background())
	if err != nil {
		json.NewEncoder(stdout).Encode(nodesteps.Failure{Error: err.Error()})
		return 1
	}
	if err := json.NewEncoder(stdout).Encode(result); err != nil {
		return 1
	}
	return 0
}

func (e Env) release() (*config.Release, error) {
	rel, err := config.ReadRelease(e.Release)
	if err != nil {
		return nil, fmt.Errorf("%w (this image was built without --images; rebuild it with the airgap images)", err)
	}
	return rel, nil
}

// Content extracts the runtime image of the image's RKE2 version as RKE2
// does, pulling it through registries.yaml when no archive has it.
func (e Env) Content(ctx context.Context, server bool) (*nodesteps.ContentResult, error) {
	rel, err := e.release()
	if err != nil {
		return nil, err
	}
	remote := &content.Remote{}
	regPath := filepath.Join(e.Paths.EtcDir, "registries.yaml")
	if _, err := os.Stat(regPath); err == nil {
		if remote.Registries, err = content.LoadRegistries(regPath); err != nil {
			return nil, err
		}
	}
	res, err := content.Bootstrap(ctx, content.Options{DataDir: e.Paths.DataDir, ImagesDir: e.Paths.Images(),
		Version: rel.RKE2Version, Server: server, TempDir: os.TempDir(), Remote: remote})
	if err != nil {
		return nil, err
	}
	return &nodesteps.ContentResult{DataKey: res.DataKey, BinDir: res.BinDir, Skipped: res.Skipped, Seconds: res.Duration.Seconds()}, nil
}

// Import imports every airgap archive into containerd's k8s.io namespace,
// skipping those imported before; the boot medium's archives are known by
// the digests in the release file. Then it unpacks the images of the
// node's own static pods (kube-proxy's; on a server, the control plane's
// and etcd's), so that the kubelet finds them ready (see
// airgap.UnpackImages).
func (e Env) Import(ctx context.Context, server bool) (*nodesteps.ImportResult, error) {
	rel, err := e.release()
	if err != nil {
		return nil, err
	}
	known := map[string]string{}
	for p, d := range rel.Archives {
		known[filepath.Join(e.MediumDir, p)] = d
	}
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	c, err := airgap.WaitContainerd(wctx, e.Paths.ContainerdSocket())
	if err != nil {
		return nil, err
	}
	defer c.Close()
	archives, err := content.Archives(e.Paths.Images())
	if err != nil {
		return nil, err
	}
	res, err := airgap.ImportArchives(ctx, c, archives, known, e.Paths.Agent("images", ".imported"))
	if err != nil {
		return nil, err
	}
	own := []string{rel.Image("rancher/hardened-kubernetes")}
	if server {
		own = append(own, rel.Image("rancher/hardened-etcd"))
	}
	if slices.Contains(own, "") {
		return nil, fmt.Errorf("import: release %s names no rancher/hardened-kubernetes or rancher/hardened-etcd image", e.Release)
	}
	unpacked, err := airgap.UnpackImages(ctx, c, own)
	if err != nil {
		return nil, err
	}
	return &nodesteps.ImportResult{Imported: res.Imported, Skipped: res.Skipped, Images: res.Images, Unpacked: unpacked}, nil
}

// UnpackAll unpacks every image in containerd not unpacked yet (the
// airgap archives' and any pulled since), at the lowest priority, with no
// deadline, and says so on the console. Without it the kubelet unpacks an
// image when it creates a pod's container, under its 2-minute runtime
// request timeout: on a slow node (an agent of one niced vCPU under TCG,
// seen with a conformance test's agnhost) a large image's unpack never
// fits, and each try starts it again from nothing. An image that fails is
// tried again a minute later, up to unpackPasses times in all, the others
// going on meanwhile; it returns when none is left or ctx ends (the node
// stopping).
func (e Env) UnpackAll(ctx context.Context) {
	if err := syscall.Setpriority(syscall.PRIO_PROCESS, 0, 19); err != nil {
		slog.Warn("unpack: lowest priority", "err", err)
	}
	start := time.Now()
	unpacked, images := 0, 0
	var failed []string
	var err error
	for pass := 1; ; pass++ {
		var n, names int
		n, names, failed, err = e.unpackPass(ctx, failed)
		unpacked += n
		images = max(images, names)
		if ctx.Err() != nil {
			return
		}
		done := err == nil && len(failed) == 0
		if done || pass == unpackPasses {
			break
		}
		slog.Warn("unpack images: trying again in a minute", "err", err, "failed", failed)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Minute):
		}
	}
	nfailed := len(failed)
	if err != nil || nfailed > 0 {
		// Not an error of the node: the kubelet unpacks what a pod needs.
		slog.Warn("unpack images: gave up; the kubelet unpacks them when a pod needs them", "err", err, "images", failed)
		nfailed = max(nfailed, 1)
	}
	console.Event(console.EventImagesUnpacked, "unpacked", unpacked, "images", images, "failed", nfailed, "seconds", int(time.Since(start).Seconds()))
}

// unpackPasses bounds UnpackAll's tries of an image that fails.
const unpackPasses = 5

// unpackPass unpacks the images not unpacked yet, each on its own (only
// those of only, when it is not nil): how many it unpacked, of how many
// names, and the names that failed. err is one that stopped the pass
// (containerd not answering).
func (e Env) unpackPass(ctx context.Context, only []string) (n, names int, failed []string, err error) {
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	c, err := airgap.WaitContainerd(wctx, e.Paths.ContainerdSocket())
	cancel()
	if err != nil {
		return 0, 0, only, err
	}
	defer c.Close()
	all, err := airgap.ImageNames(ctx, c)
	if err != nil {
		return 0, 0, only, err
	}
	todo := all
	if only != nil {
		todo = only
	}
	for _, name := range todo {
		k, err := airgap.UnpackImages(ctx, c, []string{name})
		if ctx.Err() != nil {
			return n, len(all), nil, ctx.Err()
		}
		n += k
		if err != nil {
			slog.Warn("unpack image", "err", err)
			failed = append(failed, name)
		}
	}
	return n, len(all), failed, nil
}

// Etcd makes etcd's certificates and writes its static pod. A further
// server (server: set) first takes the cluster's secrets from that server
// and joins etcd as a learner; trustOnFirstUse lets it do so with a bare
// secret before it holds the cluster's CA.
func (e Env) Etcd(ctx context.Context, nodeName, nodeIP string, trustOnFirstUse, atBoot bool) (*nodesteps.EtcdResult, error) {
	if nodeName == "" {
		return nil, fmt.Errorf("etcd: no node name")
	}
	rel, err := e.release()
	if err != nil {
		return nil, err
	}
	o := pods.EtcdOptions{Paths: e.Paths, Image: rel.Image("rancher/hardened-etcd"), NodeName: nodeName, NodeIP: nodeIP}
	if o.Image == "" {
		return nil, fmt.Errorf("etcd: the image carries no rancher/hardened-etcd (release %s)", e.Release)
	}
	rc, err := e.rke2Config()
	if err != nil {
		return nil, err
	}
	o.ExtraArgs = rc.Strings("etcd-arg")
	// The server's whole PKI first, as RKE2 makes it before etcd starts:
	// etcd's certificates are part of it. The image's secrets come first,
	// where the node has none, so that Ensure keeps them.
	baked, err := e.installSecrets()
	if err != nil {
		return nil, err
	}
	// cluster-reset makes this server a new cluster's first, from what it
	// holds: it takes nothing from, and joins, no other server.
	resetAsked, _ := strconv.ParseBool(rc.String("cluster-reset"))
	if rc.Server() != "" && !resetAsked {
		if err := e.bootstrapServer(ctx, rc, nodeName, trustOnFirstUse); err != nil {
			return nil, fmt.Errorf("join: %w", err)
		}
	}
	pki, err := e.serverPKI(nodeName, nodeIP, baked)
	if err != nil {
		return nil, err
	}
	if err := pods.EtcdCerts(o); err != nil {
		return nil, err
	}
	reset, force, err := e.clusterReset(ctx, rc, nodeName, o.PeerURL())
	if err != nil {
		return nil, err
	}
	o.ForceNewCluster = force
	if rc.Server() != "" && !reset && !resetAsked {
		if j, err := e.readEtcdJoin(); err == nil && j.Rejoin && atBoot {
			ask := func(ctx context.Context, j *etcdJoin) (bool, string, error) {
				return e.standingVerdict(ctx, j, nodeName)
			}
			if err := e.rejoinIfConfirmed(ctx, j, ask, localEtcdAddrs(nodeIP)); err != nil {
				return nil, err
			}
		} else if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		j, err := e.joinEtcd(ctx, rc, nodeName, nodeIP)
		if err != nil {
			return nil, err
		}
		o.InitialCluster, o.ClusterState = j.InitialCluster, "existing"
	}
	changed, err := e.staticPod(rc, pods.EtcdPod(o))
	if err != nil {
		return nil, err
	}
	slog.Info("etcd static pod", "manifest", e.Paths.EtcdManifest(), "changed", changed)
	return &nodesteps.EtcdResult{Manifest: e.Paths.EtcdManifest(), Changed: changed, PKIWritten: len(pki.Written),
		Warnings: append(baked.Warnings, pki.Warnings...)}, nil
}

// installSecrets copies the image's secrets to server/ where the node has
// none (the node's own state wins) and logs their names, never their
// contents.
func (e Env) installSecrets() (*serverpki.Installed, error) {
	if e.Secrets == "" {
		return &serverpki.Installed{}, nil
	}
	in, err := serverpki.InstallSecrets(e.Secrets, e.Paths)
	if err != nil {
		return nil, err
	}
	if len(in.Files) > 0 {
		slog.Info("baked secrets installed", "dir", e.Secrets, "files", strings.Join(in.Files, " "))
		console.Event(console.EventSecretsInstalled, "dir", e.Secrets, "files", strings.Join(in.Files, " "))
	}
	for _, w := range in.Warnings {
		slog.Warn("baked secrets: " + w)
	}
	return in, nil
}

// serverPKI makes (once) and checks (every start) the server's CAs,
// certificates, kubeconfigs, tokens and encryption config, from the keys
// of RKE2's config.yaml that shape them; the image's baked tokens stand in
// for a config without token, and for a node without an agent token.
func (e Env) serverPKI(nodeName, nodeIP string, baked *serverpki.Installed) (*serverpki.Result, error) {
	rc, err := e.rke2Config()
	if err != nil {
		return nil, err
	}
	o := serverpki.Options{Paths: e.Paths, NodeName: nodeName, TLSSANs: rc.TLSSANs(), Token: rc.Token(),
		AgentToken: rc.String("agent-token"), ServiceCIDR: rc.String("service-cidr"), ClusterDomain: rc.String("cluster-domain"),
		Kubeconfig: rc.String("write-kubeconfig"), KubeconfigMode: rc.String("write-kubeconfig-mode"),
		DefaultAgentToken: baked.AgentToken, FurtherServer: rc.Server() != ""}
	if o.Token == "" {
		o.Token = baked.Token
	}
	if ip := net.ParseIP(nodeIP); ip != nil {
		o.NodeIPs = []net.IP{ip}
	}
	res, err := serverpki.Ensure(o)
	if err != nil {
		return nil, fmt.Errorf("server PKI: %w", err)
	}
	for _, w := range res.Warnings {
		slog.Warn("server PKI: " + w)
	}
	return res, nil
}

// rke2Config reads RKE2's config.yaml as the init wrote it; none is an
// empty config.
func (e Env) rke2Config() (config.RKE2Config, error) {
	p := filepath.Join(e.Paths.EtcDir, "config.yaml")
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return config.RKE2Config{}, nil
	}
	if err != nil {
		return nil, err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	rc := config.RKE2Config{}
	if len(doc.Content) == 0 {
		return rc, nil
	}
	m := doc.Content[0]
	if m.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s: not a mapping of RKE2's keys", p)
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		rc[m.Content[i].Value] = m.Content[i+1]
	}
	return rc, nil
}
