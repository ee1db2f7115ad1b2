package shutdown

import (
	"context"
	"encoding/binary"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/rke2os/rke2os/init/shared/console"
	"github.com/rke2os/rke2os/init/shared/goroutine"
	"golang.org/x/sys/unix"
)

// Requests delivers shutdown requests: SIGTERM and the ACPI power button
// (what `virsh shutdown` and QEMU's system_powerdown press) ask for a power
// off, SIGINT (Ctrl-Alt-Del) for a reboot. Power buttons are looked for in
// the background from now on; WatchPowerButtons opens those present at once.
func Requests() <-chan Action {
	ch := make(chan Action, 4)
	// Without CAD_OFF the kernel reboots at once on Ctrl-Alt-Del; with it,
	// PID 1 gets SIGINT and can stop things in order.
	_ = unix.Reboot(unix.LINUX_REBOOT_CMD_CAD_OFF)
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, unix.SIGTERM, unix.SIGINT, unix.SIGPWR)
	goroutine.Keep(context.Background(), "shutdown signals", func(context.Context) {
		for s := range sigs {
			if s == unix.SIGINT {
				ch <- Reboot
			} else {
				ch <- PowerOff
			}
		}
	})
	buttons.mu.Lock()
	buttons.ch = ch
	buttons.mu.Unlock()
	goroutine.Keep(context.Background(), "power button poll", func(context.Context) { pollPowerButtons() })
	return ch
}

// buttons are the power buttons being read, and where their presses go.
var buttons struct {
	mu      sync.Mutex
	ch      chan<- Action
	watched map[string]bool
}

// WatchPowerButtons opens, before it returns, every power button present
// that is not read yet: the init calls it right after loading the modules
// (button, evdev), so that a press at any time after modules-loaded is
// seen, also while the boot waits for the network or sits in maintenance
// mode. It returns how many buttons are read in all.
func WatchPowerButtons() int {
	buttons.mu.Lock()
	defer buttons.mu.Unlock()
	if buttons.ch == nil {
		return 0
	}
	if buttons.watched == nil {
		buttons.watched = map[string]bool{}
	}
	for _, dev := range PowerButtons("/sys/class/input") {
		if buttons.watched[dev] {
			continue
		}
		f, err := os.Open(dev)
		if err != nil {
			// devtmpfs may not have made the node yet: the next look.
			continue
		}
		buttons.watched[dev] = true
		slog.Info("watching power button", "device", dev)
		console.Event(console.EventPowerButton, "device", dev)
		watchButton(f, buttons.ch)
	}
	return len(buttons.watched)
}

// pollPowerButtons looks for buttons that appear late (a module loaded by
// the config, a USB keyboard's power key): often at first, then seldom.
func pollPowerButtons() {
	for i := 0; ; i++ {
		WatchPowerButtons()
		if i < 600 {
			time.Sleep(200 * time.Millisecond)
		} else {
			time.Sleep(5 * time.Second)
		}
	}
}

// PowerButtons lists the /dev/input/event* devices whose name says power button.
func PowerButtons(sysInput string) []string {
	names, _ := filepath.Glob(filepath.Join(sysInput, "event*", "device", "name"))
	var devs []string
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil || !strings.Contains(strings.ToLower(string(b)), "power button") {
			continue
		}
		devs = append(devs, "/dev/input/"+filepath.Base(filepath.Dir(filepath.Dir(n))))
	}
	return devs
}

const (
	evKey    = 1
	keyPower = 116
)

// watchButton reads f's presses into ch in the background. A panic there
// costs this button (the others and the signals still shut down).
func watchButton(f *os.File, ch chan<- Action) {
	goroutine.Go("power button "+f.Name(), func() { readButton(f, ch) })
}

func readButton(f *os.File, ch chan<- Action) {
	defer f.Close()
	dev := f.Name()
	ev := make([]byte, 24) // struct input_event on 64-bit: timeval, type, code, value
	for {
		if _, err := f.Read(ev); err != nil {
			slog.Warn("power button", "device", dev, "err", err)
			return
		}
		if IsPowerPress(ev) {
			ch <- PowerOff
		}
	}
}

// IsPowerPress reports whether a 24-byte input_event is a power key press.
func IsPowerPress(ev []byte) bool {
	if len(ev) < 24 {
		return false
	}
	typ := binary.LittleEndian.Uint16(ev[16:])
	code := binary.LittleEndian.Uint16(ev[18:])
	val := int32(binary.LittleEndian.Uint32(ev[20:]))
	return typ == evKey && code == keyPower && val == 1
}
