package supervise

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rke2os/rke2os/init/shared/console"
	"github.com/rke2os/rke2os/init/shared/goroutine"
	"golang.org/x/sys/unix"
)

// State is where a service is in its life. Every change is logged in one
// format, `msg=service name=<name> state=<state> pid=<pid>` plus `exit=`
// when a process ended, `delay=` in backoff and `for=` while waiting, so a
// grep for `msg=service` tells a service's whole story; the console's
// event line `event=service` carries the same key/values.
type State string

// The states of a service.
const (
	StateWaiting  State = "waiting"  // for its dependencies to be ready
	StateStarting State = "starting" // being forked
	StateRunning  State = "running"  // started, readiness not yet proven
	StateReady    State = "ready"    // its Ready probe passed (or it has none)
	StateExited   State = "exited"   // ended on its own
	StateBackoff  State = "backoff"  // waiting to be restarted
	StateStopped  State = "stopped"  // not started yet, or stopped on request
)

// DefaultReadyInterval is how often a Ready probe is polled. Boot time is
// the product: containerd is usually ready within two seconds of its start.
const DefaultReadyInterval = 200 * time.Millisecond

const (
	// killWait bounds the wait for a process after SIGKILL; only a process
	// stuck in the kernel (D state) outlives it.
	killWait = 5 * time.Second
	// drainGrace is how long an exit waits for the process's last output to
	// be read, so that the exit message carries it. A grandchild holding the
	// pipe open must not delay the restart longer than this.
	drainGrace = 500 * time.Millisecond
	// exitLines is how many output lines an ExitError carries.
	exitLines = 20
)

// Service is a long-running process of the node (containerd, the kubelet),
// declared like a Talos service: what to run, how to know it is ready,
// whether to restart it, and whether the node stack can live without it.
// Fill in the exported fields, then hand it to Supervisor.Add; do not copy
// it afterwards.
type Service struct {
	Name string   // unique; used in logs, errors and dependencies
	Path string   // program; looked up in PATH when it has no slash
	Args []string // arguments, without the program name
	Env  []string // nil inherits the init's environment
	Dir  string   // working directory; "" is the init's

	// LogFile receives the process's stdout and stderr, line by line. It
	// is rotated to LogFile+".1" when it would grow past MaxLogSize
	// (default DefaultMaxLogSize). "" keeps only the in-memory lines.
	LogFile    string
	MaxLogSize int64

	// Ready reports whether a running process is ready to serve (its
	// socket answers). It is polled every ReadyInterval (default
	// DefaultReadyInterval) until it returns nil; ctx ends with the run. A
	// nil Ready means ready as soon as started.
	Ready         func(ctx context.Context) error
	ReadyInterval time.Duration

	Restart Restart // when the process exits on its own; default Always
	Backoff Backoff // delays between restarts

	// Critical marks a service the node stack cannot run without (as
	// containerd is to RKE2): when it exits, it is not restarted; the exit
	// is sent on Supervisor.Fatal and the caller decides what follows.
	Critical bool

	sup  *Supervisor
	deps []*Service
	log  *serviceLog

	mu       sync.Mutex
	state    State
	proc     *Process // the running process, nil between runs
	starts   int
	lastExit *ExitError
	probeErr error // the Ready probe's last answer, for "not ready" errors
	run      *run  // the current lifecycle, nil before the first start
}

// run is one lifecycle of a service, from Supervisor.Start to Stop.
type run struct {
	stop     chan struct{} // closed by Stop
	stopOnce sync.Once
	timeout  time.Duration // grace before SIGKILL; written before stop closes
	done     chan struct{} // closed when the loop has returned
}

// State is the service's current state.
func (s *Service) State() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state
}

// Pid is the running process's ID, 0 between runs.
func (s *Service) Pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return 0
	}
	return s.proc.Pid
}

// Starts is how many times a process of the service has been started.
func (s *Service) Starts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.starts
}

// LastExit is how the last run ended; nil before any ended.
func (s *Service) LastExit() *ExitError {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastExit
}

// LastLines returns up to n of the service's last output lines (at most
// 200 are kept), oldest first, for error messages.
func (s *Service) LastLines(n int) []string {
	if s.log == nil {
		return nil // not added to a supervisor yet
	}
	return s.log.lastLines(n)
}

// Signal sends sig to the service's process (not its group). It is also the
// debug hook that kills a service from inside the init.
func (s *Service) Signal(sig syscall.Signal) error {
	s.mu.Lock()
	p := s.proc
	s.mu.Unlock()
	if p == nil {
		return fmt.Errorf("service %s is not running (state %s)", s.Name, s.State())
	}
	return p.Signal(sig)
}

