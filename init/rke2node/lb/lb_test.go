package lb

import (
	"context"
	"io"
	"net"
	"testing"
)

// echoServer answers each connection with its name and closes.
func echoServer(t *testing.T, name string) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, name)
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return ln
}

func ask(t *testing.T, addr string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b, _ := io.ReadAll(c)
	return string(b)
}

// A backend that goes away is skipped, the next one preferred from then
// on; new backends keep the preferred one first.
func TestBalancer(t *testing.T) {
	a, bsrv := echoServer(t, "a"), echoServer(t, "b")
	// A port nothing listens on.
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadAddr := dead.Addr().String()
	dead.Close()

	b := New([]string{a.Addr().String(), bsrv.Addr().String()})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go b.Serve(ctx, ln)

	if got := ask(t, ln.Addr().String()); got != "a" {
		t.Fatalf("got %q, want a", got)
	}
	a.Close()
	if got := ask(t, ln.Addr().String()); got != "b" {
		t.Fatalf("after a went away: got %q, want b", got)
	}
	if got := b.Backends()[0]; got != bsrv.Addr().String() {
		t.Errorf("preferred %s, want b's", got)
	}
	b.SetBackends([]string{deadAddr, bsrv.Addr().String()})
	if got := b.Backends(); got[0] != bsrv.Addr().String() || len(got) != 2 {
		t.Errorf("backends %v: the one in use should stay first", got)
	}
	b.SetBackends(nil)
	if len(b.Backends()) != 2 {
		t.Error("an empty list replaced the backends")
	}
	bsrv.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := io.ReadAll(c); len(n) != 0 {
		t.Errorf("no backend: got %q", n)
	}
	c.Close()
}
