// Package pid1 is the init's boot sequence, top to bottom: each step is a
// call into the package that owns it. Reading Run tells the whole story.
package pid1

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rke2os/rke2os/init/pid1/boot"
	"github.com/rke2os/rke2os/init/pid1/host"
	"github.com/rke2os/rke2os/init/pid1/network"
	"github.com/rke2os/rke2os/init/pid1/shutdown"
	"github.com/rke2os/rke2os/init/shared/config"
	"github.com/rke2os/rke2os/init/shared/console"
	"github.com/rke2os/rke2os/init/shared/goroutine"
	"github.com/rke2os/rke2os/init/shared/layout"
	"github.com/rke2os/rke2os/init/shared/supervise"
	"golang.org/x/sys/unix"
)

// imagesDir is where RKE2 looks for airgap image archives.
var imagesDir = layout.DefaultPaths.Images()

// memoryLimit is the Go runtime's soft limit for PID 1 (heap, stacks and
// runtime, not the binary): about twice what it uses, so GC, not the
// limit, sets the pace, and freed pages go back to the kernel.
const memoryLimit = 8 << 20

// mediumTimeout bounds the wait for the boot medium's driver to probe.
const mediumTimeout = 60 * time.Second

// Run boots the node and never returns. A failed step is logged in plain
// words and the init stays up in maintenance mode until it is told to power
// off or reboot: PID 1 exiting would panic the kernel, and guessing past a
// bad config would hide the mistake.
func Run() {
	// PID 1 lives as long as the machine and allocates little: collect
	// sooner and hand freed memory back, rather than keep heap headroom.
	debug.SetGCPercent(50)
	debug.SetMemoryLimit(memoryLimit)
	if !boot.OnTmpfsRoot() {
		console.Milestone("init-start") // once, before the re-exec on the tmpfs root
	}
	step("switchroot", boot.LeaveInitramfs)
	step("pseudofs", boot.MountPseudoFS)
	console.Open()
	rawCmdline := readCmdline()
	cmdline := boot.ParseCmdline(rawCmdline)
	panicIn = cmdline["rke2.debug.panic"]
	for _, w := range config.CmdlineDebugWarnings(rawCmdline) {
		slog.Warn(w)
	}
	reaper := supervise.Reap()
	sup := supervise.New(reaper)
	// The network's DHCP clients renew leases until shutdown begins.
	netCtx, stopNet := context.WithCancel(context.Background())
	defer stopNet()
	// A shutdown request is served at any time, also in the middle of a
	// long step such as the airgap import.
	requests := shutdown.Requests()
	goroutine.Go("shutdown", func() {
		serveShutdown(requests, func() {
			stopNet()
			if err := sup.StopAll(10 * time.Second); err != nil {
				slog.Warn("stopping services", "err", err)
			}
		})
	})

	step("modules", func() error {
		n, err := boot.LoadModules()
		slog.Info("modules loaded", "count", n)
		return err
	})
	// From here on a press of the power button is served, whatever the
	// boot waits for next (the network, a DHCP server, maintenance mode).
	if shutdown.WatchPowerButtons() == 0 {
		slog.Info("no power button yet; looking for one in the background")
	}
	boot.WatchEntropy(boot.EntropyWait)
	console.Milestone("modules-loaded")

	var cfg, carried *config.Config
	var medium string // the boot medium's device; "" for PXE
	ok := step("medium", func() (err error) {
		medium, err = mountMedium(cmdline)
		return err
	}) &&
		step("state", func() error { return mountState(medium, cmdline["rke2.reset"] == "1") }) &&
		step("slot", func() error { return checkSlot(cmdline, medium) }) &&
		step("config", func() error {
			loaded, err := loadConfig(rawCmdline, cmdline["rke2.role"])
			if err == nil {
				cfg, carried = loaded.merged, loaded.carried
			}
			return err
		})
	if ok {
		console.Milestone("config-loaded")
	}
	// A boot from the ISO whose config says install: writes the system
	// onto a disk and reboots into it; nothing else starts.
	installed := false
	ok = ok && step("install", func() (err error) {
		installed, err = installFromISO(reaper, cfg, carried, cmdline, medium)
		return err
	})
	if installed {
		select {} // the reboot or power-off asked for is being served
	}
	ok = ok && step("host", func() error { return applyHost(cfg) })
	ok = ok && step("images", func() error {
		n, err := boot.LinkImages(imagesDir)
		slog.Info("image archives from the boot medium", "count", n, "dir", imagesDir)
		console.Event(console.EventImagesLinked, "count", n, "dir", imagesDir)
		return err
	})

	var net *network.State
	// The network step waits for carrier and leases as long as it takes
	// (a switch or DHCP server that comes back after the node, a cable
	// plugged in late), saying what it waits for; a config mistake is an
	// error at once.
	ok = ok && step("network", func() (err error) {
		net, err = network.Up(netCtx, cfg.Network, network.WithLogger(slog.Default()))
		if err != nil {
			return err
		}
		console.Milestone("network-up")
		slog.Info("network up", "links", net.String(), "node_ip", net.NodeIP())
		console.Event(console.EventNetworkUp, "links", net.String(), "node_ip", net.NodeIP())
		return nil
	})
	// True time before any certificate, key or etcd data is made.
	ok = ok && step("clock", func() error {
		syncClock(netCtx, cfg, net)
		return nil
	})
	role := cfg.Role(cmdline["rke2.role"])
	if ok && cfg.Debug[config.DebugLogs] {
		tailLogs(netCtx, map[string]string{
			"containerd": "/var/lib/rancher/rke2/agent/containerd/containerd.log",
			"kubelet":    "/var/lib/rancher/rke2/agent/logs/kubelet.log",
		}, 2*time.Second)
	}
	if ok && cfg.Debug[config.DebugCPU] {
		startCPULog(netCtx, "/proc", time.Minute)
	}
	if ok && cfg.Debug[config.DebugHooks] {
		serveDebugHooks(sup.Signal)
	}
	ok = ok && step("cgroups", func() error { return boot.DelegateCgroups("/sys/fs/cgroup") }) &&
		step("node", func() error { return startNode(netCtx, reaper, sup, cfg, role, net.NodeIP().String()) })
	if !ok && !stopping.Load() {
		slog.Error("maintenance mode: the node stays up without starting RKE2; fix the error above, then reboot (the power button powers off)")
		if cmdline["rke2.trial"] == "1" {
			failTrial()
		}
		console.Event(console.EventMaintenance)
	}

	for e := range sup.Fatal() {
		// containerd exiting stops the node stack, as in RKE2; then
		// restart it or reboot, as the config says.
		console.Error(fmt.Errorf("node stack stopped: %w", e))
		if cfg.ContainerdExitAction() == config.ContainerdExitReboot {
			console.Event(console.EventStackStopped, "service", e.Name, "action", "reboot")
			_ = unix.Kill(1, unix.SIGINT) // the reboot request, served in order
			continue
		}
		console.Event(console.EventStackStopped, "service", e.Name, "action", "restart")
		if err := sup.StopAll(10 * time.Second); err != nil {
			slog.Warn("stopping services", "err", err)
		}
		sup.Start()
	}
	select {}
}

