// Command rke2-node runs one of the node's heavy one-shot steps (runtime
// extraction, airgap import, etcd's static pod) for rke2-init, PID 1, and
// exits. It is not meant to be run by hand.
package main

import (
	"log/slog"
	"os"

	"github.com/rke2os/rke2os/init/rke2node"
	"github.com/rke2os/rke2os/init/shared/console"
)

func main() {
	slog.SetDefault(console.Logger())
	os.Exit(rke2node.Main(rke2node.DefaultEnv, os.Args[1:], os.Stdout))
}
