package backoff

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestNext(t *testing.T) {
	const s = time.Second
	for _, tt := range []struct {
		name string
		b    Backoff
		ran  []time.Duration
		want []time.Duration
	}{
		{"defaults double up to 30s", Backoff{}, []time.Duration{0, 0, 0, 0, 0, 0, 0}, []time.Duration{s, 2 * s, 4 * s, 8 * s, 16 * s, 30 * s, 30 * s}},
		{"capped", Backoff{Initial: 10 * s, Max: 25 * s}, []time.Duration{0, 0, 0, 0}, []time.Duration{10 * s, 20 * s, 25 * s, 25 * s}},
		{"a long run starts again", Backoff{ResetAfter: time.Minute}, []time.Duration{0, 0, 0, time.Minute, 0}, []time.Duration{s, 2 * s, 4 * s, s, 2 * s}},
		{"no reset without ResetAfter", Backoff{}, []time.Duration{0, 0, time.Hour}, []time.Duration{s, 2 * s, 4 * s}},
		{"max below initial", Backoff{Initial: 10 * s, Max: 3 * s}, []time.Duration{0, 0}, []time.Duration{3 * s, 3 * s}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var got []time.Duration
			for _, r := range tt.ran {
				got = append(got, tt.b.Next(r))
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("waits %v, want %v", got, tt.want)
			}
		})
	}
}

func TestReset(t *testing.T) {
	var b Backoff
	b.Next(0)
	b.Next(0)
	b.Reset()
	if d := b.Next(0); d != time.Second {
		t.Errorf("after Reset: %v, want 1s", d)
	}
}

func TestSleep(t *testing.T) {
	if !Sleep(context.Background(), time.Millisecond) {
		t.Error("Sleep with a live context reported it ended")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	if Sleep(ctx, time.Hour) {
		t.Error("Sleep with an ended context reported it live")
	}
	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(10*time.Millisecond, cancel)
	if Sleep(ctx, time.Hour) {
		t.Error("Sleep cut short reported the context live")
	}
	if time.Since(start) > time.Minute {
		t.Error("Sleep did not end with its context")
	}
}

type permanent struct{ error }

func (permanent) Permanent() bool { return true }

func TestPoll(t *testing.T) {
	calls := 0
	err := Poll(context.Background(), time.Millisecond, "x", func(context.Context) error {
		if calls++; calls < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Errorf("Poll = %v after %d calls, want nil after 3", err, calls)
	}

	calls = 0
	refused := permanent{errors.New("refused")}
	err = Poll(context.Background(), time.Millisecond, "x", func(context.Context) error { calls++; return refused })
	if !errors.Is(err, refused) || calls != 1 {
		t.Errorf("Poll = %v after %d calls, want the permanent error at once", err, calls)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	err = Poll(ctx, time.Millisecond, "the thing", func(context.Context) error { return errors.New("still down") })
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "waiting for the thing") || !strings.Contains(err.Error(), "still down") {
		t.Errorf("Poll at the end of its context = %v, want what it waited for and the last error", err)
	}
}
