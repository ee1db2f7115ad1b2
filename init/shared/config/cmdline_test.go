package config

import (
	"encoding/base64"
	"reflect"
	"strings"
	"testing"
)

func TestSplitCmdline(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"  \n", nil},
		{"BOOT_IMAGE=/vmlinuz root=LABEL=STATE ro quiet\n", []string{"BOOT_IMAGE=/vmlinuz", "root=LABEL=STATE", "ro", "quiet"}},
		{`console=ttyS0 foo="bar baz" x`, []string{"console=ttyS0", "foo=bar baz", "x"}},
		{`"quoted=whole thing" next`, []string{"quoted=whole thing", "next"}},
		{`a="b c`, []string{"a=b c"}},
		{"a\tb", []string{"a", "b"}},
		{`mid"dle quote"=x y`, []string{`mid"dle quote"=x`, "y"}},
		{"init=/init -- rke2.config=abc", []string{"init=/init", "--", "rke2.config=abc"}},
	} {
		if got := SplitCmdline(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("SplitCmdline(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestParseCmdline(t *testing.T) {
	doc := "#cloud-config\nhostname: node-9\nrke2:\n  token: abc\n"
	std := base64.StdEncoding.EncodeToString([]byte(doc))
	for name, cmdline := range map[string]string{
		"std":          "console=ttyS0 rke2.config=" + std + " quiet",
		"quoted":       `console=ttyS0 rke2.config="` + std + `"`,
		"raw":          "rke2.config=" + base64.RawStdEncoding.EncodeToString([]byte(doc)),
		"url":          "rke2.config=" + base64.URLEncoding.EncodeToString([]byte(doc)),
		"raw url":      "rke2.config=" + base64.RawURLEncoding.EncodeToString([]byte(doc)),
		"with newline": "rke2.config=" + std + "\n",
	} {
		c, err := ParseCmdline(cmdline)
		if err != nil || c == nil || c.Hostname != "node-9" || c.RKE2.Token() != "abc" {
			t.Errorf("%s: ParseCmdline = %+v, %v", name, c, err)
		}
	}

	if c, err := ParseCmdline("BOOT_IMAGE=/vmlinuz rke2.other=1 config=x quiet"); c != nil || err != nil {
		t.Errorf("no rke2.config: got %+v, %v; want nil, nil", c, err)
	}

	// Several parameters merge in order.
	a := base64.StdEncoding.EncodeToString([]byte("hostname: a\nrole: agent\n"))
	b := base64.StdEncoding.EncodeToString([]byte("hostname: b\n"))
	c, err := ParseCmdline("rke2.config=" + a + " rke2.config=" + b)
	if err != nil || c.Hostname != "b" || c.NodeRole != RoleAgent {
		t.Errorf("two parameters: %+v, %v", c, err)
	}

	for _, tc := range []struct {
		name, cmdline, want string
	}{
		{"empty", "rke2.config=", "config kernel command line rke2.config: is not base64 of a YAML document (the value is empty)"},
		{"not base64", "rke2.config=hostname:a", "config kernel command line rke2.config: is not base64 of a YAML document"},
		{"bad value", "rke2.config=" + base64.StdEncoding.EncodeToString([]byte("hostname: a\nrole: boss\n")),
			`config kernel command line rke2.config line 2 column 7: role "boss" is not a role`},
		{"second bad", "rke2.config=" + a + " rke2.config=" + base64.StdEncoding.EncodeToString([]byte("hostnam: b\n")),
			`config kernel command line rke2.config (#2) line 1 column 1: hostnam is not a known key; did you mean "hostname"?`},
	} {
		_, err := ParseCmdline(tc.cmdline)
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want prefix %q", tc.name, err, tc.want)
		}
	}
}
