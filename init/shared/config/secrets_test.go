package config

import (
	"encoding/base64"
	"strings"
	"testing"
)

func TestSecretPaths(t *testing.T) {
	for _, tc := range []struct {
		name, doc string
		want      string // the paths, joined by spaces
	}{
		{"none", "hostname: a\nrke2:\n  token-file: /etc/token\n  server: https://10.0.0.1:9345\n", ""},
		{"tokens", "rke2:\n  token: s1\n  agent-token: s2\n", "rke2.agent-token rke2.token"},
		{"s3", "rke2:\n  etcd-s3-secret-key: k\n  etcd-s3-access-key: a\n", "rke2.etcd-s3-access-key rke2.etcd-s3-secret-key"},
		{"s3 proxy", "rke2:\n  etcd-s3-proxy: http://10.0.0.1:3128\n", ""},
		{"s3 proxy with credentials", "rke2:\n  etcd-s3-proxy: http://u:p@10.0.0.1:3128\n", "rke2.etcd-s3-proxy"},
		{"registry", "registries:\n  configs:\n    b.example.com:\n      auth: {username: u, password: p}\n" +
			"    a.example.com:\n      tls: {insecure_skip_verify: true}\n", "registries.configs.b.example.com.auth"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := strings.Join(mustParse(t, "t", tc.doc).SecretPaths(), " "); got != tc.want {
				t.Errorf("SecretPaths = %q, want %q", got, tc.want)
			}
		})
	}
	if p := (*Config)(nil).SecretPaths(); p != nil {
		t.Errorf("nil config: %q", p)
	}
}

// A token on the kernel command line is a warning, which names the key
// and never the value: every pod reads /proc/cmdline.
func TestCmdlineSecretWarnings(t *testing.T) {
	b64 := func(doc string) string { return base64.StdEncoding.EncodeToString([]byte(doc)) }
	for _, tc := range []struct {
		name, cmdline string
		want          string // "" for no warning
	}{
		{"no config", "console=ttyS0 rke2.role=agent", ""},
		{"no secret", "rke2.config=" + b64("rke2:\n  server: https://10.0.0.1:9345\n"), ""},
		{"token", "console=ttyS0 rke2.config=" + b64("rke2:\n  server: https://10.0.0.1:9345\n  token: my-secret-value\n"), "carries rke2.token"},
		{"second config", "rke2.config=" + b64("hostname: a\n") + " rke2.config=" + b64("rke2:\n  agent-token: my-secret-value\n"), "carries rke2.agent-token"},
		{"not a config", "rke2.config=!!!", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := CmdlineSecretWarnings(tc.cmdline)
			switch {
			case tc.want == "" && len(got) > 0:
				t.Fatalf("warnings %q, want none", got)
			case tc.want != "" && (len(got) != 1 || !strings.Contains(got[0], tc.want) || !strings.Contains(got[0], "/proc/cmdline")):
				t.Fatalf("warnings %q, want one with %q", got, tc.want)
			case len(got) > 0 && strings.Contains(got[0], "my-secret-value"):
				t.Fatalf("the warning echoes the secret: %q", got)
			}
		})
	}
}

// An agent given a server token is warned: by the token's form, or by the
// secret of the server token the image carries.
func TestAgentTokenWarnings(t *testing.T) {
	hash := strings.Repeat("ab", 32)
	baked := "K10" + hash + "::server:baked-secret"
	for _, tc := range []struct {
		name, doc, role, serverToken string
		want                         string // "" for no warning
	}{
		{"agent token", "rke2:\n  token: K10" + hash + "::node:agent-secret\n", "agent", baked, ""},
		{"bare secret", "rke2:\n  token: some-secret\n", "agent", "", ""},
		{"server token", "rke2:\n  token: K10" + hash + "::server:s\n", "agent", "", "is a server token"},
		{"baked server secret", "rke2:\n  token: baked-secret\n", "agent", baked, "secret of the server token this image carries"},
		{"baked secret as a node token", "rke2:\n  token: K10" + hash + "::node:baked-secret\n", "agent", baked, "secret of the server token"},
		{"role from the config", "role: agent\nrke2:\n  token: K10" + hash + "::server:s\n", "server", "", "is a server token"},
		{"a server", "rke2:\n  token: K10" + hash + "::server:s\n", "server", baked, ""},
		{"no token", "hostname: a\n", "agent", baked, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := mustParse(t, "t", tc.doc).AgentTokenWarnings(tc.role, tc.serverToken)
			switch {
			case tc.want == "" && len(got) > 0:
				t.Fatalf("warnings %q, want none", got)
			case tc.want != "" && (len(got) != 1 || !strings.Contains(got[0], tc.want) || !strings.Contains(got[0], "node-token")):
				t.Fatalf("warnings %q, want one with %q and the fix", got, tc.want)
			case len(got) > 0 && strings.Contains(got[0], "secret:"):
				t.Fatalf("the warning echoes a secret: %q", got)
			}
		})
	}
}

// agent-token is checked as token is: a bad one is an error at build time.
func TestAgentTokenChecked(t *testing.T) {
	if _, err := Parse("t", []byte("rke2:\n  agent-token: K10abc::node:x\n")); err == nil || !strings.Contains(err.Error(), "rke2.agent-token") {
		t.Errorf("err = %v, want rke2.agent-token refused", err)
	}
}
