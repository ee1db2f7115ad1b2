package pid1

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rke2os/rke2os/internal/syncbuf"
)

// testToken is the debug hooks' token in the tests.
const testToken = "0123456789abcdef-test"

// A hook acts only on a request with the token; the others are refused
// with 401 and logged with the caller's address, and parsed no further.
func TestDebugRequest(t *testing.T) {
	buf := syncbuf.CaptureLog(t)
	var got []string
	signal := func(name string, sig syscall.Signal) error {
		if name != "kubelet" {
			return errors.New("no service " + name)
		}
		got = append(got, name+":"+sig.String())
		return nil
	}
	const auth = "Authorization: Bearer " + testToken + "\r\n"
	for _, tc := range []struct {
		req  string
		code int
	}{
		{"POST /debug/signal?service=kubelet&signal=KILL HTTP/1.1\r\nHost: x\r\n" + auth + "Content-Length: 0\r\n\r\n", 200},
		{"POST /debug/signal?service=kubelet&signal=TERM HTTP/1.0\r\nauthorization:  bearer  " + testToken + " \r\n\r\n", 200},
		{"POST /debug/signal?service=kubelet&signal=KILL HTTP/1.1\r\n\r\n", 401},
		{"POST /debug/signal?service=kubelet&signal=KILL HTTP/1.1\r\nAuthorization: Bearer wrong-token-of-some-length\r\n\r\n", 401},
		{"POST /debug/signal?service=kubelet&signal=KILL HTTP/1.1\r\nAuthorization: Bearer " + testToken + "x\r\n\r\n", 401},
		{"POST /debug/signal?service=kubelet&signal=KILL HTTP/1.1\r\nAuthorization: Bearer " + testToken[:len(testToken)-1] + "\r\n\r\n", 401},
		{"POST /debug/signal?service=kubelet&signal=KILL HTTP/1.1\r\nAuthorization: Basic " + testToken + "\r\n\r\n", 401},
		{"POST /debug/signal?service=kubelet&signal=KILL HTTP/1.1\r\nAuthorization: Bearer\r\n\r\n", 401},
		{"POST /debug/signal?service=kubelet&signal=KILL HTTP/1.1\r\nX-Authorization: Bearer " + testToken + "\r\n\r\n", 401},
		{"GET /other HTTP/1.1\r\n\r\n", 401}, // nothing is told without the token
		{"POST /debug/signal?service=kubelet&signal=HUP HTTP/1.1\r\n" + auth + "\r\n", 400},
		{"POST /debug/signal?service=etcd&signal=KILL HTTP/1.1\r\n" + auth + "\r\n", 404},
		{"GET /debug/signal?service=kubelet&signal=KILL HTTP/1.1\r\n" + auth + "\r\n", 405},
		{"POST /other HTTP/1.1\r\n" + auth + "\r\n", 404},
		{"POST /debug/signal?service=kubelet&signal=KILL HTTP/1.1\r\n" + auth, 400}, // cut short
		{"hello\r\n\r\n", 400},
		{"", 400},
	} {
		code, msg := debugRequest(bufio.NewReader(strings.NewReader(tc.req)), "192.0.2.7:40000", testToken, signal)
		if code != tc.code {
			t.Errorf("%q: %d %q, want %d", tc.req, code, msg, tc.code)
		}
	}
	if want := []string{"kubelet:killed", "kubelet:terminated"}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("signalled %v, want %v", got, want)
	}
	out := buf.String()
	for _, want := range []string{
		`level=WARN msg="debug hooks: refused" remote=192.0.2.7:40000 request="POST /debug/signal?service=kubelet&signal=KILL" reason="no token"`,
		`level=WARN msg="debug hooks: refused" remote=192.0.2.7:40000 request="POST /debug/signal?service=kubelet&signal=KILL" reason="wrong token"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no %s in the log:\n%s", want, out)
		}
	}
	if n := strings.Count(out, `msg="debug hooks: refused"`); n != 8 {
		t.Errorf("%d refusals logged, want 8:\n%s", n, out)
	}
	if strings.Contains(out, testToken) {
		t.Errorf("the token was logged:\n%s", out)
	}
}

// writeToken writes a token file with content into a test's directory.
func writeToken(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "debug-hooks.token")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// loopback listens on 127.0.0.1 for a test instead of addr, recording it.
func loopback(t *testing.T, addrs *[]string) func(network, addr string) (net.Listener, error) {
	return func(network, addr string) (net.Listener, error) {
		*addrs = append(*addrs, addr)
		l, err := net.Listen(network, "127.0.0.1:0")
		if err == nil {
			t.Cleanup(func() { l.Close() })
		}
		return l, err
	}
}

// The hooks listen on QEMU's user network only: the guest's address there,
// which hostfwd reaches, not every interface (the pods' included). A node
// without that address serves no hooks, and says why.
func TestDebugHooksAddr(t *testing.T) {
	if debugHooksAddr != "10.0.2.15:7557" {
		t.Fatalf("the hooks listen on %q, want 10.0.2.15:7557", debugHooksAddr)
	}
	var addrs []string
	l, err := startHooks(loopback(t, &addrs), debugHooksAddr, writeToken(t, testToken+"\n"), func(string, syscall.Signal) error { return nil })
	if err != nil || l == nil || len(addrs) != 1 || addrs[0] != "10.0.2.15:7557" {
		t.Fatalf("startHooks listened on %q: %v", addrs, err)
	}
	// 192.0.2.1 (TEST-NET-1) is on no machine.
	_, err = startHooks(net.Listen, "192.0.2.1:7557", writeToken(t, testToken), func(string, syscall.Signal) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "192.0.2.1:7557 is not an address of this node: the hooks serve only QEMU's user network") {
		t.Fatalf("listening on an address not on the node: %v", err)
	}
}

// Without a token file of at least 16 characters the hooks are not served
// (nothing listens), and the error names the file and the fix.
func TestDebugHooksNeedAToken(t *testing.T) {
	for _, tc := range []struct {
		name, file, err string
	}{
		{"no file", filepath.Join(t.TempDir(), "debug-hooks.token"), ""}, // the error names the file: set below
		{"empty", writeToken(t, "\n"), "is empty: write a random secret of at least 16 characters there (write_files)"},
		{"short", writeToken(t, "0123456789abcde\n"), "has 15 characters, fewer than 16: write a random secret"},
		{"two words", writeToken(t, "0123456789 abcdef\n"), "must be one word"},
		{"a directory", t.TempDir(), "the token file: read "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var addrs []string
			l, err := startHooks(loopback(t, &addrs), debugHooksAddr, tc.file, func(string, syscall.Signal) error {
				t.Error("signalled")
				return nil
			})
			if l != nil || len(addrs) != 0 {
				t.Fatalf("listened on %q", addrs)
			}
			if err == nil {
				t.Fatal("no error")
			}
			if tc.name == "no file" {
				tc.err = "no token in " + tc.file + `: add a write_files entry with that path, permissions "0600" and a random secret of at least 16 characters, ` +
					`and send it as "Authorization: Bearer <secret>"`
			}
			if !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("error %q, want %q in it", err, tc.err)
			}
		})
	}
}

// Over a connection: no token and a wrong one are refused (401) and logged
// with the caller's address, the service not signalled; the right one
// signals it.
func TestDebugHooksToken(t *testing.T) {
	buf := syncbuf.CaptureLog(t)
	var signalled atomic.Int32
	var addrs []string
	l, err := startHooks(loopback(t, &addrs), debugHooksAddr, writeToken(t, testToken+"\n"), func(name string, sig syscall.Signal) error {
		if name == "kubelet" && sig == syscall.SIGKILL {
			signalled.Add(1)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	const req = "POST /debug/signal?service=kubelet&signal=KILL HTTP/1.0\r\n"
	for _, tc := range []struct{ name, headers, reply, log string }{
		{"no token", "", "HTTP/1.0 401 Unauthorized\r\n", `reason="no token"`},
		{"wrong token", "Authorization: Bearer fedcba9876543210-test\r\n", "HTTP/1.0 401 Unauthorized\r\n", `reason="wrong token"`},
	} {
		if got := hookRequest(t, l.Addr().String(), req+tc.headers+"\r\n"); !strings.HasPrefix(got, tc.reply) {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.reply)
		}
		waitLog(t, buf, `msg="debug hooks: refused" remote=127.0.0.1:`, time.Second)
		if !regexp.MustCompile(`msg="debug hooks: refused" remote=127\.0\.0\.1:\d+ request="POST [^"]*" ` + tc.log).MatchString(buf.String()) {
			t.Errorf("%s: no refusal with the caller's address logged:\n%s", tc.name, buf.String())
		}
	}
	if n := signalled.Load(); n != 0 {
		t.Fatalf("signalled %d times without the token", n)
	}
	if got := hookRequest(t, l.Addr().String(), req+"Authorization: Bearer "+testToken+"\r\n\r\n"); !strings.HasPrefix(got, "HTTP/1.0 200 OK\r\n") {
		t.Errorf("with the token: %q, want 200", got)
	}
	if n := signalled.Load(); n != 1 {
		t.Fatalf("signalled %d times with the token, want 1", n)
	}
}

