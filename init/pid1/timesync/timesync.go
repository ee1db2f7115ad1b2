// Package timesync keeps the node's clock on true time, from NTP servers.
//
// Sync sets the clock once at boot, before any certificate is made: a node
// whose hardware clock is years off makes certificates that are not valid
// once the clock is right, and etcd and the kubelet refuse peers whose
// certificates have not started yet or have expired. Discipline then keeps
// the clock there while the node runs, slewing small offsets so that the
// time etcd and the kubelet see does not jump.
//
// The protocol is SNTP (github.com/beevik/ntp). Each round asks every server
// once; an answer unfit to set a clock by (a kiss-of-death, a server that is
// not synchronised itself) is left out, and so is one far from the others;
// the median offset of the rest is applied.
package timesync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/beevik/ntp"
	"github.com/rke2os/rke2os/init/shared/goroutine"
	"github.com/rke2os/rke2os/internal/backoff"
)

// Defaults. stepAboveBoot is ntpd's step threshold: at boot nothing runs
// that a jump could upset, and a slew of more than that takes minutes.
// stepAboveRunning is the largest offset the kernel's PLL takes (MAXPHASE);
// slewing a larger one would take most of an hour, and stepping it is what
// etcd's and the kubelet's peers need.
const (
	stepAboveBoot    = 128 * time.Millisecond
	stepAboveRunning = 500 * time.Millisecond
	defaultTimeout   = 3 * time.Second
	defaultMaxSpread = time.Second
	defaultMinPoll   = 64 * time.Second
	defaultMaxPoll   = 1024 * time.Second
	// A name stands for at most maxPerName of its addresses (as chrony's
	// pool does for its sources), and a round asks at most maxTargets.
	maxPerName = 4
	maxTargets = 16
)

// Result is what Sync (or one round of Discipline) did to the clock.
type Result struct {
	// Offset is how far the clock was behind the servers' time (negative:
	// ahead): the median of the answers used.
	Offset time.Duration
	// Stepped says the clock was set at once; otherwise the kernel slews
	// it over the next minutes.
	Stepped bool
	// Used are the answers Offset comes from; Rejected the others, each
	// with its Err.
	Used, Rejected []Answer
	// HardwareErr is why the hardware clock could not be written, nil if
	// it was.
	HardwareErr error
}

// Servers lists the servers of the answers used, like
// "10.0.2.2:123 (stratum 2)", for logs.
func (r Result) Servers() string {
	parts := make([]string, len(r.Used))
	for i, a := range r.Used {
		parts[i] = fmt.Sprintf("%s (stratum %d)", a.Addr, a.Stratum)
	}
	return strings.Join(parts, ", ")
}

// Answer is one server's reply, or why there was none fit to use.
type Answer struct {
	// Server is the server as given (a name, an address, with a port or
	// not); Addr is the address asked, "" if the name did not resolve.
	Server, Addr string
	// Offset is the server's time minus the clock's; RTT the round trip.
	Offset, RTT time.Duration
	// Stratum is the server's distance from a reference clock.
	Stratum uint8
	// Err says why the answer was not used; nil for a used one.
	Err error
}

// String names the server, and the address asked when it differs, like
// "pool.ntp.org (192.0.2.5:123)".
func (a Answer) String() string {
	if a.Addr == "" || a.Addr == a.Server {
		return a.Server
	}
	return a.Server + " (" + a.Addr + ")"
}

// Option changes how Sync and Discipline work.
type Option func(*options)

type options struct {
	clock            Clock
	log              *slog.Logger
	timeout          time.Duration
	stepAbove        time.Duration // 0: the default of Sync or Discipline
	maxSpread        time.Duration
	minPoll, maxPoll time.Duration
	notBefore        func() time.Time
	onStep           []func(old, new time.Time)
	lookup           func(ctx context.Context, host string) ([]netip.Addr, error)
}

// WithClock sets, steps and slews c instead of the system clock: tests
// pass a fake one so that they do not change the host's clock.
func WithClock(c Clock) Option { return func(o *options) { o.clock = c } }

// WithLogger sends the package's logs to l instead of slog's default logger.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithQueryTimeout bounds the wait for one server's answer, and for one
// name's addresses (3 s by default).
func WithQueryTimeout(d time.Duration) Option { return func(o *options) { o.timeout = d } }

