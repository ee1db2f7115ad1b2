package helmchart

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/kube"
	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/storage/driver"
)

// Helm runs Helm's actions in this process, one action.Configuration per
// release namespace, releases stored as Secrets as the helm CLI stores
// them (so `helm list -A` on a workstation shows them).
type Helm struct {
	// Kubeconfig is the credential the actions use (the server's
	// supervisor kubeconfig: cluster-admin, as helm-controller's jobs are).
	Kubeconfig string
	// newConfig makes a namespace's configuration; tests give one that
	// keeps releases in memory and talks to no cluster.
	newConfig func(namespace string) (*action.Configuration, error)

	mu      sync.Mutex
	configs map[string]*action.Configuration
}

// hashLabel is the release label that names the desired state it was
// made from.
const hashLabel = "rke2os-hash"

func (h *Helm) config(namespace string) (*action.Configuration, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if c, ok := h.configs[namespace]; ok {
		return c, nil
	}
	newConfig := h.newConfig
	if newConfig == nil {
		newConfig = func(ns string) (*action.Configuration, error) {
			c := new(action.Configuration)
			debug := func(format string, v ...any) { slog.Debug("helm: " + fmt.Sprintf(format, v...)) }
			if err := c.Init(kube.GetConfig(h.Kubeconfig, "", ns), ns, "secret", debug); err != nil {
				return nil, fmt.Errorf("helm in namespace %s: %w", ns, err)
			}
			return c, nil
		}
	}
	c, err := newConfig(namespace)
	if err != nil {
		return nil, err
	}
	if h.configs == nil {
		h.configs = map[string]*action.Configuration{}
	}
	h.configs[namespace] = c
	return c, nil
}

// last is the release's latest revision, nil if it has none.
func (h *Helm) last(namespace, name string) (*release.Release, error) {
	c, err := h.config(namespace)
	if err != nil {
		return nil, err
	}
	r, err := c.Releases.Last(name)
	if errors.Is(err, driver.ErrReleaseNotFound) {
		return nil, nil
	}
	return r, err
}

// apply installs the release or upgrades it to chrt with vals, labelled
// with hash. A revision left pending by a process that died mid-way is
// marked failed first, so that the upgrade is not refused as "another
// operation in progress".
func (h *Helm) apply(ctx context.Context, namespace, name string, chrt *chart.Chart, vals map[string]any, o applyOptions) (string, error) {
	c, err := h.config(namespace)
	if err != nil {
		return "", err
	}
	last, err := h.last(namespace, name)
	if err != nil {
		return "", fmt.Errorf("read release %s/%s: %w", namespace, name, err)
	}
	labels := map[string]string{hashLabel: o.hash}
	if last == nil || (last.Info.Status == release.StatusUninstalled) {
		in := action.NewInstall(c)
		in.ReleaseName, in.Namespace, in.CreateNamespace, in.Timeout, in.Labels = name, namespace, o.createNamespace, o.timeout, labels
		in.Replace = last != nil
		if _, err := in.RunWithContext(ctx, chrt, vals); err != nil {
			return "", err
		}
		return "installed", nil
	}
	if last.Info.Status.IsPending() {
		slog.Warn("helm: a revision was left pending; marking it failed", "release", namespace+"/"+name, "revision", last.Version, "status", last.Info.Status)
		last.SetStatus(release.StatusFailed, "left pending by a process that stopped")
		if err := c.Releases.Update(last); err != nil {
			return "", fmt.Errorf("mark pending revision failed: %w", err)
		}
	}
	up := action.NewUpgrade(c)
	up.Namespace, up.Timeout, up.Labels, up.MaxHistory = namespace, o.timeout, labels, 10
	up.ResetValues = true
	if _, err := up.RunWithContext(ctx, name, chrt, vals); err != nil {
		return "", err
	}
	return "upgraded", nil
}

// applyOptions are the HelmChart's settings of one install or upgrade.
type applyOptions struct {
	hash            string
	createNamespace bool
	timeout         time.Duration
}

// uninstall removes the release; one that does not exist is no error.
func (h *Helm) uninstall(namespace, name string) error {
	c, err := h.config(namespace)
	if err != nil {
		return err
	}
	un := action.NewUninstall(c)
	un.Timeout = 5 * time.Minute
	if _, err := un.Run(name); err != nil && !errors.Is(err, driver.ErrReleaseNotFound) {
		return fmt.Errorf("uninstall %s/%s: %w", namespace, name, err)
	}
	return nil
}
