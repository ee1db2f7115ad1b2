// Package qemu starts the images under test in QEMU: TCG by default (KVM
// only when a probe shows it works), the serial console captured to a file,
// QMP to press the power button, and the console log of a failed test kept
// as an artifact.
package qemu

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rke2os/rke2os/builder/iso"
	"github.com/rke2os/rke2os/internal/fsutil"
)

// Firmware is how the machine boots.
type Firmware string

const (
	// BIOS is SeaBIOS, QEMU's default.
	BIOS Firmware = "bios"
	// UEFI is OVMF.
	UEFI Firmware = "uefi"
)

// OVMF's firmware files from Debian's ovmf package.
var (
	OVMFCode = "/usr/share/OVMF/OVMF_CODE_4M.fd"
	OVMFVars = "/usr/share/OVMF/OVMF_VARS_4M.fd"
)

// Config describes one virtual machine.
type Config struct {
	Machine  string // pc or q35
	Firmware Firmware
	ISO      string // attached as a CD-ROM
	Disk     string // raw disk (or a .qcow2 from Overlay), attached as virtio-blk
	// DiskSnapshot discards the guest's writes to Disk, so that tests can
	// share one image (and run in parallel).
	DiskSnapshot bool
	// DiskFirst boots from Disk, and from the ISO when the disk does not
	// boot (a blank disk), as a machine installed from a CD left in its
	// drive does; without it a machine with both boots from the ISO.
	DiskFirst bool
	// Kernel, Initrd and Append boot a kernel directly (PXE-like).
	Kernel, Initrd, Append string
	MemoryMiB              int
	// NetdevOpts are appended to the user network's options (hostfwd=...).
	NetdevOpts string
	CPUs       int
	// NoRNG leaves out the virtio-rng device, as a VM defined by hand
	// often has none.
	NoRNG bool
	// RTCBase sets the guest's hardware clock at start (QEMU's -rtc base=),
	// like "2020-01-01"; "" is the host's time.
	RTCBase string
	// Nice runs QEMU at that niceness: a machine that must not starve
	// another on a small host (an agent beside its server) gets a low
	// priority.
	Nice int
	// Switch is a vde_switch's socket (StartSwitch): the machine gets a
	// second NIC on that private network, with the MAC address SwitchMAC.
	Switch, SwitchMAC string
	Extra             []string
}

// TB is the part of testing.TB the harness uses, so that the benchmark
// program can drive it too.
type TB interface {
	Helper()
	TempDir() string
	Fatal(args ...any)
	Fatalf(format string, args ...any)
	Logf(format string, args ...any)
	Cleanup(func())
	Failed() bool
	Name() string
}

var _ TB = testing.TB(nil)

// VM is a running QEMU.
type VM struct {
	t       TB
	cmd     *exec.Cmd
	dir     string
	console string
	qmpPath string
	done    chan struct{}
	exitErr error
	// Started is when QEMU was started, for wall-clock measurements.
	Started time.Time
	mu      sync.Mutex
}

// Start boots cfg; the machine is killed when the test ends.
func Start(t TB, cfg Config) *VM {
	t.Helper()
	dir := t.TempDir()
	vm := &VM{t: t, dir: dir, console: filepath.Join(dir, "console.log"), qmpPath: filepath.Join(dir, "qmp.sock"), done: make(chan struct{})}
	machinesMu.Lock()
	first := len(machines[t]) == 0
	machines[t] = append(machines[t], vm)
	machinesMu.Unlock()
	if first {
		// Registered after the test's temporary directory's removal and
		// before the machines' own cleanups, it runs after those and
		// before that: every machine has stopped, its files are there.
		t.Cleanup(func() {
			machinesMu.Lock()
			vms := machines[t]
			delete(machines, t)
			machinesMu.Unlock()
			if t.Failed() {
				keepArtifacts(t, vms)
			}
		})
	}
	args, err := vm.args(cfg)
	if err != nil {
		t.Fatal(err)
	}
	vm.cmd = exec.Command("qemu-system-x86_64", args...)
	if cfg.Nice != 0 {
		vm.cmd = exec.Command("nice", append([]string{"-n", strconv.Itoa(cfg.Nice), "qemu-system-x86_64"}, args...)...)
	}
	stderr, err := os.Create(filepath.Join(dir, "qemu.stderr"))
	if err != nil {
		t.Fatal(err)
	}
	vm.cmd.Stdout = stderr
	vm.cmd.Stderr = stderr
	vm.Started = time.Now()
	if err := vm.cmd.Start(); err != nil {
		t.Fatalf("start qemu: %v (is qemu-system-x86 installed?)", err)
	}
	go func() {
		err := vm.cmd.Wait()
		vm.mu.Lock()
		vm.exitErr = err
		vm.mu.Unlock()
		stderr.Close()
		close(vm.done)
	}()
	t.Cleanup(vm.Kill)
	return vm
}

