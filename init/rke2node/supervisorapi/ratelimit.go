package supervisorapi

import (
	"net"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Claims of new node names are limited per source: each makes a password
// secret in the cluster (and costs a password hash), and a token holder
// could otherwise make them as fast as the apiserver takes them. A node
// claims one name when it first joins; a source may claim claimBurst at
// once (a few nodes behind one NAT, or booted together), then one every
// claimEvery. Names already claimed are not counted.
const (
	claimBurst = 10
	claimEvery = 6 * time.Second
	// claimSources bounds the sources remembered. A source whose bucket is
	// full again is forgotten; with every remembered source still
	// counting, a new one waits (429) until one is full again, rather than
	// memory growing or a source's count being forgotten early.
	claimSources = 4096
)

// claimLimiter is a token bucket per source of claims.
type claimLimiter struct {
	mu      sync.Mutex
	sources map[string]*claimBucket
	burst   int
	every   time.Duration
	max     int
	now     func() time.Time
}

type claimBucket struct {
	lim  *rate.Limiter
	last time.Time // of its last claim
}

func newClaimLimiter() *claimLimiter {
	return &claimLimiter{sources: map[string]*claimBucket{}, burst: claimBurst, every: claimEvery, max: claimSources, now: time.Now}
}

// allow takes one claim for the request from remoteAddr, or answers how
// long to wait for one.
func (l *claimLimiter) allow(remoteAddr string) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	key := claimSource(remoteAddr)
	b := l.sources[key]
	if b == nil {
		if len(l.sources) >= l.max {
			l.forgetFull(now)
		}
		if len(l.sources) >= l.max {
			return false, l.untilOneFull(now)
		}
		b = &claimBucket{lim: rate.NewLimiter(rate.Every(l.every), l.burst)}
		l.sources[key] = b
	}
	r := b.lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	b.last = now
	return true, 0
}

// refill is how long a bucket takes from empty to full.
func (l *claimLimiter) refill() time.Duration { return time.Duration(l.burst) * l.every }

// forgetFull forgets the sources whose buckets are full again: they are
// as good as new.
func (l *claimLimiter) forgetFull(now time.Time) {
	for k, b := range l.sources {
		if now.Sub(b.last) >= l.refill() {
			delete(l.sources, k)
		}
	}
}

// untilOneFull is how long until some remembered source's bucket is full.
func (l *claimLimiter) untilOneFull(now time.Time) time.Duration {
	wait := l.refill()
	for _, b := range l.sources {
		wait = min(wait, b.last.Add(l.refill()).Sub(now))
	}
	return max(wait, time.Second)
}

// claimSource is the source a claim counts against: the caller's IPv4
// address, or its IPv6 /64 (a host has a whole /64 to take addresses
// from).
func claimSource(remoteAddr string) string {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return host
	}
	if ip4 := ip.To4(); ip4 != nil {
		return ip4.String()
	}
	return (&net.IPNet{IP: ip.Mask(net.CIDRMask(64, 128)), Mask: net.CIDRMask(64, 128)}).String()
}
