package qemu

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type logTB struct {
	*testing.T
	logs []string
}

func (l *logTB) Logf(format string, a ...any) { l.logs = append(l.logs, fmt.Sprintf(format, a...)) }
func (l *logTB) Name() string                 { return "TestX/sub" }

// A failed test with two machines keeps both consoles, numbered, and logs
// the second machine's lines last (CI shows the end of the output).
func TestKeepArtifacts(t *testing.T) {
	t.Setenv("RKE2_ARTIFACTS", t.TempDir())
	var vms []*VM
	for i := 1; i <= 2; i++ {
		dir := t.TempDir()
		vm := &VM{dir: dir, console: filepath.Join(dir, "console.log")}
		if err := os.WriteFile(vm.console, []byte(fmt.Sprintf("boot %d\nlast of %d\n", i, i)), 0o644); err != nil {
			t.Fatal(err)
		}
		vms = append(vms, vm)
	}
	tb := &logTB{T: t}
	keepArtifacts(tb, vms)
	for i := 1; i <= 2; i++ {
		b, err := os.ReadFile(filepath.Join(ArtifactDir(), fmt.Sprintf("TestX_sub.%d.console.log", i)))
		if err != nil || !strings.Contains(string(b), fmt.Sprintf("last of %d", i)) {
			t.Errorf("machine %d's console kept: %q %v", i, b, err)
		}
	}
	if last := tb.logs[len(tb.logs)-1]; !strings.Contains(last, "machine 2 of 2") || !strings.Contains(last, "last of 2") {
		t.Errorf("the last log is not the last machine's console: %q", last)
	}
}