// formatting is held while the state partition is grown and formatted:
// a power-off in the middle would leave it unfinished (the next boot
// would format it again, but the wait is short and loses nothing).
var formatting sync.Mutex

// stopping is set once a shutdown or reboot has begun: a boot step that
// ends because the shutdown stopped it (the network wait) is no error.
var stopping atomic.Bool

// formatWait bounds how long a shutdown waits for a format to finish.
const formatWait = 2 * time.Minute

// serveShutdown powers off or reboots on the first request; it never returns.
func serveShutdown(requests <-chan shutdown.Action, stop func()) {
	defer func() {
		if r := recover(); r != nil {
			console.Error(fmt.Errorf("shutdown: panic: %v", r))
			shutdown.Run(shutdown.PowerOff, nil)
		}
	}()
	a := <-requests
	stopping.Store(true)
	for deadline := time.Now().Add(formatWait); !formatting.TryLock(); {
		if time.Now().After(deadline) {
			slog.Warn("state partition still being formatted; shutting down anyway", "waited", formatWait)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	shutdown.Run(a, stop)
}

func readCmdline() string {
	b, _ := os.ReadFile("/proc/cmdline")
	return string(b)
}

// mountMedium mounts the ISO or system partition named on the command line;
// a PXE boot names none and runs from the initramfs alone.
func mountMedium(cmdline boot.Cmdline) (string, error) {
	label := cmdline["rke2.medium"]
	if label == "" {
		slog.Info("no boot medium on the command line (rke2.medium=); running from the initramfs")
		console.Event(console.EventMediumNone)
		return "", nil
	}
	m, err := boot.FindMedium(label, mediumTimeout)
	if err != nil {
		return "", err
	}
	return m.Device, m.Mount()
}

// mountState puts /var (and /etc/rancher) on the disk's state partition,
// formatting it on the first boot; without one (an ISO or PXE boot) the
// node's state lives in memory and is gone at the next boot.
//
// A reset (rke2.reset=1) wipes the state partition first: the node boots
// as new, from the same slot.
func mountState(medium string, reset bool) error {
	// A power-off waits for the format to finish (see serveShutdown).
	formatting.Lock()
	defer formatting.Unlock()
	s, err := boot.FindState(medium)
	if err != nil {
		return err
	}
	if s == nil {
		if reset {
			slog.Warn("reset asked for (rke2.reset=1), but there is no state partition: the node's state lives in memory, and is new at every boot")
		}
		slog.Info("no state partition (" + layout.StateLabel + "); the node's state lives in memory")
		console.Event(console.EventStateInMemory)
		return nil
	}
	if reset {
		slog.Warn("reset asked for (rke2.reset=1): wiping the state partition; the node boots as new", "device", s.Device)
		if err := s.Wipe(); err != nil {
			return err
		}
		console.Event(console.EventStateReset, "device", s.Device)
	}
	formatted, err := s.Prepare()
	if err != nil {
		return err
	}
	slog.Info("state ready", "device", s.Device, "formatted", formatted)
	console.Event(console.EventStateReady, "device", s.Device, "formatted", formatted)
	return nil
}

// applyHost sets what the config says of the machine itself.
func applyHost(cfg *config.Config) error {
	name := cfg.Hostname
	if current, _ := os.Hostname(); name == "" && host.NeedsHostname(current) {
		ifaces, _ := net.Interfaces()
		name = host.DefaultHostname(ifaces)
		slog.Info("hostname from the Ethernet address (set hostname: in the config to choose one)", "hostname", name)
	}
	if err := host.SetHostname("/", name); err != nil {
		return err
	}
	if err := host.Sysctls("/proc/sys", cfg.Sysctls); err != nil {
		return err
	}
	if err := host.WriteFiles("/", cfg.WriteFiles); err != nil {
		return err
	}
	// After write_files, so that a password given there is the one kept.
	created, err := host.EnsureNodePassword("/")
	if err == nil {
		slog.Info("node password", "file", layout.NodePassword, "created", created)
		console.Event(console.EventNodePassword, "file", layout.NodePassword, "created", created)
	}
	return err
}

// panicIn names a step that panics on purpose (rke2.debug.panic=<step> on
// the kernel command line), so that tests can prove a panic is contained.
var panicIn string

// step runs one boot step; an error or a panic is reported and false returned.
func step(name string, fn func() error) (ok bool) {
	defer func() {
		if r := recover(); r != nil {
			console.Error(fmt.Errorf("%s: panic: %v", name, r))
			slog.Error("panic", "step", name, "stack", string(debug.Stack()))
			ok = false
		}
	}()
	if panicIn != "" && panicIn == name {
		panic("rke2.debug.panic asked for it")
	}
	if err := fn(); err != nil {
		if stopping.Load() && errors.Is(err, context.Canceled) {
			slog.Info("boot step stopped by the shutdown", "step", name)
			return false
		}
		if strings.HasPrefix(err.Error(), name+": ") {
			console.Error(err) // it names its step already
		} else {
			console.Error(fmt.Errorf("%s: %w", name, err))
		}
		return false
	}
	return true
}
