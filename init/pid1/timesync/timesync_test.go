package timesync

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/beevik/ntp"
	"github.com/rke2os/rke2os/init/pid1/timesync/ntptest"
)

// fakeClock records what Sync and Discipline do to the clock and applies
// it to a virtual time, the host's plus shift, so that the host's clock is
// never changed.
type fakeClock struct {
	mu        sync.Mutex
	shift     time.Duration
	steps     []time.Duration
	slews     []time.Duration
	hardware  []time.Time
	stepErr   error
	hwErr     error
	lastPolls []time.Duration
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.shift)
}

func (c *fakeClock) Step(d time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stepErr != nil {
		return c.stepErr
	}
	c.steps = append(c.steps, d)
	c.shift += d
	return nil
}

// Slew applies d at once, as if the kernel had absorbed it already.
func (c *fakeClock) Slew(d, poll time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.slews = append(c.slews, d)
	c.lastPolls = append(c.lastPolls, poll)
	c.shift += d
	return nil
}

func (c *fakeClock) SetHardware(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.hwErr != nil {
		return c.hwErr
	}
	c.hardware = append(c.hardware, t)
	return nil
}

func (c *fakeClock) counts() (steps, slews int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.steps), len(c.slews)
}

var _ Clock = (*fakeClock)(nil)

// serve starts an SNTP server of the test's own on 127.0.0.1.
func serve(t *testing.T, offset time.Duration) *ntptest.Server {
	t.Helper()
	s, err := ntptest.Listen("127.0.0.1:0", offset)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// near reports whether got is within tol of want.
func near(got, want, tol time.Duration) bool {
	d := got - want
	return d <= tol && d >= -tol
}

// logTo returns a logger writing into b, and the option to use it.
func logTo(b *bytes.Buffer) Option {
	return WithLogger(slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})))
}

const threeYears = 3 * 365 * 24 * time.Hour

func TestSyncStep(t *testing.T) {
	srv := serve(t, threeYears)
	clock := &fakeClock{}
	var steps [][2]time.Time
	var log bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := Sync(ctx, []string{srv.Addr()}, WithClock(clock), logTo(&log),
		OnStep(func(old, new time.Time) { steps = append(steps, [2]time.Time{old, new}) }))
	if err != nil {
		t.Fatal(err)
	}
	if !res.Stepped || !near(res.Offset, threeYears, 100*time.Millisecond) {
		t.Errorf("Sync stepped %v by %v, want a step by %v", res.Stepped, res.Offset, threeYears)
	}
	if len(clock.steps) != 1 || clock.steps[0] != res.Offset || len(clock.slews) != 0 {
		t.Errorf("clock steps %v slews %v, want one step by %v", clock.steps, clock.slews, res.Offset)
	}
	if len(res.Used) != 1 || res.Used[0].Addr != srv.Addr() || res.Used[0].Stratum != 2 || len(res.Rejected) != 0 {
		t.Errorf("used %+v, rejected %+v", res.Used, res.Rejected)
	}
	if len(clock.hardware) != 1 || !near(clock.hardware[0].Sub(time.Now()), threeYears, time.Second) {
		t.Errorf("hardware clock set to %v, want three years ahead", clock.hardware)
	}
	if len(steps) != 1 || steps[0][1].Sub(steps[0][0]) != res.Offset {
		t.Errorf("OnStep got %v, want one call with the step of %v", steps, res.Offset)
	}
	for _, want := range []string{`msg="clock set from NTP"`, "stepped=true", "server=\"" + srv.Addr() + " (stratum 2)\""} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("log does not say %q:\n%s", want, log.String())
		}
	}
	// The logged offset is the measured one: three years, give or take
	// the round trip.
	m := regexp.MustCompile(`offset=(\S+)`).FindStringSubmatch(log.String())
	if m == nil {
		t.Fatalf("no offset in the log:\n%s", log.String())
	}
	if d, err := time.ParseDuration(m[1]); err != nil || !near(d, threeYears, 100*time.Millisecond) {
		t.Errorf("logged offset %q, want about %v", m[1], threeYears)
	}
}