// At most four connections are served at once: a fifth waits (in the
// listen queue) until one of them ends, then is served.
func TestDebugHooksConnLimit(t *testing.T) {
	syncbuf.CaptureLog(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	serveHooks(l, testToken, func(string, syscall.Signal) error { return nil })
	var idle []net.Conn
	for range 4 {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		idle = append(idle, c) // says nothing: holds its connection until the deadline
	}
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "POST /debug/signal?service=kubelet&signal=KILL HTTP/1.0\r\nAuthorization: Bearer "+testToken+"\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	if n, err := c.Read(make([]byte, 1)); n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the fifth connection was served beside four others: %d bytes, %v", n, err)
	}
	idle[0].Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil || !strings.HasPrefix(string(b), "HTTP/1.0 200 OK\r\n") {
		t.Fatalf("once one ended, the fifth got %q, %v; want 200", b, err)
	}
}

// A connection that sends more than maxHookRequest bytes without ending
// its headers is answered 400 and closed, not read on.
func TestDebugHooksRequestSize(t *testing.T) {
	syncbuf.CaptureLog(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	serveHooks(l, testToken, func(string, syscall.Signal) error { return nil })
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	go io.WriteString(c, "POST /debug/signal HTTP/1.0\r\nX: "+strings.Repeat("a", 2*maxHookRequest))
	b, err := io.ReadAll(c)
	if !strings.HasPrefix(string(b), "HTTP/1.0 400 Bad Request\r\n") {
		t.Fatalf("an endless header got %q, %v; want 400", b, err)
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
