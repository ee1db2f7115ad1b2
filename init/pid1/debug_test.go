package pid1

import (
	"bufio"
	"errors"
	"strings"
	"syscall"
	"testing"
)

func TestDebugRequest(t *testing.T) {
	var got []string
	signal := func(name string, sig syscall.Signal) error {
		if name != "kubelet" {
			return errors.New("no service " + name)
		}
		got = append(got, name+":"+sig.String())
		return nil
	}
	for _, tc := range []struct {
		req  string
		code int
	}{
		{"POST /debug/signal?service=kubelet&signal=KILL HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 200},
		{"POST /debug/signal?service=kubelet&signal=TERM HTTP/1.0\r\n\r\n", 200},
		{"POST /debug/signal?service=kubelet&signal=HUP HTTP/1.1\r\n\r\n", 400},
		{"POST /debug/signal?service=etcd&signal=KILL HTTP/1.1\r\n\r\n", 404},
		{"GET /debug/signal?service=kubelet&signal=KILL HTTP/1.1\r\n\r\n", 405},
		{"POST /other HTTP/1.1\r\n\r\n", 404},
		{"POST /debug/signal?service=kubelet&signal=KILL HTTP/1.1\r\nHost: x\r\n", 400}, // cut short
		{"hello\r\n\r\n", 400},
		{"", 400},
	} {
		code, msg := debugRequest(bufio.NewReader(strings.NewReader(tc.req)), signal)
		if code != tc.code {
			t.Errorf("%q: %d %q, want %d", tc.req, code, msg, tc.code)
		}
	}
	if want := []string{"kubelet:killed", "kubelet:terminated"}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("signalled %v, want %v", got, want)
	}
}
