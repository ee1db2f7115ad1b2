package main

import (
	"bytes"
	"encoding/base64"
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
	if exit := run([]string{"validate", hooks}, &stdout, &stderr); exit != 0 {
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
	if exit := run([]string{"validate", "--role", "server", bad, hooks}, &stdout, &stderr); exit != 2 {
		t.Fatalf("exit %d, want 2", exit)
	}
	if !strings.Contains(stderr.String(), "role") || stdout.String() != hooks+": ok\n" {
		t.Fatalf("stdout %q, stderr %q", &stdout, &stderr)
	}
}

// rke2-build validate warns, without failing, of an agent given a server
// token and of a token on the kernel command line (every pod reads
// /proc/cmdline); a command line whose config does not parse fails.
func TestValidateTokens(t *testing.T) {
	agent := filepath.Join(t.TempDir(), "agent.yaml")
	os.WriteFile(agent, []byte("rke2:\n  server: https://10.0.0.1:9345\n  token: K10"+strings.Repeat("ab", 32)+"::server:s3cr3t\n"), 0o644)
	var stdout, stderr bytes.Buffer
	if exit := run([]string{"validate", "--role", "agent", agent}, &stdout, &stderr); exit != 0 || stdout.String() != agent+": ok\n" {
		t.Fatalf("exit %d, stdout %q, stderr %q", exit, &stdout, &stderr)
	}
	if w := stderr.String(); !strings.Contains(w, agent+": warning: rke2.token is a server token") || strings.Contains(w, "s3cr3t") {
		t.Fatalf("stderr %q: want the server token warning, without the secret", w)
	}

	// As out/rke2-agent.cmdline has it, the role and panic= included.
	cmdline := "console=ttyS0 panic=10 rke2.role=agent rke2.config=" + base64.StdEncoding.EncodeToString([]byte("rke2:\n  token: s3cr3t\n"))
	stdout.Reset()
	stderr.Reset()
	if exit := run([]string{"validate", "--cmdline", cmdline}, &stdout, &stderr); exit != 0 || stdout.String() != "--cmdline: ok\n" {
		t.Fatalf("exit %d, stdout %q, stderr %q", exit, &stdout, &stderr)
	}
	if w := stderr.String(); !strings.Contains(w, "--cmdline: warning: kernel command line rke2.config carries rke2.token") || strings.Contains(w, "s3cr3t") {
		t.Fatalf("stderr %q: want the command line warning, without the secret", w)
	}
	stdout.Reset()
	stderr.Reset()
	if exit := run([]string{"validate", "--cmdline", "rke2.config=!!!"}, &stdout, &stderr); exit != 2 || !strings.Contains(stderr.String(), "base64") {
		t.Fatalf("bad command line: exit %d, stdout %q, stderr %q", exit, &stdout, &stderr)
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
		{[]string{"secrets", "--help"}, 0, "-upgrade-key-only DIR", ""},
		{[]string{"image", "--help"}, 0, "no upgrade artifact is written", ""},
		{[]string{"kubeconfig", "-h"}, 0, "-server", ""},
		{[]string{"secrets"}, 2, "", "give --output DIR"},
		{[]string{"secrets", "--output", "a", "--upgrade-key-only", "b"}, 2, "", "not both"},
		{[]string{"kubeconfig", "--secrets", "x"}, 2, "", "give --secrets DIR and --server"},
		{[]string{"kubeconfig", "--nope"}, 2, "", "see rke2-build kubeconfig --help"},
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

// rke2-build secrets makes the directory once; kubeconfig prints an admin
// kubeconfig from it, or writes it private, replacing the file.
func TestSecretsAndKubeconfig(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "secrets")
	var stdout, stderr bytes.Buffer
	if exit := run([]string{"secrets", "--output", dir}, &stdout, &stderr); exit != 0 || stderr.Len() > 0 {
		t.Fatalf("exit %d, stderr %q", exit, &stderr)
	}
	token, err := os.ReadFile(filepath.Join(dir, "token"))
	if err != nil || !strings.HasPrefix(string(token), "K10") || strings.Contains(stdout.String(), strings.TrimSpace(string(token))) {
		t.Fatalf("token %q (%v), stdout %q: want a K10 token, not printed", token, err, &stdout)
	}
	// The agents' token too, with a secret of its own.
	agentToken, err := os.ReadFile(filepath.Join(dir, "agent-token"))
	if err != nil || !strings.Contains(string(agentToken), "::node:") || strings.Contains(stdout.String(), strings.TrimSpace(string(agentToken))) ||
		!strings.Contains(stdout.String(), "agent-token") {
		t.Fatalf("agent-token %q (%v), stdout %q: want a K10...::node: token, named and not printed", agentToken, err, &stdout)
	}
	stdout.Reset()
	if exit := run([]string{"secrets", "--output", dir}, &stdout, &stderr); exit != 2 || !strings.Contains(stderr.String(), "already exists") || stdout.Len() > 0 {
		t.Fatalf("again: exit %d, stdout %q, stderr %q", exit, &stdout, &stderr)
	}
	if again, _ := os.ReadFile(filepath.Join(dir, "token")); string(again) != string(token) {
		t.Fatal("the second run changed the token")
	}
	// And the upgrade signing key pair, named.
	for _, f := range []string{"upgrade.key", "upgrade.pub"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}

	stdout.Reset()
	stderr.Reset()
	if exit := run([]string{"kubeconfig", "--secrets", dir, "--server", "https://192.0.2.10:6443"}, &stdout, &stderr); exit != 0 || stderr.Len() > 0 {
		t.Fatalf("kubeconfig: exit %d, stderr %q", exit, &stderr)
	}
	for _, want := range []string{"server: https://192.0.2.10:6443", "certificate-authority-data: ", "client-key-data: "} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("kubeconfig lacks %q:\n%s", want, &stdout)
		}
	}
	out := filepath.Join(t.TempDir(), "admin.yaml")
	for i := range 2 {
		stdout.Reset()
		if exit := run([]string{"kubeconfig", "--secrets", dir, "--server", "https://192.0.2.10:6443", "--output", out}, &stdout, &stderr); exit != 0 || stdout.Len() > 0 {
			t.Fatalf("--output, run %d: exit %d, stdout %q, stderr %q", i, exit, &stdout, &stderr)
		}
		if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("run %d: %s: %v, want mode 0600", i, out, err)
		}
	}
	stderr.Reset()
	if exit := run([]string{"kubeconfig", "--secrets", dir, "--server", "192.0.2.10:6443"}, &stdout, &stderr); exit != 2 || !strings.Contains(stderr.String(), "https://") {
		t.Errorf("bad --server: exit %d, stderr %q", exit, &stderr)
	}
}

