package pid1

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rke2os/rke2os/init/shared/config"
)

// The boot warns of a token on the kernel command line (every pod reads
// /proc/cmdline) and of an agent given a server token, by its form or by
// the secret of the server token the image carries; never with the secret.
func TestConfigWarnings(t *testing.T) {
	hash := strings.Repeat("ab", 32)
	b64 := func(doc string) string { return base64.StdEncoding.EncodeToString([]byte(doc)) }
	withToken := t.TempDir()
	if err := os.WriteFile(filepath.Join(withToken, "token"), []byte("K10"+hash+"::server:s3cr3t\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, doc, cmdline, role, secrets string
		want                              []string // one substring per warning, in order
	}{
		{"server", "rke2:\n  token: s3cr3t\n", "console=ttyS0", "server", withToken, nil},
		{"agent token", "rke2:\n  token: K10" + hash + "::node:other\n", "", "agent", withToken, nil},
		{"agent with a server token", "rke2:\n  token: K10" + hash + "::server:other\n", "", "agent", "", []string{"rke2.token is a server token"}},
		{"agent with the image's server secret", "rke2:\n  token: s3cr3t\n", "", "agent", withToken, []string{"the server token this image carries"}},
		{"token on the command line", "", "console=ttyS0 rke2.config=" + b64("rke2:\n  token: s3cr3t\n"), "server", "", []string{"carries rke2.token"}},
		{"debug and command line", "debug: {hooks: true}\n", "rke2.config=" + b64("rke2:\n  agent-token: s3cr3t\n"), "server", "",
			[]string{"debug.hooks is on", "carries rke2.agent-token"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			layers := []*config.Config{}
			if tc.doc != "" {
				c, err := config.Parse("baked", []byte(tc.doc))
				if err != nil {
					t.Fatal(err)
				}
				layers = append(layers, c)
			}
			c, err := config.ParseCmdline(tc.cmdline)
			if err != nil {
				t.Fatal(err)
			}
			if c != nil {
				layers = append(layers, c)
			}
			secrets := tc.secrets
			if secrets == "" {
				secrets = filepath.Join(t.TempDir(), "none")
			}
			got := configWarnings(config.Merge(&config.Config{}, layers...), tc.cmdline, tc.role, secrets)
			if len(got) != len(tc.want) {
				t.Fatalf("warnings %q, want %d", got, len(tc.want))
			}
			for i, w := range tc.want {
				if !strings.Contains(got[i], w) || strings.Contains(got[i], "s3cr3t") {
					t.Errorf("warning %d = %q, want %q in it and no secret", i, got[i], w)
				}
			}
		})
	}
}
