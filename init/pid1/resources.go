package pid1

import (
	"log/slog"
	"runtime"

	"github.com/rke2os/rke2os/init/shared/console"
	"github.com/rke2os/rke2os/init/shared/procstat"
)

// logResources logs the init's own memory: its resident set (what the
// machine pays for PID 1) and the Go heap within it. make bench reads the
// event after kubelet-started.
func logResources(when string) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	const status = "/proc/self/status"
	kv := []any{"when", when, "rss_kib", procstat.ProcKiB(status, "VmRSS"),
		"anon_kib", procstat.ProcKiB(status, "RssAnon"), "file_kib", procstat.ProcKiB(status, "RssFile"), "shmem_kib", procstat.ProcKiB(status, "RssShmem"),
		"heap_kib", ms.HeapInuse >> 10, "goroutines", runtime.NumGoroutine()}
	slog.Info("init resources", kv...)
	console.Event(console.EventInitResources, kv...)
}
