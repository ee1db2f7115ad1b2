package supervise

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"log/slog"

	"golang.org/x/sys/unix"
)

const ms = time.Millisecond

// sh is a service running a shell script with $F set to dir.
func sh(name, dir, script string) *Service {
	return &Service{
		Name: name,
		Path: "/bin/sh",
		Args: []string{"-c", script},
		Env:  []string{"F=" + dir, "PATH=" + os.Getenv("PATH")},
	}
}

// fileReady is a Ready probe: the script touches the file once it is set up.
func fileReady(path string) func(context.Context) error {
	return func(context.Context) error {
		_, err := os.Stat(path)
		return err
	}
}

func newSupervisor(t *testing.T) *Supervisor {
	t.Helper()
	s := New(reaper)
	t.Cleanup(func() {
		if err := s.StopAll(time.Second); err != nil {
			t.Errorf("cleanup StopAll: %v", err)
		}
	})
	return s
}

func add(t *testing.T, s *Supervisor, svc *Service, deps ...string) {
	t.Helper()
	if err := s.Add(svc, deps...); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: still waiting for %s", timeout, what)
		}
		time.Sleep(5 * ms)
	}
}

// TestRestartBackoff checks the real gaps between runs of a crashing
// service: they double from Initial up to Max, and a run longer than
// ResetAfter brings the next one back to Initial. The script timestamps its
// own start and end, so the gaps are the ones the processes lived.
func TestRestartBackoff(t *testing.T) {
	dir := t.TempDir()
	svc := sh("crasher", dir, `
		echo start $(date +%s%N) >> $F/times
		n=$(grep -c start $F/times)
		if [ "$n" = 6 ]; then sleep 0.6; fi
		echo end $(date +%s%N) >> $F/times
		exit 1`)
	svc.Backoff = Backoff{Initial: 50 * ms, Max: 400 * ms, ResetAfter: 500 * ms}
	s := newSupervisor(t)
	add(t, s, svc)
	s.Start()
	waitFor(t, "9 starts", 10*time.Second, func() bool { return svc.Starts() >= 9 })
	if err := svc.Stop(time.Second); err != nil {
		t.Fatal(err)
	}

	b, _ := os.ReadFile(filepath.Join(dir, "times"))
	var starts, ends []time.Time
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(l)
		ns, _ := strconv.ParseInt(f[1], 10, 64)
		if f[0] == "start" {
			starts = append(starts, time.Unix(0, ns))
		} else {
			ends = append(ends, time.Unix(0, ns))
		}
	}
	// Run 6 sleeps past ResetAfter: the delay after it starts over.
	want := []time.Duration{50 * ms, 100 * ms, 200 * ms, 400 * ms, 400 * ms, 50 * ms, 100 * ms}
	var gaps []time.Duration
	for i := range want {
		gaps = append(gaps, starts[i+1].Sub(ends[i]).Round(ms))
	}
	t.Logf("gaps between runs: %v", gaps)
	// A delay is never shorter than asked. Forking a shell on a loaded
	// machine with the race detector makes it longer, by less than slack:
	// the capped 400ms stays under the 800ms it would be uncapped, and the
	// reset 50ms under the 400ms it would be without the reset.
	const slack = 350 * ms
	for i, w := range want {
		if gaps[i] < w-2*ms || gaps[i] >= w+slack {
			t.Errorf("gap %d = %v, want %v (+ less than %v)", i, gaps[i], w, slack)
		}
	}
}

