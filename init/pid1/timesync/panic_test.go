package timesync

import (
	"bytes"
	"context"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rke2os/rke2os/internal/syncbuf"
)

// panicOnce is a fakeClock whose first reading panics: the query that
// measures against it panics in its own goroutine.
type panicOnce struct {
	fakeClock
	reads atomic.Int32
}

func (c *panicOnce) Now() time.Time {
	if c.reads.Add(1) == 1 {
		panic("clock read broke")
	}
	return c.fakeClock.Now()
}

// A panic in a server's query is logged with its stack and counts as that
// server's failure for the round: the process (PID 1 on a node) stays up,
// and the next round sets the clock.
func TestQueryPanic(t *testing.T) {
	buf := syncbuf.CaptureLog(t)
	srv := serve(t, 0)
	clock := &panicOnce{}
	var log bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := Sync(ctx, []string{srv.Addr()}, WithClock(clock), logTo(&log)); err != nil {
		t.Fatalf("Sync: %v\n%s", err, log.String())
	}
	out := buf.String()
	if !strings.Contains(out, `msg=panic in="ntp query `+srv.Addr()+`" panic="clock read broke" stack=`) || !strings.Contains(out, "timesync.(*options).query") {
		t.Errorf("the panic is not logged with its stack:\n%s", out)
	}
	// The round that panicked has no time, and says why.
	o := newOptions([]Option{WithClock(&panicOnce{})}, stepAboveBoot)
	m, err := o.measure(ctx, []string{srv.Addr()}, map[netip.AddrPort]skipped{})
	if err == nil || len(m.rejected) != 1 || !strings.Contains(m.rejected[0].Err.Error(), "the query panicked") {
		t.Errorf("round with a panicking query: err %v, rejected %+v; want no time, and the server's failure", err, m.rejected)
	}
}
