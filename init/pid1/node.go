package pid1

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/rke2os/rke2os/init/pid1/launch"
	"github.com/rke2os/rke2os/init/shared/config"
	"github.com/rke2os/rke2os/init/shared/console"
	"github.com/rke2os/rke2os/init/shared/layout"
	"github.com/rke2os/rke2os/init/shared/nodesteps"
	"github.com/rke2os/rke2os/init/shared/supervise"
)

// startNode runs RKE2's process lifecycle on this machine: content
// bootstrap, containerd, the airgap import, the kubelet and, on servers,
// etcd's static pod. The heavy one-shot steps run in rke2-node child
// processes (package nodesteps); containerd and the kubelet are services of
// the init's supervisor. Each milestone is logged as it is reached.
func startNode(ctx context.Context, reaper *supervise.Reaper, sup *supervise.Supervisor, cfg *config.Config, role, nodeIP string) error {
	rel, err := config.ReadRelease(layout.Release)
	if err != nil {
		return fmt.Errorf("%w (this image was built without --images; rebuild it with the airgap images)", err)
	}
	hostname, _ := os.Hostname()
	nodeName := cfg.RKE2.NodeName()
	if nodeName == "" {
		nodeName = hostname
	}
	// node-ip wins over the address the network came up with (a VM's
	// user-mode NIC has the same address on every machine).
	if ips := cfg.RKE2.NodeIPs(); len(ips) > 0 {
		nodeIP = ips[0]
	}
	st := &launch.Stack{Paths: layout.DefaultPaths, Sup: sup, Config: cfg, Role: role,
		NodeName: nodeName, NodeIP: nodeIP, SandboxImage: rel.Image("rancher/mirrored-pause")}
	// RKE2's config.yaml and registries.yaml first: the runtime pull
	// fallback reads the registries.
	if err := st.WriteRKE2Config(); err != nil {
		return err
	}

	// An agent given a server joins first, as RKE2's agent gets its
	// configuration before it starts anything: a refusal (wrong token,
	// a server that is not the token's) stops the boot here, said plainly.
	joining := role == config.RoleAgent && cfg.RKE2.Server() != ""
	if joining {
		var j nodesteps.JoinResult
		if err := nodesteps.Run(reaper, layout.NodeBinary, &j, nodesteps.StepJoin, "--node-name="+nodeName, "--node-ip="+nodeIP); err != nil {
			return err
		}
		slog.Info("joined", "server", j.Server, "apiservers", j.APIServers, "took", time.Duration(j.Seconds*float64(time.Second)))
		st.ClusterDNS, st.ClusterDomain = j.ClusterDNS, j.ClusterDomain
		console.Milestone("joined")
	} else if role == config.RoleAgent {
		slog.Warn("agent without server: in its config: the kubelet runs standalone, static pods only (set rke2.server and rke2.token to join a cluster)")
	}

	var res nodesteps.ContentResult
	if err := nodesteps.Run(reaper, layout.NodeBinary, &res, nodesteps.StepContent, "--server="+strconv.FormatBool(role == config.RoleServer)); err != nil {
		return err
	}
	slog.Info("runtime content", "key", res.DataKey, "bin", res.BinDir, "skipped", res.Skipped, "took", time.Duration(res.Seconds*float64(time.Second)))
	console.Milestone("content-ready")
	console.Event(console.EventContentReady, "key", res.DataKey, "bin", res.BinDir, "skipped", res.Skipped)

	st.BinDir = res.BinDir
	if err := st.StartContainerd(ctx); err != nil {
		return err
	}
	console.Milestone("containerd-ready")
	var imp nodesteps.ImportResult
	if err := nodesteps.Run(reaper, layout.NodeBinary, &imp, nodesteps.StepImport, "--server="+strconv.FormatBool(role == config.RoleServer)); err != nil {
		return err
	}
	slog.Info("airgap images", "imported", imp.Imported, "skipped", imp.Skipped, "images", imp.Images, "unpacked", imp.Unpacked)
	console.Milestone("images-imported")
	console.Event(console.EventImagesImported, "imported", imp.Imported, "skipped", imp.Skipped, "images", imp.Images)

	if role == config.RoleServer {
		var etcd nodesteps.EtcdResult
		if err := nodesteps.Run(reaper, layout.NodeBinary, &etcd, nodesteps.StepEtcd, append(etcdArgs(cfg, nodeName, nodeIP), "--"+nodesteps.FlagAtBoot)...); err != nil {
			return err
		}
		// After a step of the clock, the same step re-issues what no
		// longer covers now, and a changed certificate restarts etcd.
		again := func() {
			var r nodesteps.EtcdResult
			if err := nodesteps.Run(reaper, layout.NodeBinary, &r, nodesteps.StepEtcd, etcdArgs(cfg, nodeName, nodeIP)...); err != nil {
				slog.Warn("certificates after the clock step", "err", err)
				return
			}
			slog.Info("certificates checked after the clock step")
		}
		reissue.Store(&again)
	}
	// A server's kubelet registers with its own apiserver (running its
	// static pods, the apiserver's among them, meanwhile), a joined
	// agent's through its load balancer; an agent with no server runs
	// standalone.
	if err := st.StartKubelet(role != config.RoleServer && !joining); err != nil {
		return err
	}
	console.Milestone("kubelet-started")
	if joining {
		// The load balancer the kubelet and kube-proxy reach the
		// apiservers through, and node-ready: a service of its own.
		err := sup.Add(&supervise.Service{
			Name: "rke2-agent", Path: layout.NodeBinary,
			Args:    []string{nodesteps.StepAgent, "--node-name=" + nodeName, "--node-ip=" + nodeIP},
			LogFile: layout.DefaultPaths.Agent("logs", "rke2-agent.log"),
		}, "containerd")
		if err != nil {
			return err
		}
	}
	// The images the kubelet has not unpacked yet are, in the background
	// (a service that ends: see rke2node's UnpackAll).
	err = sup.Add(&supervise.Service{
		Name: "rke2-unpack", Path: layout.NodeBinary, Args: []string{nodesteps.StepUnpack},
		LogFile: layout.DefaultPaths.Agent("logs", "rke2-unpack.log"), Restart: supervise.Never,
	}, "containerd")
	if err != nil {
		return err
	}
	if role == config.RoleServer {
		// The control plane's gating (etcd healthy, then the apiserver,
		// then the controller-manager and the scheduler) is a service of
		// its own: a crash there costs a restart, never PID 1.
		err := sup.Add(&supervise.Service{
			Name: "rke2-server", Path: layout.NodeBinary,
			Args:    []string{nodesteps.StepServer, "--node-name=" + nodeName, "--node-ip=" + nodeIP},
			LogFile: layout.DefaultPaths.Agent("logs", "rke2-server.log"),
		}, "kubelet")
		if err != nil {
			return err
		}
	}
	logResources("kubelet-started")
	return nil
}

// etcdArgs are the etcd step's flags. The step reads RKE2's config.yaml,
// which has no join.trust_on_first_use (rke2os's own key): it comes as a
// flag.
func etcdArgs(cfg *config.Config, nodeName, nodeIP string) []string {
	return []string{"--node-name=" + nodeName, "--node-ip=" + nodeIP,
		"--" + nodesteps.FlagTrustOnFirstUse + "=" + strconv.FormatBool(cfg.TrustsOnFirstUse())}
}
