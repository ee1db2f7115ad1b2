package timesync

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"
)

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestDiscipline steps a large offset (calling OnStep), slews a small one
// that Sync would have stepped, keeps going while the server is silent and
// stops with its context.
func TestDiscipline(t *testing.T) {
	srv := serve(t, 5*time.Second)
	clock := &fakeClock{}
	var mu sync.Mutex
	var steps []time.Duration
	var log bytes.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		Discipline(ctx, []string{srv.Addr()}, WithClock(clock), logTo(&log), WithPollInterval(20*time.Millisecond, 80*time.Millisecond), WithQueryTimeout(200*time.Millisecond),
			OnStep(func(old, new time.Time) {
				mu.Lock()
				defer mu.Unlock()
				steps = append(steps, new.Sub(old))
			}))
	}()
	stopped := false
	stop := func() {
		if !stopped {
			cancel()
			<-done
			stopped = true
		}
	}
	defer stop()

	// The first round is at once, and steps the 5 s.
	waitFor(t, 5*time.Second, "no step of the 5s offset", func() bool { s, _ := clock.counts(); return s == 1 })
	waitFor(t, 5*time.Second, "no slew after the step", func() bool { _, l := clock.counts(); return l >= 2 })
	// 200 ms is slewed while the node runs (Sync steps it at boot).
	srv.SetOffset(5*time.Second + 200*time.Millisecond)
	waitFor(t, 5*time.Second, "no slew of the 200ms", func() bool {
		clock.mu.Lock()
		defer clock.mu.Unlock()
		return len(clock.slews) > 0 && near(clock.slews[len(clock.slews)-1], 200*time.Millisecond, 60*time.Millisecond)
	})
	// A silent server is retried; a server back after it is used again.
	srv.SetSilent(true)
	q := srv.Queries()
	waitFor(t, 10*time.Second, "the silent server was not asked again", func() bool { return srv.Queries() >= q+2 })
	srv.SetSilent(false)
	srv.SetOffset(8 * time.Second)
	waitFor(t, 10*time.Second, "no second step", func() bool { s, _ := clock.counts(); return s == 2 })

	start := time.Now()
	stop()
	if d := time.Since(start); d > time.Second {
		t.Errorf("Discipline took %v to stop after its context ended", d)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(steps) != 2 || !near(steps[0], 5*time.Second, 100*time.Millisecond) || !near(steps[1], 2800*time.Millisecond, 100*time.Millisecond) {
		t.Errorf("OnStep got %v, want steps of about 5s and 2.8s", steps)
	}
	if len(clock.hardware) != 2 {
		t.Errorf("hardware clock written %d times, want after each of the 2 steps", len(clock.hardware))
	}
	for _, want := range []string{`msg="clock stepped from NTP"`, `msg="the clock is not kept on time: no NTP server answered: ` + srv.Addr() + ` gave no answer in`, `msg="the clock is kept on time again"`} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("log does not say %q:\n%s", want, log.String())
		}
	}
}

// TestDisciplinePoll doubles the interval while the clock holds, up to the
// maximum.
func TestDisciplinePoll(t *testing.T) {
	srv := serve(t, 0)
	clock := &fakeClock{}
	ctx, cancel := context.WithTimeout(context.Background(), 1200*time.Millisecond)
	defer cancel()
	Discipline(ctx, []string{srv.Addr()}, WithClock(clock), WithPollInterval(50*time.Millisecond, 200*time.Millisecond))
	clock.mu.Lock()
	defer clock.mu.Unlock()
	// Rounds at 0, 50, 150, 350, 550, 750, 950 ms (intervals 50, 100,
	// 200, 200, ...): the poll handed to the kernel grows with them.
	if n := len(clock.lastPolls); n < 5 || n > 8 {
		t.Fatalf("%d rounds in 1.2s, want about 7: polls %v", n, clock.lastPolls)
	}
	want := []time.Duration{50 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond, 200 * time.Millisecond}
	for i, w := range want {
		if clock.lastPolls[i] != w {
			t.Errorf("poll of round %d is %v, want %v (all: %v)", i, clock.lastPolls[i], w, clock.lastPolls)
		}
	}

	// Without servers it returns at once.
	start := time.Now()
	Discipline(context.Background(), nil, WithClock(clock))
	if time.Since(start) > 100*time.Millisecond {
		t.Error("Discipline without servers did not return at once")
	}
}