// WithStepThreshold steps the clock for an offset larger than d and slews
// it for a smaller one. The default is 128 ms for Sync (ntpd's threshold:
// nothing runs yet that a jump could upset) and 500 ms for Discipline (the
// most the kernel's PLL slews).
func WithStepThreshold(d time.Duration) Option { return func(o *options) { o.stepAbove = d } }

// WithMaxSpread leaves out an answer further than d from the median of the
// answers (1 s by default).
func WithMaxSpread(d time.Duration) Option { return func(o *options) { o.maxSpread = d } }

// WithPollInterval sets Discipline's interval between rounds: from min
// (64 s by default) doubling to max (1024 s) while the clock holds.
func WithPollInterval(min, max time.Duration) Option {
	return func(o *options) { o.minPoll, o.maxPoll = min, max }
}

// WithNotBefore gives the time before which a step back is worth a
// warning: the NotBefore of the node's certificates (f returns the zero
// time when there are none). A certificate made while the clock was ahead
// is not valid until the clock catches up again, so peers refuse it; the
// warning says so in plain words, and OnStep's hooks can make it again.
func WithNotBefore(f func() time.Time) Option { return func(o *options) { o.notBefore = f } }

// OnStep calls f after every step of the clock, with the time just before
// and just after it, so that the caller can make again what depends on the
// time (certificates made before the clock was set). f runs on the
// goroutine of Sync or Discipline; several OnStep options add up.
func OnStep(f func(old, new time.Time)) Option {
	return func(o *options) { o.onStep = append(o.onStep, f) }
}

// WithLookup resolves names with f instead of the system's resolver.
func WithLookup(f func(ctx context.Context, host string) ([]netip.Addr, error)) Option {
	return func(o *options) { o.lookup = f }
}

func newOptions(opts []Option, stepAbove time.Duration) *options {
	o := &options{
		clock:     SystemClock(),
		log:       slog.Default(),
		timeout:   defaultTimeout,
		maxSpread: defaultMaxSpread,
		minPoll:   defaultMinPoll,
		maxPoll:   defaultMaxPoll,
		lookup: func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		},
	}
	for _, opt := range opts {
		opt(o)
	}
	if o.stepAbove <= 0 {
		o.stepAbove = stepAbove
	}
	o.maxPoll = max(o.maxPoll, o.minPoll)
	return o
}

// Sync asks the servers for the time and sets the clock by it: stepped if
// it is off by more than 128 ms (see WithStepThreshold), else slewed; then
// it writes the hardware clock. A server is a host name or an IP address,
// with an optional port ("10.0.0.1", "pool.ntp.org", "ntp.example.com:123",
// "[fd00::1]:123"); each address a name resolves to (up to 4) counts as a
// server, so a pool is given as a server is. Sync asks again, every few
// seconds, until one server gives a usable time or ctx ends; a server that
// sent a kiss-of-death is not asked again, and when every one has, Sync
// gives up at once. The error says in plain words what each server did.
func Sync(ctx context.Context, servers []string, opts ...Option) (Result, error) {
	o := newOptions(opts, stepAboveBoot)
	if len(servers) == 0 {
		return Result{}, errors.New("no NTP server to ask")
	}
	start := time.Now()
	skip := map[netip.AddrPort]skipped{}
	retry := backoff.Backoff{Initial: time.Second, Max: 8 * time.Second}
	var last measurement
	for {
		m, err := o.measure(ctx, servers, skip)
		if err == nil {
			res, err := o.apply(m, o.minPoll, true)
			if err == nil {
				o.log.Info("clock set from NTP", "offset", res.Offset, "stepped", res.Stepped, "server", res.Servers(),
					"rejected", len(res.Rejected), "took", time.Since(start).Round(time.Millisecond))
			}
			return res, err
		}
		last = m
		if m.hopeless {
			break
		}
		wait := retry.Next(0)
		o.log.Debug("no usable time from NTP yet", "err", err, "retry_in", wait)
		if !backoff.Sleep(ctx, wait) {
			break
		}
	}
	took := time.Since(start).Round(100 * time.Millisecond)
	return Result{Rejected: last.rejected}, fmt.Errorf("%s in %s: %s; the clock stays as it is (%s)",
		last.failure(), took, summary(last.rejected), o.clock.Now().UTC().Format(time.RFC3339))
}

