package network

import (
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rke2os/rke2os/init/shared/config"
	"github.com/rke2os/rke2os/internal/syncbuf"
)

// A panic in a link's DHCP client (its renewal, say) is logged with its
// stack and the client starts again, so that the lease does not run out
// on a node that is still up; the process (PID 1 on a node) stays up.
func TestDHCPClientRestartsAfterPanic(t *testing.T) {
	buf := syncbuf.CaptureLog(t)
	var runs atomic.Int32
	restarted := make(chan struct{})
	runDHCP = func(c *dhcpLink, ctx context.Context) {
		if runs.Add(1) == 1 {
			panic("renewal broke")
		}
		close(restarted)
		<-ctx.Done()
	}
	defer func() { runDHCP = (*dhcpLink).run }()

	s := newState(config.DNS{}, "", slog.Default())
	ctx, cancel := context.WithCancel(context.Background())
	s.keepDHCP(ctx, &dhcpLink{plan: linkPlan{Name: "eth7"}})
	select {
	case <-restarted:
	case <-time.After(10 * time.Second):
		t.Fatalf("the client was not started again:\n%s", buf.String())
	}
	out := buf.String()
	if !strings.Contains(out, `msg=panic in="dhcp eth7" panic="renewal broke" stack=`) || !strings.Contains(out, "network.(*State).keepDHCP") {
		t.Errorf("the panic is not logged with its stack:\n%s", out)
	}
	// The client still ends with ctx, and is then waited for.
	cancel()
	waited := make(chan struct{})
	go func() { s.wg.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(5 * time.Second):
		t.Fatal("the client did not end with its context")
	}
}
