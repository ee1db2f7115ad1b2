package rke2node

import (
	"context"
	"log/slog"
	"time"

	"github.com/rke2os/rke2os/init/rke2node/upgradectl"
	"github.com/rke2os/rke2os/init/shared/goroutine"
	"github.com/rke2os/rke2os/internal/backoff"
)

// upgrades runs the cluster's upgrade controller (upgradectl) while this
// server holds its lease, as long as ctx lasts: a failure to start is
// retried, and a panic in it is logged and the controller started again
// (goroutine.Restart), leaving the server's other work running. It starts
// before this server's own Node is Ready: after the reboot into a new
// slot, the controller that finishes this node's upgrade is the one that
// runs here.
func (e Env) upgrades(ctx context.Context) {
	goroutine.Restart(ctx, "upgrade controller", func(ctx context.Context) {
		for {
			err := e.runUpgrades(ctx)
			if ctx.Err() != nil {
				return
			}
			slog.Warn("upgrade controller", "err", err)
			if !backoff.Sleep(ctx, 10*time.Second) {
				return
			}
		}
	})
}

func (e Env) runUpgrades(ctx context.Context) error {
	// Each pass of the controller bounds its own requests.
	c, err := e.supervisorClients("rke2os-upgrade", true)
	if err != nil {
		return err
	}
	return (&upgradectl.Controller{Kube: c.kube, Dyn: c.dyn}).Run(ctx)
}
