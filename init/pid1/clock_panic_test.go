package pid1

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rke2os/rke2os/init/pid1/timesync"
	"github.com/rke2os/rke2os/init/pid1/timesync/ntptest"
	"github.com/rke2os/rke2os/internal/syncbuf"
)

// waitLog waits until the log holds s.
func waitLog(t *testing.T, buf *syncbuf.Buffer, s string, timeout time.Duration) {
	t.Helper()
	for end := time.Now().Add(timeout); !strings.Contains(buf.String(), s); {
		if time.Now().After(end) {
			t.Fatalf("no %q in the log:\n%s", s, buf.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// slewPanics is a clock that never moves the host's and whose first slew
// panics, inside the discipline's goroutine.
type slewPanics struct {
	mu    sync.Mutex
	slews int
}

func (c *slewPanics) Now() time.Time              { return time.Now() }
func (c *slewPanics) Step(time.Duration) error    { return nil }
func (c *slewPanics) SetHardware(time.Time) error { return nil }
func (c *slewPanics) count() int                  { c.mu.Lock(); defer c.mu.Unlock(); return c.slews }
func (c *slewPanics) Slew(d, poll time.Duration) (err error) {
	c.mu.Lock()
	c.slews++
	n := c.slews
	c.mu.Unlock()
	if n == 1 {
		panic("adjtimex broke")
	}
	return nil
}

// A panic in the clock's discipline is logged with its stack and the
// discipline starts again: the node's clock stays kept, and the process
// (PID 1 on a node) stays up.
func TestDisciplineRestartsAfterPanic(t *testing.T) {
	buf := syncbuf.CaptureLog(t)
	srv, err := ntptest.Listen("127.0.0.1:0", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	clock := &slewPanics{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	keepDisciplined(ctx, []string{srv.Addr()}, []timesync.Option{timesync.WithClock(clock)})
	for end := time.Now().Add(10 * time.Second); clock.count() < 2; {
		if time.Now().After(end) {
			t.Fatalf("the discipline did not start again after its panic:\n%s", buf.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	waitLog(t, buf, `msg=panic in="clock discipline" panic="adjtimex broke" stack=`, time.Second)
	if !strings.Contains(buf.String(), "timesync.Discipline") {
		t.Errorf("the panic's stack is not logged:\n%s", buf.String())
	}
}

// A panic in the certificates' re-issue after a clock step is logged with
// its stack and returns to the discipline, which goes on.
func TestClockStepReissuePanic(t *testing.T) {
	buf := syncbuf.CaptureLog(t)
	broken := func() { panic("etcd step broke") }
	reissue.Store(&broken)
	defer reissue.Store(nil)
	onClockStep(time.Now(), time.Now().Add(time.Hour))
	waitLog(t, buf, `msg=panic in="certificate re-issue after a clock step" panic="etcd step broke" stack=`, time.Second)
}
