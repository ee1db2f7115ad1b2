// Package install is rke2-node's install step: a node booted from the ISO
// writes the system onto a disk, the same partition table, ESP files and
// system slot A as the raw image (internal/diskimage writes both), with
// the node's config on the ESP, so that it boots from the disk next.
//
// The disk is chosen by the config's install section, never the ISO's
// own; one that holds anything (the state probe on the whole disk, or any
// partition the kernel knows on it) is refused unless wipe: true, except a
// disk an install of ours was cut short on, which is taken over. The
// steps are logged on the console, the writes with their progress at
// least every 10 s.
package install

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/rke2os/rke2os/init/shared/blockdev"
	"github.com/rke2os/rke2os/init/shared/config"
	"github.com/rke2os/rke2os/init/shared/layout"
	"github.com/rke2os/rke2os/init/shared/nodesteps"
	"github.com/rke2os/rke2os/init/shared/probe"
	"github.com/rke2os/rke2os/internal/diskimage"
)

// Options are an install's inputs.
type Options struct {
	// Install is the config's install section.
	Install config.Install
	// Medium is the boot medium's device (/dev/sr0): its disk is never
	// written.
	Medium string
	// MediumDir is where the medium is mounted (layout.MediumDir).
	MediumDir string
	// Config is the node config written to the installed ESP
	// (layout.ESPConfig); nil writes none.
	Config []byte
	// DevDir is where device nodes are (/dev; tests: a directory of files
	// standing in for disks, sysfs faked through blockdev.SysBlock).
	DevDir string
	// Wait bounds the wait for the disk to appear (drivers probe late).
	Wait time.Duration
	// Tick is how often the writes' progress is logged at least.
	Tick time.Duration
	Log  *slog.Logger
}

// DefaultOptions are a node's own, but the install section, the medium's
// device and the config.
var DefaultOptions = Options{MediumDir: layout.MediumDir, DevDir: "/dev", Wait: 30 * time.Second, Tick: 10 * time.Second}

// skipped are the kinds of block device a disk selector never picks, by
// name prefix: loop devices, RAM disks, CDs, zram, floppies, network
// block devices, device-mapper and MD RAID devices.
var skipped = []struct{ prefix, what string }{
	{"loop", "a loop device"}, {"ram", "a RAM disk"}, {"sr", "a CD/DVD drive"}, {"zram", "a compressed RAM disk"},
	{"fd", "a floppy drive"}, {"nbd", "a network block device"}, {"dm-", "a device-mapper device"}, {"md", "an MD RAID device"},
}

