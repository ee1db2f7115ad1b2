// Command rke2-init is PID 1 of an RKE2 node: it boots the machine into an
// RKE2 server or agent and supervises it until shutdown.
package main

import (
	"fmt"
	"os"

	"github.com/rke2os/rke2os/init/pid1"
)

func main() {
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "rke2-init runs as PID 1 of an RKE2 node image; boot the image built by rke2-build")
		os.Exit(2)
	}
	pid1.Run()
}
