package procstat

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeProc writes a proc root: /proc/stat's cpu line and one stat line per pid.
func fakeProc(t *testing.T, cpu string, pids map[string]string) string {
	t.Helper()
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "stat"), []byte(cpu+"\ncpu0 1 2 3 4\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for pid, line := range pids {
		os.MkdirAll(filepath.Join(root, pid), 0o755)
		if err := os.WriteFile(filepath.Join(root, pid, "stat"), []byte(line+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.MkdirAll(filepath.Join(root, "sys"), 0o755) // not a pid: skipped
	return root
}

// stat is a process's stat line with the given command and times.
func stat(pid, comm, utime, stime, cutime, cstime string) string {
	return pid + " (" + comm + ") S 1 1 1 0 -1 4194560 100 0 0 0 " + utime + " " + stime + " " + cutime + " " + cstime + " 20 0 10 0 50 1000 100"
}

func TestCPUSince(t *testing.T) {
	before, err := ReadProcCPU(fakeProc(t, "cpu  100 0 50 800 50 0 0 0 0 0", map[string]string{
		"1":  stat("1", "rke2-init", "10", "5", "0", "0"),
		"20": stat("20", "kube-apiserver", "100", "20", "0", "0"),
		"30": stat("30", "containerd-shim", "5", "5", "40", "10"),
		"40": stat("40", "a (weird) name", "1", "1", "0", "0"),
	}))
	if err != nil {
		t.Fatal(err)
	}
	now, err := ReadProcCPU(fakeProc(t, "cpu  200 0 100 850 50 0 0 0 0 0", map[string]string{
		"1":  stat("1", "rke2-init", "10", "5", "0", "0"), // used nothing: left out
		"20": stat("20", "kube-apiserver", "150", "30", "0", "0"),
		"30": stat("30", "containerd-shim", "6", "6", "140", "30"),
		"40": stat("40", "a (weird) name", "2", "2", "0", "0"),
		"50": stat("50", "etcd", "20", "0", "0", "0"), // new since: all of it counts
		"51": stat("51", "etcd", "20", "0", "0", "0"), // the same command twice: summed
	}))
	if err != nil {
		t.Fatal(err)
	}
	uses, busy := now.CPUSince(before, 3)
	var got []string
	for _, u := range uses {
		got = append(got, u.String())
	}
	if want := "containerd-shim=0.0+1.2 kube-apiserver=0.6 etcd=0.4"; strings.Join(got, " ") != want {
		t.Errorf("uses = %v, want %s", got, want)
	}
	// 150 busy ticks of 200.
	if busy != 0.75 {
		t.Errorf("busy = %v, want 0.75", busy)
	}
	all, _ := now.CPUSince(before, 10)
	if len(all) != 4 || all[3].Comm != "a (weird) name" {
		t.Errorf("all = %v, want four commands ending with the one with parentheses", all)
	}
}

func TestReadProcCPUErrors(t *testing.T) {
	for name, root := range map[string]string{
		"no stat":       t.TempDir(),
		"bad cpu line":  fakeProc(t, "intr 1 2 3", nil),
		"bad pid stat":  fakeProc(t, "cpu 1 2 3 4 5", map[string]string{"7": "7 (sh) S 1 2"}),
		"bad pid times": fakeProc(t, "cpu 1 2 3 4 5", map[string]string{"7": stat("7", "sh", "x", "1", "0", "0")}),
		"no comm":       fakeProc(t, "cpu 1 2 3 4 5", map[string]string{"7": "7 sh S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16"}),
	} {
		if _, err := ReadProcCPU(root); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	// This machine's own /proc reads, with this process in it.
	now, err := ReadProcCPU("/proc")
	if err != nil {
		t.Fatal(err)
	}
	if now.Total <= 0 || len(now.Self) == 0 {
		t.Errorf("/proc: total %d, %d commands", now.Total, len(now.Self))
	}
}

func FuzzParsePidStat(f *testing.F) {
	f.Add([]byte(stat("1", "a) b", "1", "2", "3", "4")))
	f.Add([]byte("1 (x"))
	f.Fuzz(func(t *testing.T, b []byte) {
		comm, _, _, err := parsePidStat(b)
		if err == nil && !strings.Contains(string(b), "("+comm+")") {
			t.Fatalf("command %q is not the text between the parentheses of %q", comm, b)
		}
	})
}
