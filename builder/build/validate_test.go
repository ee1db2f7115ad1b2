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
