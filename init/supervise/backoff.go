package supervise

import "time"

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

// Backoff spaces the restarts of a service that keeps exiting, so that a
// crash loop does not hog the CPU or flood the log, while a service that
// crashes once after running well comes back quickly. Zero fields take the
// defaults; tests set milliseconds.
type Backoff struct {
	// Initial is the first delay (default 1 s); each restart doubles it.
	Initial time.Duration
	// Max caps the delay (default 30 s).
	Max time.Duration
	// ResetAfter is how long a run must last for the next delay to start
	// again from Initial (default 1 min).
	ResetAfter time.Duration
}

// Backoff defaults, as in RKE2's and systemd's habits: fast first retry,
// bounded wait, forgiven after a minute of good behaviour.
const (
	DefaultBackoffInitial    = time.Second
	DefaultBackoffMax        = 30 * time.Second
	DefaultBackoffResetAfter = time.Minute
)

func (b Backoff) withDefaults() Backoff {
	if b.Initial <= 0 {
		b.Initial = DefaultBackoffInitial
	}
	if b.Max <= 0 {
		b.Max = DefaultBackoffMax
	}
	if b.ResetAfter <= 0 {
		b.ResetAfter = DefaultBackoffResetAfter
	}
	return b
}

// backoff is the delay sequence of one service.
type backoff struct {
	Backoff
	next time.Duration
}

func newBackoff(b Backoff) *backoff { return &backoff{Backoff: b.withDefaults()} }

// delay returns how long to wait before the next start, given how long the
// run that just ended lasted.
func (b *backoff) delay(ran time.Duration) time.Duration {
	if b.next == 0 || ran >= b.ResetAfter {
		b.next = b.Initial
	}
	d := min(b.next, b.Max)
	b.next = min(2*d, b.Max)
	return d
}
