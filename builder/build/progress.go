package build

import (
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"
)

// Progress reports the long steps of a build.
type Progress interface {
	// Step announces a step; the returned func marks it done.
	Step(name string) (done func())
}

// logProgress writes plain log lines, for logs and CI.
type logProgress struct{}

func (logProgress) Step(name string) func() {
	start := time.Now()
	slog.Info("step", "name", name)
	return func() { slog.Info("done", "name", name, "seconds", fmt.Sprintf("%.2f", time.Since(start).Seconds())) }
}

// TerminalProgress redraws one status line with the running step and its
// elapsed time, for a person watching a terminal.
type TerminalProgress struct {
	W io.Writer
}

// Step implements Progress.
func (t TerminalProgress) Step(name string) func() {
	start := time.Now()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		spin := `|/-\`
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
				fmt.Fprintf(t.W, "\r\033[K%c %s %.1fs", spin[i%len(spin)], name, time.Since(start).Seconds())
			}
		}
	}()
	return func() {
		close(stop)
		wg.Wait()
		fmt.Fprintf(t.W, "\r\033[K✓ %s %.1fs\n", name, time.Since(start).Seconds())
	}
}
