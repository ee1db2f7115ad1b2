// Package shutdown ends the machine in order: stop every process, unmount,
// sync, then power off or reboot. It also turns the ACPI power button and
// the signals the kernel sends PID 1 into those requests.
package shutdown

import (
	"bufio"
	"log/slog"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/rke2os/rke2os/init/shared/console"
	"github.com/rke2os/rke2os/init/shared/goroutine"
	"golang.org/x/sys/unix"
)

// Action is what happens after the orderly stop.
type Action int

const (
	// PowerOff turns the machine off (SIGTERM, the power button).
	PowerOff Action = iota
	// Reboot restarts it (SIGINT, which the kernel sends on Ctrl-Alt-Del).
	Reboot
)

func (a Action) String() string {
	if a == Reboot {
		return "reboot"
	}
	return "poweroff"
}

// Run stops the system and never returns. Each step has a deadline, so a
// process that ignores SIGTERM or a hung unmount cannot keep it up.
func Run(a Action, stopServices func()) {
	console.Milestone("shutdown-begin")
	slog.Info("shutting down", "action", a.String())
	console.Event(console.EventShutdownBegin, "action", a.String())
	if stopServices != nil {
		stopServices()
	}
	killAll(5 * time.Second)
	unmountAll()
	syncWithDeadline(10 * time.Second)
	console.Milestone("shutdown-done")
	cmd := unix.LINUX_REBOOT_CMD_POWER_OFF
	if a == Reboot {
		cmd = unix.LINUX_REBOOT_CMD_RESTART
	}
	for {
		if err := unix.Reboot(cmd); err != nil {
			console.Error(err)
		}
		time.Sleep(time.Second)
	}
}

// killAll sends SIGTERM to every process but PID 1, then SIGKILL after grace.
func killAll(grace time.Duration) {
	_ = unix.Kill(-1, unix.SIGTERM)
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		// kill(-1, 0) fails with ESRCH once no other process is left.
		if err := unix.Kill(-1, 0); err == unix.ESRCH {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = unix.Kill(-1, unix.SIGKILL)
}

// unmountAll unmounts real filesystems, deepest first; what stays busy is
// remounted read-only so that nothing is left half-written.
func unmountAll() {
	f, err := os.Open("/proc/self/mounts")
	if err != nil {
		return
	}
	var targets []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 3 {
			continue
		}
		switch fs[2] {
		case "proc", "sysfs", "devtmpfs", "devpts", "cgroup2", "rootfs", "securityfs", "bpf", "tracefs", "debugfs", "mqueue":
			continue
		case "tmpfs":
			// The system's own tmpfs stay; the kubelet's (pod secrets
			// under /var/lib/kubelet) go, or they pin the state partition.
			if !strings.HasPrefix(fs[1], "/var/") {
				continue
			}
		}
		targets = append(targets, fs[1])
	}
	f.Close()
	sort.Sort(sort.Reverse(sort.StringSlice(targets)))
	for _, t := range targets {
		if err := unix.Unmount(t, 0); err != nil {
			slog.Warn("unmount failed, remounting read-only", "target", t, "err", err)
			console.Event(console.EventUnmountFailed, "target", t, "err", err)
			_ = unix.Mount("", t, "", unix.MS_REMOUNT|unix.MS_RDONLY, "")
		}
	}
}

func syncWithDeadline(d time.Duration) {
	done := make(chan struct{})
	goroutine.Go("sync", func() { unix.Sync(); close(done) })
	select {
	case <-done:
	case <-time.After(d):
		slog.Warn("sync did not finish in time", "deadline", d)
	}
}
