package join

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// rateLimited answers 429 with Retry-After to the first n requests for
// path, then passes them on; it counts the 429s.
func rateLimited(path string, n int64, retryAfter string, count *atomic.Int64) func(http.Handler) http.Handler {
	return func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == path && count.Load() < n {
				count.Add(1)
				w.Header().Set("Retry-After", retryAfter)
				http.Error(w, "too many new node names claimed from 127.0.0.1", http.StatusTooManyRequests)
				return
			}
			h.ServeHTTP(w, r)
		})
	}
}

// TestRateLimitedIsAWait: a 429 (the supervisor limits new names per
// address) is no refusal: the join waits as Retry-After says and asks
// again, and once the tries are spent the error is one the boot's wait
// retries, never a permanent one that stops the boot.
func TestRateLimitedIsAWait(t *testing.T) {
	var count atomic.Int64
	c := newClusterWrapped(t, true, rateLimited("/v1-rke2/client-kubelet.crt", rateLimitedTries-1, "1", &count))
	start := time.Now()
	if _, err := Join(context.Background(), c.agent(t, "agent1", "pw", c.token)); err != nil {
		t.Fatalf("a join limited %d times: %v", rateLimitedTries-1, err)
	}
	if took := time.Since(start); took < time.Duration(rateLimitedTries-1)*time.Second {
		t.Errorf("took %s: Retry-After: 1 was not waited out", took)
	}

	count.Store(0)
	c = newClusterWrapped(t, true, rateLimited("/v1-rke2/client-kubelet.crt", 1000, "1", &count))
	_, err := Join(context.Background(), c.agent(t, "agent2", "pw", c.token))
	var pe *PermanentError
	if err == nil || errors.As(err, &pe) || !strings.Contains(err.Error(), "429") {
		t.Errorf("err = %v, want a temporary error about the 429", err)
	}
	if got := count.Load(); got != rateLimitedTries {
		t.Errorf("asked %d times, want %d", got, rateLimitedTries)
	}
}

// TestRetryAfter: the server's Retry-After is honoured within reason.
func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"3":                             3 * time.Second,
		"0":                             minRetryAfter,
		"-5":                            minRetryAfter,
		"86400":                         maxRetryAfter,
		"99999999999999999999":          defaultRetryAfter,
		"":                              defaultRetryAfter,
		"soon":                          defaultRetryAfter,
		"Thu, 01 Jan 2026 12:00:20 GMT": 20 * time.Second,
		"Fri, 02 Jan 2026 12:00:00 GMT": maxRetryAfter,
		"Wed, 31 Dec 2025 12:00:00 GMT": minRetryAfter,
	} {
		if got := retryAfter(v, now); got != want {
			t.Errorf("retryAfter(%q) = %s, want %s", v, got, want)
		}
	}
}
