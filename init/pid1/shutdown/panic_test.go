package shutdown

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rke2os/rke2os/internal/syncbuf"
)

// A panic while reading a power button (here: a press sent on a closed
// channel) is logged with its stack, and the process (PID 1 on a node)
// stays up.
func TestButtonReaderPanic(t *testing.T) {
	buf := syncbuf.CaptureLog(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ch := make(chan Action)
	close(ch)
	watchButton(r, ch)
	w.Write(event(evKey, keyPower, 1))
	for end := time.Now().Add(5 * time.Second); !strings.Contains(buf.String(), "msg=panic"); {
		if time.Now().After(end) {
			t.Fatalf("no panic logged:\n%s", buf.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if out := buf.String(); !strings.Contains(out, `in="power button `+r.Name()+`" panic="send on closed channel" stack=`) || !strings.Contains(out, "shutdown.readButton") {
		t.Fatalf("the panic is logged without its place or stack:\n%s", out)
	}
}
