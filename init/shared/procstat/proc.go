package procstat

import (
	"bufio"
	"os"
	"strconv"
	"strings"
)

// ProcKiB reads one "<key>: <n> kB" line of a /proc file (a process's
// status, or /proc/meminfo); 0 when it is not there.
func ProcKiB(path, key string) int64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || k != key {
			continue
		}
		n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		return n
	}
	return 0
}
