package supervise

import (
	"bufio"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
)

// DefaultMaxLogSize is where a service's log file is rotated when the
// service sets no MaxLogSize. A node runs for months: an uncapped kubelet
// log would fill the state partition.
const DefaultMaxLogSize = 10 << 20

// ringLines is how many of a service's last output lines are kept in
// memory, to put in error messages when it exits.
const ringLines = 200

// maxLine is the longest line kept whole; a longer one is split, so that a
// child printing without newlines cannot make the reader buffer without end.
const maxLine = 64 << 10

// serviceLog is where a service's output goes: a size-capped file (rotated
// to path.1) and a ring of its last lines. Every run of the service, and any
// grandchild still holding an old pipe, writes to the same serviceLog.
type serviceLog struct {
	path string // "" keeps output in memory only
	max  int64

	mu      sync.Mutex
	f       *os.File
	size    int64
	failed  bool // the file could not be opened; said once, not per line
	ring    [ringLines]string
	next    int // where the next line goes in ring
	counted int // lines ever written, capped at ringLines
}

func newServiceLog(path string, max int64) *serviceLog {
	if max <= 0 {
		max = DefaultMaxLogSize
	}
	return &serviceLog{path: path, max: max}
}

// readFrom copies r line by line into the log until EOF, then closes r and
// done.
func (l *serviceLog) readFrom(r io.ReadCloser, done chan<- struct{}) {
	defer close(done)
	defer r.Close()
	br := bufio.NewReaderSize(r, maxLine)
	for {
		b, err := br.ReadSlice('\n')
		if len(b) > 0 {
			if b[len(b)-1] == '\n' {
				b = b[:len(b)-1]
			}
			l.line(string(b))
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return
		}
	}
}

// line records one line of output.
func (l *serviceLog) line(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ring[l.next] = s
	l.next = (l.next + 1) % ringLines
	if l.counted < ringLines {
		l.counted++
	}
	l.writeFile(s + "\n")
}

func (l *serviceLog) writeFile(s string) {
	if l.path == "" || l.failed {
		return
	}
	if l.f == nil && !l.open() {
		return
	}
	if l.size > 0 && l.size+int64(len(s)) > l.max {
		l.rotate()
		if !l.open() {
			return
		}
	}
	n, err := l.f.WriteString(s)
	l.size += int64(n)
	if err != nil {
		slog.Warn("service log write failed; keeping output in memory only", "file", l.path, "err", err)
		l.f.Close()
		l.f, l.failed = nil, true
	}
}

// open opens the log file for appending, so that the output of earlier
// boots is kept until the cap rotates it away.
func (l *serviceLog) open() bool {
	if err := os.MkdirAll(filepath.Dir(l.path), 0o755); err != nil {
		slog.Warn("service log unavailable; keeping output in memory only", "file", l.path, "err", err)
		l.failed = true
		return false
	}
	if fi, err := os.Stat(l.path); err == nil && fi.Size() >= l.max {
		l.rotate()
	}
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		slog.Warn("service log unavailable; keeping output in memory only", "file", l.path, "err", err)
		l.failed = true
		return false
	}
	l.f = f
	l.size = 0
	if fi, err := f.Stat(); err == nil {
		l.size = fi.Size()
	}
	return true
}

// rotate moves the full file to path.1, replacing the previous one, and
// starts an empty file on the next write.
func (l *serviceLog) rotate() {
	if l.f != nil {
		l.f.Close()
		l.f = nil
	}
	if err := os.Rename(l.path, l.path+".1"); err != nil && !errors.Is(err, os.ErrNotExist) {
		slog.Warn("service log rotation failed; truncating instead", "file", l.path, "err", err)
		_ = os.Truncate(l.path, 0)
	}
	l.size = 0
}

// close closes the file; a later line opens it again.
func (l *serviceLog) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f != nil {
		l.f.Close()
		l.f = nil
	}
	l.failed = false // a stopped service's next start tries the file again
}

// lastLines returns up to n of the last lines, oldest first.
func (l *serviceLog) lastLines(n int) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	n = min(n, l.counted)
	if n <= 0 {
		return nil
	}
	out := make([]string, n)
	for i := range n {
		out[i] = l.ring[(l.next-n+i+ringLines)%ringLines]
	}
	return out
}