// TestRestartPolicy: Always restarts, Never leaves the service exited, and a
// Critical service is not restarted but reported on Fatal.
func TestRestartPolicy(t *testing.T) {
	tests := []struct {
		name      string
		restart   Restart
		critical  bool
		wantMore  bool // restarted
		wantFatal bool
	}{
		{"always", Always, false, true, false},
		{"never", Never, false, false, false},
		{"critical", Always, true, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc := sh(tt.name, t.TempDir(), "echo dying; exit 2")
			svc.Restart = tt.restart
			svc.Critical = tt.critical
			svc.Backoff = Backoff{Initial: 10 * ms}
			s := newSupervisor(t)
			add(t, s, svc)
			s.Start()
			waitFor(t, "the first exit", 5*time.Second, func() bool { return svc.LastExit() != nil })
			if tt.wantMore {
				waitFor(t, "restarts", 5*time.Second, func() bool { return svc.Starts() >= 3 })
			} else {
				time.Sleep(200 * ms) // many times the backoff delay
				if n := svc.Starts(); n != 1 {
					t.Errorf("restarted: %d starts, want 1", n)
				}
			}
			if !tt.wantMore && svc.State() != StateExited {
				t.Errorf("state = %s, want exited", svc.State())
			}
			e := svc.LastExit()
			if e.Status.ExitStatus() != 2 || !strings.Contains(e.Error(), `exited with status 2 (last output: "dying")`) {
				t.Errorf("last exit = %v", e)
			}
			select {
			case f := <-s.Fatal():
				if !tt.wantFatal {
					t.Errorf("unexpected fatal exit: %v", f)
				} else if f.Name != tt.name || f.Status.ExitStatus() != 2 {
					t.Errorf("fatal = %+v", f)
				}
			default:
				if tt.wantFatal {
					t.Error("no fatal exit for a critical service")
				}
			}
			// A service that ended for good is reported, not waited for.
			if !tt.wantMore {
				if err := s.WaitReady(context.Background(), tt.name); err == nil || !strings.Contains(err.Error(), "status 2") {
					t.Errorf("WaitReady = %v, want the exit", err)
				}
			}
		})
	}
}

// TestDependencyOrder: each service checks, as it starts, that the one it
// depends on has passed its readiness probe, which takes a while.
func TestDependencyOrder(t *testing.T) {
	dir := t.TempDir()
	a := sh("containerd", dir, `sleep 0.3; touch $F/a.ready; exec sleep 100`)
	a.Ready = fileReady(filepath.Join(dir, "a.ready"))
	a.ReadyInterval = 20 * ms
	b := sh("kubelet", dir, `if test -e $F/a.ready; then echo ok; else echo early; fi > $F/b.saw
		sleep 0.2; touch $F/b.ready; exec sleep 100`)
	b.Ready = fileReady(filepath.Join(dir, "b.ready"))
	b.ReadyInterval = 20 * ms
	c := sh("static-pods", dir, `if test -e $F/b.ready; then echo ok; else echo early; fi > $F/c.tmp
		mv $F/c.tmp $F/c.saw; exec sleep 100`)
	c.Ready = fileReady(filepath.Join(dir, "c.saw"))
	c.ReadyInterval = 20 * ms

	s := newSupervisor(t)
	add(t, s, a)
	add(t, s, b, "containerd")
	add(t, s, c, "containerd", "kubelet")
	s.Start()
	if b.State() != StateWaiting && b.State() != StateStopped {
		t.Errorf("kubelet state right after Start = %s, want waiting", b.State())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"b.saw", "c.saw"} {
		if got, _ := os.ReadFile(filepath.Join(dir, f)); string(got) != "ok\n" {
			t.Errorf("%s: a service started before its dependency was ready", f)
		}
	}
}

