package supervise

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"syscall"
	"time"
)

// Supervisor runs the node's services: each starts once the services it
// depends on are ready, is restarted by its policy, and StopAll stops them
// in the reverse order they were added (the kubelet before containerd).
type Supervisor struct {
	reaper *Reaper
	fatal  chan *ExitError

	mu       sync.Mutex
	services []*Service // in Add order, which is a dependency order
	byName   map[string]*Service
	started  bool

	cmu     sync.Mutex
	changed chan struct{} // closed and replaced on every state change
}

// New returns a Supervisor whose processes are started through r.
func New(r *Reaper) *Supervisor {
	return &Supervisor{
		reaper:  r,
		fatal:   make(chan *ExitError, 8),
		byName:  map[string]*Service{},
		changed: make(chan struct{}),
	}
}

// Add registers svc, which starts only once every service named in deps is
// ready. The deps must have been added before, so the order of Add is a
// valid start order and there can be no cycle. A service added after Start
// starts at once (after its deps).
func (s *Supervisor) Add(svc *Service, deps ...string) error {
	if svc.Name == "" || svc.Path == "" {
		return fmt.Errorf("supervise: a service needs a Name and a Path (got name %q, path %q)", svc.Name, svc.Path)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if svc.sup != nil {
		return fmt.Errorf("supervise: service %s was already added to a supervisor", svc.Name)
	}
	if s.byName[svc.Name] != nil {
		return fmt.Errorf("supervise: a service named %s was already added", svc.Name)
	}
	var ds []*Service
	for _, d := range deps {
		dep := s.byName[d]
		if dep == nil {
			return fmt.Errorf("supervise: service %s depends on %s, which is not added; add dependencies first", svc.Name, d)
		}
		ds = append(ds, dep)
	}
	svc.sup = s
	svc.deps = ds
	svc.log = newServiceLog(svc.LogFile, svc.MaxLogSize)
	svc.state = StateStopped
	s.services = append(s.services, svc)
	s.byName[svc.Name] = svc
	if s.started {
		svc.start()
	}
	return nil
}

// Start starts every service that is not running, each after its
// dependencies are ready, and returns at once: WaitReady waits. After a
// StopAll (say, because a critical service exited), Start brings the stack
// up again.
func (s *Supervisor) Start() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.started = true
	for _, svc := range s.services {
		svc.start()
	}
}

// WaitReady waits until the named services (all, if none is named) are
// ready. It fails when ctx ends or when one of them has ended for good (a
// Never or Critical service that exited, a stopped one), with that
// service's state, probe error and last output in the message.
func (s *Supervisor) WaitReady(ctx context.Context, names ...string) error {
	svcs, err := s.lookup(names)
	if err != nil {
		return err
	}
	for {
		changed := s.changes()
		var pending *Service
		for _, svc := range svcs {
			if svc.State() == StateReady {
				continue
			}
			if !svc.running() {
				return svc.notReady()
			}
			if pending == nil {
				pending = svc
			}
		}
		if pending == nil {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", ctx.Err(), pending.notReady())
		}
	}
}

// StopAll stops every service, one at a time in the reverse order of Add, so
// that no service outlives one it depends on. Each gets SIGTERM, then
// SIGKILL after timeout.
func (s *Supervisor) StopAll(timeout time.Duration) error {
	s.mu.Lock()
	s.started = false
	svcs := append([]*Service(nil), s.services...)
	s.mu.Unlock()
	var errs []error
	for i := len(svcs) - 1; i >= 0; i-- {
		errs = append(errs, svcs[i].Stop(timeout))
	}
	return errors.Join(errs...)
}

// Signal sends sig to the named service's process. It is the debug hook the
// init exposes to kill a service from inside (tests use it too).
func (s *Supervisor) Signal(name string, sig syscall.Signal) error {
	svc := s.Service(name)
	if svc == nil {
		return fmt.Errorf("supervise: no service named %s", name)
	}
	return svc.Signal(sig)
}

// Service returns the named service, or nil.
func (s *Supervisor) Service(name string) *Service {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byName[name]
}

// Fatal delivers the exit of every Critical service that ended on its own.
// The supervisor does not restart it: the caller stops the rest (StopAll)
// and then restarts the stack (Start) or reboots.
func (s *Supervisor) Fatal() <-chan *ExitError { return s.fatal }

func (s *Supervisor) sendFatal(e *ExitError) {
	select {
	case s.fatal <- e:
	default:
		// Earlier fatal exits are still unread; the caller is already
		// acting on one, and this one is in the log.
		slog.Error("fatal service exit not delivered: earlier ones are unread", "name", e.Name, "err", e)
	}
}

func (s *Supervisor) lookup(names []string) ([]*Service, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(names) == 0 {
		return append([]*Service(nil), s.services...), nil
	}
	var svcs []*Service
	for _, n := range names {
		svc := s.byName[n]
		if svc == nil {
			return nil, fmt.Errorf("supervise: no service named %s", n)
		}
		svcs = append(svcs, svc)
	}
	return svcs, nil
}

// changes returns a channel closed at the next state change of any service.
func (s *Supervisor) changes() <-chan struct{} {
	s.cmu.Lock()
	defer s.cmu.Unlock()
	return s.changed
}

func (s *Supervisor) notify() {
	s.cmu.Lock()
	close(s.changed)
	s.changed = make(chan struct{})
	s.cmu.Unlock()
}
