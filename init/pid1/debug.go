package pid1

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"syscall"
	"time"

	"github.com/rke2os/rke2os/init/config"
	"github.com/rke2os/rke2os/init/supervise"
)

// tailLogs copies new lines of the services' log files to the console
// (config debug: {logs: true}): on a VM without a shell, the console is the
// only window into why a pod does not start.
func tailLogs(ctx context.Context, files map[string]string) {
	for name, path := range files {
		go func() {
			defer func() { recover() }()
			var off int64
			for {
				select {
				case <-ctx.Done():
					return
				case <-time.After(2 * time.Second):
				}
				f, err := os.Open(path)
				if err != nil {
					continue
				}
				if fi, err := f.Stat(); err == nil && fi.Size() < off {
					off = 0 // rotated
				}
				if _, err := f.Seek(off, io.SeekStart); err == nil {
					r := bufio.NewReader(f)
					for {
						line, err := r.ReadString('\n')
						if err != nil {
							break
						}
						off += int64(len(line))
						slog.Info("log", "service", name, "line", line[:len(line)-1])
					}
				}
				f.Close()
			}
		}()
	}
}

// debugHooksAddr is where the debug hooks listen (config debug: {hooks: true}).
const debugHooksAddr = config.DebugHooksAddr

// serveDebugHooks lets tests act inside the node: POST
// /debug/signal?service=kubelet&signal=KILL signals a supervised service.
// It is off unless the config asks for it, and never for production nodes.
func serveDebugHooks(sup *supervise.Supervisor) {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /debug/signal", func(w http.ResponseWriter, r *http.Request) {
		name := r.URL.Query().Get("service")
		sig := map[string]syscall.Signal{"KILL": syscall.SIGKILL, "TERM": syscall.SIGTERM}[r.URL.Query().Get("signal")]
		if sig == 0 {
			http.Error(w, "signal must be KILL or TERM", http.StatusBadRequest)
			return
		}
		if err := sup.Signal(name, sig); err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		slog.Warn("debug hook: signalled", "service", name, "signal", r.URL.Query().Get("signal"))
		fmt.Fprintf(w, "signalled %s\n", name)
	})
	slog.Warn("debug hooks listening: not for production", "addr", debugHooksAddr)
	go func() {
		defer func() { recover() }()
		if err := http.ListenAndServe(debugHooksAddr, mux); err != nil {
			slog.Error("debug hooks", "err", err)
		}
	}()
}
