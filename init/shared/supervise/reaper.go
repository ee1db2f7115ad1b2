// Package supervise runs the init's child processes: it reaps every orphan
// as PID 1 must, starts long-running services in dependency order, restarts
// them with backoff, keeps their output in size-capped log files, and stops
// them in reverse order.
package supervise

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rke2os/rke2os/init/shared/goroutine"
	"golang.org/x/sys/unix"
)

// Reaper collects every exited child of the process. PID 1 inherits every
// orphan on the machine and must wait for each, or zombies pile up; but a
// wait4(-1) loop also collects the children the init started itself, so
// their exit statuses would be lost to whoever waits for them (exec.Cmd.Wait
// then fails with "no child processes"). The Reaper is therefore the only
// waiter: processes are started through it (Spawn, Run), which registers
// them before the reaper can see them exit, and it hands each status to its
// subscriber.
//
// A process has one Reaper, started once, early. Two would steal each
// other's statuses, so Start refuses a second one.
type Reaper struct {
	// mu is held across fork and registration in Spawn and around every
	// wait4 in reapAll, so a child can never be reaped before its
	// subscriber is known. It also makes signalling a registered process
	// safe: while its pid is registered it has not been reaped, so the pid
	// cannot have been reused.
	mu      sync.Mutex
	subs    map[int]*Process
	once    sync.Once
	err     error
	orphans atomic.Uint64
}

// active is the process's one started Reaper.
var active atomic.Pointer[Reaper]

// NewReaper returns a Reaper that does nothing until Start.
func NewReaper() *Reaper {
	return &Reaper{subs: map[int]*Process{}}
}

// Reap starts the process-wide Reaper if none runs yet and returns the one
// that runs.
func Reap() *Reaper {
	if r := active.Load(); r != nil {
		return r
	}
	r := NewReaper()
	if err := r.Start(); err != nil {
		return active.Load() // another goroutine won the race
	}
	return r
}

// Start makes r reap every child from now on. It is idempotent; it fails if
// another Reaper already reaps this process.
func (r *Reaper) Start() error {
	r.once.Do(func() {
		if !active.CompareAndSwap(nil, r) {
			r.err = errors.New("supervise: another Reaper already reaps this process; use supervise.Reap() to share it")
			return
		}
		ch := make(chan os.Signal, 16)
		signal.Notify(ch, unix.SIGCHLD)
		// A child that exited before Notify sent its SIGCHLD to nobody.
		r.reapAll()
		// A panic is logged and the reaping starts again: an init that
		// stops reaping fills the process table with zombies.
		goroutine.Keep(context.Background(), "reaper", func(context.Context) { r.loop(ch) })
	})
	return r.err
}

// loop reaps on every SIGCHLD.
func (r *Reaper) loop(ch <-chan os.Signal) {
	r.reapAll() // catch up on what a panic interrupted
	for range ch {
		r.reapAll()
	}
}

// reapAll waits for every child that has exited. Signals coalesce, so one
// SIGCHLD may stand for many exits.
func (r *Reaper) reapAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if err == unix.EINTR {
			continue
		}
		if pid <= 0 || err != nil {
			return // no exited child left (0), or no child at all (ECHILD)
		}
		if p := r.subs[pid]; p != nil {
			delete(r.subs, pid)
			p.status = syscall.WaitStatus(ws)
			close(p.exited)
			continue
		}
		r.orphans.Add(1)
		slog.Debug("reaped orphan", "pid", pid, "exit", describe(syscall.WaitStatus(ws)))
	}
}

// Orphans is how many processes r reaped that nobody had started through it.
func (r *Reaper) Orphans() uint64 { return r.orphans.Load() }

// Process is a child started through a Reaper.
type Process struct {
	// Pid is the child's process ID; with Setpgid it is also its group's.
	Pid int

	r      *Reaper
	cmd    *exec.Cmd
	exited chan struct{}      // closed by the reaper once status is set
	status syscall.WaitStatus // valid once exited is closed
	done   chan struct{}      // closed once exec.Cmd's own work is done too
}

// Spawn starts cmd and registers it before the reaper can collect it. The
// exit status arrives through the returned Process; do not call cmd.Wait.
// cmd's Stdout, Stderr and Stdin may be any reader or writer, as with
// exec.Cmd: their copying is finished before Done is closed.
func (r *Reaper) Spawn(cmd *exec.Cmd) (*Process, error) {
	if active.Load() != r {
		return nil, errors.New("supervise: Spawn on a Reaper that is not started (call Start, or use supervise.Reap())")
	}
	p, err := r.startLocked(cmd)
	if err != nil {
		return nil, err
	}
	goroutine.Go("process "+cmd.Path, p.finish)
	return p, nil
}

