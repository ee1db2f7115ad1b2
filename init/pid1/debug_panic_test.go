package pid1

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rke2os/rke2os/internal/syncbuf"
)

// panicOn is a log handler that panics on the first record whose message
// is msg and writes the others into a buffer: a panic inside a goroutine
// that logs, as a broken console would make.
type panicOn struct {
	slog.Handler
	msg      string
	panicked *atomic.Bool
}

func (h panicOn) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == h.msg && h.panicked.CompareAndSwap(false, true) {
		panic("console broke")
	}
	return h.Handler.Handle(ctx, r)
}

// logPanicOn sends slog's default logger into a buffer, with a panic at
// the first record whose message is msg.
func logPanicOn(t *testing.T, msg string) *syncbuf.Buffer {
	t.Helper()
	var buf syncbuf.Buffer
	old := slog.Default()
	slog.SetDefault(slog.New(panicOn{slog.NewTextHandler(&buf, nil), msg, new(atomic.Bool)}))
	t.Cleanup(func() { slog.SetDefault(old) })
	return &buf
}

// debug.logs: a panic while copying a log is logged with its stack, and
// the copy starts again where it was (no line copied twice).
func TestTailLogsRestartsAfterPanic(t *testing.T) {
	buf := logPanicOn(t, "log")
	path := filepath.Join(t.TempDir(), "kubelet.log")
	os.WriteFile(path, []byte("one\n"), 0o644)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tailLogs(ctx, map[string]string{"kubelet": path}, 20*time.Millisecond)
	waitLog(t, buf, `msg=panic in="debug logs kubelet" panic="console broke" stack=`, 5*time.Second)
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("two\n")
	f.Close()
	waitLog(t, buf, "msg=log service=kubelet line=two", 5*time.Second)
	time.Sleep(100 * time.Millisecond)
	if out := buf.String(); strings.Count(out, "line=") != 1 {
		t.Errorf("want only line two copied (one went with the panic):\n%s", out)
	}
}

// debug.cpu: a panic in the CPU log is logged with its stack, and the log
// starts again.
func TestCPULogRestartsAfterPanic(t *testing.T) {
	buf := logPanicOn(t, "cpu")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	startCPULog(ctx, "/proc", 50*time.Millisecond)
	waitLog(t, buf, `msg=panic in="debug cpu" panic="console broke" stack=`, 5*time.Second)
	waitLog(t, buf, "msg=cpu busy=", 5*time.Second)
}

// panicAccept is a listener whose first Accept panics.
type panicAccept struct {
	net.Listener
	calls atomic.Int32
}

func (l *panicAccept) Accept() (net.Conn, error) {
	if l.calls.Add(1) == 1 {
		panic("accept broke")
	}
	return l.Listener.Accept()
}

// hookRequest sends one raw request to the hooks at addr and returns the
// reply ("" when the connection closed without one).
func hookRequest(t *testing.T, addr, req string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, req)
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("reading the reply: %v", err)
	}
	return string(b)
}

// debug.hooks: a panic in the accept loop starts it again; one in a
// request's handling costs that connection only.
func TestDebugHooksSurvivePanics(t *testing.T) {
	buf := syncbuf.CaptureLog(t)
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &panicAccept{Listener: inner}
	defer l.Close()
	var signals atomic.Int32
	serveHooks(l, testToken, func(name string, sig syscall.Signal) error {
		if signals.Add(1) == 1 {
			panic("signal broke")
		}
		return nil
	})
	req := "POST /debug/signal?service=kubelet&signal=KILL HTTP/1.0\r\nAuthorization: Bearer " + testToken + "\r\n\r\n"
	if got := hookRequest(t, l.Addr().String(), req); got != "" {
		t.Errorf("the request whose handling panicked got a reply: %q", got)
	}
	if got := hookRequest(t, l.Addr().String(), req); !strings.HasPrefix(got, "HTTP/1.0 200 OK\r\n") {
		t.Errorf("the next request: %q, want 200", got)
	}
	// The connection closes before its panic is logged.
	for _, want := range []string{`msg=panic in="debug hooks" panic="accept broke" stack=`, `msg=panic in="debug hook request" panic="signal broke" stack=`} {
		waitLog(t, buf, want, 5*time.Second)
	}
}
