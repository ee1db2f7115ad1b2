package timesync

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/rke2os/rke2os/internal/backoff"
)

// Discipline keeps the clock on the servers' time until ctx ends; run it on
// its own goroutine after Sync. It asks the servers at once (a boot whose
// Sync got no answer is set as soon as one answers), then every 64 s,
// doubling the interval to 1024 s while the clock holds, back to 64 s after
// a step, and sooner (32 s, doubling) while no server gives the time.
//
// An offset up to 500 ms (see WithStepThreshold) is slewed through the
// kernel's PLL, so that the time etcd, the kubelet and their leases see
// never jumps. A larger one is stepped: slewing it would take the better
// part of an hour, with the node's certificates and its peers' checks off
// all along. That happens when the hardware clock was far off and the boot
// got no answer, or after the host paused the VM. After a step the OnStep
// hooks run and the hardware clock is written; between steps the kernel
// writes it every 11 minutes, as the clock is marked synchronised.
func Discipline(ctx context.Context, servers []string, opts ...Option) {
	o := newOptions(opts, stepAboveRunning)
	if len(servers) == 0 {
		return
	}
	skip := map[netip.AddrPort]skipped{}
	poll := o.minPoll
	retry := o.minPoll / 2
	failing := false
	var wait time.Duration
	for backoff.Sleep(ctx, wait) {
		res, err := o.round(ctx, servers, skip, poll)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			if !failing {
				o.log.Warn("the clock is not kept on time: "+err.Error(), "retry_in", retry)
			} else {
				o.log.Debug("still no usable time from NTP", "err", err, "retry_in", retry)
			}
			failing = true
			poll, wait = o.minPoll, retry
			retry = min(retry*2, o.maxPoll)
			continue
		case failing:
			o.log.Info("the clock is kept on time again", "offset", res.Offset, "stepped", res.Stepped, "server", res.Servers())
		}
		switch {
		case res.Stepped:
			o.log.Info("clock stepped from NTP", "offset", res.Offset, "stepped", true, "server", res.Servers())
			poll = o.minPoll
			wait = poll
		default:
			o.log.Debug("clock slewed from NTP", "offset", res.Offset, "stepped", false, "server", res.Servers(), "poll", poll)
			wait = poll
			if res.Offset < stepAboveBoot && res.Offset > -stepAboveBoot {
				// The clock holds: ask less often.
				poll = min(poll*2, o.maxPoll)
			}
		}
		failing = false
		retry = o.minPoll / 2
	}
}

// round asks the servers once, bounded by the time a lookup and a query
// may take, and corrects the clock by their answer.
func (o *options) round(ctx context.Context, servers []string, skip map[netip.AddrPort]skipped, poll time.Duration) (Result, error) {
	rctx, cancel := context.WithTimeout(ctx, 2*o.timeout+time.Second)
	defer cancel()
	m, err := o.measure(rctx, servers, skip)
	if err != nil {
		return Result{Rejected: m.rejected}, fmt.Errorf("%s: %s", m.failure(), summary(m.rejected))
	}
	return o.apply(m, poll, false)
}