// Run installs onto the disk the options select.
func Run(ctx context.Context, o Options) (*nodesteps.InstallResult, error) {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	started := time.Now()
	d, err := choose(ctx, o)
	if err != nil {
		return nil, err
	}
	dev := o.devPath(d.Name)
	o.Log.Info("install: target disk", "device", "/dev/"+d.Name, "size", sizeText(d.Size), "model", d.Model, "serial", d.Serial, "chosen_by", chosenBy(o.Install))
	m, err := diskimage.ReadManifest(filepath.Join(o.MediumDir, layout.InstallManifest))
	if err != nil {
		return nil, fmt.Errorf("install: the ISO's install manifest: %w (boot an ISO built with this version of rke2-build)", err)
	}
	spec, err := m.Spec(func(p string) string { return filepath.Join(o.MediumDir, filepath.FromSlash(p)) })
	if err != nil {
		return nil, fmt.Errorf("install: the ISO's files: %w", err)
	}
	if o.Config != nil {
		spec.ESP = append(spec.ESP, diskimage.File{Path: layout.ESPConfig, Data: o.Config})
	}
	l, err := spec.Layout()
	if err != nil {
		return nil, fmt.Errorf("install: %w", err)
	}
	// Exclusive: a disk with a mounted filesystem is refused by the kernel.
	f, err := os.OpenFile(dev, os.O_RDWR|os.O_EXCL, 0)
	if err != nil {
		return nil, fmt.Errorf("install: open /dev/%s: %w (is it in use, a filesystem on it mounted?); nothing was written", d.Name, err)
	}
	defer f.Close()
	size, err := blockdev.Size(f)
	if err != nil {
		return nil, fmt.Errorf("install: %w", err)
	}
	if sector, err := blockdev.SectorSize(f); err != nil || sector != 512 {
		return nil, fmt.Errorf("install: /dev/%s has %d-byte sectors (%v); the system's disk layout and GRUB's images are made for 512-byte sectors: choose another disk", d.Name, sector, err)
	}
	if need := l.Offset(diskimage.IndexState) + layout.MinStateSize + 2<<20; size < need {
		return nil, fmt.Errorf("install: /dev/%s is %s; the system needs %s and the node's state %s: choose a disk of at least %s; nothing was written",
			d.Name, sizeText(size), sizeText(l.Offset(diskimage.IndexState)), sizeText(layout.MinStateSize), sizeText(roundGiB(need)))
	}
	found, err := o.check(f, size, d)
	if err != nil {
		return nil, err
	}
	p := &progress{log: o.Log, dev: "/dev/" + d.Name}
	spec.Progress = p.report
	stop := p.tick(o.Tick)
	o.Log.Info("install: writing", "device", "/dev/"+d.Name, "esp_mib", diskimage.ESPSize>>20, "slot_mib", l.SlotImageSize>>20,
		"then", "the partition table and boot code, last")
	writing := time.Now()
	_, err = diskimage.Install(f, size, spec)
	wrote := time.Since(writing)
	stop()
	if err != nil {
		return nil, fmt.Errorf("install: /dev/%s: %w; the disk does not boot, and the next install takes it over", d.Name, err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("install: /dev/%s: %w", d.Name, err)
	}
	o.Log.Info("install: system slot A, read back from the disk, matches the slot image", "device", "/dev/"+d.Name, "sha256", m.SlotSHA256)
	o.Log.Info("install: partition table and boot code written, last: the disk boots", "device", "/dev/"+d.Name)
	took := time.Since(started)
	o.Log.Info("install: done", "device", "/dev/"+d.Name, "slot", "A", "slot_sha256", m.SlotSHA256, "config", o.Config != nil,
		"took", took.Round(time.Second), "after", o.Install.AfterAction())
	return &nodesteps.InstallResult{Device: "/dev/" + d.Name, Found: found, Bytes: size, SlotSHA256: m.SlotSHA256, Seconds: took.Seconds(),
		Written: diskimage.ESPSize + l.SlotImageSize, WriteSeconds: wrote.Seconds()}, nil
}

// devPath is a disk's device node.
func (o Options) devPath(name string) string { return filepath.Join(o.DevDir, name) }

func chosenBy(in config.Install) string {
	if in.Device != "" {
		return "install.device " + in.Device
	}
	return "install.disk " + selectorText(in.Disk)
}

func selectorText(d *config.DiskSelector) string {
	var parts []string
	if d.MinSize > 0 {
		parts = append(parts, "min_size: "+config.FormatSize(d.MinSize))
	}
	if d.Model != "" {
		parts = append(parts, fmt.Sprintf("model: %q", d.Model))
	}
	if d.Serial != "" {
		parts = append(parts, fmt.Sprintf("serial: %q", d.Serial))
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// mediumDisk is the disk the boot medium is (sr0) or is on (sdb for
// sdb1); "" for none.
func mediumDisk(medium string) string {
	if medium == "" {
		return ""
	}
	name := filepath.Base(medium)
	if p := blockdev.ParentDisk(name); p != "" {
		return p
	}
	return name
}

// choose finds the disk to install onto, waiting up to o.Wait for it to
// appear.
func choose(ctx context.Context, o Options) (blockdev.Disk, error) {
	deadline := time.Now().Add(o.Wait)
	for {
		d, err := chooseNow(o)
		var notYet *notFoundError
		if err == nil || !errors.As(err, &notYet) || time.Now().After(deadline) {
			return d, err
		}
		select {
		case <-ctx.Done():
			return d, err
		case <-time.After(time.Second):
		}
	}
}

// notFoundError is a disk not there (yet): the wait goes on.
type notFoundError struct{ msg string }

func (e *notFoundError) Error() string { return e.msg }

func chooseNow(o Options) (blockdev.Disk, error) {
	in := o.Install
	medium := mediumDisk(o.Medium)
	if in.Device != "" {
		name, err := o.resolve(in.Device)
		if err != nil {
			return blockdev.Disk{}, &notFoundError{fmt.Sprintf("install: install.device %s: %v (disks: %s)", in.Device, err, diskList())}
		}
		if parent := blockdev.ParentDisk(name); parent != "" {
			return blockdev.Disk{}, fmt.Errorf("install: install.device %s is a partition of /dev/%s; name the whole disk, like /dev/%s", in.Device, parent, parent)
		}
		d, ok := blockdev.DiskOf(name)
		if !ok {
			return blockdev.Disk{}, &notFoundError{fmt.Sprintf("install: install.device %s: no such disk (disks: %s)", in.Device, diskList())}
		}
		if name == medium {
			return blockdev.Disk{}, fmt.Errorf("install: install.device %s is the disk the ISO booted from (%s): an install never writes its own medium; name another disk (disks: %s)", in.Device, o.Medium, diskList())
		}
		if d.ReadOnly {
			return blockdev.Disk{}, fmt.Errorf("install: install.device %s is read-only (a write-protect switch, or the kernel says so); nothing was written", in.Device)
		}
		d.Partitions = blockdev.DiskPartitions(name)
		return d, nil
	}
	if in.Disk == nil {
		return blockdev.Disk{}, errors.New("install: the config's install section names no disk: set install.device or install.disk")
	}
	var why []string
	for _, d := range blockdev.Disks() {
		reason := ""
		switch {
		case d.Name == medium:
			reason = "the ISO's own disk"
		case d.Removable:
			reason = "removable"
		case d.ReadOnly:
			reason = "read-only"
		case d.Size < in.Disk.MinSize:
			reason = fmt.Sprintf("%s, smaller than %s", sizeText(d.Size), config.FormatSize(in.Disk.MinSize))
		case in.Disk.Model != "" && !config.MatchGlob(in.Disk.Model, d.Model):
			reason = fmt.Sprintf("model %q", d.Model)
		case in.Disk.Serial != "" && !config.MatchGlob(in.Disk.Serial, d.Serial):
			reason = fmt.Sprintf("serial %q", d.Serial)
		}
		for _, s := range skipped {
			if strings.HasPrefix(d.Name, s.prefix) && d.Name != medium {
				reason = s.what
			}
		}
		if reason == "" {
			return d, nil
		}
		why = append(why, d.Name+": "+reason)
	}
	if len(why) == 0 {
		why = []string{"none"}
	}
	return blockdev.Disk{}, &notFoundError{fmt.Sprintf("install: no disk matches install.disk %s (disks: %s)", selectorText(in.Disk), strings.Join(why, "; "))}
}

// resolve finds the block device name of a device path (a link like
// /dev/disk/by-id/... is followed).
func (o Options) resolve(dev string) (string, error) {
	p := dev
	if rest, ok := strings.CutPrefix(dev, "/dev/"); ok {
		p = filepath.Join(o.DevDir, rest)
	}
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", errors.New("no such device")
		}
		return "", err
	}
	return filepath.Base(real), nil
}

// diskList names the disks, for messages.
func diskList() string {
	var out []string
	for _, d := range blockdev.Disks() {
		s := fmt.Sprintf("/dev/%s %s", d.Name, sizeText(d.Size))
		if d.Model != "" {
			s += " " + d.Model
		}
		out = append(out, s)
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ", ")
}

// check refuses a disk that holds anything, unless wipe: true, and takes
// over one an install of ours was cut short on. It says what the disk
// held, for the log and the result.
func (o Options) check(f *os.File, size int64, d blockdev.Disk) (string, error) {
	dev := "/dev/" + d.Name
	p, err := probe.Device(f, size)
	if err != nil {
		return "", fmt.Errorf("install: %s: cannot tell whether it holds anything: %w; nothing was written (the kernel log names the disk's I/O errors, if any)", dev, err)
	}
	found := ""
	switch p.Content {
	case probe.UnfinishedInstall:
		o.Log.Warn("install: the disk holds an unfinished rke2os install (cut short); taking it over", "device", dev)
		return "an unfinished rke2os install", nil
	case probe.Blank:
		if len(d.Partitions) == 0 {
			o.Log.Info("install: the disk is blank", "device", dev)
			return "blank", nil
		}
		found = "partitions the kernel knows (" + strings.Join(d.Partitions, ", ") + ")"
	case probe.Ext4:
		found = "an ext4 filesystem"
		if p.Label != "" {
			found += " labelled " + p.Label
		}
	case probe.Unfinished:
		found = "an rke2os state partition's unfinished format"
	default:
		found = p.Found
	}
	if strings.Contains(found, "GPT partition table") {
		if names := gptNames(f); len(names) > 0 {
			found += " (partitions " + strings.Join(names, ", ")
			if slices.Contains(names, diskimage.PartSysA) {
				found += ": an rke2os installation"
			}
			found += ")"
		}
	}
	if !o.Install.Wipe {
		return "", fmt.Errorf("install: %s holds %s, and the config's install section does not say wipe: true, so nothing was written. "+
			"If what it holds may go, add wipe: true under install: and boot the ISO again, or make the disk blank from a rescue system (%s); "+
			"or choose another disk", dev, found, probe.WipeCommands(dev, size))
	}
	o.Log.Warn("install: the disk holds something; wipe: true, so it is overwritten", "device", dev, "found", found)
	return found, nil
}

// gptNames are the partition names of the disk's GPT, if it reads.
func gptNames(f *os.File) []string {
	t, err := gpt.Read(f, 512, 512)
	if err != nil {
		return nil
	}
	var names []string
	for _, p := range t.Partitions {
		if p.Type != gpt.Unused {
			names = append(names, p.Name)
		}
	}
	return names
}

// progress logs the writes: a line when a phase begins, and one at least
// every tick while it goes on.
type progress struct {
	log       *slog.Logger
	dev       string
	mu        sync.Mutex
	phase     string
	n, total  int64
	phaseFrom time.Time
}

func (p *progress) report(phase string, n, total int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if phase != p.phase {
		if p.phase != "" {
			p.line("install: finished")
		}
		p.phase, p.phaseFrom = phase, time.Now()
		p.log.Info("install: "+phase, "device", p.dev, "mib", total>>20)
	}
	p.n, p.total = n, total
}

// line logs the phase's progress; p.mu is held.
func (p *progress) line(msg string) {
	secs := time.Since(p.phaseFrom).Seconds()
	rate := 0.0
	if secs > 0 {
		rate = float64(p.n>>20) / secs
	}
	p.log.Info(msg, "what", p.phase, "device", p.dev, "written_mib", p.n>>20, "of_mib", p.total>>20,
		"percent", fmt.Sprintf("%.0f", 100*float64(p.n)/float64(max(p.total, 1))), "mib_per_s", fmt.Sprintf("%.1f", rate))
}

// tick logs the progress every d until stop is called.
func (p *progress) tick(d time.Duration) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				p.mu.Lock()
				if p.phase != "" {
					p.line("install: progress")
				}
				p.mu.Unlock()
			}
		}
	}()
	return func() {
		close(done)
		wg.Wait()
		p.mu.Lock()
		if p.phase != "" {
			p.line("install: finished")
		}
		p.mu.Unlock()
	}
}

func sizeText(n int64) string {
	if n >= 1<<30 {
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	}
	return fmt.Sprintf("%d MiB", n>>20)
}

func roundGiB(n int64) int64 { return (n + 1<<30 - 1) &^ (1<<30 - 1) }