// Stop ends the service and keeps it from restarting: SIGTERM to its
// process group, SIGKILL after timeout, then it waits for the exit. It
// returns an error only if the process outlived SIGKILL.
func (s *Service) Stop(timeout time.Duration) error {
	s.mu.Lock()
	r := s.run
	s.mu.Unlock()
	if r == nil {
		return nil
	}
	r.stopOnce.Do(func() {
		r.timeout = timeout
		close(r.stop)
	})
	t := time.NewTimer(max(timeout, 0) + killWait + time.Second)
	defer t.Stop()
	select {
	case <-r.done:
		return nil
	case <-t.C:
		return fmt.Errorf("service %s (pid %d) did not exit on SIGTERM nor within %v of SIGKILL; it is stuck in the kernel", s.Name, s.Pid(), killWait)
	}
}

// start begins a lifecycle unless one is under way.
func (s *Service) start() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.run != nil && !closed(s.run.done) {
		return
	}
	r := &run{stop: make(chan struct{}), done: make(chan struct{})}
	s.run = r
	goroutine.Go("service "+s.Name, func() { s.loop(r) })
}

// running reports whether a lifecycle is under way (it may be in backoff).
func (s *Service) running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.run != nil && !closed(s.run.done)
}

// loop starts the process once its dependencies are ready, and again after
// each exit as the restart policy says, until stopped.
func (s *Service) loop(r *run) {
	defer close(r.done)
	defer s.log.close()
	defer func() {
		if v := recover(); v != nil {
			goroutine.LogPanic("service "+s.Name, v)
			s.setProc(nil)
			s.set(StateExited, 0, "exit", fmt.Sprintf("supervisor panic: %v", v))
		}
	}()
	bo := restartDelays(s.Backoff)
	for {
		if !s.waitDeps(r.stop) {
			s.set(StateStopped, 0)
			return
		}
		exit, ran, stopped := s.runOnce(r)
		if stopped {
			return
		}
		if s.Critical {
			s.sup.sendFatal(exit)
			return
		}
		if s.Restart == Never {
			return
		}
		d := bo.Next(ran)
		s.set(StateBackoff, 0, "delay", d)
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-r.stop:
			t.Stop()
			s.set(StateStopped, 0)
			return
		}
	}
}

// runOnce starts one process and waits for it to end, on its own or by
// Stop. It reports how it ended and for how long it ran.
func (s *Service) runOnce(r *run) (exit *ExitError, ran time.Duration, stopped bool) {
	s.set(StateStarting, 0)
	started := time.Now()
	p, drained, err := s.spawn()
	if err != nil {
		exit = &ExitError{Name: s.Name, Err: err}
		s.setExit(exit)
		if closed(r.stop) {
			s.set(StateStopped, 0, "exit", err.Error())
			return exit, 0, true
		}
		s.set(StateExited, 0, "exit", err.Error())
		return exit, 0, false
	}
	s.mu.Lock()
	s.proc = p
	s.starts++
	s.probeErr = nil
	s.mu.Unlock()
	s.set(StateRunning, p.Pid)

	ctx, cancel := context.WithCancel(context.Background())
	goroutine.Go("ready probe of "+s.Name, func() { s.probe(ctx, p) })
	gone := true
	select {
	case <-p.Exited():
	case <-r.stop:
		gone = s.terminate(p, r.timeout)
	}
	cancel()
	ran = time.Since(started)
	stopped = closed(r.stop)
	// Whatever is left of its process group goes too, so a restart starts
	// clean (systemd's KillMode=control-group). containerd's shims put
	// themselves in groups of their own and survive, as in RKE2.
	_ = unix.Kill(-p.Pid, unix.SIGKILL)
	s.setProc(nil)
	if !gone {
		exit = &ExitError{Name: s.Name, Pid: p.Pid, Err: errors.New("still alive after SIGKILL")}
		s.setExit(exit)
		s.set(StateStopped, p.Pid, "exit", "unkillable")
		return exit, ran, true
	}
	select {
	case <-drained:
	case <-time.After(drainGrace):
	}
	exit = &ExitError{Name: s.Name, Pid: p.Pid, Status: p.Status(), Lines: s.log.lastLines(exitLines)}
	s.setExit(exit)
	if stopped {
		s.set(StateStopped, p.Pid, "exit", describe(exit.Status))
	} else {
		s.set(StateExited, p.Pid, "exit", describe(exit.Status))
	}
	return exit, ran, stopped
}