// machines are the machines each test started, in order, so that a failed
// test keeps the console of each.
var (
	machinesMu sync.Mutex
	machines   = map[TB][]*VM{}
)

func (vm *VM) args(cfg Config) ([]string, error) {
	if cfg.Machine == "" {
		cfg.Machine = "q35"
	}
	if cfg.MemoryMiB == 0 {
		cfg.MemoryMiB = 1024
	}
	if cfg.CPUs == 0 {
		cfg.CPUs = 1
	}
	a := []string{
		"-machine", cfg.Machine, "-accel", Accel(), "-m", strconv.Itoa(cfg.MemoryMiB), "-smp", strconv.Itoa(cfg.CPUs),
		"-display", "none", "-vga", "none", "-no-reboot",
		"-serial", "file:" + vm.console,
		"-qmp", "unix:" + vm.qmpPath + ",server=on,wait=off",
		"-netdev", "user,id=n0" + netdevOpts(cfg.NetdevOpts), "-device", "virtio-net-pci,netdev=n0,id=nic0",
	}
	if !cfg.NoRNG {
		// An entropy source, as libvirt gives VMs by default: without one the
		// guest's getrandom blocks for minutes under TCG.
		a = append(a, "-device", "virtio-rng-pci")
	}
	if cfg.RTCBase != "" {
		a = append(a, "-rtc", "base="+cfg.RTCBase)
	}
	if cfg.Firmware == UEFI {
		vars := filepath.Join(vm.dir, "OVMF_VARS.fd")
		if err := fsutil.CopyFile(OVMFVars, vars); err != nil {
			return nil, fmt.Errorf("OVMF vars (is the ovmf package installed?): %w", err)
		}
		a = append(a, "-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+OVMFCode,
			"-drive", "if=pflash,format=raw,unit=1,file="+vars)
	}
	diskFirst := cfg.DiskFirst && cfg.ISO != "" && cfg.Disk != ""
	switch {
	case diskFirst:
		// Boot indexes, which SeaBIOS and OVMF both follow, falling
		// through to the next device when one does not boot.
		a = append(a, "-drive", "file="+cfg.ISO+",media=cdrom,readonly=on,if=none,id=cd0", "-device", "ide-cd,drive=cd0,bus=ide.0,bootindex=2")
	case cfg.ISO != "":
		a = append(a, "-drive", "file="+cfg.ISO+",media=cdrom,readonly=on")
		if cfg.Disk != "" {
			// The disk may be another machine's: boot from the CD.
			a = append(a, "-boot", "order=d")
		}
	}
	if cfg.Disk != "" {
		opt := ""
		if cfg.DiskSnapshot {
			opt = ",snapshot=on"
		}
		format := "raw"
		if strings.HasSuffix(cfg.Disk, ".qcow2") {
			format = "qcow2"
		}
		if diskFirst {
			a = append(a, "-drive", "file="+cfg.Disk+",format="+format+",if=none,id=disk0"+opt, "-device", "virtio-blk-pci,drive=disk0,bootindex=1")
		} else {
			a = append(a, "-drive", "file="+cfg.Disk+",format="+format+",if=virtio"+opt)
		}
	}
	if cfg.Switch != "" {
		a = append(a, "-netdev", "vde,id=n1,sock="+cfg.Switch, "-device", "virtio-net-pci,netdev=n1,id=nic1,mac="+cfg.SwitchMAC)
	}
	if cfg.Kernel != "" {
		a = append(a, "-kernel", cfg.Kernel, "-initrd", cfg.Initrd, "-append", cfg.Append)
	}
	return append(a, cfg.Extra...), nil
}

// Overlay makes a qcow2 disk of size bytes backed by the raw image base:
// the guest writes to the overlay, base stays as built, and the guest sees
// a disk larger than the image, as when the image is written to a real one.
func Overlay(t TB, base string, size int64) string {
	t.Helper()
	abs, err := filepath.Abs(base)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), strings.TrimSuffix(filepath.Base(base), filepath.Ext(base))+".qcow2")
	out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", "-b", abs, "-F", "raw", p, strconv.FormatInt(size, 10)).CombinedOutput()
	if err != nil {
		t.Fatalf("qemu-img create (is qemu-utils installed?): %v: %s", err, out)
	}
	return p
}

