package host

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/rke2os/rke2os/init/config"
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
