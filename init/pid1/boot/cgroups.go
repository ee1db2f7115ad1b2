package boot

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// InitCgroup is the leaf cgroup PID 1 lives in, so that the root cgroup can
// delegate controllers to the kubelet's and containerd's cgroups.
const InitCgroup = "init"

// DelegateCgroups moves the init into a leaf cgroup and enables every
// available controller below the root. cgroup v2 forbids both at once on
// one cgroup with processes ("no internal processes"): the kubelet needs
// cpu, memory and pids in kubepods, so PID 1 must leave the root first.
func DelegateCgroups(root string) error {
	leaf := filepath.Join(root, InitCgroup)
	if err := os.MkdirAll(leaf, 0o755); err != nil {
		return fmt.Errorf("cgroup %s: %w", leaf, err)
	}
	procs, err := os.ReadFile(filepath.Join(root, "cgroup.procs"))
	if err != nil {
		return fmt.Errorf("cgroup: %w", err)
	}
	for _, pid := range strings.Fields(string(procs)) {
		// Kernel threads cannot move (EINVAL); they do not count as members.
		_ = os.WriteFile(filepath.Join(leaf, "cgroup.procs"), []byte(pid), 0)
	}
	avail, err := os.ReadFile(filepath.Join(root, "cgroup.controllers"))
	if err != nil {
		return fmt.Errorf("cgroup: %w", err)
	}
	var enable []string
	for _, c := range strings.Fields(string(avail)) {
		enable = append(enable, "+"+c)
	}
	if len(enable) == 0 {
		return nil
	}
	if err := os.WriteFile(filepath.Join(root, "cgroup.subtree_control"), []byte(strings.Join(enable, " ")), 0); err != nil {
		return fmt.Errorf("cgroup: enable %s: %w", strings.Join(enable, " "), err)
	}
	return nil
}