// startLocked starts cmd and registers it, holding mu throughout. Holding mu
// also protects exec's own failure path: when exec fails in the child,
// forkExec waits for that pid itself.
func (r *Reaper) startLocked(cmd *exec.Cmd) (*Process, error) {
	r.mu.Lock()
	defer r.mu.Unlock() // even if Start panics: a held mu would stop all reaping
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &Process{
		Pid:    cmd.Process.Pid,
		r:      r,
		cmd:    cmd,
		exited: make(chan struct{}),
		done:   make(chan struct{}),
	}
	r.subs[p.Pid] = p
	return p, nil
}

// finish lets exec.Cmd finish what it started (copying goroutines, the
// context watcher, pipe descriptors) once the reaper has the status.
// Releasing first makes cmd.Wait skip the wait for the process, which is
// already reaped, and never wait on a pid the kernel may have reused.
func (p *Process) finish() {
	defer close(p.done)
	<-p.exited
	_ = p.cmd.Process.Release()
	_ = p.cmd.Wait() // its process error is EINVAL (released); the status is ours
}

// Done is closed once the process has exited and its output is copied.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited is closed as soon as the process has exited, before its output
// (which a surviving grandchild may hold open) is finished.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Wait waits for Done and returns the exit status.
func (p *Process) Wait() syscall.WaitStatus {
	<-p.done
	return p.status
}

// Status is the exit status; valid once Exited is closed.
func (p *Process) Status() syscall.WaitStatus {
	<-p.exited
	return p.status
}

// Signal sends sig to the process, unless it has already exited.
func (p *Process) Signal(sig syscall.Signal) error { return p.r.kill(p, p.Pid, sig) }

// SignalGroup sends sig to the process's group (started with Setpgid),
// unless the leader has already exited.
func (p *Process) SignalGroup(sig syscall.Signal) error { return p.r.kill(p, -p.Pid, sig) }

func (r *Reaper) kill(p *Process, target int, sig syscall.Signal) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	select {
	case <-p.exited:
		return os.ErrProcessDone
	default:
	}
	return unix.Kill(target, sig)
}

// Run starts cmd, waits for it and returns nil for a zero exit status or an
// *ExitError, without racing the reaper: use it for one-shot helpers
// (mkfs, modprobe, ctr import) instead of cmd.Run. When cmd has neither
// Stdout nor Stderr, its last output lines are kept for the error, so that
// a failed helper explains itself.
func (r *Reaper) Run(cmd *exec.Cmd) error {
	var out *serviceLog
	var pw *os.File
	drained := make(chan struct{})
	if cmd.Stdout == nil && cmd.Stderr == nil {
		pr, w, err := os.Pipe()
		if err != nil {
			return err
		}
		pw = w
		cmd.Stdout, cmd.Stderr = pw, pw
		out = newServiceLog("", 0)
		goroutine.Go("output of "+cmd.Path, func() { out.readFrom(pr, drained) })
	}
	p, err := r.Spawn(cmd)
	if pw != nil {
		pw.Close() // the child has its copy; EOF comes when it exits
	}
	if err != nil {
		return err
	}
	ws := p.Wait()
	if ws.Exited() && ws.ExitStatus() == 0 {
		return nil
	}
	e := &ExitError{Name: cmd.Path, Pid: p.Pid, Status: ws}
	if out != nil {
		select {
		case <-drained:
		case <-time.After(drainGrace): // a grandchild holds the pipe open
		}
		e.Lines = out.lastLines(exitLines)
	}
	return e
}

// ExitError is a process that ended badly: a non-zero status, a signal, or a
// start that failed (Err).
type ExitError struct {
	Name   string             // service name or program path
	Pid    int                // 0 if it never started
	Status syscall.WaitStatus // meaningful when Err is nil
	Err    error              // why it could not start
	Lines  []string           // the last lines of its output, if kept
}

func (e *ExitError) Error() string {
	var s string
	if e.Err != nil {
		s = fmt.Sprintf("%s could not start: %v", e.Name, e.Err)
	} else {
		s = fmt.Sprintf("%s %s", e.Name, describeLong(e.Status))
	}
	if n := len(e.Lines); n > 0 {
		s += fmt.Sprintf(" (last output: %q)", e.Lines[n-1])
	}
	return s
}

func (e *ExitError) Unwrap() error { return e.Err }

// describe is the short form of an exit status used in the state log.
func describe(ws syscall.WaitStatus) string {
	switch {
	case ws.Exited():
		return fmt.Sprintf("status %d", ws.ExitStatus())
	case ws.Signaled():
		return "signal " + ws.Signal().String()
	}
	return fmt.Sprintf("wait status %#x", uint32(ws))
}

func describeLong(ws syscall.WaitStatus) string {
	switch {
	case ws.Exited():
		return fmt.Sprintf("exited with status %d", ws.ExitStatus())
	case ws.Signaled():
		return fmt.Sprintf("was killed by signal %d (%s)", int(ws.Signal()), ws.Signal())
	}
	return fmt.Sprintf("ended with wait status %#x", uint32(ws))
}