func TestAddErrors(t *testing.T) {
	s := New(reaper)
	if err := s.Add(&Service{Name: "a", Path: "/bin/true"}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		svc  *Service
		deps []string
		want string
	}{
		{"no path", &Service{Name: "x"}, nil, "needs a Name and a Path"},
		{"duplicate", &Service{Name: "a", Path: "/bin/true"}, nil, "already added"},
		{"unknown dependency", &Service{Name: "b", Path: "/bin/true"}, []string{"c"}, "add dependencies first"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := s.Add(tt.svc, tt.deps...); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Add = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// TestStopAll stops services in the reverse order of Add, and restarts the
// stack with Start, as the init does after a critical exit. The first one
// is Critical: being stopped is not a fatal exit.
func TestStopAll(t *testing.T) {
	dir := t.TempDir()
	s := newSupervisor(t)
	for i, name := range []string{"containerd", "kubelet", "helper"} {
		svc := sh(name, dir, `trap 'echo `+name+` >> $F/order; exit 0' TERM; touch $F/`+name+`.up; sleep 100 & wait`)
		svc.Ready = fileReady(filepath.Join(dir, name+".up"))
		svc.ReadyInterval = 10 * ms
		svc.Critical = i == 0
		var deps []string
		if i > 0 {
			deps = []string{"containerd"}
		}
		add(t, s, svc, deps...)
	}
	s.Start()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := s.StopAll(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("StopAll took %v for services that exit on SIGTERM", d)
	}
	got, _ := os.ReadFile(filepath.Join(dir, "order"))
	if want := "helper\nkubelet\ncontainerd\n"; string(got) != want {
		t.Errorf("stop order = %q, want %q", got, want)
	}
	for _, name := range []string{"containerd", "kubelet", "helper"} {
		if st := s.Service(name).State(); st != StateStopped {
			t.Errorf("%s state = %s, want stopped", name, st)
		}
	}
	select {
	case f := <-s.Fatal():
		t.Errorf("stopping a critical service reported a fatal exit: %v", f)
	default:
	}

	for _, name := range []string{"containerd", "kubelet", "helper"} {
		os.Remove(filepath.Join(dir, name+".up"))
	}
	s.Start()
	if err := s.WaitReady(ctx); err != nil {
		t.Fatalf("after a second Start: %v", err)
	}
	if n := s.Service("containerd").Starts(); n != 2 {
		t.Errorf("containerd started %d times, want 2", n)
	}
}

// TestStop: SIGTERM to the group, SIGKILL after the timeout for a process
// that ignores it, and nothing of the group left behind.
func TestStop(t *testing.T) {
	tests := []struct {
		name     string
		script   string
		wantKill bool
	}{
		{"exits on TERM", `trap 'exit 0' TERM; touch $F/up; sleep 100 & wait`, false},
		{"default TERM", `touch $F/up; exec sleep 100`, false},
		{"ignores TERM", `trap '' TERM; touch $F/up; sleep 100 & wait`, true},
	}
	const timeout = time.Second
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			svc := sh("stubborn", dir, tt.script)
			svc.Ready = fileReady(filepath.Join(dir, "up"))
			svc.ReadyInterval = 10 * ms
			s := newSupervisor(t)
			add(t, s, svc)
			s.Start()
			if err := s.WaitReady(context.Background()); err != nil {
				t.Fatal(err)
			}
			pid := svc.Pid()
			start := time.Now()
			if err := svc.Stop(timeout); err != nil {
				t.Fatal(err)
			}
			took := time.Since(start)
			ws := svc.LastExit().Status
			killed := ws.Signaled() && ws.Signal() == syscall.SIGKILL
			if killed != tt.wantKill {
				t.Errorf("exit = %s, want SIGKILL %v", describe(ws), tt.wantKill)
			}
			if tt.wantKill && took < timeout {
				t.Errorf("killed after %v, before the %v timeout", took, timeout)
			}
			if !tt.wantKill && took >= timeout {
				t.Errorf("stop took %v, want well under %v", took, timeout)
			}
			if svc.State() != StateStopped || svc.Pid() != 0 {
				t.Errorf("state %s pid %d, want stopped and 0", svc.State(), svc.Pid())
			}
			waitFor(t, "the process group to be gone", time.Second, func() bool {
				return unix.Kill(-pid, 0) == unix.ESRCH
			})
			time.Sleep(50 * ms)
			if svc.Starts() != 1 {
				t.Errorf("a stopped service was restarted (%d starts)", svc.Starts())
			}
		})
	}
}

