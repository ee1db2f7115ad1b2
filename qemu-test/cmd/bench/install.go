package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/rke2os/rke2os/init/shared/console"
	"github.com/rke2os/rke2os/qemu-test/qemu"
)

// installUserData is the config of the benchmark's install: the ISO
// installs onto the blank virtio disk and powers off.
const installUserData = "#cloud-config\nhostname: node1\ninstall:\n  device: /dev/vda\n  after: poweroff\n"

// benchInstall boots the server ISO that installs itself onto a blank
// raw disk (a sparse file, as the install test's), and reads the
// installed event: the install's time, and its writing of the ESP and
// system slot (written, synced, read back). The baseline, alternated
// with it, is what a user does instead on a machine with a shell: dd of
// the raw image onto a raw file of the same filesystem, conv=sparse (the
// image's empty slot B and state are skipped, as the install skips
// them) and fsync, on the host. Each install boot is minutes under TCG.
func benchInstall(tb *benchTB, out string, runs int) []row {
	iso, raw := filepath.Join(out, "rke2-server.iso"), filepath.Join(out, "rke2-server.raw")
	var ratios, installs, writes, walls, dds []float64
	var mib float64
	for i := 0; i < runs; i++ {
		ev, wall := installOnce(tb, iso)
		secs, write := num(ev, "seconds"), num(ev, "write_seconds")
		mib = num(ev, "written_mib")
		dd := ddTime(tb, raw)
		installs, writes, walls, dds = append(installs, secs), append(writes, write), append(walls, wall), append(dds, dd)
		ratios = append(ratios, write/dd)
	}
	return []row{
		{"install from the ISO: the install step, guest (s)", f(median(installs)), "", ""},
		{"install: ESP + slot A written, synced, read back (s)", f(median(writes)), "dd of rke2-server.raw, conv=sparse,fsync, host|" + f(median(dds)),
			fmt.Sprintf("%.2fx", median(ratios))},
		{"install: throughput of that (MiB/s)", f(mib / median(writes)), "the dd's|" + f(mib/median(dds)), ""},
		{"install: QEMU start to power-off, wall (s)", f(median(walls)), "", ""},
	}
}

// installOnce boots the ISO onto a new blank disk and returns the
// installed event and the wall time to QEMU's exit.
func installOnce(tb *benchTB, iso string) (map[string]string, float64) {
	disk := filepath.Join(tb.TempDir(), "disk.raw")
	check(os.WriteFile(disk, nil, 0o644))
	check(os.Truncate(disk, 8<<30))
	vm := qemu.Start(tb, qemu.Config{Machine: "q35", MemoryMiB: 4096, CPUs: 2, ISO: iso, Disk: disk, DiskFirst: true,
		Extra: qemu.CIDataDrive(qemu.CIData(tb, installUserData, "instance-id: node1\n"))})
	ev, err := vm.WaitEvent(console.EventInstalled, nil, 30*time.Minute)
	if err != nil {
		check(fmt.Errorf("install: %w; errors: %v", err, vm.Errors()))
	}
	check(vm.WaitExit(3 * time.Minute))
	wall := time.Since(vm.Started).Seconds()
	check(os.Remove(disk))
	return ev, wall
}

// ddTime copies the raw image with dd as a user would onto a disk, and
// returns the seconds it took.
func ddTime(tb *benchTB, raw string) float64 {
	dst := filepath.Join(tb.TempDir(), "dd.raw")
	start := time.Now()
	if b, err := exec.Command("dd", "if="+raw, "of="+dst, "bs=4M", "conv=sparse,fsync", "status=none").CombinedOutput(); err != nil {
		check(fmt.Errorf("dd: %v: %s", err, b))
	}
	secs := time.Since(start).Seconds()
	check(os.Remove(dst))
	return secs
}

// num is an event's number.
func num(ev map[string]string, key string) float64 {
	v, err := strconv.ParseFloat(ev[key], 64)
	if err != nil {
		check(fmt.Errorf("event %v: %s: %w", ev, key, err))
	}
	return v
}
