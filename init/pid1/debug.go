package pid1

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/rke2os/rke2os/init/shared/config"
	"github.com/rke2os/rke2os/init/shared/console"
	"github.com/rke2os/rke2os/init/shared/goroutine"
	"github.com/rke2os/rke2os/init/shared/layout"
	"github.com/rke2os/rke2os/init/shared/procstat"
	"github.com/rke2os/rke2os/internal/backoff"
)

// tailLogs copies new lines of the services' log files to the console
// (config debug: {logs: true}) every interval: on a VM without a shell,
// the console is the only window into why a pod does not start.
func tailLogs(ctx context.Context, files map[string]string, every time.Duration) {
	for name, path := range files {
		// Kept across a restart after a panic: what was copied is not
		// copied again.
		var off int64
		goroutine.Keep(ctx, "debug logs "+name, func(ctx context.Context) { tailLog(ctx, name, path, &off, every) })
	}
}

// tailLog copies the lines added to path from *off on, every interval,
// until ctx ends. The interval is an argument, not a variable a test
// shortens: the goroutine outlives the test's cancel, and a test putting
// the variable back raced with its read.
func tailLog(ctx context.Context, name, path string, off *int64, every time.Duration) {
	for {
		if !backoff.Sleep(ctx, every) {
			return
		}
		f, err := os.Open(path)
		if err != nil {
			continue
		}
		if fi, err := f.Stat(); err == nil && fi.Size() < *off {
			*off = 0 // rotated
		}
		if _, err := f.Seek(*off, io.SeekStart); err == nil {
			r := bufio.NewReader(f)
			for {
				line, err := r.ReadString('\n')
				if err != nil {
					break
				}
				*off += int64(len(line))
				slog.Info("log", "service", name, "line", line[:len(line)-1])
			}
		}
		f.Close()
	}
}

// startCPULog logs the machine's CPU use every interval (see logCPU) until
// ctx ends, starting again after a panic.
func startCPULog(ctx context.Context, proc string, every time.Duration) {
	goroutine.Keep(ctx, "debug cpu", func(ctx context.Context) { logCPU(ctx, proc, every) })
}

// logCPU logs every interval how busy the machine was and which commands
// used its CPU (config debug: {cpu: true}): under emulation or on a small
// machine, where a control plane's time goes.
func logCPU(ctx context.Context, proc string, every time.Duration) {
	before, err := procstat.ReadProcCPU(proc)
	have := err == nil
	for {
		if !backoff.Sleep(ctx, every) {
			return
		}
		now, err := procstat.ReadProcCPU(proc)
		if err != nil {
			slog.Warn("cpu", "err", err)
			have = false
			continue
		}
		if have {
			uses, busy := now.CPUSince(before, 10)
			top := make([]string, len(uses))
			for i, u := range uses {
				top[i] = u.String()
			}
			slog.Info("cpu", "busy", fmt.Sprintf("%.2f", busy), "top", strings.Join(top, " "))
		}
		before, have = now, true
	}
}

// Where the debug hooks listen and the file of their token (config
// debug: {hooks: true}).
const (
	debugHooksAddr      = config.DebugHooksAddr
	debugHooksTokenFile = layout.DebugHooksToken
)

// maxHookConns bounds the connections the hooks serve at once; the next
// ones wait in the listen queue. With hookDeadline, it bounds what a caller
// without the token can hold.
const maxHookConns = 4

// hookDeadline bounds a connection's request and reply.
const hookDeadline = 10 * time.Second

// maxHookRequest bounds the bytes read of a request (a hook has no body).
const maxHookRequest = 8192

// serveDebugHooks lets tests act inside the node: POST
// /debug/signal?service=kubelet&signal=KILL signals a supervised service.
// It is off unless the config asks for it, and never for production nodes.
// The hooks listen only on the guest's address on QEMU's user network,
// which QEMU's port forwarding reaches, and answer only requests that
// carry the token in debugHooksTokenFile: the node's own pods reach that
// address too. Without the address or the token, the hooks are not served.
func serveDebugHooks(signal func(string, syscall.Signal) error) {
	if _, err := startHooks(net.Listen, debugHooksAddr, debugHooksTokenFile, signal); err != nil {
		slog.Warn("debug hooks not served", "err", err)
		return
	}
	slog.Warn("debug hooks listening: not for production", "addr", debugHooksAddr, "token", debugHooksTokenFile)
}