// measurement is one round's answers and the offset they give.
type measurement struct {
	used, rejected []Answer
	offset         time.Duration
	answered       bool // some server answered, fit or not
	disagree       bool // answers came, and none agreed with the others
	// hopeless says that asking again soon is of no use: every server
	// resolved, and every one sent a kiss-of-death.
	hopeless bool
}

// failure says what went wrong with a round that gave no offset.
func (m measurement) failure() string {
	switch {
	case m.disagree:
		return "the NTP servers that answered disagree with each other"
	case m.answered:
		return "no NTP server gave a usable time"
	}
	return "no NTP server answered"
}

var errNoTime = errors.New("no usable time")

// measure asks every server once, at the same time, and picks the offset
// from their answers. Addresses in skip are not asked until their time.
func (o *options) measure(ctx context.Context, servers []string, skip map[netip.AddrPort]skipped) (measurement, error) {
	var m measurement
	targets, failed := o.resolve(ctx, servers)
	m.rejected = failed
	answers := make([]Answer, len(targets))
	asked := make([]bool, len(targets))
	var wg sync.WaitGroup
	now := time.Now()
	for i, t := range targets {
		if sk, ok := skip[t.addr]; ok && now.Before(sk.until) {
			answers[i] = Answer{Server: t.server, Addr: t.addr.String(), Err: sk.err}
			continue
		}
		asked[i] = true
		wg.Add(1)
		goroutine.Go("ntp query "+t.addr.String(), func() {
			defer wg.Done()
			// What a panic in the query leaves: this server's failure
			// for the round (a zero Answer would pass for a good one).
			answers[i] = Answer{Server: t.server, Addr: t.addr.String(), Err: &answerError{msg: "the query panicked (a bug; its stack is in the log)"}}
			answers[i] = o.query(ctx, t)
		})
	}
	wg.Wait()
	var good []Answer
	kissed := 0
	for i, a := range answers {
		if a.Err == nil {
			good = append(good, a)
			continue
		}
		var e *answerError
		if errors.As(a.Err, &e) && e.answered {
			m.answered = true
			if e.kiss {
				kissed++
				if asked[i] {
					skip[targets[i].addr] = skipped{now.Add(kissWait(e.kissCode, o.maxPoll)), a.Err}
				}
			}
		}
		m.rejected = append(m.rejected, a)
	}
	m.hopeless = len(failed) == 0 && kissed == len(targets)
	kept, dropped, offset := choose(good, o.maxSpread)
	m.used, m.offset = kept, offset
	m.rejected = append(m.rejected, dropped...)
	m.answered = m.answered || len(good) > 0
	m.disagree = len(good) > 0 && len(kept) == 0
	if len(kept) == 0 {
		return m, errNoTime
	}
	return m, nil
}

// skipped is an address not asked again until a time, after the
// kiss-of-death err.
type skipped struct {
	until time.Time
	err   error
}

// target is one address to ask.
type target struct {
	server string
	addr   netip.AddrPort
}

// resolve turns servers into the addresses to ask, each once; failed lists
// the servers that gave none.
func (o *options) resolve(ctx context.Context, servers []string) (targets []target, failed []Answer) {
	seen := map[netip.AddrPort]bool{}
	add := func(server string, a netip.Addr, port uint16) {
		ap := netip.AddrPortFrom(a.Unmap(), port)
		if !seen[ap] && len(targets) < maxTargets {
			seen[ap] = true
			targets = append(targets, target{server, ap})
		}
	}
	for _, s := range servers {
		host, port, err := splitServer(s)
		if err != nil {
			failed = append(failed, Answer{Server: s, Err: err})
			continue
		}
		if a, err := netip.ParseAddr(host); err == nil {
			add(s, a, port)
			continue
		}
		lctx, cancel := context.WithTimeout(ctx, o.timeout)
		addrs, err := o.lookup(lctx, host)
		cancel()
		switch {
		case err != nil:
			failed = append(failed, Answer{Server: s, Err: &answerError{msg: "has no address: " + err.Error(), err: err}})
			continue
		case len(addrs) == 0:
			failed = append(failed, Answer{Server: s, Err: &answerError{msg: "has no address"}})
			continue
		}
		for _, a := range addrs[:min(len(addrs), maxPerName)] {
			add(s, a, port)
		}
	}
	return targets, failed
}

