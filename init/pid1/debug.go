package pid1

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"os"
	"time"
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
