// Package procstat reads what /proc says of memory and CPU use: a
// status file's kB fields and the CPU time of every process, for the
// resource logs of PID 1 and rke2-node. Standard library only.
package procstat

import (
	"bytes"
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// userHZ is the unit of the CPU times in /proc (USER_HZ, 100 on every
// architecture Linux builds for with its default ABI).
const userHZ = 100

// ProcCPU is the CPU time of a machine's processes at one moment, in
// clock ticks, by command name: what each process used itself, and what
// the children it reaped used (the kubectl of an exec probe, reaped by its
// containerd shim, counts there).
type ProcCPU struct {
	Self, Children map[string]int64
	// Busy and Total are the machine's own counters (/proc/stat's cpu
	// line): busy is everything but idle and iowait.
	Busy, Total int64
}

// ReadProcCPU reads the CPU times under a proc root ("/proc"). A process
// that exits while it is read is skipped; a stat line that does not parse
// is an error naming it.
func ReadProcCPU(root string) (ProcCPU, error) {
	out := ProcCPU{Self: map[string]int64{}, Children: map[string]int64{}}
	stat, err := os.ReadFile(filepath.Join(root, "stat"))
	if err != nil {
		return out, fmt.Errorf("cpu times: %w", err)
	}
	if out.Busy, out.Total, err = parseStatCPU(stat); err != nil {
		return out, fmt.Errorf("cpu times: %s: %w", filepath.Join(root, "stat"), err)
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		return out, fmt.Errorf("cpu times: %w", err)
	}
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		p := filepath.Join(root, e.Name(), "stat")
		b, err := os.ReadFile(p)
		if err != nil {
			continue // exited since the directory was read
		}
		comm, self, children, err := parsePidStat(b)
		if err != nil {
			return out, fmt.Errorf("cpu times: %s: %w", p, err)
		}
		out.Self[comm] += self
		out.Children[comm] += children
	}
	return out, nil
}

// parseStatCPU reads the machine's busy and total ticks from /proc/stat.
func parseStatCPU(b []byte) (busy, total int64, err error) {
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 5 || f[0] != "cpu" {
		return 0, 0, fmt.Errorf("first line %q is not the cpu line", line)
	}
	for i, s := range f[1:] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("cpu field %d: %w", i+1, err)
		}
		if i >= 8 { // guest and guest_nice are counted in user already
			break
		}
		total += n
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return busy, total, nil
}

// parsePidStat reads a process's command and CPU ticks from its stat
// line: "pid (comm) state ppid ..." where comm may hold spaces and
// parentheses, so the fields are counted from the last ')'.
func parsePidStat(b []byte) (comm string, self, children int64, err error) {
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return "", 0, 0, fmt.Errorf("no (comm) in %q", b)
	}
	comm = string(b[open+1 : end])
	// After ')': state(3) ppid(4) ... utime(14) stime(15) cutime(16) cstime(17).
	f := strings.Fields(string(b[end+1:]))
	if len(f) < 15 {
		return "", 0, 0, fmt.Errorf("%d fields after the command, want at least 15", len(f))
	}
	var t [4]int64
	for i := range t {
		if t[i], err = strconv.ParseInt(f[11+i], 10, 64); err != nil {
			return "", 0, 0, fmt.Errorf("field %d: %w", 14+i, err)
		}
	}
	return comm, t[0] + t[1], t[2] + t[3], nil
}

// CPUUse is one command's share of an interval.
type CPUUse struct {
	Comm string
	// Seconds it ran itself, and its reaped children ran.
	Self, Children float64
}

// CPUSince says what each command used between two readings, the largest
// first, at most top of them (commands that used nothing left out), and
// how busy the machine was (0..1 of all its CPUs).
func (now ProcCPU) CPUSince(before ProcCPU, top int) (uses []CPUUse, busy float64) {
	for comm, t := range now.Self {
		self := max(t-before.Self[comm], 0)
		children := max(now.Children[comm]-before.Children[comm], 0)
		if self+children == 0 {
			continue
		}
		uses = append(uses, CPUUse{Comm: comm, Self: float64(self) / userHZ, Children: float64(children) / userHZ})
	}
	slices.SortFunc(uses, func(a, b CPUUse) int {
		return cmp.Or(cmp.Compare(b.Self+b.Children, a.Self+a.Children), cmp.Compare(a.Comm, b.Comm))
	})
	if len(uses) > top {
		uses = uses[:top]
	}
	if d := now.Total - before.Total; d > 0 {
		busy = float64(now.Busy-before.Busy) / float64(d)
	}
	return uses, busy
}

// String is "comm=self+children" seconds, or "comm=self" without children.
func (u CPUUse) String() string {
	if u.Children == 0 {
		return fmt.Sprintf("%s=%.1f", u.Comm, u.Self)
	}
	return fmt.Sprintf("%s=%.1f+%.1f", u.Comm, u.Self, u.Children)
}