func TestSyncSlew(t *testing.T) {
	const offset = 60 * time.Millisecond
	srv := serve(t, offset)
	clock := &fakeClock{}
	called := false
	res, err := Sync(context.Background(), []string{srv.Addr()}, WithClock(clock), OnStep(func(_, _ time.Time) { called = true }))
	if err != nil {
		t.Fatal(err)
	}
	if res.Stepped || len(clock.steps) != 0 || called {
		t.Errorf("an offset of %v was stepped (%v, OnStep called %v); want a slew", res.Offset, clock.steps, called)
	}
	if len(clock.slews) != 1 || !near(clock.slews[0], offset, 50*time.Millisecond) || clock.lastPolls[0] != defaultMinPoll {
		t.Errorf("slews %v (poll %v), want one of about %v", clock.slews, clock.lastPolls, offset)
	}
	// The hardware clock gets the time the slew is heading for.
	if len(clock.hardware) != 1 || !near(clock.hardware[0].Sub(time.Now()), offset, 600*time.Millisecond) {
		t.Errorf("hardware clock set to %v", clock.hardware)
	}
}

// TestSyncUnfit leaves out answers that must not set a clock, and asks a
// server that sent a kiss-of-death only once.
func TestSyncUnfit(t *testing.T) {
	for _, tc := range []struct {
		name    string
		set     func(s *ntptest.Server)
		wantErr error
		msg     string
		kiss    bool
	}{
		{"kiss RATE", func(s *ntptest.Server) { s.SetKiss("RATE") }, ntp.ErrKissOfDeath, "sent a kiss-of-death (RATE): it asks to be asked less often", true},
		{"kiss DENY", func(s *ntptest.Server) { s.SetKiss("DENY") }, ntp.ErrKissOfDeath, "sent a kiss-of-death (DENY): it refuses this node", true},
		{"stratum 0", func(s *ntptest.Server) { s.SetStratum(0) }, ntp.ErrKissOfDeath, "sent a kiss-of-death", true},
		{"stratum 16", func(s *ntptest.Server) { s.SetStratum(16) }, ntp.ErrInvalidStratum, "is not synchronised itself (stratum 16)", false},
		{"leap unsynchronised", func(s *ntptest.Server) { s.SetUnsynchronised(true) }, ntp.ErrInvalidLeapSecond, "is not synchronised itself (its leap indicator says so)", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := serve(t, time.Hour)
			tc.set(srv)
			clock := &fakeClock{}
			ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
			defer cancel()
			start := time.Now()
			res, err := Sync(ctx, []string{srv.Addr()}, WithClock(clock))
			took := time.Since(start)
			if err == nil {
				t.Fatalf("Sync set the clock from an unfit answer: %+v", res)
			}
			// Sync gives up at once when every server sent a
			// kiss-of-death, and asks the others again until ctx ends.
			if tc.kiss && took > time.Second || !tc.kiss && took < 1400*time.Millisecond {
				t.Errorf("Sync gave up after %v", took)
			}
			want := "no NTP server gave a usable time in "
			if !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), srv.Addr()+" "+tc.msg) || !strings.Contains(err.Error(), "the clock stays as it is") {
				t.Errorf("error %q does not say %q and %q", err, want, srv.Addr()+" "+tc.msg)
			}
			if len(res.Rejected) != 1 || !errors.Is(res.Rejected[0].Err, tc.wantErr) {
				t.Errorf("rejected %+v, want one %v", res.Rejected, tc.wantErr)
			}
			if s, l := clock.counts(); s+l != 0 || len(clock.hardware) != 0 {
				t.Errorf("the clock was changed: %d steps, %d slews, hardware %v", s, l, clock.hardware)
			}
			if q := srv.Queries(); tc.kiss && q != 1 || !tc.kiss && q < 2 {
				t.Errorf("the server was asked %d times; a kiss-of-death is asked once, another server again", q)
			}
		})
	}
}

