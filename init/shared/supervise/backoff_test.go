package supervise

import (
	"slices"
	"testing"
	"time"
)

func TestBackoffDelays(t *testing.T) {
	const ms = time.Millisecond
	tests := []struct {
		name string
		b    Backoff
		ran  []time.Duration // how long each run lasted
		want []time.Duration // the delay after each
	}{
		{
			name: "defaults double up to 30s",
			ran:  []time.Duration{0, 0, 0, 0, 0, 0, 0},
			want: []time.Duration{1 * time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 30 * time.Second, 30 * time.Second},
		},
		{
			name: "reset after a good run",
			b:    Backoff{Initial: 10 * ms, Max: 80 * ms, ResetAfter: 100 * ms},
			ran:  []time.Duration{0, 0, 0, 0, 0, 100 * ms, 99 * ms},
			want: []time.Duration{10 * ms, 20 * ms, 40 * ms, 80 * ms, 80 * ms, 10 * ms, 20 * ms},
		},
		{
			name: "initial above max is capped",
			b:    Backoff{Initial: 50 * ms, Max: 20 * ms},
			ran:  []time.Duration{0, 0},
			want: []time.Duration{20 * ms, 20 * ms},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := restartDelays(tt.b)
			var got []time.Duration
			for _, ran := range tt.ran {
				got = append(got, b.Next(ran))
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("delays = %v, want %v", got, tt.want)
			}
		})
	}
}
