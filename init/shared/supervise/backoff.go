package supervise

import (
	"time"

	"github.com/rke2os/rke2os/internal/backoff"
)

// Restart is what happens when a service's process exits on its own.
type Restart int

const (
	// Always restarts it after a backoff delay (the kubelet).
	Always Restart = iota
	// Never leaves it exited (a one-shot job run as a service).
	Never
)

func (r Restart) String() string {
	if r == Never {
		return "never"
	}
	return "always"
}

// Backoff spaces the restarts of a service that keeps exiting (see
// backoff.Backoff); a zero ResetAfter is DefaultBackoffResetAfter here, so
// a service that crashes once after running a minute comes back at once.
// Tests set milliseconds.
type Backoff = backoff.Backoff

// DefaultBackoffResetAfter is how long a run must last for the delays to
// start again from the first, as in RKE2's and systemd's habits.
const DefaultBackoffResetAfter = time.Minute

// restartDelays is the delay sequence of one service.
func restartDelays(b Backoff) *backoff.Backoff {
	if b.ResetAfter <= 0 {
		b.ResetAfter = DefaultBackoffResetAfter
	}
	return &b
}
