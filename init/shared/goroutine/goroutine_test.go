package goroutine

import (
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rke2os/rke2os/internal/syncbuf"
)

// fastWaits makes the restarts' waits milliseconds for the test.
func fastWaits(t *testing.T) {
	t.Helper()
	f, m, r := firstWait, maxWait, resetAfter
	firstWait, maxWait, resetAfter = 10*time.Millisecond, 40*time.Millisecond, time.Hour
	t.Cleanup(func() { firstWait, maxWait, resetAfter = f, m, r })
}

// panicHere panics in a frame of its own, for the stack to name.
func panicHere() { panic("boom") }

// A panic in Go's goroutine is logged with the stack where it happened,
// and the test process, PID 1's stand-in, is still here to see it.
func TestGoRecovers(t *testing.T) {
	buf := syncbuf.CaptureLog(t)
	done := make(chan struct{})
	Go("the test", func() {
		defer close(done)
		panicHere()
	})
	<-done
	waitFor(t, buf, "msg=panic")
	out := buf.String()
	for _, want := range []string{`level=ERROR msg=panic in="the test" panic=boom stack=`, "goroutine.panicHere"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

func TestCall(t *testing.T) {
	buf := syncbuf.CaptureLog(t)
	ran := false
	if Call("fine", func() { ran = true }) || !ran {
		t.Fatalf("a call that returns: panicked or did not run")
	}
	if !Call("broken", panicHere) {
		t.Fatal("a call that panics: not reported")
	}
	if out := buf.String(); !strings.Contains(out, "in=broken panic=boom") || strings.Contains(out, "in=fine") {
		t.Fatalf("log:\n%s", out)
	}
}

// Restart runs the work again after each panic, waiting longer each time,
// and stops once it returns.
func TestRestart(t *testing.T) {
	fastWaits(t)
	buf := syncbuf.CaptureLog(t)
	var runs atomic.Int32
	var at []time.Time
	Restart(context.Background(), "flaky", func(ctx context.Context) {
		at = append(at, time.Now())
		if runs.Add(1) < 4 {
			panicHere()
		}
	})
	if n := runs.Load(); n != 4 {
		t.Fatalf("ran %d times, want 4 (three panics, then a return)", n)
	}
	out := buf.String()
	if n := strings.Count(out, "msg=panic in=flaky"); n != 3 {
		t.Errorf("%d panics logged, want 3:\n%s", n, out)
	}
	for _, w := range []string{"after=10ms", "after=20ms", "after=40ms"} {
		if !strings.Contains(out, `msg="restarting after a panic" in=flaky `+w) {
			t.Errorf("no restart %s logged:\n%s", w, out)
		}
	}
	// The waits double: the third is longer than the first.
	if first, third := at[1].Sub(at[0]), at[3].Sub(at[2]); third < 30*time.Millisecond || third <= first {
		t.Errorf("waits %v then %v: want them doubling", first, third)
	}
}

// A panic that repeats is not retried after ctx ends, also in the middle
// of a wait.
func TestRestartStopsWithContext(t *testing.T) {
	syncbuf.CaptureLog(t)
	f := firstWait
	firstWait = time.Hour
	t.Cleanup(func() { firstWait = f })
	ctx, cancel := context.WithCancel(context.Background())
	var runs atomic.Int32
	done := make(chan struct{})
	go func() {
		defer close(done)
		Restart(ctx, "always", func(context.Context) { runs.Add(1); panicHere() })
	}()
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Restart still waiting after ctx ended")
	}
	if n := runs.Load(); n != 1 {
		t.Fatalf("ran %d times, want 1", n)
	}
	Restart(ctx, "never", func(context.Context) { t.Error("ran with ctx ended") })
}

// Keep runs the work in the background until it returns.
func TestKeep(t *testing.T) {
	fastWaits(t)
	buf := syncbuf.CaptureLog(t)
	done := make(chan struct{})
	var runs atomic.Int32
	Keep(context.Background(), "kept", func(context.Context) {
		if runs.Add(1) == 1 {
			panicHere()
		}
		close(done)
	})
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatalf("not restarted:\n%s", buf.String())
	}
}

func TestAfterFunc(t *testing.T) {
	buf := syncbuf.CaptureLog(t)
	ctx, cancel := context.WithCancel(context.Background())
	AfterFunc(ctx, "after", panicHere)
	cancel()
	waitFor(t, buf, "in=after panic=boom")
}

func TestBackoff(t *testing.T) {
	b := restarts()
	for i, tc := range []struct {
		ran, want time.Duration
	}{
		{0, time.Second}, {0, 2 * time.Second}, {time.Second, 4 * time.Second},
		{0, 8 * time.Second}, {0, 16 * time.Second}, {0, 32 * time.Second},
		{0, time.Minute}, {0, time.Minute}, // capped
		{time.Minute, time.Second}, // a good run starts again
		{0, 2 * time.Second},
	} {
		if got := b.Next(tc.ran); got != tc.want {
			t.Errorf("restart %d after a run of %v: wait %v, want %v", i, tc.ran, got, tc.want)
		}
	}
}

// A log handler that panics too does not turn the recovery into a crash.
func TestPanickingHandler(t *testing.T) {
	old := slog.Default()
	slog.SetDefault(slog.New(panicHandler{}))
	defer slog.SetDefault(old)
	if !Call("x", panicHere) {
		t.Fatal("panic not reported")
	}
}

type panicHandler struct{ slog.Handler }

func (panicHandler) Enabled(context.Context, slog.Level) bool  { return true }
func (panicHandler) Handle(context.Context, slog.Record) error { panic("broken console") }

func waitFor(t *testing.T, buf *syncbuf.Buffer, s string) {
	t.Helper()
	for end := time.Now().Add(5 * time.Second); !strings.Contains(buf.String(), s); {
		if time.Now().After(end) {
			t.Fatalf("no %q in the log:\n%s", s, buf.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}
