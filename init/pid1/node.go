package pid1

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"

	"github.com/rke2os/rke2os/init/boot"
	"github.com/rke2os/rke2os/init/config"
	"github.com/rke2os/rke2os/init/console"
	"github.com/rke2os/rke2os/init/content"
	"github.com/rke2os/rke2os/init/node"
	"github.com/rke2os/rke2os/init/supervise"
)

// startNode runs RKE2's process lifecycle on this machine: content
// bootstrap, containerd, the airgap import, the kubelet and, on servers,
// etcd's static pod. Each milestone is logged as it is reached.
func startNode(ctx context.Context, sup *supervise.Supervisor, cfg *config.Config, role, nodeIP string) error {
	rel, err := config.ReadRelease(config.ReleasePath)
	if err != nil {
		return fmt.Errorf("%w (this image was built without --images; rebuild it with the airgap images)", err)
	}
	paths := node.DefaultPaths
	res, err := content.Bootstrap(ctx, content.Options{
		DataDir: paths.DataDir, ImagesDir: paths.Images(), Version: rel.RKE2Version,
		Server: role == config.RoleServer, TempDir: os.TempDir(),
	})
	if err != nil {
		return err
	}
	slog.Info("runtime content", "key", res.DataKey, "bin", res.BinDir, "skipped", res.Skipped, "took", res.Duration)
	console.Milestone("content-ready")

	hostname, _ := os.Hostname()
	nodeName := cfg.RKE2.NodeName()
	if nodeName == "" {
		nodeName = hostname
	}
	st := &node.Stack{Paths: paths, Sup: sup, BinDir: res.BinDir, Config: cfg, Role: role,
		NodeName: nodeName, NodeIP: nodeIP, SandboxImage: rel.Image("rancher/mirrored-pause"), KnownArchives: map[string]string{}}
	for p, d := range rel.Archives {
		st.KnownArchives[filepath.Join(boot.MediumDir, p)] = d
	}
	if err := st.WriteRKE2Config(); err != nil {
		return err
	}
	if err := st.StartContainerd(ctx); err != nil {
		return err
	}
	console.Milestone("containerd-ready")
	imp, err := st.ImportImages(ctx)
	if err != nil {
		return err
	}
	slog.Info("airgap images", "imported", imp.Imported, "skipped", imp.Skipped, "images", imp.Images)
	console.Milestone("images-imported")
	// The import's buffers are garbage now; PID 1 lives for the machine's
	// life, so give the memory back rather than keep it as headroom.
	debug.FreeOSMemory()

	if role == config.RoleServer {
		o := node.EtcdOptions{Paths: paths, Image: rel.Image("rancher/hardened-etcd"), NodeName: nodeName, NodeIP: nodeIP}
		if err := node.EtcdCerts(o); err != nil {
			return err
		}
		if _, err := node.StaticPod(paths.PodManifests(), node.EtcdPod(o)); err != nil {
			return err
		}
	}
	// No API server yet: the kubelet runs standalone, static pods only.
	if err := st.StartKubelet(true); err != nil {
		return err
	}
	console.Milestone("kubelet-started")
	logResources("kubelet-started")
	return nil
}
