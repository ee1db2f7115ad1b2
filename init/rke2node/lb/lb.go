// Package lb is an agent's local load balancer, as RKE2's agents run one:
// the kubelet and kube-proxy talk to 127.0.0.1, and each connection goes
// to the first of the cluster's apiservers that answers, so that the node
// keeps working when the server it joined through goes away while others
// remain.
package lb

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"
)

// Balancer forwards the connections of a listener to a set of backends.
type Balancer struct {
	mu       sync.Mutex
	backends []string // "host:port"; the one that last answered first
	// DialTimeout bounds the dial of one backend.
	DialTimeout time.Duration
}

// New balances over backends, in that order of preference.
func New(backends []string) *Balancer {
	return &Balancer{backends: slices.Clone(backends), DialTimeout: 5 * time.Second}
}

// SetBackends replaces the backends, keeping the one in use first if it
// is still among them. An empty list is ignored: a cluster always has an
// apiserver, and an empty answer is a fault, not news.
func (b *Balancer) SetBackends(backends []string) {
	if len(backends) == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	next := slices.Clone(backends)
	if len(b.backends) > 0 {
		if i := slices.Index(next, b.backends[0]); i > 0 {
			next[0], next[i] = next[i], next[0]
		}
	}
	if !slices.Equal(next, b.backends) {
		slog.Info("load balancer: backends", "backends", next)
	}
	b.backends = next
}

// Backends are the current backends, the preferred first.
func (b *Balancer) Backends() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.backends)
}

// dial connects to the first backend that answers, and prefers it from
// then on.
func (b *Balancer) dial(ctx context.Context) (net.Conn, error) {
	var errs []error
	for _, addr := range b.Backends() {
		d := net.Dialer{Timeout: b.DialTimeout}
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			b.prefer(addr)
			return c, nil
		}
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		return nil, errors.New("no backends")
	}
	return nil, errors.Join(errs...)
}

func (b *Balancer) prefer(addr string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if i := slices.Index(b.backends, addr); i > 0 {
		slog.Info("load balancer: switching backend", "from", b.backends[0], "to", addr)
		b.backends = append([]string{addr}, slices.Delete(b.backends, i, i+1)...)
	}
}

// Serve forwards every connection of ln until ctx ends.
func (b *Balancer) Serve(ctx context.Context, ln net.Listener) error {
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		go b.forward(ctx, c)
	}
}

func (b *Balancer) forward(ctx context.Context, c net.Conn) {
	defer c.Close()
	up, err := b.dial(ctx)
	if err != nil {
		slog.Warn("load balancer: no backend answers", "err", err)
		return
	}
	defer up.Close()
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		io.Copy(dst, src)
		if tc, ok := dst.(*net.TCPConn); ok {
			tc.CloseWrite()
		}
		done <- struct{}{}
	}
	go pipe(up, c)
	go pipe(c, up)
	select {
	case <-done:
		<-done
	case <-ctx.Done():
	}
}
