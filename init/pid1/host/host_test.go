package host

import (
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/rke2os/rke2os/init/shared/config"
)

func TestWriteFiles(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "etc", "motd"), []byte("hello\n"), 0o644)
	files := []config.WriteFile{
		{Path: "/etc/rancher/rke2/config.yaml.d/10.yaml", Content: "a: 1\n", Permissions: "0600"},
		{Path: "/etc/motd", Content: "world\n", Append: true},
		{Path: "/opt/b64", Content: "aGk=", Encoding: "b64", Permissions: "0755"},
	}
	if err := WriteFiles(root, files); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path, content string
		mode          os.FileMode
	}{
		{"etc/rancher/rke2/config.yaml.d/10.yaml", "a: 1\n", 0o600},
		{"etc/motd", "hello\nworld\n", 0o644},
		{"opt/b64", "hi", 0o755},
	}
	for _, tc := range tests {
		p := filepath.Join(root, tc.path)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		fi, _ := os.Stat(p)
		if string(b) != tc.content || fi.Mode().Perm() != tc.mode {
			t.Errorf("%s = %q %v, want %q %v", tc.path, b, fi.Mode().Perm(), tc.content, tc.mode)
		}
	}
}

func TestSysctls(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "net", "ipv4"), 0o755)
	os.WriteFile(filepath.Join(dir, "net", "ipv4", "ip_forward"), []byte("0"), 0o644)
	if err := Sysctls(dir, map[string]string{"net.ipv4.ip_forward": "1"}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "net", "ipv4", "ip_forward")); string(b) != "1" {
		t.Fatalf("ip_forward = %q", b)
	}
	if err := Sysctls(dir, map[string]string{"net.nosuch.key": "1"}); err == nil {
		t.Fatal("a sysctl the kernel lacks was not reported")
	}
}

func TestDefaultHostname(t *testing.T) {
	mac := func(s string) net.HardwareAddr { a, _ := net.ParseMAC(s); return a }
	for _, tc := range []struct {
		name   string
		ifaces []net.Interface
		want   string
	}{
		{"first by name", []net.Interface{{Name: "eth1", HardwareAddr: mac("52:54:00:aa:bb:cc")}, {Name: "eth0", HardwareAddr: mac("52:54:00:12:34:56")}}, "rke2-123456"},
		{"loopback skipped", []net.Interface{{Name: "eth0", Flags: net.FlagLoopback, HardwareAddr: mac("00:00:00:00:00:01")}, {Name: "ens3", HardwareAddr: mac("02:00:00:0a:0b:0c")}}, "rke2-0a0b0c"},
		{"no Ethernet address", []net.Interface{{Name: "lo", Flags: net.FlagLoopback}, {Name: "wg0"}}, "rke2-node"},
		{"none", nil, "rke2-node"},
	} {
		if got := DefaultHostname(tc.ifaces); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
	for _, h := range []string{"", "(none)", "localhost"} {
		if !NeedsHostname(h) {
			t.Errorf("NeedsHostname(%q) = false", h)
		}
	}
	if NeedsHostname("node1") {
		t.Error("NeedsHostname(node1) = true")
	}
}
