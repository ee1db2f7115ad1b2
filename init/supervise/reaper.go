// Package supervise runs the init's child processes and reaps every orphan.
package supervise

import (
	"os"
	"os/signal"

	"golang.org/x/sys/unix"
)

// Reap collects every exited child as PID 1 must, so that no zombie is
// left behind by processes whose parents died.
func Reap() {
	ch := make(chan os.Signal, 16)
	signal.Notify(ch, unix.SIGCHLD)
	go func() {
		for range ch {
			for {
				var ws unix.WaitStatus
				pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
				if pid <= 0 || err != nil {
					break
				}
			}
		}
	}()
}
