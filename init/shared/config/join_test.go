package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// join.trust_on_first_use is a boolean, false unless set; a later
// source's value wins, false too; a bad value or key is an error with its
// line, which rke2-build validate shows.
func TestParseJoin(t *testing.T) {
	for _, tc := range []struct {
		doc  string
		want bool
	}{
		{"", false},
		{"join: {trust_on_first_use: true}\n", true},
		{"join:\n  trust_on_first_use: yes\n", true},
		{"join: {trust_on_first_use: false}\n", false},
		{"join: {}\n", false},
		{"join:\n", false},
	} {
		if got := mustParse(t, "t", tc.doc).TrustsOnFirstUse(); got != tc.want {
			t.Errorf("%q: TrustsOnFirstUse() = %v, want %v", tc.doc, got, tc.want)
		}
	}
	var nilConfig *Config
	if nilConfig.TrustsOnFirstUse() {
		t.Error("a nil config trusts on first use")
	}

	on, off, none := mustParse(t, "baked", "join: {trust_on_first_use: true}\n"), mustParse(t, "cidata", "join: {trust_on_first_use: false}\n"), mustParse(t, "cmdline", "hostname: a\n")
	for _, tc := range []struct {
		name    string
		configs []*Config
		want    bool
	}{
		{"set", []*Config{on, none}, true},
		{"unset later", []*Config{off, on}, true},
		{"false later", []*Config{on, off, none}, false},
	} {
		got := Merge(tc.configs[0], tc.configs[1:]...)
		if got.TrustsOnFirstUse() != tc.want {
			t.Errorf("%s: merged TrustsOnFirstUse() = %v, want %v", tc.name, got.TrustsOnFirstUse(), tc.want)
		}
		if got.Join.TrustOnFirstUse == tc.configs[0].Join.TrustOnFirstUse {
			t.Errorf("%s: the merged config shares its value with a source", tc.name)
		}
	}

	runBad(t, []badCase{
		{"value", "join: {trust_on_first_use: maybe}\n", 1, 28, "join.trust_on_first_use", `"maybe" is not true or false`},
		{"key", "join: {trust_on_first_used: true}\n", 1, 8, "join.trust_on_first_used", `did you mean "trust_on_first_use"?`},
		{"list", "join: [trust_on_first_use]\n", 1, 7, "join", "must be a mapping"},
		{"top key", "joins: {trust_on_first_use: true}\n", 1, 1, "joins", `did you mean "join"?`},
	})

	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("role: server\njoin:\n  trust_on_first_use: 1\n"), 0o644)
	if err := ValidateFile(bad); err == nil || !strings.Contains(err.Error(), "config "+bad+" line 3 column 23: join.trust_on_first_use") {
		t.Errorf("ValidateFile: %v", err)
	}
}
