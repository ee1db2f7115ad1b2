package config

import (
	"fmt"
	"strings"
	"testing"

	"github.com/rke2os/rke2os/init/shared/layout"
)

// Each debug switch that exposes the node says so in plain words; off
// switches, debug.logs and debug.cpu say nothing; an unknown switch that is on is a
// typo worth a warning. debug.hooks without a usable token in write_files
// says the hooks will not be served, and how to fix it.
func TestDebugWarnings(t *testing.T) {
	const token = "write_files:\n  - path: /etc/rke2/debug-hooks.token\n    permissions: \"0600\"\n    content: %s\n"
	for _, tc := range []struct {
		name, doc string
		want      []string // one substring per warning, in order
	}{
		{"none", "hostname: a\n", nil},
		{"hooks", "debug: {hooks: true}\n" + fmt.Sprintf(token, "0123456789abcdef\n"),
			[]string{"debug.hooks is on: the init serves HTTP on 10.0.2.15:7557 to callers that send the token in /etc/rke2/debug-hooks.token"}},
		{"hooks b64 token", "debug: {hooks: true}\n" + fmt.Sprintf(token, "MDEyMzQ1Njc4OWFiY2RlZg==\n    encoding: b64"), []string{"debug.hooks is on: the init serves"}},
		{"hooks no token", "debug: {hooks: true}\n", []string{"debug.hooks is on, but no write_files entry writes its token /etc/rke2/debug-hooks.token: " +
			"the init will not serve the hooks; add a write_files entry with path /etc/rke2/debug-hooks.token"}},
		{"hooks other files", "debug: {hooks: true}\nwrite_files: [{path: /etc/motd, content: hi}]\n", []string{"no write_files entry writes its token"}},
		{"hooks short token", "debug: {hooks: true}\n" + fmt.Sprintf(token, "short"),
			[]string{"debug.hooks is on, but the token in /etc/rke2/debug-hooks.token has 5 characters, fewer than 16: the init will not serve the hooks; add"}},
		{"hooks off", "debug: {hooks: false}\n", nil},
		{"logs", "debug: {logs: true}\n", nil},
		{"cpu", "debug: {cpu: true}\n", nil},
		{"unknown", "debug: {hook: true, trace: false, logs: true}\n", []string{"debug.hook is on, but the init has no such debug switch (it knows hooks, logs and cpu)"}},
		{"sorted", "debug: {zz: true, hooks: true}\n", []string{"debug.hooks is on", "debug.zz is on"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := mustParse(t, "t", tc.doc).DebugWarnings()
			if len(got) != len(tc.want) {
				t.Fatalf("DebugWarnings = %q, want %d warnings", got, len(tc.want))
			}
			for i, w := range tc.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("warning %d = %q, want %q in it", i, got[i], w)
				}
			}
		})
	}
	// The warning follows the merged config: a later source turning hooks
	// off silences it.
	on, off := mustParse(t, "baked", "debug: {hooks: true}\n"), mustParse(t, "cmdline", "debug: {hooks: false}\n")
	if w := Merge(on, off).DebugWarnings(); len(w) != 0 {
		t.Fatalf("hooks turned off later: %q", w)
	}
	// The token may come from another source than the switch.
	tok := mustParse(t, "cidata", fmt.Sprintf(token, "0123456789abcdef"))
	if w := Merge(on, tok).DebugWarnings(); len(w) != 1 || !strings.HasPrefix(w[0], "debug.hooks is on: the init serves") {
		t.Fatalf("hooks with the token from cidata: %q", w)
	}
	if w := (*Config)(nil).DebugWarnings(); w != nil {
		t.Fatalf("nil config: %q", w)
	}
}

func TestCmdlineDebugWarnings(t *testing.T) {
	for _, tc := range []struct {
		cmdline string
		want    []string
	}{
		{"console=ttyS0 rke2.medium=RKE2_BOOT\n", nil},
		{"console=ttyS0 rke2.debug.panic=network quiet\n", []string{`rke2.debug.panic=network is on the kernel command line: the boot step "network" panics on purpose`}},
		{`"rke2.debug.panic=state" rke2.debug.trace=1`, []string{`boot step "state"`, "rke2.debug.trace is on the kernel command line, but the init has no such debug parameter"}},
		{"rke2.debugging=1 xrke2.debug.panic=x", nil},
	} {
		got := CmdlineDebugWarnings(tc.cmdline)
		if len(got) != len(tc.want) {
			t.Fatalf("CmdlineDebugWarnings(%q) = %q, want %d warnings", tc.cmdline, got, len(tc.want))
		}
		for i, w := range tc.want {
			if !strings.Contains(got[i], w) {
				t.Errorf("CmdlineDebugWarnings(%q)[%d] = %q, want %q in it", tc.cmdline, i, got[i], w)
			}
		}
	}
}

// The token of the debug hooks is one word of at least 16 characters; the
// file's final newline does not count.
func TestDebugHooksToken(t *testing.T) {
	for _, tc := range []struct{ content, tok, err string }{
		{"0123456789abcdef\n", "0123456789abcdef", ""},
		{"  0123456789abcdef0123  \r\n", "0123456789abcdef0123", ""},
		{"0123456789abcde\n", "", "the token in /etc/rke2/debug-hooks.token has 15 characters, fewer than 16"},
		{"", "", "the token file /etc/rke2/debug-hooks.token is empty"},
		{"\n \n", "", "is empty"},
		{"01234567 89abcdef\n", "", "spaces or control characters"},
		{"0123456789abcdef\nsecond line\n", "", "spaces or control characters"},
		{"0123456789abcdef\x00", "", "spaces or control characters"},
	} {
		tok, err := DebugHooksToken(layout.DebugHooksToken, []byte(tc.content))
		if tok != tc.tok || (err == nil) != (tc.err == "") || err != nil && !strings.Contains(err.Error(), tc.err) {
			t.Errorf("DebugHooksToken(%q) = %q, %v; want %q, %q", tc.content, tok, err, tc.tok, tc.err)
		}
	}
}