func netdevOpts(o string) string {
	if o == "" {
		return ""
	}
	return "," + o
}

// Console returns what the serial console printed so far, with kernel
// messages that cut into the init's lines moved after them (untangle).
func (vm *VM) Console() string {
	b, _ := os.ReadFile(vm.console)
	out, _ := untangle(b, true)
	return string(out)
}

var milestoneRE = regexp.MustCompile(`(?m)^rke2-init milestone=(\S+) t=([0-9.]+)\r?$`)

// Milestones returns the timeline so far: name -> seconds since kernel start.
func (vm *VM) Milestones() map[string]float64 {
	out := map[string]float64{}
	for _, m := range milestoneRE.FindAllStringSubmatch(vm.Console(), -1) {
		v, _ := strconv.ParseFloat(m[2], 64)
		out[m[1]] = v
	}
	return out
}

// WaitFor waits until the console matches re, QEMU exits, or timeout passes.
// A match lies within a line (and its newline): each look scans only the
// lines the console has grown by since the last, so that waiting on a
// chatty console (debug logs) costs the host little.
func (vm *VM) WaitFor(re *regexp.Regexp, timeout time.Duration) ([]string, error) {
	deadline := time.After(timeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	from := 0 // the start of the first line not wholly scanned yet
	scan := func(final bool) []string {
		b, _ := os.ReadFile(vm.console)
		if len(b) < from {
			from = 0
		}
		lines, used := untangle(b[from:], final)
		// The line being written is looked at too, as it stands.
		m := re.FindSubmatch(append(lines, b[from+used:]...))
		from += used
		if m == nil {
			return nil
		}
		out := make([]string, len(m))
		for i := range m {
			out[i] = string(m[i])
		}
		return out
	}
	for {
		if m := scan(false); m != nil {
			return m, nil
		}
		select {
		case <-deadline:
			return nil, fmt.Errorf("no %q on the console after %s", re, timeout)
		case <-vm.done:
			from = 0
			if m := scan(true); m != nil {
				return m, nil
			}
			return nil, fmt.Errorf("qemu exited before %q appeared on the console", re)
		case <-tick.C:
		}
	}
}

// WaitMilestone waits for a timeline milestone and returns its time.
func (vm *VM) WaitMilestone(name string, timeout time.Duration) (float64, error) {
	m, err := vm.WaitFor(regexp.MustCompile(`(?m)^rke2-init milestone=`+regexp.QuoteMeta(name)+` t=([0-9.]+)\r?$`), timeout)
	if err != nil {
		return 0, err
	}
	return strconv.ParseFloat(m[1], 64)
}

// Errors lists the init's error lines.
func (vm *VM) Errors() []string {
	var out []string
	for _, l := range strings.Split(vm.Console(), "\n") {
		if strings.HasPrefix(l, "rke2-init error=") {
			out = append(out, strings.TrimSpace(l))
		}
	}
	return out
}

// QMP runs one QMP command and returns its "return" value.
func (vm *VM) QMP(command string, args map[string]any) (json.RawMessage, error) {
	var conn net.Conn
	var err error
	for i := 0; i < 50; i++ {
		if conn, err = net.Dial("unix", vm.qmpPath); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return nil, fmt.Errorf("qmp: %w", err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(conn)
	enc := json.NewEncoder(conn)
	read := func() (map[string]json.RawMessage, error) {
		for {
			line, err := r.ReadBytes('\n')
			if err != nil {
				return nil, err
			}
			var msg map[string]json.RawMessage
			if err := json.Unmarshal(line, &msg); err != nil {
				return nil, err
			}
			if _, ev := msg["event"]; ev {
				continue
			}
			return msg, nil
		}
	}
	if _, err := read(); err != nil { // greeting
		return nil, fmt.Errorf("qmp greeting: %w", err)
	}
	cmd := map[string]any{"execute": command}
	if len(args) > 0 {
		cmd["arguments"] = args
	}
	for _, c := range []map[string]any{{"execute": "qmp_capabilities"}, cmd} {
		if err := enc.Encode(c); err != nil {
			return nil, err
		}
		msg, err := read()
		if err != nil {
			return nil, fmt.Errorf("qmp %v: %w", c["execute"], err)
		}
		if e, ok := msg["error"]; ok {
			return nil, fmt.Errorf("qmp %v: %s", c["execute"], e)
		}
		if c["execute"] == command {
			return msg["return"], nil
		}
	}
	return nil, errors.New("qmp: no reply")
}

// SetLink plugs (up) or unplugs the cable of the VM's NIC: the guest sees
// its carrier come and go.
func (vm *VM) SetLink(up bool) error {
	_, err := vm.QMP("set_link", map[string]any{"name": "nic0", "up": up})
	return err
}

// Powerdown presses the ACPI power button.
func (vm *VM) Powerdown() error {
	_, err := vm.QMP("system_powerdown", nil)
	return err
}

// WaitExit waits for QEMU to exit by itself.
func (vm *VM) WaitExit(timeout time.Duration) error {
	select {
	case <-vm.done:
		vm.mu.Lock()
		defer vm.mu.Unlock()
		return vm.exitErr
	case <-time.After(timeout):
		return fmt.Errorf("qemu still running after %s", timeout)
	}
}

// Exited reports whether QEMU has exited.
func (vm *VM) Exited() bool {
	select {
	case <-vm.done:
		return true
	default:
		return false
	}
}

// Kill stops QEMU if it still runs.
func (vm *VM) Kill() {
	select {
	case <-vm.done:
	default:
		_ = vm.cmd.Process.Kill()
		<-vm.done
	}
}

// ArtifactDir is where the console logs of failed tests are kept.
func ArtifactDir() string {
	if d := os.Getenv("RKE2_ARTIFACTS"); d != "" {
		return d
	}
	return filepath.Join(os.TempDir(), "rke2-test-artifacts")
}

// keepArtifacts copies the console log and QEMU's output of each of a
// failed test's machines into ArtifactDir (numbered in the order they
// started when there are several), and logs the last lines of each
// console, the last machine's last: the one most likely to have failed is
// at the end of the test's output, where CI's excerpt of it is.
func keepArtifacts(t TB, vms []*VM) {
	dir := ArtifactDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Logf("keep artifacts: %v", err)
		return
	}
	name := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())
	for i, vm := range vms {
		base := name
		if len(vms) > 1 {
			base = fmt.Sprintf("%s.%d", name, i+1)
		}
		for _, f := range []string{"console.log", "qemu.stderr"} {
			dst := filepath.Join(dir, base+"."+f)
			if err := fsutil.CopyFile(filepath.Join(vm.dir, f), dst); err == nil {
				t.Logf("kept %s", dst)
			}
		}
	}
	for i, vm := range vms {
		lines := strings.Split(vm.Console(), "\n")
		if len(lines) > 40 {
			lines = lines[len(lines)-40:]
		}
		t.Logf("machine %d of %d, started %s, last console lines:\n%s", i+1, len(vms), vm.Started.Format("15:04:05"), strings.Join(lines, "\n"))
	}
}

// StartSwitch starts a vde_switch (Debian's vde2) for the test: a private
// Ethernet segment of this machine's own, on a unix socket, for the
// machines of a cluster to share. It returns the socket's path.
func StartSwitch(t TB) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "switch")
	cmd := exec.Command("vde_switch", "--sock", sock)
	// vde_switch reads commands from stdin and quits at its end: a pipe
	// kept open holds it up until the test ends.
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("vde_switch: %v (is vde2 installed?)", err)
	}
	t.Cleanup(func() {
		in.Close()
		cmd.Process.Kill()
		cmd.Wait()
	})
	for i := 0; ; i++ {
		if _, err := os.Stat(filepath.Join(sock, "ctl")); err == nil {
			return sock
		}
		if i == 100 {
			t.Fatalf("vde_switch made no %s/ctl", sock)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// CIData writes a NoCloud volume (label CIDATA) with user-data and
// meta-data, as a cloud gives a VM its config.
func CIData(t TB, userData, metaData string) string {
	t.Helper()
	dir := t.TempDir()
	ud, md := filepath.Join(dir, "user-data"), filepath.Join(dir, "meta-data")
	for p, c := range map[string]string{ud: userData, md: metaData} {
		if err := os.WriteFile(p, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ws := filepath.Join(dir, "ws")
	if err := os.Mkdir(ws, 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "cidata.iso")
	if err := iso.Write(out, ws, iso.Spec{VolumeID: "CIDATA", Epoch: time.Now(),
		Files: []iso.File{{Path: "/user-data", Source: ud}, {Path: "/meta-data", Source: md}}}); err != nil {
		t.Fatal(err)
	}
	return out
}

// CIDataDrive are the QEMU arguments that attach a CIData volume as a
// CD-ROM beside the machine's disk.
func CIDataDrive(iso string) []string {
	return []string{"-drive", "file=" + iso + ",media=cdrom,readonly=on,if=none,id=cidata", "-device", "ide-cd,drive=cidata,bus=ide.1"}
}
