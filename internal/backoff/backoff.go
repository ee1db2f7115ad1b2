// Package backoff spaces the retries of work that keeps failing, and
// waits in a way a context can cut short. It is the one home of both for
// PID 1 and rke2-node, so it imports nothing but the standard library.
package backoff

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Backoff is a sequence of waits that doubles from Initial up to Max: a
// crash loop or an unanswered request neither hogs the CPU nor floods the
// log, while work that fails once after running well comes back quickly.
// The zero value of a field is taken as: Initial 1 s, Max 30 s, ResetAfter
// never (only Reset starts the sequence again).
type Backoff struct {
	Initial time.Duration
	Max     time.Duration
	// ResetAfter is how long a run must have lasted for the next wait to
	// start again from Initial.
	ResetAfter time.Duration

	next time.Duration
}

// Next returns the wait before the next attempt, given how long the
// attempt that just failed ran (0 where that does not matter).
func (b *Backoff) Next(ran time.Duration) time.Duration {
	initial, max := b.Initial, b.Max
	if initial <= 0 {
		initial = time.Second
	}
	if max <= 0 {
		max = 30 * time.Second
	}
	if b.next == 0 || (b.ResetAfter > 0 && ran >= b.ResetAfter) {
		b.next = initial
	}
	d := min(b.next, max)
	b.next = min(2*d, max)
	return d
}

// Reset starts the sequence again from Initial, after a success.
func (b *Backoff) Reset() { b.next = 0 }

// Sleep waits d, or less if ctx ends; it reports whether ctx is still
// live.
func Sleep(ctx context.Context, d time.Duration) bool {
	if ctx.Err() != nil {
		return false
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// Until is Sleep until t.
func Until(ctx context.Context, t time.Time) bool { return Sleep(ctx, time.Until(t)) }

// Poll calls check every interval until it returns nil or ctx ends,
// saying about every minute what it waits for and why (check's last
// error). An error with a Permanent method that answers true ends the
// wait at once, returned as it is.
func Poll(ctx context.Context, every time.Duration, what string, check func(context.Context) error) error {
	start, said := time.Now(), time.Now()
	for {
		err := check(ctx)
		if err == nil {
			return nil
		}
		var p interface{ Permanent() bool }
		if errors.As(err, &p) && p.Permanent() {
			return err
		}
		if time.Since(said) >= time.Minute {
			said = time.Now()
			slog.Info("waiting for "+what, "for", time.Since(start).Round(time.Second), "last", err)
		}
		if !Sleep(ctx, every) {
			return fmt.Errorf("waiting for %s: %w (last: %v)", what, ctx.Err(), err)
		}
	}
}
