package deploy_test

import (
	"context"
	"log/slog"

	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/rke2os/rke2os/init/rke2node/deploy"
)

// How a server process wires the controller: a dynamic client, and a
// discovery-backed mapper that is cached (one discovery, not one per
// object) and resettable (so that kinds from CRDs applied by the
// manifests are found).
func Example() {
	ctx := context.Background()
	cfg, err := clientcmd.BuildConfigFromFlags("", "/var/lib/rancher/rke2/server/cred/admin.kubeconfig")
	if err != nil {
		slog.Error("kubeconfig", "err", err)
		return
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		slog.Error("dynamic client", "err", err)
		return
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		slog.Error("discovery client", "err", err)
		return
	}
	c := &deploy.Controller{
		Dir:    "/var/lib/rancher/rke2/server/manifests",
		Dyn:    dyn,
		Mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc)),
	}
	go func() { _ = c.Run(ctx) }()
}
