package config

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/rke2os/rke2os/init/shared/layout"
)

// The debug switches the init knows (config debug: {hooks: true}).
const (
	// DebugHooks serves test hooks over HTTP on DebugHooksAddr, to
	// callers that send the token in layout.DebugHooksToken.
	DebugHooks = "hooks"
	// DebugLogs copies the kubelet's and containerd's logs to the console.
	DebugLogs = "logs"
	// DebugCPU logs every minute which processes used the CPU.
	DebugCPU = "cpu"
)

// DebugHooksAddr is where the debug hooks listen: the guest's address on
// QEMU's user network, which QEMU's hostfwd reaches, and nothing else (a
// node without that address does not serve them).
const DebugHooksAddr = "10.0.2.15:7557"

// MinDebugHooksToken is the shortest token the debug hooks accept.
const MinDebugHooksToken = 16

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
// typo, like "hook"). debug.hooks without a write_files entry giving
// layout.DebugHooksToken a long enough token gets a warning of its own: the
// init will not serve them.
func (c *Config) DebugWarnings() []string {
	if c == nil {
		return nil
	}
	var out []string
	for _, k := range slices.Sorted(maps.Keys(c.Debug)) {
		switch {
		case !c.Debug[k] || k == DebugLogs || k == DebugCPU:
		case k == DebugHooks:
			out = append(out, c.hooksWarning())
		default:
			out = append(out, fmt.Sprintf("debug.%s is on, but the init has no such debug switch (it knows %s, %s and %s): it does nothing", k, DebugHooks, DebugLogs, DebugCPU))
		}
	}
	return out
}

// hooksWarning is the warning of debug.hooks: what it exposes, or why the
// init will not serve it.
func (c *Config) hooksWarning() string {
	fix := fmt.Sprintf("add a write_files entry with path %s, permissions \"0600\" and a random secret of at least %d characters as its content "+
		"(the tests send it as \"Authorization: Bearer <secret>\")", layout.DebugHooksToken, MinDebugHooksToken)
	i := slices.IndexFunc(c.WriteFiles, func(f WriteFile) bool { return f.Path == layout.DebugHooksToken })
	if i < 0 {
		return fmt.Sprintf("debug.hooks is on, but no write_files entry writes its token %s: the init will not serve the hooks; %s", layout.DebugHooksToken, fix)
	}
	if b, err := c.WriteFiles[i].Decode(); err == nil { // a content that does not decode is an error of its own
		if _, err := DebugHooksToken(layout.DebugHooksToken, b); err != nil {
			return fmt.Sprintf("debug.hooks is on, but %s: the init will not serve the hooks; %s", err, fix)
		}
	}
	return fmt.Sprintf("debug.hooks is on: the init serves HTTP on %s to callers that send the token in %s, "+
		"and they can kill the node's services (POST /debug/signal); it is for tests, never for a production node", DebugHooksAddr, layout.DebugHooksToken)
}

// DebugHooksToken returns the token in content, the content of the token
// file name (layout.DebugHooksToken on a node), with surrounding space such
// as the final newline removed; or an error that says what is wrong with
// it: it must be one word of at least MinDebugHooksToken characters, to
// be sent in a header line.
func DebugHooksToken(name string, content []byte) (string, error) {
	tok := strings.TrimSpace(string(content))
	switch {
	case tok == "":
		return "", fmt.Errorf("the token file %s is empty", name)
	case strings.ContainsFunc(tok, func(r rune) bool { return r <= ' ' || r == 0x7f }):
		return "", fmt.Errorf("the token in %s holds spaces or control characters: it must be one word", name)
	case len(tok) < MinDebugHooksToken:
		return "", fmt.Errorf("the token in %s has %d characters, fewer than %d", name, len(tok), MinDebugHooksToken)
	}
	return tok, nil
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
