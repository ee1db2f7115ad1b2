package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// rke2-build validate passes a config with debug hooks on, and warns on
// stderr; an invalid config fails with exit code 2.
func TestValidate(t *testing.T) {
	dir := t.TempDir()
	hooks := filepath.Join(dir, "hooks.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(hooks, []byte("debug: {hooks: true, logs: true}\n"), 0o644)
	os.WriteFile(bad, []byte("role: nope\n"), 0o644)

	var stdout, stderr bytes.Buffer
	if exit := validate([]string{hooks}, &stdout, &stderr); exit != 0 {
		t.Fatalf("exit %d\n%s", exit, &stderr)
	}
	if stdout.String() != hooks+": ok\n" {
		t.Fatalf("stdout %q", &stdout)
	}
	if w := stderr.String(); !strings.HasPrefix(w, hooks+": warning: debug.hooks is on") || strings.Count(w, "\n") != 1 {
		t.Fatalf("stderr %q: want one warning, for debug.hooks", w)
	}

	stdout.Reset()
	stderr.Reset()
	if exit := validate([]string{"--role", "server", bad, hooks}, &stdout, &stderr); exit != 2 {
		t.Fatalf("exit %d, want 2", exit)
	}
	if !strings.Contains(stderr.String(), "role") || stdout.String() != hooks+": ok\n" {
		t.Fatalf("stdout %q, stderr %q", &stdout, &stderr)
	}
}

// Help goes to standard output with exit 0, as Kubernetes tools do; a
// wrong command to standard error with exit 2.
func TestHelpAndVersion(t *testing.T) {
	for _, c := range []struct {
		args        []string
		exit        int
		out, errOut string
	}{
		{[]string{"--help"}, 0, "Usage:\n  rke2-build image", ""},
		{[]string{"help"}, 0, "rke2-build version", ""},
		{[]string{"version"}, 0, "rke2-build ", ""},
		{[]string{"validate", "--help"}, 0, "-role", ""},
		{[]string{"dance"}, 2, "", `unknown command "dance"`},
		{nil, 2, "", "Usage:"},
	} {
		var stdout, stderr bytes.Buffer
		exit := run(c.args, &stdout, &stderr)
		if exit != c.exit || !strings.Contains(stdout.String(), c.out) || !strings.Contains(stderr.String(), c.errOut) ||
			(c.exit == 0) != (stderr.Len() == 0) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", c.args, exit, &stdout, &stderr)
		}
	}
}
