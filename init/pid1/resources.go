package pid1

import (
	"bufio"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"strings"
)

// logResources logs the init's own memory: its resident set (what the
// machine pays for PID 1) and the Go heap within it. make bench reads the
// line after kubelet-started.
func logResources(when string) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	const status = "/proc/self/status"
	slog.Info("init resources", "when", when, "rss_kib", statusKiB(status, "VmRSS"),
		"anon_kib", statusKiB(status, "RssAnon"), "file_kib", statusKiB(status, "RssFile"), "shmem_kib", statusKiB(status, "RssShmem"),
		"heap_kib", ms.HeapInuse>>10, "goroutines", runtime.NumGoroutine())
}

// statusKiB reads one "<key>: <n> kB" line of a /proc status file; 0 when
// it is not there.
func statusKiB(path, key string) int64 {
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