// TestSyncOutlier leaves out a server far from the others.
func TestSyncOutlier(t *testing.T) {
	a, b, far := serve(t, 10*time.Second), serve(t, 10*time.Second+20*time.Millisecond), serve(t, threeYears)
	clock := &fakeClock{}
	res, err := Sync(context.Background(), []string{a.Addr(), far.Addr(), b.Addr()}, WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	if !res.Stepped || !near(res.Offset, 10*time.Second, 100*time.Millisecond) {
		t.Errorf("offset %v stepped %v, want a step by about 10s", res.Offset, res.Stepped)
	}
	if len(res.Used) != 2 || len(res.Rejected) != 1 || res.Rejected[0].Addr != far.Addr() ||
		!strings.Contains(res.Rejected[0].Err.Error(), "away from the other servers' time; left out") {
		t.Errorf("used %+v\nrejected %+v\nwant the server three years off rejected", res.Used, res.Rejected)
	}
	if want := a.Addr() + " (stratum 2), " + b.Addr() + " (stratum 2)"; res.Servers() != want {
		t.Errorf("Servers() = %q, want %q", res.Servers(), want)
	}

	// Two servers that disagree: neither is trusted.
	_, err = Sync(timeout(t, 1500*time.Millisecond), []string{a.Addr(), far.Addr()}, WithClock(clock))
	if err == nil || !strings.Contains(err.Error(), "the NTP servers that answered disagree with each other in") {
		t.Errorf("two servers years apart: %v", err)
	}
}

func timeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// TestSyncNoAnswer gives up when ctx ends, also in the middle of a query
// that would wait longer, and says what each server did.
func TestSyncNoAnswer(t *testing.T) {
	silent := serve(t, 0)
	silent.SetSilent(true)
	closed, err := ntptest.Listen("127.0.0.1:0", 0)
	if err != nil {
		t.Fatal(err)
	}
	closed.Close() // nothing listens there now: the query is refused
	clock := &fakeClock{}
	start := time.Now()
	res, err := Sync(timeout(t, 1500*time.Millisecond), []string{silent.Addr(), closed.Addr()}, WithClock(clock), WithQueryTimeout(10*time.Second))
	took := time.Since(start)
	if err == nil {
		t.Fatalf("Sync without an answer: %+v", res)
	}
	if took > 2500*time.Millisecond {
		t.Errorf("Sync took %v, past its context's 1.5s", took)
	}
	for _, want := range []string{"no NTP server answered in 1.", silent.Addr() + " gave no answer in", closed.Addr() + " refused the query (no NTP server listens there)"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	var refused bool
	for _, a := range res.Rejected {
		refused = refused || errors.Is(a.Err, syscall.ECONNREFUSED)
	}
	if len(res.Rejected) != 2 || !refused {
		t.Errorf("rejected %+v", res.Rejected)
	}
	if silent.Queries() < 1 {
		t.Error("the silent server was not asked")
	}
	if s, l := clock.counts(); s+l != 0 {
		t.Errorf("the clock was changed")
	}

	if _, err := Sync(context.Background(), nil, WithClock(clock)); err == nil || err.Error() != "no NTP server to ask" {
		t.Errorf("Sync without servers: %v", err)
	}
}

// TestSyncPool counts each address of a name as a server, and reports a
// name without one.
func TestSyncPool(t *testing.T) {
	first := serve(t, 2*time.Second)
	port := first.Port()
	for _, ip := range []string{"127.0.0.2", "127.0.0.3"} {
		s, err := ntptest.Listen(fmt.Sprintf("%s:%d", ip, port), 2*time.Second)
		if err != nil {
			t.Skipf("cannot listen on %s:%d: %v", ip, port, err)
		}
		t.Cleanup(func() { s.Close() })
	}
	lookup := func(_ context.Context, host string) ([]netip.Addr, error) {
		switch host {
		case "pool.test":
			return []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::ffff:127.0.0.2"), netip.MustParseAddr("127.0.0.3")}, nil
		case "empty.test":
			return nil, nil
		}
		return nil, fmt.Errorf("lookup %s: no such host", host)
	}
	pool := fmt.Sprintf("pool.test:%d", port)
	res, err := Sync(context.Background(), []string{pool, "nowhere.test", "empty.test", "bad:port:x"}, WithClock(&fakeClock{}), WithLookup(lookup))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Used) != 3 || !res.Stepped || !near(res.Offset, 2*time.Second, 100*time.Millisecond) {
		t.Errorf("used %+v, offset %v", res.Used, res.Offset)
	}
	for i, a := range res.Used {
		if want := fmt.Sprintf("127.0.0.%d:%d", i+1, port); a.Server != pool || a.Addr != want {
			t.Errorf("answer %d from %s (%s), want %s (%s)", i, a.Server, a.Addr, pool, want)
		}
	}
	var msgs []string
	for _, a := range res.Rejected {
		msgs = append(msgs, a.String()+" "+a.Err.Error())
	}
	want := []string{"nowhere.test has no address: lookup nowhere.test: no such host", "empty.test has no address", "bad:port:x is not a host or host:port like \"10.0.0.1:123\""}
	if strings.Join(msgs, "\n") != strings.Join(want, "\n") {
		t.Errorf("rejected:\n%s\nwant:\n%s", strings.Join(msgs, "\n"), strings.Join(want, "\n"))
	}
}

// TestSyncClockErrors: a clock that cannot be set is an error; a hardware
// clock that cannot be written is only a warning.
func TestSyncClockErrors(t *testing.T) {
	srv := serve(t, time.Hour)
	clock := &fakeClock{stepErr: syscall.EPERM}
	if _, err := Sync(context.Background(), []string{srv.Addr()}, WithClock(clock)); err == nil || !errors.Is(err, syscall.EPERM) || !strings.HasPrefix(err.Error(), "step the clock by 1h0m0") {
		t.Errorf("Sync with a clock it may not set: %v", err)
	}
	var log bytes.Buffer
	clock = &fakeClock{hwErr: errors.New("open /dev/rtc0: no such file or directory")}
	res, err := Sync(context.Background(), []string{srv.Addr()}, WithClock(clock), logTo(&log))
	if err != nil || res.HardwareErr == nil || len(clock.steps) != 1 {
		t.Errorf("Sync without a hardware clock: %+v, %v", res, err)
	}
	if !strings.Contains(log.String(), "the hardware clock keeps its old time") {
		t.Errorf("no warning about the hardware clock:\n%s", log.String())
	}
}

// TestNotBefore warns of a step back past the certificates' NotBefore.
func TestNotBefore(t *testing.T) {
	srv := serve(t, -threeYears)
	made := time.Now().Add(-time.Hour).Truncate(time.Second)
	var log bytes.Buffer
	var old, new time.Time
	res, err := Sync(context.Background(), []string{srv.Addr()}, WithClock(&fakeClock{}), logTo(&log),
		WithNotBefore(func() time.Time { return made }),
		OnStep(func(o, n time.Time) { old, new = o, n }))
	if err != nil {
		t.Fatal(err)
	}
	if !res.Stepped || !new.Before(old) || !near(old.Sub(new), threeYears, 100*time.Millisecond) {
		t.Fatalf("stepped %v from %v to %v", res.Stepped, old, new)
	}
	want := "the clock is stepped back by 26280h0m0s, before the NotBefore of certificates made at " + made.UTC().Format(time.RFC3339)
	if !strings.Contains(log.String(), want) {
		t.Errorf("log does not say %q:\n%s", want, log.String())
	}

	// A step forward, or back but not past the certificates, is quiet.
	for _, offset := range []time.Duration{threeYears, -time.Minute} {
		srv.SetOffset(offset)
		log.Reset()
		if _, err := Sync(context.Background(), []string{srv.Addr()}, WithClock(&fakeClock{}), logTo(&log),
			WithNotBefore(func() time.Time { return made })); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(log.String(), "stepped back") {
			t.Errorf("offset %v: warning without cause:\n%s", offset, log.String())
		}
	}
}

func TestChoose(t *testing.T) {
	s := time.Second
	for _, tc := range []struct {
		name     string
		offsets  []time.Duration
		kept     int
		offset   time.Duration
		rejected []int // indexes of the answers left out
	}{
		{"none", nil, 0, 0, nil},
		{"one", []time.Duration{5 * s}, 1, 5 * s, nil},
		{"two close", []time.Duration{5 * s, 5*s + 400*time.Millisecond}, 2, 5*s + 200*time.Millisecond, nil},
		{"two apart", []time.Duration{0, 3 * s}, 0, 0, []int{0, 1}},
		{"three, one far", []time.Duration{10 * s, threeYears, 10*s + 20*time.Millisecond}, 2, 10*s + 10*time.Millisecond, []int{1}},
		{"three, one a bit off", []time.Duration{0, 10 * time.Millisecond, 1500 * time.Millisecond}, 2, 5 * time.Millisecond, []int{2}},
		{"three spread out", []time.Duration{0, 5 * s, 10 * s}, 1, 5 * s, []int{0, 2}},
		{"four, two and two", []time.Duration{0, 0, threeYears, threeYears}, 0, 0, []int{0, 1, 2, 3}},
		{"five, two far", []time.Duration{-threeYears, 100 * time.Millisecond, 0, 50 * time.Millisecond, threeYears}, 3, 50 * time.Millisecond, []int{0, 4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var good []Answer
			for i, o := range tc.offsets {
				good = append(good, Answer{Server: fmt.Sprint(i), Offset: o})
			}
			kept, dropped, offset := choose(good, time.Second)
			var rejected []int
			for _, a := range dropped {
				var i int
				fmt.Sscan(a.Server, &i)
				rejected = append(rejected, i)
				if a.Err == nil {
					t.Errorf("answer %d left out without a reason", i)
				}
			}
			if len(kept) != tc.kept || offset != tc.offset || fmt.Sprint(rejected) != fmt.Sprint(tc.rejected) {
				t.Errorf("kept %d, offset %v, rejected %v; want %d, %v, %v", len(kept), offset, rejected, tc.kept, tc.offset, tc.rejected)
			}
		})
	}
}

func TestSplitServer(t *testing.T) {
	for _, tc := range []struct {
		in, host string
		port     uint16
		err      string
	}{
		{"10.0.0.1", "10.0.0.1", 123, ""},
		{"10.0.0.1:1123", "10.0.0.1", 1123, ""},
		{"pool.ntp.org", "pool.ntp.org", 123, ""},
		{"ntp.example.com:123", "ntp.example.com", 123, ""},
		{"fd00::1", "fd00::1", 123, ""},
		{"[fd00::1]:4123", "fd00::1", 4123, ""},
		{"[fd00::1]", "", 0, "is not a host or host:port"},
		{"ntp.example.com:0", "", 0, `has a port "0" outside 1-65535`},
		{"ntp.example.com:70000", "", 0, "outside 1-65535"},
		{"a:b:c", "", 0, "is not a host or host:port"},
	} {
		host, port, err := splitServer(tc.in)
		if host != tc.host || port != tc.port || (err == nil) != (tc.err == "") || err != nil && !strings.Contains(err.Error(), tc.err) {
			t.Errorf("splitServer(%q) = %q, %d, %v; want %q, %d, %q", tc.in, host, port, err, tc.host, tc.port, tc.err)
		}
	}
}
