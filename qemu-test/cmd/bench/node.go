package main

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"time"

	"github.com/rke2os/rke2os/qemu-test/qemu"
)

// nodeBoot is one boot of the server's raw disk up to kubelet-started.
type nodeBoot struct {
	wall      float64            // QEMU start to kubelet-started, seconds
	timeline  map[string]float64 // guest seconds since kernel start
	rssKiB    float64            // the init's resident set at kubelet-started
	anonKiB   float64            // of which its own memory (heap, stacks)
	shmemKiB  float64            // and the pages of its binary (on the tmpfs root)
	importSec float64            // containerd-ready to images-imported
	content   float64            // network-up to content-ready
}

var rssRE = regexp.MustCompile(`init resources" when=kubelet-started rss_kib=(\d+) anon_kib=(\d+) file_kib=\d+ shmem_kib=(\d+)`)

// bootNode boots disk once up to kubelet-started, reads the figures, and
// powers the machine off (so the state partition is clean for the next).
func bootNode(tb *benchTB, disk string) nodeBoot {
	vm := qemu.Start(tb, qemu.Config{Machine: "q35", MemoryMiB: 4096, CPUs: 2, Disk: disk})
	_, err := vm.WaitMilestone("kubelet-started", 20*time.Minute)
	if err != nil {
		check(fmt.Errorf("%w; errors: %v", err, vm.Errors()))
	}
	nb := nodeBoot{wall: time.Since(vm.Started).Seconds(), timeline: vm.Milestones()}
	m, err := vm.WaitFor(rssRE, time.Minute)
	check(err)
	nb.rssKiB, _ = strconv.ParseFloat(m[1], 64)
	nb.anonKiB, _ = strconv.ParseFloat(m[2], 64)
	nb.shmemKiB, _ = strconv.ParseFloat(m[3], 64)
	nb.importSec = nb.timeline["images-imported"] - nb.timeline["containerd-ready"]
	nb.content = nb.timeline["content-ready"] - nb.timeline["network-up"]
	check(vm.Powerdown())
	check(vm.WaitExit(3 * time.Minute))
	return nb
}

// benchNode boots the server's raw disk (on a larger qcow2 overlay, as if
// written to a real disk) twice: the first boot formats the state,
// extracts the runtime and imports the airgap images; the second finds
// them done. Each node boot is minutes under TCG, so this runs once.
func benchNode(tb *benchTB, out string, helloWall float64) []row {
	disk := qemu.Overlay(tb, filepath.Join(out, "rke2-server.raw"), 8<<30)
	first := bootNode(tb, disk)
	second := bootNode(tb, disk)
	tb.Logf("first boot: %v\nsecond boot: %v", first.timeline, second.timeline)
	return []row{
		ratioRow("QEMU start to kubelet-started, first boot, wall (s)", first.wall, "hello-world static PID 1 started", helloWall),
		ratioRow("QEMU start to kubelet-started, second boot, wall (s)", second.wall, "hello-world static PID 1 started", helloWall),
		{"kernel start to kubelet-started, first / second boot, guest (s)", f(first.timeline["kubelet-started"]) + " / " + f(second.timeline["kubelet-started"]), "", ""},
		ratioRow("runtime content, second boot (s)", second.content, "first boot (extraction)", first.content),
		ratioRow("airgap import, second boot (s)", second.importSec, "first boot (845 MiB import)", first.importSec),
		ratioRow("init RSS at kubelet-started, second boot (MiB)", second.rssKiB/1024, "goal", 15),
		{"init RSS at kubelet-started, first boot (MiB)", f(first.rssKiB / 1024), "", ""},
		{"  of which anon / binary pages, first / second boot (MiB)", f(first.anonKiB/1024) + " / " + f(first.shmemKiB/1024) + ", " +
			f(second.anonKiB/1024) + " / " + f(second.shmemKiB/1024), "", ""},
	}
}