// spawn forks the process in a group of its own, its output going through a
// pipe into the service's log.
func (s *Service) spawn() (*Process, <-chan struct{}, error) {
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	cmd := exec.Command(s.Path, s.Args...)
	cmd.Env = s.Env
	cmd.Dir = s.Dir
	cmd.Stdout = pw
	cmd.Stderr = pw
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p, err := s.sup.reaper.Spawn(cmd)
	pw.Close() // the child has its copy; EOF comes when it (and its children) close theirs
	if err != nil {
		pr.Close()
		return nil, nil, err
	}
	drained := make(chan struct{})
	goroutine.Go("log of "+s.Name, func() { s.log.readFrom(pr, drained) })
	return p, drained, nil
}

// terminate sends SIGTERM to the process group and SIGKILL after timeout.
// It reports whether the process is gone.
func (s *Service) terminate(p *Process, timeout time.Duration) bool {
	_ = p.SignalGroup(unix.SIGTERM)
	t := time.NewTimer(max(timeout, 0))
	select {
	case <-p.Exited():
		t.Stop()
		return true
	case <-t.C:
	}
	slog.Warn("service ignored SIGTERM; sending SIGKILL", "name", s.Name, "pid", p.Pid, "after", timeout)
	_ = p.SignalGroup(unix.SIGKILL)
	t = time.NewTimer(killWait)
	defer t.Stop()
	select {
	case <-p.Exited():
		return true
	case <-t.C:
		return false
	}
}

// waitDeps waits until every dependency is ready. It returns false if the
// service is stopped meanwhile.
func (s *Service) waitDeps(stop <-chan struct{}) bool {
	said := false
	for {
		changed := s.sup.changes()
		var missing []string
		for _, d := range s.deps {
			if d.State() != StateReady {
				missing = append(missing, d.Name)
			}
		}
		if len(missing) == 0 {
			return true
		}
		if !said {
			s.set(StateWaiting, 0, "for", strings.Join(missing, ","))
			said = true
		}
		select {
		case <-changed:
		case <-stop:
			return false
		}
	}
}

// probe polls the Ready check of one run until it passes or the run ends.
func (s *Service) probe(ctx context.Context, p *Process) {
	if s.Ready == nil {
		s.markReady(p)
		return
	}
	interval := s.ReadyInterval
	if interval <= 0 {
		interval = DefaultReadyInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		err, panicked := s.callReady(ctx)
		if panicked {
			return // a broken probe stays broken; it is logged once
		}
		if err == nil {
			s.markReady(p)
			return
		}
		s.mu.Lock()
		s.probeErr = err
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Service) callReady(ctx context.Context) (err error, panicked bool) {
	defer func() {
		if v := recover(); v != nil {
			goroutine.LogPanic("ready probe of "+s.Name, v)
			s.mu.Lock()
			s.probeErr = fmt.Errorf("ready probe panicked: %v", v)
			s.mu.Unlock()
			panicked = true
		}
	}()
	return s.Ready(ctx), false
}

// markReady moves the run of p from running to ready; checked and set
// under one lock, so that a process that has just exited is never marked
// ready.
func (s *Service) markReady(p *Process) {
	s.mu.Lock()
	if s.proc != p || s.state != StateRunning {
		s.mu.Unlock()
		return
	}
	s.setLocked(StateReady, p.Pid)
	s.mu.Unlock()
	s.sup.notify()
}

func (s *Service) setProc(p *Process) {
	s.mu.Lock()
	s.proc = p
	s.mu.Unlock()
}

func (s *Service) setExit(e *ExitError) {
	s.mu.Lock()
	s.lastExit = e
	s.mu.Unlock()
}

// set changes the state, logs it in the one service format and wakes whoever
// waits on states (dependents, WaitReady).
func (s *Service) set(st State, pid int, extra ...any) {
	s.mu.Lock()
	s.setLocked(st, pid, extra...)
	s.mu.Unlock()
	s.sup.notify()
}

// setLocked logs under the lock too, so a service's log lines come in the
// order its states changed.
func (s *Service) setLocked(st State, pid int, extra ...any) {
	s.state = st
	args := append([]any{"name", s.Name, "state", string(st), "pid", pid}, extra...)
	slog.Info("service", args...)
	console.Event(console.EventService, args...)
}

// notReady explains why the service is not ready, for WaitReady's error.
func (s *Service) notReady() error {
	s.mu.Lock()
	st, exit, probe := s.state, s.lastExit, s.probeErr
	s.mu.Unlock()
	msg := fmt.Sprintf("%s is not ready (state %s)", s.Name, st)
	if probe != nil {
		msg += ": " + probe.Error()
	}
	if exit != nil && st != StateRunning {
		msg += "; last exit: " + exit.Error()
	} else if lines := s.log.lastLines(1); len(lines) == 1 {
		msg += fmt.Sprintf(" (last output: %q)", lines[0])
	}
	return errors.New(msg)
}

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
