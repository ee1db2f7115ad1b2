// Package console is how the init speaks: the boot timeline's milestone
// lines, plain-words error lines, and structured logs, all on the system
// console (and the kernel log, so that dmesg has them too).
//
// The milestone and error lines are a contract read by the QEMU tests and
// the benchmarks: `rke2-init milestone=<name> t=<seconds since kernel start>`.
package console

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

var (
	mu   sync.Mutex
	out  io.Writer = os.Stderr
	kmsg io.Writer
	seen = map[string]bool{}
)

// Open points the console at /dev/console and the kernel log at /dev/kmsg,
// once devtmpfs is mounted. Before that, PID 1's stderr is the console the
// kernel opened for it.
func Open() {
	mu.Lock()
	defer mu.Unlock()
	if f, err := os.OpenFile("/dev/console", os.O_WRONLY|unix.O_NOCTTY, 0); err == nil {
		out = f
	}
	if f, err := os.OpenFile("/dev/kmsg", os.O_WRONLY, 0); err == nil {
		kmsg = f
	}
	slog.SetDefault(Logger())
}

// Uptime is the time since the kernel started, in seconds.
func Uptime() float64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return 0
	}
	return float64(ts.Sec) + float64(ts.Nsec)/1e9
}

// Milestone logs a boot timeline milestone, once per name.
func Milestone(name string) {
	mu.Lock()
	defer mu.Unlock()
	if seen[name] {
		return
	}
	seen[name] = true
	writeLine("milestone=" + name + " t=" + strconv.FormatFloat(Uptime(), 'f', 3, 64))
}

// Error logs an error line in plain words, for a person at the console.
func Error(err error) {
	mu.Lock()
	defer mu.Unlock()
	writeLine("error=" + quote(err.Error()))
}

func writeLine(s string) {
	line := "rke2-init " + s + "\n"
	io.WriteString(out, line)
	if kmsg != nil {
		// Level 7 (debug): dmesg keeps it, the console does not print it twice.
		io.WriteString(kmsg, "<15>"+line)
	}
}

func quote(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\"=\n") {
		return s
	}
	return strconv.Quote(s)
}

// Logger returns a logfmt logger writing to the console.
func Logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(writer{}, &slog.HandlerOptions{
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			// The kernel's timestamps are on the console already.
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
}

type writer struct{}

func (writer) Write(p []byte) (int, error) {
	mu.Lock()
	defer mu.Unlock()
	return fmt.Fprintf(out, "rke2-init %s", p)
}
