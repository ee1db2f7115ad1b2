package supervise

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestLastLines(t *testing.T) {
	tests := []struct {
		name    string
		written int
		n       int
		want    []string
	}{
		{"nothing written", 0, 5, nil},
		{"fewer than asked", 2, 5, []string{"line 0", "line 1"}},
		{"last three", 10, 3, []string{"line 7", "line 8", "line 9"}},
		{"wrapped ring", 450, 2, []string{"line 448", "line 449"}},
		{"more than kept", 450, 1000, lines(250, 450)},
		{"zero", 10, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newServiceLog("", 0)
			for i := range tt.written {
				l.line(fmt.Sprintf("line %d", i))
			}
			if got := l.lastLines(tt.n); !slices.Equal(got, tt.want) {
				t.Errorf("lastLines(%d) = %q, want %q", tt.n, got, tt.want)
			}
		})
	}
}

func lines(from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("line %d", i))
	}
	return out
}

func TestLogRotation(t *testing.T) {
	tests := []struct {
		name     string
		max      int64
		existing int64 // bytes already in the file from an earlier boot
		lines    int   // lines of 10 bytes ("line 0000\n") written
		wantCur  int64 // size of the file after
		wantOld  int64 // size of file.1 after, -1 for none
	}{
		{"under the cap", 100, 0, 5, 50, -1},
		{"exactly the cap", 100, 0, 10, 100, -1},
		{"one over", 100, 0, 11, 10, 100},
		{"rotated twice", 100, 0, 25, 50, 100},
		{"earlier boot counts", 100, 95, 1, 10, 95},
		{"earlier boot over the cap", 100, 150, 2, 20, 150},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "log", "svc.log") // the directory is created
			if tt.existing > 0 {
				os.MkdirAll(filepath.Dir(path), 0o755)
				os.WriteFile(path, []byte(strings.Repeat("x", int(tt.existing))), 0o640)
			}
			l := newServiceLog(path, tt.max)
			for i := range tt.lines {
				l.line(fmt.Sprintf("line %04d", i))
			}
			l.close()
			if got := size(path); got != tt.wantCur {
				t.Errorf("%s is %d bytes, want %d", path, got, tt.wantCur)
			}
			if got := size(path + ".1"); got != tt.wantOld {
				t.Errorf("%s.1 is %d bytes, want %d", path, got, tt.wantOld)
			}
			// The newest line is always the last of the current file.
			b, _ := os.ReadFile(path)
			if want := fmt.Sprintf("line %04d\n", tt.lines-1); !strings.HasSuffix(string(b), want) {
				t.Errorf("%s ends %q, want %q", path, tail(string(b)), want)
			}
		})
	}
}

func size(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return -1
	}
	return fi.Size()
}

func tail(s string) string { return s[max(0, len(s)-20):] }

// TestLogUnwritable keeps the output in memory when the file cannot be
// written: a missing /var/log must not keep containerd from starting.
func TestLogUnwritable(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "file"), nil, 0o644)
	l := newServiceLog(filepath.Join(dir, "file", "svc.log"), 0) // parent is a file
	l.line("still kept")
	if got := l.lastLines(1); !slices.Equal(got, []string{"still kept"}) {
		t.Fatalf("lastLines = %q", got)
	}
}

func TestReadFromSplitsLongLines(t *testing.T) {
	l := newServiceLog("", 0)
	r, w := io.Pipe()
	done := make(chan struct{})
	go l.readFrom(r, done)
	long := strings.Repeat("a", maxLine+10)
	io.WriteString(w, "first\n"+long+"\nno newline at the end")
	w.Close()
	<-done
	got := l.lastLines(10)
	want := []string{"first", long[:maxLine], long[maxLine:], "no newline at the end"}
	if !slices.Equal(got, want) {
		t.Fatalf("lines: got %d, want %d (%q...)", len(got), len(want), got[0])
	}
}
