package pid1

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/rke2os/rke2os/init/config"
	"github.com/rke2os/rke2os/init/goroutine"
	"github.com/rke2os/rke2os/init/host"
	"github.com/rke2os/rke2os/init/supervise"
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
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
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
	before, err := host.ReadProcCPU(proc)
	have := err == nil
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
		now, err := host.ReadProcCPU(proc)
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

// debugHooksAddr is where the debug hooks listen (config debug: {hooks: true}).
const debugHooksAddr = config.DebugHooksAddr

// serveDebugHooks lets tests act inside the node: POST
// /debug/signal?service=kubelet&signal=KILL signals a supervised service.
// It is off unless the config asks for it, and never for production nodes.
// It answers HTTP/1.0 itself, one request per connection, rather than
// bring net/http (and TLS with it) into PID 1 for a test hook.
func serveDebugHooks(sup *supervise.Supervisor) {
	l, err := net.Listen("tcp", debugHooksAddr)
	if err != nil {
		slog.Error("debug hooks", "err", err)
		return
	}
	slog.Warn("debug hooks listening: not for production", "addr", debugHooksAddr)
	serveHooks(l, sup.Signal)
}

// serveHooks answers the hooks' requests on l in the background, until l
// is closed. A panic in the accept loop starts it again; one in a
// request's handling costs that connection.
func serveHooks(l net.Listener, signal func(string, syscall.Signal) error) {
	goroutine.Keep(context.Background(), "debug hooks", func(context.Context) {
		for {
			c, err := l.Accept()
			if err != nil {
				slog.Error("debug hooks", "err", err)
				return
			}
			goroutine.Go("debug hook request", func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				code, msg := debugRequest(bufio.NewReader(io.LimitReader(c, 8192)), signal)
				fmt.Fprintf(c, "HTTP/1.0 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
					code, statusText[code], len(msg), msg)
			})
		}
	})
}

var statusText = map[int]string{200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}

// debugRequest reads one request (its line and headers; a hook has no
// body) and acts on it, returning the status code and the reply.
func debugRequest(r *bufio.Reader, signal func(string, syscall.Signal) error) (int, string) {
	line, err := r.ReadString('\n')
	if err != nil {
		return 400, "no request line\n"
	}
	for { // headers, up to the blank line
		h, err := r.ReadString('\n')
		if err != nil {
			return 400, "headers not terminated\n"
		}
		if strings.TrimSpace(h) == "" {
			break
		}
	}
	f := strings.Fields(line)
	if len(f) != 3 || !strings.HasPrefix(f[2], "HTTP/1.") {
		return 400, "not an HTTP/1 request line\n"
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
	slog.Warn("debug hook: signalled", "service", name, "signal", signame)
	return 200, fmt.Sprintf("signalled %s\n", name)
}