// startHooks reads the token in tokenFile, then serves the hooks on addr
// (listened on with listen) until the listener it returns is closed.
// Without a valid token nothing listens.
func startHooks(listen func(network, addr string) (net.Listener, error), addr, tokenFile string,
	signal func(string, syscall.Signal) error) (net.Listener, error) {
	b, err := os.ReadFile(tokenFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no token in %s: add a write_files entry with that path, permissions \"0600\" "+
			"and a random secret of at least %d characters, and send it as \"Authorization: Bearer <secret>\"", tokenFile, config.MinDebugHooksToken)
	}
	if err != nil {
		return nil, fmt.Errorf("the token file: %w", err)
	}
	token, err := config.DebugHooksToken(tokenFile, b)
	if err != nil {
		return nil, fmt.Errorf("%w: write a random secret of at least %d characters there (write_files)", err, config.MinDebugHooksToken)
	}
	l, err := listen("tcp", addr)
	if errors.Is(err, syscall.EADDRNOTAVAIL) {
		return nil, fmt.Errorf("%s is not an address of this node: the hooks serve only QEMU's user network (-netdev user), "+
			"whose guest address it is, and no other network", addr)
	}
	if err != nil {
		return nil, err
	}
	serveHooks(l, token, signal)
	return l, nil
}

// serveHooks answers the hooks' requests on l in the background, until l
// is closed: maxHookConns at a time, each bounded by hookDeadline and
// maxHookRequest, and acted on only with token. A panic in the accept
// loop starts it again; one in a request's handling costs that connection.
func serveHooks(l net.Listener, token string, signal func(string, syscall.Signal) error) {
	goroutine.Keep(context.Background(), "debug hooks", func(context.Context) {
		// Made again after a panic, which may have lost a slot.
		slots := make(chan struct{}, maxHookConns)
		for {
			// A slot first: the connections beyond the limit wait in
			// the kernel's queue, not in goroutines of PID 1.
			slots <- struct{}{}
			c, err := l.Accept()
			if err != nil {
				<-slots
				slog.Error("debug hooks", "err", err)
				return
			}
			goroutine.Go("debug hook request", func() {
				defer func() { <-slots }()
				defer c.Close()
				c.SetDeadline(time.Now().Add(hookDeadline))
				code, msg := debugRequest(bufio.NewReader(io.LimitReader(c, maxHookRequest)), c.RemoteAddr().String(), token, signal)
				fmt.Fprintf(c, "HTTP/1.0 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
					code, statusText[code], len(msg), msg)
			})
		}
	})
}

var statusText = map[int]string{200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed"}

// debugRequest reads one request (its line and headers; a hook has no
// body) from the caller at from and acts on it if it carries token,
// returning the status code and the reply.
func debugRequest(r *bufio.Reader, from, token string, signal func(string, syscall.Signal) error) (int, string) {
	line, err := r.ReadString('\n')
	if err != nil {
		return 400, "no request line\n"
	}
	var auth string
	for { // headers, up to the blank line
		h, err := r.ReadString('\n')
		if err != nil {
			return 400, "headers not terminated\n"
		}
		if strings.TrimSpace(h) == "" {
			break
		}
		if k, v, ok := strings.Cut(h, ":"); ok && strings.EqualFold(strings.TrimSpace(k), "Authorization") {
			auth = strings.TrimSpace(v)
		}
	}
	f := strings.Fields(line)
	if len(f) != 3 || !strings.HasPrefix(f[2], "HTTP/1.") {
		return 400, "not an HTTP/1 request line\n"
	}
	if !tokenMatches(auth, token) {
		why := "no token"
		if auth != "" {
			why = "wrong token"
		}
		slog.Warn("debug hooks: refused", "remote", from, "request", f[0]+" "+f[1], "reason", why)
		console.Event(console.EventDebugHookRefused, "remote", from, "request", f[0]+" "+f[1], "reason", why)
		return 401, "send the token of " + debugHooksTokenFile + " as \"Authorization: Bearer <token>\"\n"
	}
	u, err := url.ParseRequestURI(f[1])
	if err != nil {
		return 400, err.Error() + "\n"
	}
	if u.Path != "/debug/signal" {
		return 404, "no hook at " + u.Path + "\n"
	}
	if f[0] != "POST" {
		return 405, "use POST\n"
	}
	q := u.Query()
	name, signame := q.Get("service"), q.Get("signal")
	sig := map[string]syscall.Signal{"KILL": syscall.SIGKILL, "TERM": syscall.SIGTERM}[signame]
	if sig == 0 {
		return 400, "signal must be KILL or TERM\n"
	}
	if err := signal(name, sig); err != nil {
		return 404, err.Error() + "\n"
	}
	slog.Warn("debug hook: signalled", "service", name, "signal", signame, "remote", from)
	return 200, fmt.Sprintf("signalled %s\n", name)
}

// tokenMatches reports whether the value of an Authorization header is
// "Bearer <token>". The comparison takes the same time wherever the
// values differ, and, on their hashes, whatever their lengths: the time
// of a refusal tells nothing about the token.
func tokenMatches(auth, token string) bool {
	scheme, got, _ := strings.Cut(auth, " ")
	if !strings.EqualFold(scheme, "Bearer") || token == "" {
		return false
	}
	a, b := sha256.Sum256([]byte(strings.TrimSpace(got))), sha256.Sum256([]byte(token))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}
