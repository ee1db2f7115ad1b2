// Package goroutine starts the init's background work so that a panic in
// it cannot end PID 1. A Go program dies of any goroutine's unrecovered
// panic, and PID 1 dying is a kernel panic ("Attempted to kill init!"):
// so every goroutine the init starts goes through Go or Keep (and every
// callback it hands to context.AfterFunc through AfterFunc), which recover
// the panic, log it with the stack where it happened, and keep the node
// up. Keep runs the work again, later each time, so that a panic that
// repeats does not spin. A test in cmd/rke2-init holds every package of the
// init to this.
//
// The runtime's fatal errors (a concurrent map write, running out of
// memory, every goroutine asleep) are not panics; nothing recovers them.
package goroutine

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/rke2os/rke2os/internal/backoff"
)

// Go runs fn in a goroutine of its own. A panic in fn is recovered and
// logged under name, and the goroutine ends: for work the node can lose
// (a warning, one connection) or whose end its caller notices.
func Go(name string, fn func()) {
	go Call(name, fn)
}

// Keep runs fn in a goroutine of its own until fn returns or ctx ends, and
// again after each panic in fn, which is logged under name: for work the
// node needs for as long as it runs (the reaper, a DHCP lease, the clock).
// The first restart comes after a second, each next one after twice the
// wait before, up to a minute; a run of a minute without a panic starts
// the waits again from a second.
func Keep(ctx context.Context, name string, fn func(context.Context)) {
	Go(name, func() { Restart(ctx, name, fn) })
}

// Restart is Keep in the calling goroutine: it returns once fn returns or
// ctx ends, for a caller that has more to do then (mark the work done).
func Restart(ctx context.Context, name string, fn func(context.Context)) {
	b := restarts()
	for ctx.Err() == nil {
		start := time.Now()
		if !Call(name, func() { fn(ctx) }) {
			return
		}
		d := b.Next(time.Since(start))
		logSafely(slog.LevelWarn, "restarting after a panic", "in", name, "after", d)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// AfterFunc is context.AfterFunc with fn's panic recovered and logged
// under name: context.AfterFunc runs fn in a goroutine of its own.
func AfterFunc(ctx context.Context, name string, fn func()) (stop func() bool) {
	return context.AfterFunc(ctx, func() { Call(name, fn) })
}

// Call runs fn in the calling goroutine and reports whether it panicked;
// the panic is recovered and logged under name. It is for a callback run
// inside a loop that must go on when the callback fails (the clock's
// discipline calling the certificates' re-issue).
func Call(name string, fn func()) (panicked bool) {
	defer func() {
		if v := recover(); v != nil {
			panicked = true
			LogPanic(name, v)
		}
	}()
	fn()
	return false
}

// LogPanic logs a recovered panic: its value, under name, and the stack of
// the calling goroutine, which, called from the deferred function that
// recovered it, still holds the frames that panicked. It is for code that
// must recover a panic itself, to clean up after it.
func LogPanic(name string, v any) {
	logSafely(slog.LevelError, "panic", "in", name, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
}

// logSafely logs through slog's default logger; a handler that panics
// too (a broken console) must not end PID 1 from inside the recovery.
func logSafely(level slog.Level, msg string, args ...any) {
	defer func() { _ = recover() }()
	slog.Log(context.Background(), level, msg, args...)
}

// The waits between restarts; variables for the tests.
var (
	firstWait  = time.Second
	maxWait    = time.Minute
	resetAfter = time.Minute
)

// restarts is the sequence of waits before the restarts of one Restart.
func restarts() *backoff.Backoff {
	return &backoff.Backoff{Initial: firstWait, Max: maxWait, ResetAfter: resetAfter}
}
