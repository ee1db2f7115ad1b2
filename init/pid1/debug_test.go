package pid1

import (
	"bufio"
	"context"
	"errors"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rke2os/rke2os/internal/syncbuf"
)

func TestDebugRequest(t *testing.T) {
	var got []string
	signal := func(name string, sig syscall.Signal) error {
		if name != "kubelet" {
			return errors.New("no service " + name)
		}
		got = append(got, name+":"+sig.String())
		return nil
	}
	for _, tc := range []struct {
		req  string
		code int
	}{
		{"POST /debug/signal?service=kubelet&signal=KILL HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 200},
		{"POST /debug/signal?service=kubelet&signal=TERM HTTP/1.0\r\n\r\n", 200},
		{"POST /debug/signal?service=kubelet&signal=HUP HTTP/1.1\r\n\r\n", 400},
		{"POST /debug/signal?service=etcd&signal=KILL HTTP/1.1\r\n\r\n", 404},
		{"GET /debug/signal?service=kubelet&signal=KILL HTTP/1.1\r\n\r\n", 405},
		{"POST /other HTTP/1.1\r\n\r\n", 404},
		{"POST /debug/signal?service=kubelet&signal=KILL HTTP/1.1\r\nHost: x\r\n", 400}, // cut short
		{"hello\r\n\r\n", 400},
		{"", 400},
	} {
		code, msg := debugRequest(bufio.NewReader(strings.NewReader(tc.req)), signal)
		if code != tc.code {
			t.Errorf("%q: %d %q, want %d", tc.req, code, msg, tc.code)
		}
	}
	if want := []string{"kubelet:killed", "kubelet:terminated"}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("signalled %v, want %v", got, want)
	}
}

// debug.cpu: a line per interval with the machine's busy share and the
// commands that ran, this test's own among them while it spins.
func TestLogCPU(t *testing.T) {
	buf := syncbuf.CaptureLog(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { logCPU(ctx, "/proc", 300*time.Millisecond); close(done) }()
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end) && strings.Count(buf.String(), "msg=cpu") < 2; {
		for i := 0; i < 1e6; i++ { // spin: this command uses the CPU
		}
	}
	cancel()
	<-done
	out := buf.String()
	if !regexp.MustCompile(`msg=cpu busy=[01]\.\d\d top="[^"]*pid1\.test=\d+\.\d`).MatchString(out) {
		t.Fatalf("no cpu line naming this test's command:\n%s", out)
	}
}

// A proc root that cannot be read is a warning per interval, not a crash.
func TestLogCPUWarns(t *testing.T) {
	buf := syncbuf.CaptureLog(t)
	ctx, cancel := context.WithTimeout(context.Background(), 250*time.Millisecond)
	defer cancel()
	logCPU(ctx, t.TempDir(), 50*time.Millisecond)
	if out := buf.String(); !strings.Contains(out, `level=WARN msg=cpu err="cpu times:`) || strings.Contains(out, "busy=") {
		t.Fatalf("want warnings and no figures:\n%s", out)
	}
}
