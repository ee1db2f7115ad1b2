package supervise

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// reaper is the test binary's one Reaper. Every test starts its processes
// through it: a cmd.Wait here would race its wait4(-1), as in the init.
var reaper *Reaper

func TestMain(m *testing.M) {
	// Tests do not run as PID 1: become the subreaper of our descendants so
	// that the orphans they leave are ours to reap, as they would be PID 1's.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		fmt.Fprintln(os.Stderr, "PR_SET_CHILD_SUBREAPER:", err)
		os.Exit(1)
	}
	reaper = Reap()
	os.Exit(m.Run())
}

func TestReapIsOnePerProcess(t *testing.T) {
	if Reap() != reaper {
		t.Fatal("Reap returned a second reaper")
	}
	if err := reaper.Start(); err != nil {
		t.Fatalf("Start on the running reaper: %v", err)
	}
	other := NewReaper()
	if err := other.Start(); err == nil {
		t.Fatal("a second Reaper started; it would steal statuses")
	}
	if _, err := other.Spawn(exec.Command("true")); err == nil {
		t.Fatal("Spawn on a Reaper that does not reap succeeded")
	}
}

func TestRun(t *testing.T) {
	tests := []struct {
		name   string
		script string
		want   string // "" for success, else a substring of the error
		out    string
	}{
		{"success", "echo hello", "", "hello\n"},
		{"exit status", "echo bad >&2; exit 3", "exited with status 3", "bad\n"},
		{"signal", "kill -9 $$", "killed by signal 9", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			cmd := exec.Command("/bin/sh", "-c", tt.script)
			cmd.Stdout, cmd.Stderr = &out, &out // copied by exec's goroutines
			err := reaper.Run(cmd)
			if tt.want == "" && err != nil {
				t.Fatalf("Run: %v", err)
			}
			if tt.want != "" {
				var ee *ExitError
				if !errors.As(err, &ee) || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("Run error = %v, want an *ExitError containing %q", err, tt.want)
				}
			}
			if got := out.String(); got != tt.out {
				t.Errorf("output = %q, want %q", got, tt.out)
			}
		})
	}
	t.Run("output kept for the error", func(t *testing.T) {
		err := reaper.Run(exec.Command("/bin/sh", "-c", "echo working; echo 'mkfs: /dev/vdb: no such device' >&2; exit 1"))
		if err == nil || !strings.Contains(err.Error(), `exited with status 1 (last output: "mkfs: /dev/vdb: no such device")`) {
			t.Fatalf("Run = %v", err)
		}
		if got := err.(*ExitError).Lines; len(got) != 2 || got[0] != "working" {
			t.Errorf("Lines = %q", got)
		}
	})
	t.Run("missing program", func(t *testing.T) {
		if err := reaper.Run(exec.Command("/nonexistent/mkfs")); err == nil {
			t.Fatal("Run of a missing program succeeded")
		}
	})
}

// TestReaperDoesNotStealStatuses runs many commands at once, each leaving an
// orphan behind (a double fork, as daemons do), and checks that every one
// gets its own exit status while the orphans are reaped.
func TestReaperDoesNotStealStatuses(t *testing.T) {
	before := reaper.Orphans()
	const n = 40
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			code := i % 7
			// The subshell forks sleep and exits: sleep is orphaned and
			// reparented to us, the subreaper.
			cmd := exec.Command("/bin/sh", "-c", fmt.Sprintf("(sleep 0.0%d &); exit %d", i%10, code))
			err := reaper.Run(cmd)
			switch {
			case code == 0 && err != nil:
				errs <- fmt.Errorf("command %d: want success, got %v", i, err)
			case code != 0:
				var ee *ExitError
				if !errors.As(err, &ee) || !ee.Status.Exited() || ee.Status.ExitStatus() != code {
					errs <- fmt.Errorf("command %d: want exit status %d, got %v", i, code, err)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// Every sleep (and subshell) ends up reaped: no zombie is left and the
	// reaper counted them as orphans.
	deadline := time.Now().Add(5 * time.Second)
	for {
		zombies, live := children(t)
		if zombies == 0 && live == 0 && reaper.Orphans()-before >= n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 5s: %d zombie and %d live children, %d orphans reaped (want >= %d)",
				zombies, live, reaper.Orphans()-before, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSpawnSignal checks that a spawned process can be signalled while it
// runs and that signalling it once reaped is refused, not sent to a pid the
// kernel may have reused.
func TestSpawnSignal(t *testing.T) {
	p, err := reaper.Spawn(exec.Command("sleep", "10"))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("Signal: %v", err)
	}
	ws := p.Wait()
	if !ws.Signaled() || ws.Signal() != syscall.SIGTERM {
		t.Fatalf("status = %v, want killed by SIGTERM", describe(ws))
	}
	if err := p.Signal(syscall.SIGTERM); !errors.Is(err, os.ErrProcessDone) {
		t.Fatalf("Signal after exit = %v, want ErrProcessDone", err)
	}
}

// children counts this process's zombie and live children.
func children(t *testing.T) (zombies, live int) {
	t.Helper()
	me := os.Getpid()
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...; comm may hold spaces, so split after ')'.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 2 {
			continue
		}
		if ppid, _ := strconv.Atoi(f[1]); ppid != me {
			continue
		}
		if f[0] == "Z" {
			zombies++
		} else {
			live++
		}
	}
	return zombies, live
}

// TestStatusKeptUntilWaited is the case that breaks exec.Cmd.Wait under a
// wait4(-1) reaper ("waitid: no child processes"): the child exits before
// anyone waits for it.
func TestStatusKeptUntilWaited(t *testing.T) {
	p, err := reaper.Spawn(exec.Command("/bin/sh", "-c", "exit 42"))
	if err != nil {
		t.Fatal(err)
	}
	<-p.Exited() // reaped by the reaper, not by us
	time.Sleep(20 * time.Millisecond)
	if ws := p.Wait(); !ws.Exited() || ws.ExitStatus() != 42 {
		t.Fatalf("status = %s, want status 42", describe(ws))
	}
}