// TestServiceOutput: stdout and stderr reach the ring and the capped file.
func TestServiceOutput(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "log", "chatty.log")
	svc := sh("chatty", dir, `i=0; while [ $i -lt 300 ]; do echo "line $i"; i=$((i+1)); done; echo "fatal: no config" >&2; exit 3`)
	svc.LogFile = log
	svc.MaxLogSize = 1000
	svc.Restart = Never
	s := newSupervisor(t)
	add(t, s, svc)
	s.Start()
	waitFor(t, "exit", 5*time.Second, func() bool { return svc.State() == StateExited })

	if got := strings.Join(svc.LastLines(2), "|"); got != "line 299|fatal: no config" {
		t.Errorf("LastLines(2) = %q", got)
	}
	if got := svc.LastLines(1000); len(got) != ringLines || got[0] != "line 101" {
		t.Errorf("LastLines(1000): %d lines from %q, want %d from line 101", len(got), got[0], ringLines)
	}
	if e := svc.LastExit(); e == nil || !strings.Contains(e.Error(), `chatty exited with status 3 (last output: "fatal: no config")`) {
		t.Errorf("LastExit = %v", e)
	}
	cur, old := size(log), size(log+".1")
	if cur <= 0 || cur > 1000 || old <= 0 || old > 1000 {
		t.Errorf("log sizes %d and %d (.1), want both in (0, 1000]", cur, old)
	}
	b, _ := os.ReadFile(log)
	if !strings.HasSuffix(string(b), "line 299\nfatal: no config\n") {
		t.Errorf("log file ends %q", tail(string(b)))
	}
}

// TestSignalHook kills a service from inside; it comes back with a new pid.
func TestSignalHook(t *testing.T) {
	svc := sh("kubelet", t.TempDir(), "exec sleep 100")
	svc.Backoff = Backoff{Initial: 10 * ms}
	s := newSupervisor(t)
	add(t, s, svc)
	s.Start()
	if err := s.WaitReady(context.Background()); err != nil {
		t.Fatal(err)
	}
	pid := svc.Pid()
	if err := s.Signal("kubelet", syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a restart", 5*time.Second, func() bool {
		return svc.Starts() == 2 && svc.State() == StateReady
	})
	if svc.Pid() == pid {
		t.Error("same pid after restart")
	}
	if ws := svc.LastExit().Status; !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Errorf("last exit %s, want SIGKILL", describe(ws))
	}
	if err := s.Signal("nonesuch", syscall.SIGTERM); err == nil {
		t.Error("Signal to an unknown service succeeded")
	}
}

// TestFailures: a program that cannot start and a probe that panics are
// reported in WaitReady's error, and nothing crashes.
func TestFailures(t *testing.T) {
	tests := []struct {
		name string
		svc  *Service
		want string
	}{
		{"missing program", &Service{Path: "/nonexistent/containerd", Restart: Never}, "could not start"},
		{"probe panics", &Service{Path: "/bin/sleep", Args: []string{"100"},
			Ready: func(context.Context) error { panic("nil socket") }}, "ready probe panicked: nil socket"},
		{"probe fails", &Service{Path: "/bin/sleep", Args: []string{"100"}, ReadyInterval: 10 * ms,
			Ready: func(context.Context) error { return errors.New("connection refused") }}, "connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.svc.Name = "x"
			s := newSupervisor(t)
			add(t, s, tt.svc)
			s.Start()
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			err := s.WaitReady(ctx)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("WaitReady = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// TestStateLog pins the one format of state changes.
func TestStateLog(t *testing.T) {
	var mu sync.Mutex
	var buf bytes.Buffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(lockedWriter{&mu, &buf}, nil)))
	defer slog.SetDefault(old)

	svc := sh("oneshot", t.TempDir(), "exit 0")
	svc.Restart = Never
	s := newSupervisor(t)
	add(t, s, svc)
	s.Start()
	waitFor(t, "exit", 5*time.Second, func() bool { return svc.State() == StateExited })
	pid := strconv.Itoa(svc.LastExit().Pid)

	mu.Lock()
	out := buf.String()
	mu.Unlock()
	for _, want := range []string{
		"msg=service name=oneshot state=starting pid=0\n",
		"msg=service name=oneshot state=running pid=" + pid + "\n",
		`msg=service name=oneshot state=exited pid=` + pid + ` exit="status 0"` + "\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}
