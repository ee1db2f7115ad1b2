package config

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// The debug switches the init knows (config debug: {hooks: true}).
const (
	// DebugHooks serves test hooks over HTTP on DebugHooksAddr.
	DebugHooks = "hooks"
	// DebugLogs copies the kubelet's and containerd's logs to the console.
	DebugLogs = "logs"
	// DebugCPU logs every minute which processes used the CPU.
	DebugCPU = "cpu"
)

// DebugHooksAddr is where the debug hooks listen.
const DebugHooksAddr = ":7557"

// CmdlineDebugPanic is the kernel command line parameter that makes a
// boot step panic on purpose (rke2.debug.panic=<step>), for the tests that
// prove a panic is contained.
const CmdlineDebugPanic = "rke2.debug.panic"

// DebugWarnings says, one sentence each, what the debug switches that are
// on expose: the init prints them at every boot and rke2-build validate at
// build time, so that a switch meant for a test does not reach a
// production node unnoticed. debug.logs and debug.cpu are not warned
// about (they copy logs and figures to the console, which shows the boot
// already); a switch the init does not know is, since it does nothing (a
// typo, like "hook").
func (c *Config) DebugWarnings() []string {
	if c == nil {
		return nil
	}
	var out []string
	for _, k := range slices.Sorted(maps.Keys(c.Debug)) {
		switch {
		case !c.Debug[k] || k == DebugLogs || k == DebugCPU:
		case k == DebugHooks:
			out = append(out, fmt.Sprintf("debug.hooks is on: the init serves HTTP on port %s without authentication, "+
				"and anyone who reaches it can kill the node's services (POST /debug/signal); it is for tests, never for a production node",
				strings.TrimPrefix(DebugHooksAddr, ":")))
		default:
			out = append(out, fmt.Sprintf("debug.%s is on, but the init has no such debug switch (it knows %s, %s and %s): it does nothing", k, DebugHooks, DebugLogs, DebugCPU))
		}
	}
	return out
}

// CmdlineDebugWarnings says, one sentence each, what the debug parameters
// on a kernel command line (the content of /proc/cmdline) do, for the init
// to print at every boot.
func CmdlineDebugWarnings(cmdline string) []string {
	var out []string
	for _, p := range SplitCmdline(cmdline) {
		key, val, _ := strings.Cut(p, "=")
		switch {
		case key == CmdlineDebugPanic:
			out = append(out, fmt.Sprintf("%s=%s is on the kernel command line: the boot step %q panics on purpose and the node stays in maintenance mode; "+
				"it is for tests, remove it from the boot loader's command line", key, val, val))
		case strings.HasPrefix(key, "rke2.debug."):
			out = append(out, fmt.Sprintf("%s is on the kernel command line, but the init has no such debug parameter (it knows %s): it does nothing", key, CmdlineDebugPanic))
		}
	}
	return out
}
