package rke2node

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/rke2os/rke2os/init/shared/config"
	"gopkg.in/yaml.v3"
)

func TestSupervisors(t *testing.T) {
	for _, tc := range []struct {
		server     string
		apiservers []string
		want       []string
	}{
		{"https://10.0.0.1:9345", []string{"10.0.0.1:6443", "10.0.0.2:6443"}, []string{"https://10.0.0.1:9345", "https://10.0.0.2:9345"}},
		{"https://lb.example:9345", []string{"10.0.0.1:6443"}, []string{"https://lb.example:9345", "https://10.0.0.1:9345"}},
		{"https://10.0.0.1:9999", []string{"[fd00::1]:6443", "garbage"}, []string{"https://10.0.0.1:9999", "https://[fd00::1]:9999"}},
	} {
		if got := supervisors(tc.server, tc.apiservers); !slices.Equal(got, tc.want) {
			t.Errorf("supervisors(%s, %v) = %v, want %v", tc.server, tc.apiservers, got, tc.want)
		}
	}
}

func TestJoinToken(t *testing.T) {
	scalar := func(v string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Value: v} }
	dir := t.TempDir()
	f := dir + "/token"
	if err := writeTestFile(f, "from-file\n"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		rc   config.RKE2Config
		want string
		err  string
	}{
		{config.RKE2Config{"token": scalar("abc")}, "abc", ""},
		{config.RKE2Config{"token-file": scalar(f)}, "from-file", ""},
		{config.RKE2Config{"token-file": scalar(dir + "/missing")}, "", "token-file"},
		{config.RKE2Config{}, "", "no token"},
	} {
		got, err := joinToken(tc.rc)
		if got != tc.want || (tc.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("joinToken(%v) = %q, %v; want %q, %q", tc.rc, got, err, tc.want, tc.err)
		}
	}
}

func writeTestFile(p, s string) error { return os.WriteFile(p, []byte(s), 0o600) }