// rke2-build secrets --upgrade-key-only gives secrets made before upgrade
// signing a key pair, once, and changes nothing else.
func TestSecretsUpgradeKeyOnly(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "secrets")
	var stdout, stderr bytes.Buffer
	if exit := run([]string{"secrets", "--output", dir}, &stdout, &stderr); exit != 0 {
		t.Fatalf("exit %d, stderr %q", exit, &stderr)
	}
	for _, f := range []string{"upgrade.key", "upgrade.pub"} {
		os.Remove(filepath.Join(dir, f))
	}
	token, _ := os.ReadFile(filepath.Join(dir, "token"))
	stdout.Reset()
	if exit := run([]string{"secrets", "--upgrade-key-only", dir}, &stdout, &stderr); exit != 0 || stderr.Len() > 0 || !strings.Contains(stdout.String(), "upgrade.key: signs") {
		t.Fatalf("exit %d, stdout %q, stderr %q", exit, &stdout, &stderr)
	}
	key, err := os.ReadFile(filepath.Join(dir, "upgrade.key"))
	if err != nil || strings.Contains(stdout.String(), string(key)) {
		t.Fatalf("upgrade.key: %v, or printed", err)
	}
	if again, _ := os.ReadFile(filepath.Join(dir, "token")); string(again) != string(token) {
		t.Error("the token changed")
	}
	stdout.Reset()
	if exit := run([]string{"secrets", "--upgrade-key-only", dir}, &stdout, &stderr); exit != 2 || !strings.Contains(stderr.String(), "never replaced") {
		t.Fatalf("again: exit %d, stdout %q, stderr %q", exit, &stdout, &stderr)
	}
	if again, _ := os.ReadFile(filepath.Join(dir, "upgrade.key")); string(again) != string(key) {
		t.Error("the second run changed the key")
	}
	stderr.Reset()
	if exit := run([]string{"secrets", "--upgrade-key-only", filepath.Join(t.TempDir(), "none")}, &stdout, &stderr); exit != 2 || !strings.Contains(stderr.String(), "no such file") {
		t.Errorf("a directory that is not there: exit %d, stderr %q", exit, &stderr)
	}
}

// rke2-build image's bad input ends with exit 2 and a message that names
// the fix, before anything is built; help is exit 0.
func TestImageBadInput(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("role: nope\n"), 0o644)
	for _, c := range []struct {
		name  string
		env   string
		args  []string
		exit  int
		inErr string
	}{
		{"help", "", []string{"--help"}, 0, ""},
		{"unknown flag", "", []string{"--nope"}, 2, "see rke2-build image --help"},
		{"an argument", "", []string{"server"}, 2, `unexpected argument "server"`},
		{"bad epoch", "yesterday", []string{"--output", dir}, 2, "SOURCE_DATE_EPOCH"},
		{"epoch before FAT", "100", []string{"--output", dir}, 2, "1980 or later"},
		{"secrets without an upgrade key", "", []string{"--role", "agent", "--secrets", dir, "--output", dir}, 2, "rke2-build secrets --upgrade-key-only " + dir},
		{"invalid config", "", []string{"--config", bad, "--output", dir}, 2, "role"},
		{"no GRUB images", "", []string{"--grub", filepath.Join(dir, "none"), "--output", dir}, 2, "make grub"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("SOURCE_DATE_EPOCH", c.env)
			var stdout, stderr bytes.Buffer
			exit := run(append([]string{"image"}, c.args...), &stdout, &stderr)
			if exit != c.exit || !strings.Contains(stderr.String(), c.inErr) {
				t.Errorf("exit %d, stderr %q; want %d and %q", exit, &stderr, c.exit, c.inErr)
			}
			if c.exit == 0 && !strings.Contains(stdout.String(), "-role") {
				t.Errorf("help: stdout %q", &stdout)
			}
		})
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("%s holds %d entries after refused builds, want bad.yaml alone", dir, len(ents))
	}
}
