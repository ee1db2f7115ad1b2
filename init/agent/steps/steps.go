// Package steps is rke2-node's work: each step is what the rke2 binary
// does at that point of its start, run once in its own process and
// answered as one JSON object on stdout (see package agent).
package steps

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/rke2os/rke2os/init/agent"
	"github.com/rke2os/rke2os/init/airgap"
	"github.com/rke2os/rke2os/init/boot"
	"github.com/rke2os/rke2os/init/config"
	"github.com/rke2os/rke2os/init/content"
	"github.com/rke2os/rke2os/init/node"
	"github.com/rke2os/rke2os/init/pods"
)

// Env is where the steps find the node: its paths and the image's release
// file. Tests point it at a temporary tree.
type Env struct {
	Paths     node.Paths
	Release   string // config.ReleasePath
	MediumDir string // boot.MediumDir
}

// DefaultEnv is the node's own.
var DefaultEnv = Env{Paths: node.DefaultPaths, Release: config.ReleasePath, MediumDir: boot.MediumDir}

// Main runs the step named by args[0] and writes its answer to stdout;
// the exit status is 0 on success, 1 on a failed step, 2 on bad usage.
func Main(env Env, args []string, stdout io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintf(os.Stderr, "usage: rke2-node %s|%s|%s [flags]\n", agent.StepContent, agent.StepImport, agent.StepEtcd)
		return 2
	}
	fs := flag.NewFlagSet("rke2-node "+args[0], flag.ContinueOnError)
	var run func(context.Context) (any, error)
	switch args[0] {
	case agent.StepContent:
		server := fs.Bool("server", false, "copy the runtime's charts into server/manifests")
		run = func(ctx context.Context) (any, error) { return env.Content(ctx, *server) }
	case agent.StepImport:
		run = func(ctx context.Context) (any, error) { return env.Import(ctx) }
	case agent.StepEtcd:
		name := fs.String("node-name", "", "the node's name")
		ip := fs.String("node-ip", "", "the node's IP address")
		run = func(context.Context) (any, error) { return env.Etcd(*name, *ip) }
	default:
		fmt.Fprintf(os.Stderr, "rke2-node: unknown step %q\n", args[0])
		return 2
	}
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	result, err := run(context.Background())
	if err != nil {
		json.NewEncoder(stdout).Encode(agent.Failure{Error: err.Error()})
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
func (e Env) Content(ctx context.Context, server bool) (*agent.ContentResult, error) {
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
	return &agent.ContentResult{DataKey: res.DataKey, BinDir: res.BinDir, Skipped: res.Skipped, Seconds: res.Duration.Seconds()}, nil
}

// Import imports every airgap archive into containerd's k8s.io namespace,
// skipping those imported before; the boot medium's archives are known by
// the digests in the release file.
func (e Env) Import(ctx context.Context) (*agent.ImportResult, error) {
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
	return &agent.ImportResult{Imported: res.Imported, Skipped: res.Skipped, Images: res.Images}, nil
}

// Etcd makes etcd's certificates and writes its static pod.
func (e Env) Etcd(nodeName, nodeIP string) (*agent.EtcdResult, error) {
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
	if err := pods.EtcdCerts(o); err != nil {
		return nil, err
	}
	changed, err := pods.StaticPod(e.Paths.PodManifests(), pods.EtcdPod(o))
	if err != nil {
		return nil, err
	}
	slog.Info("etcd static pod", "manifest", e.Paths.EtcdManifest(), "changed", changed)
	return &agent.EtcdResult{Manifest: e.Paths.EtcdManifest(), Changed: changed}, nil
}