// splitServer splits "host", "host:port", "[ipv6]:port" or a bare IPv6
// address into host and port (123 if none is given).
func splitServer(s string) (host string, port uint16, err error) {
	if _, err := netip.ParseAddr(s); err == nil || !strings.ContainsAny(s, ":[]") {
		return s, 123, nil
	}
	h, p, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, fmt.Errorf("is not a host or host:port like \"10.0.0.1:123\"")
	}
	n, err := strconv.ParseUint(p, 10, 16)
	if err != nil || n == 0 {
		return "", 0, fmt.Errorf("has a port %q outside 1-65535", p)
	}
	return h, uint16(n), nil
}

// query asks one address for the time, within o.timeout and ctx.
func (o *options) query(ctx context.Context, t target) Answer {
	a := Answer{Server: t.server, Addr: t.addr.String()}
	qctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	dl, _ := qctx.Deadline()
	wait := time.Until(dl)
	if wait <= 0 || qctx.Err() != nil {
		a.Err = &answerError{msg: "was not asked: no time was left", err: qctx.Err()}
		return a
	}
	var stop func() bool
	opt := ntp.QueryOptions{
		Timeout: wait,
		// Dial through ctx, and cut the wait for the answer short when
		// ctx ends: the library knows only its timeout.
		Dialer: func(_, remote string) (net.Conn, error) {
			var d net.Dialer
			c, err := d.DialContext(qctx, "udp", remote)
			if err != nil {
				return nil, err
			}
			stop = goroutine.AfterFunc(qctx, "ntp query deadline", func() { c.SetDeadline(time.Unix(1, 0)) })
			return c, nil
		},
	}
	if _, system := o.clock.(systemClock); !system {
		// The answer is measured against the clock being set. The
		// system clock is read from the kernel's receive timestamp.
		opt.GetSystemTime = o.clock.Now
	}
	resp, err := ntp.QueryWithOptions(t.addr.String(), opt)
	if stop != nil {
		stop()
	}
	if err != nil {
		a.Err = queryError(err, wait)
		return a
	}
	a.Offset, a.RTT, a.Stratum = resp.ClockOffset, resp.RTT, resp.Stratum
	if err := resp.Validate(); err != nil {
		a.Err = unfit(resp, err)
	}
	return a
}

// queryError says in plain words why a query got no answer.
func queryError(err error, wait time.Duration) error {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return &answerError{msg: "refused the query (no NTP server listens there)", err: err}
	case errors.As(err, &ne) && ne.Timeout():
		return &answerError{msg: fmt.Sprintf("gave no answer in %s", wait.Round(time.Millisecond)), err: err}
	}
	return &answerError{msg: "could not be asked: " + err.Error(), err: err}
}

// answerError says in plain words why an answer is not used; the
// library's error is kept for errors.Is.
type answerError struct {
	msg string
	err error
	// answered says the server replied, with an answer unfit to use.
	answered bool
	// kiss says the answer is a kiss-of-death (RFC 5905 7.4), with the
	// code in kissCode, like "RATE".
	kiss     bool
	kissCode string
}

func (e *answerError) Error() string { return e.msg }
func (e *answerError) Unwrap() error { return e.err }

// unfit says in plain words why resp, which failed Validate with err, is
// not used.
func unfit(resp *ntp.Response, err error) error {
	e := &answerError{err: err, answered: true}
	switch {
	case errors.Is(err, ntp.ErrKissOfDeath):
		why := "it will not give the time"
		switch resp.KissCode {
		case "RATE":
			why = "it asks to be asked less often"
		case "DENY", "RSTR":
			why = "it refuses this node"
		}
		e.msg = fmt.Sprintf("sent a kiss-of-death (%s): %s", resp.KissCode, why)
		if resp.KissCode == "" {
			e.msg = "sent a kiss-of-death: " + why
		}
		e.kiss, e.kissCode = true, resp.KissCode
	case errors.Is(err, ntp.ErrInvalidStratum):
		e.msg = fmt.Sprintf("is not synchronised itself (stratum %d)", resp.Stratum)
	case errors.Is(err, ntp.ErrInvalidLeapSecond):
		e.msg = "is not synchronised itself (its leap indicator says so)"
	case errors.Is(err, ntp.ErrServerClockFreshness):
		e.msg = "has not heard from its own time source for over 36 hours"
	case errors.Is(err, ntp.ErrInvalidDispersion):
		e.msg = "is too far from its reference clock (root distance over 16 s)"
	default:
		e.msg = "gave an answer unfit to set a clock by: " + err.Error()
	}
	return e
}

