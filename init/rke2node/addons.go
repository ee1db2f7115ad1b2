package rke2node

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/rke2os/rke2os/init/rke2node/crds"
	"github.com/rke2os/rke2os/init/rke2node/deploy"
	"github.com/rke2os/rke2os/init/rke2node/helmchart"
	"github.com/rke2os/rke2os/init/shared/config"
	"github.com/rke2os/rke2os/internal/backoff"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
)

// addons is what RKE2's server runs once the apiserver is ready: its
// custom resources, then the deploy controller over server/manifests and
// the HelmChart controller, until ctx ends. A failure to start is
// retried: the server process stays up for the node's other work.
func (e Env) addons(ctx context.Context, rc config.RKE2Config) {
	for {
		err := e.runAddons(ctx, rc)
		if ctx.Err() != nil {
			return
		}
		slog.Warn("manifests and charts", "err", err)
		if !backoff.Sleep(ctx, 10*time.Second) {
			return
		}
	}
}

func (e Env) runAddons(ctx context.Context, rc config.RKE2Config) error {
	c, err := e.supervisorClients("", false)
	if err != nil {
		return err
	}
	dyn, kube := c.dyn, c.kube
	disc, err := discovery.NewDiscoveryClientForConfig(c.rest)
	if err != nil {
		return err
	}
	if err := crds.Ensure(ctx, dyn); err != nil {
		return err
	}
	manifests := e.Paths.Server("manifests")
	if err := disableCharts(ctx, dyn, manifests, Disabled(rc)); err != nil {
		return err
	}
	hc := &helmchart.Controller{Dyn: dyn, Kube: kube, Globals: chartGlobals(rc, e.Paths.DataDir),
		Helm: &helmchart.Helm{Kubeconfig: e.Paths.Server("cred", "supervisor.kubeconfig")}}
	go hc.Run(ctx)
	d := &deploy.Controller{Dir: manifests, Dyn: dyn,
		Mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disc))}
	return d.Run(ctx)
}

// Disabled are the charts RKE2 does not install here: the config's
// disable list, and the CNI chart when cni is none.
func Disabled(rc config.RKE2Config) []string {
	out := rc.Strings("disable")
	if slices.Contains(rc.CNI(), "none") {
		out = append(out, "rke2-flannel")
	}
	return out
}

// disableCharts removes a disabled chart's manifest from server/manifests
// and its HelmChart (whose release the HelmChart controller then
// uninstalls), as RKE2's disable does.
func disableCharts(ctx context.Context, dyn dynamic.Interface, manifests string, names []string) error {
	for _, name := range names {
		for _, ext := range []string{".yaml", ".yml", ".json"} {
			p := filepath.Join(manifests, name+ext)
			if err := os.Remove(p); err == nil {
				slog.Info("disabled chart's manifest removed", "file", p)
			} else if !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("disable %s: %w", name, err)
			}
		}
		err := dyn.Resource(crds.HelmChart).Namespace(metav1.NamespaceSystem).Delete(ctx, name, metav1.DeleteOptions{})
		if err == nil {
			slog.Info("disabled chart removed", "chart", name)
		} else if !apierrors.IsNotFound(err) {
			return fmt.Errorf("disable %s: %w", name, err)
		}
	}
	return nil
}

// chartGlobals are the values RKE2 gives every chart it installs.
func chartGlobals(rc config.RKE2Config, dataDir string) map[string]any {
	clusterCIDR := cmp.Or(rc.String("cluster-cidr"), "10.42.0.0/16")
	registry := rc.String("system-default-registry")
	// A dual-stack cluster-cidr is "v4,v6": the charts get each family.
	var v4, v6 string
	for _, c := range strings.Split(clusterCIDR, ",") {
		if c = strings.TrimSpace(c); strings.Contains(c, ":") {
			v6 = cmp.Or(v6, c)
		} else {
			v4 = cmp.Or(v4, c)
		}
	}
	return map[string]any{
		"global.clusterCIDR":                  clusterCIDR,
		"global.clusterCIDRv4":                v4,
		"global.clusterCIDRv6":                v6,
		"global.clusterDNS":                   cmp.Or(rc.String("cluster-dns"), "10.43.0.10"),
		"global.clusterDomain":                cmp.Or(rc.String("cluster-domain"), "cluster.local"),
		"global.rke2DataDir":                  dataDir,
		"global.serviceCIDR":                  cmp.Or(rc.String("service-cidr"), "10.43.0.0/16"),
		"global.systemDefaultRegistry":        registry,
		"global.cattle.systemDefaultRegistry": registry,
	}
}
