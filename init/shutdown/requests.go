package shutdown

import (
	"encoding/binary"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Requests delivers shutdown requests: SIGTERM and the ACPI power button
// (what `virsh shutdown` and QEMU's system_powerdown press) ask for a power
// off, SIGINT (Ctrl-Alt-Del) for a reboot.
func Requests() <-chan Action {
	ch := make(chan Action, 4)
	// Without CAD_OFF the kernel reboots at once on Ctrl-Alt-Del; with it,
	// PID 1 gets SIGINT and can stop things in order.
	_ = unix.Reboot(unix.LINUX_REBOOT_CMD_CAD_OFF)
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, unix.SIGTERM, unix.SIGINT, unix.SIGPWR)
	go func() {
		for s := range sigs {
			if s == unix.SIGINT {
				ch <- Reboot
			} else {
				ch <- PowerOff
			}
		}
	}()
	go watchPowerButtons(ch)
	return ch
}

// watchPowerButtons reads every input device named like a power button.
// The devices appear once the button and evdev modules are loaded, so it
// looks again for a while.
func watchPowerButtons(ch chan<- Action) {
	watched := map[string]bool{}
	for i := 0; i < 600; i++ {
		for _, dev := range PowerButtons("/sys/class/input") {
			if watched[dev] {
				continue
			}
			watched[dev] = true
			go readButton(dev, ch)
		}
		if len(watched) > 0 && i > 50 {
			return
		}
		time.Sleep(200 * time.Millisecond)
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

func readButton(dev string, ch chan<- Action) {
	f, err := os.Open(dev)
	if err != nil {
		slog.Warn("power button", "device", dev, "err", err)
		return
	}
	defer f.Close()
	// Logged once the device is open: a press before this is not seen.
	slog.Info("watching power button", "device", dev)
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
