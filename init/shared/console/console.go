// Package console is how the init speaks: the boot timeline's milestone
// lines, event lines, plain-words error lines, and structured logs, all on
// the system console (and the kernel log, so that dmesg has them too).
//
// The milestone, event and error lines are a contract read by the QEMU
// tests, the benchmarks and operators' scripts:
// `rke2-init milestone=<name> t=<seconds since kernel start>`,
// `rke2-init event=<name> t=<seconds> key=value ...` (events.go names them)
// and `rke2-init error="..."`.
package console

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"unicode"

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

// Event logs an event line: `rke2-init event=<name> t=<seconds since
// kernel start>` and then kv's pairs as key=value, in their order. Keys are
// plain words (not event or t); a value is written as fmt.Sprint writes it,
// quoted as Go quotes strings when it holds a space, a quote, an equals
// sign or a control character, or is empty. Names are the constants of
// events.go.
func Event(name string, kv ...any) {
	mu.Lock()
	defer mu.Unlock()
	writeLine(eventFields(name, Uptime(), kv))
}

// EventLine is the line Event writes at t seconds since kernel start,
// without its newline: for the tests of what reads the console.
func EventLine(name string, t float64, kv ...any) string {
	return prefix + eventFields(name, t, kv)
}

func eventFields(name string, t float64, kv []any) string {
	var b strings.Builder
	b.WriteString("event=" + name + " t=" + strconv.FormatFloat(t, 'f', 3, 64))
	for i := 0; i < len(kv); i += 2 {
		// As slog does: a key that is not a string, or has no value, is
		// written as the value of !BADKEY.
		key, ok := kv[i].(string)
		if !ok || i+1 == len(kv) {
			b.WriteString(" !BADKEY=" + quote(fmt.Sprint(kv[i])))
			i--
			continue
		}
		b.WriteString(" " + key + "=" + quote(fmt.Sprint(kv[i+1])))
	}
	return b.String()
}

// Error logs an error line in plain words, for a person at the console.
func Error(err error) {
	mu.Lock()
	defer mu.Unlock()
	writeLine("error=" + quote(err.Error()))
}

// prefix begins every line of the init on the console.
const prefix = "rke2-init "

func writeLine(s string) {
	line := prefix + s + "\n"
	io.WriteString(out, line)
	if kmsg != nil {
		// Level 7 (debug): dmesg keeps it, the console does not print it twice.
		io.WriteString(kmsg, "<15>"+line)
	}
}

// quote leaves a value bare when a reader can split the line at spaces
// and take it as it is: not empty, no space, quote, equals sign or control
// character (a tab, a newline, a carriage return the serial console's line
// end would swallow).
func quote(s string) string {
	if s != "" && !strings.ContainsFunc(s, needsQuote) {
		return s
	}
	return strconv.Quote(s)
}

func needsQuote(r rune) bool {
	return r == ' ' || r == '"' || r == '=' || unicode.IsControl(r)
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
	return fmt.Fprintf(out, prefix+"%s", p)
}
