package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	src := t.TempDir()
	for n, mode := range map[string]os.FileMode{"flannel": 0o755, "portmap": 0o755, "conf.json": 0o644} {
		if err := os.WriteFile(filepath.Join(src, n), []byte("content of "+n), mode); err != nil {
			t.Fatal(err)
		}
	}
	dst := filepath.Join(t.TempDir(), "opt", "cni", "bin")
	if err := run([]string{filepath.Join(src, "flannel"), filepath.Join(src, "portmap"), dst + "/"}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"flannel", "portmap"} {
		b, err := os.ReadFile(filepath.Join(dst, n))
		info, _ := os.Stat(filepath.Join(dst, n))
		if err != nil || string(b) != "content of "+n || info.Mode().Perm() != 0o755 {
			t.Errorf("%s: %q %v", n, b, err)
		}
	}
	conf := filepath.Join(t.TempDir(), "net.d", "10-flannel.conflist")
	if err := run([]string{filepath.Join(src, "conf.json"), conf}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(conf); string(b) != "content of conf.json" {
		t.Errorf("conflist %q", b)
	}
	ents, _ := os.ReadDir(filepath.Dir(conf))
	if len(ents) != 1 {
		t.Errorf("temporary files left: %v", ents)
	}
	for _, args := range [][]string{{"one"}, {"a", "b", "file"}, {filepath.Join(src, "missing"), dst + "/"}} {
		if err := run(args); err == nil {
			t.Errorf("run(%q) succeeded", args)
		} else if strings.Contains(err.Error(), "panic") {
			t.Error(err)
		}
	}
}