// kissWait is how long a server that sent a kiss-of-death is left alone:
// the longest poll interval for RATE (it asks to be asked less often), a
// day for a refusal.
func kissWait(code string, maxPoll time.Duration) time.Duration {
	if code == "RATE" {
		return maxPoll
	}
	return 24 * time.Hour
}

// choose keeps the answers that agree: an answer further than maxSpread
// from the median of all is left out, as a server that is wrong (or a
// stale cache in front of one). With two answers that are more than
// 2*maxSpread apart, both are left out: there is no telling which is right.
// offset is the median of the answers kept.
func choose(good []Answer, maxSpread time.Duration) (kept, dropped []Answer, offset time.Duration) {
	if len(good) == 0 {
		return nil, nil, 0
	}
	mid := median(good)
	for _, a := range good {
		if d := a.Offset - mid; d > maxSpread || d < -maxSpread {
			a.Err = fmt.Errorf("is %s away from the other servers' time; left out", (a.Offset - mid).Round(time.Millisecond))
			dropped = append(dropped, a)
			continue
		}
		kept = append(kept, a)
	}
	if len(kept) == 0 {
		return nil, dropped, 0
	}
	return kept, dropped, median(kept)
}

// median is the median offset of answers (the mean of the middle two for
// an even count).
func median(answers []Answer) time.Duration {
	offs := make([]time.Duration, len(answers))
	for i, a := range answers {
		offs[i] = a.Offset
	}
	slices.Sort(offs)
	n := len(offs)
	if n%2 == 1 {
		return offs[n/2]
	}
	lo, hi := offs[n/2-1], offs[n/2]
	return lo + (hi-lo)/2
}

// summary lists what each server did, for an error.
func summary(answers []Answer) string {
	const most = 6
	var parts []string
	for i, a := range answers {
		if i == most {
			parts = append(parts, fmt.Sprintf("and %d more", len(answers)-most))
			break
		}
		parts = append(parts, fmt.Sprintf("%s %v", a, a.Err))
	}
	if len(parts) == 0 {
		return "no server to ask"
	}
	return strings.Join(parts, "; ")
}

// apply sets the clock by m's offset: a step above o.stepAbove, else a slew
// (with the kernel's time constant for poll). It then writes the hardware
// clock, after a step only unless always.
func (o *options) apply(m measurement, poll time.Duration, always bool) (Result, error) {
	res := Result{Offset: m.offset, Used: m.used, Rejected: m.rejected}
	if m.offset > o.stepAbove || m.offset < -o.stepAbove {
		old := o.clock.Now()
		if err := o.clock.Step(m.offset); err != nil {
			return res, fmt.Errorf("step the clock by %s: %w", m.offset.Round(time.Millisecond), err)
		}
		res.Stepped = true
		o.stepped(old, old.Add(m.offset))
	} else if err := o.clock.Slew(m.offset, poll); err != nil {
		return res, fmt.Errorf("slew the clock by %s: %w", m.offset.Round(time.Microsecond), err)
	}
	if !res.Stepped && !always {
		return res, nil
	}
	hw := o.clock.Now()
	if !res.Stepped {
		hw = hw.Add(m.offset) // what the slew will make of it
	}
	if err := o.clock.SetHardware(hw); err != nil {
		res.HardwareErr = err
		o.log.Warn("the hardware clock keeps its old time; the next boot starts from it", "err", err)
	}
	return res, nil
}

// stepped warns of a step back past the certificates' NotBefore and runs
// the OnStep hooks.
func (o *options) stepped(old, new time.Time) {
	if new.Before(old) && o.notBefore != nil {
		if nb := o.notBefore(); !nb.IsZero() && new.Before(nb) {
			o.log.Warn(fmt.Sprintf("the clock is stepped back by %s, before the NotBefore of certificates made at %s: peers refuse them until then, so they must be made again",
				old.Sub(new).Round(time.Second), nb.UTC().Format(time.RFC3339)),
				"old", old.UTC().Format(time.RFC3339), "new", new.UTC().Format(time.RFC3339), "not_before", nb.UTC().Format(time.RFC3339))
		}
	}
	for _, f := range o.onStep {
		f(old, new)
	}
}
