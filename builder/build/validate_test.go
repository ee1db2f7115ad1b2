package build

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A config with debug hooks on is valid, with a warning; one without has
// none; an invalid one is an error and no warnings.
func TestValidateConfigWarnings(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, doc string
		warn      string // "" for none
		err       string
	}{
		{"plain", "hostname: node-1\n", "", ""},
		{"hooks", "hostname: node-1\ndebug: {hooks: true}\n", "debug.hooks is on", ""},
		{"logs", "debug: {logs: true}\n", "", ""},
		{"invalid", "debug: {hooks: true}\nhostnam: x\n", "", "hostnam is not a known key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, tc.name+".yaml")
			if err := os.WriteFile(p, []byte(tc.doc), 0o644); err != nil {
				t.Fatal(err)
			}
			warnings, err := ValidateConfig(p, "server")
			switch {
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("err = %v, want %s", err, tc.err)
			case tc.err == "" && err != nil:
				t.Fatal(err)
			case tc.warn == "" && len(warnings) > 0:
				t.Fatalf("warnings %q, want none", warnings)
			case tc.warn != "" && (len(warnings) != 1 || !strings.Contains(warnings[0], tc.warn)):
				t.Fatalf("warnings %q, want one with %q", warnings, tc.warn)
			}
		})
	}
}

// An agent's config holding a server token is valid, with a warning: by
// the token's form, or, in an image baked with --secrets, by the secret of
// the image's server token. The warning never holds the secret.
func TestValidateConfigAgentToken(t *testing.T) {
	dir := t.TempDir()
	hash := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		name, doc, serverToken, want string
	}{
		{"agent token", "K10" + hash + "::node:s3cr3t", "", ""},
		{"server token", "K10" + hash + "::server:s3cr3t", "", "rke2.token is a server token"},
		{"the image's server secret", "s3cr3t", "K10" + hash + "::server:s3cr3t\n", "the server token this image carries"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".yaml")
			doc := "rke2:\n  server: https://10.0.0.1:9345\n  token: " + tc.doc + "\n"
			if err := os.WriteFile(p, []byte(doc), 0o644); err != nil {
				t.Fatal(err)
			}
			_, warnings, err := validateConfig(p, "agent", tc.serverToken)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tc.want == "" && len(warnings) > 0:
				t.Fatalf("warnings %q, want none", warnings)
			case tc.want != "" && (len(warnings) != 1 || !strings.Contains(warnings[0], tc.want) || strings.Contains(warnings[0], "s3cr3t")):
				t.Fatalf("warnings %q, want one with %q and no secret", warnings, tc.want)
			}
			if tc.serverToken == "" {
				if w, _ := ValidateConfig(p, "agent"); len(w) != len(warnings) {
					t.Errorf("ValidateConfig warnings %q, want %q", w, warnings)
				}
			}
		})
	}
}
