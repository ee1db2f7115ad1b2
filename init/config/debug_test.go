package config

import (
	"strings"
	"testing"
)

// Each debug switch that exposes the node says so in plain words; off
// switches, debug.logs and debug.cpu say nothing; an unknown switch that is on is a
// typo worth a warning.
func TestDebugWarnings(t *testing.T) {
	for _, tc := range []struct {
		name, doc string
		want      []string // one substring per warning, in order
	}{
		{"none", "hostname: a\n", nil},
		{"hooks", "debug: {hooks: true}\n", []string{"debug.hooks is on: the init serves HTTP on port 7557 without authentication"}},
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
