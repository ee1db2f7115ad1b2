package qemutest

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rke2os/rke2os/init/shared/console"
	"github.com/rke2os/rke2os/internal/disktest"
	"github.com/rke2os/rke2os/qemu-test/qemu"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// rawDisk copies the server's raw disk as a user writes it to a larger
// disk (here a sparse file of size bytes).
func rawDisk(t *testing.T, size int64) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "rke2-server.raw")
	if out, err := exec.Command("cp", "--sparse=always", filepath.Join(outDir(t), "rke2-server.raw"), p).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, out)
	}
	if err := os.Truncate(p, size); err != nil {
		t.Fatal(err)
	}
	return p
}

// statePartition is where RKE2_STATE lies in a raw disk image, in bytes.
func statePartition(t *testing.T, disk string) (start, size int64) {
	t.Helper()
	return disktest.Partition(t, disk, "RKE2_STATE")
}

// stateFile reads a file from the (powered-off) disk's state filesystem
// with e2fsprogs' debugfs; the path is inside the filesystem (/var/x is /x).
func stateFile(t *testing.T, disk, path string) string {
	t.Helper()
	start, _ := statePartition(t, disk)
	out, err := exec.Command("debugfs", "-R", "cat "+path, fmt.Sprintf("%s?offset=%d", disk, start)).Output()
	if err != nil {
		t.Fatalf("debugfs cat %s (is e2fsprogs installed?): %v", path, err)
	}
	return string(out)
}

// stateList lists a directory of the disk's state filesystem.
func stateList(t *testing.T, disk, path string) string {
	t.Helper()
	start, _ := statePartition(t, disk)
	out, err := exec.Command("debugfs", "-R", "ls -l "+path, fmt.Sprintf("%s?offset=%d", disk, start)).CombinedOutput()
	if err != nil {
		t.Fatalf("debugfs ls %s: %v: %s", path, err, out)
	}
	return string(out)
}

// cutAt waits until reached says that what is on the console, and then
// pulls the plug: QEMU is killed with no shutdown, as a power cut does to
// a machine.
func cutAt(t *testing.T, vm *qemu.VM, what string, after time.Duration, reached func() error) {
	t.Helper()
	if err := reached(); err != nil {
		t.Fatalf("before the power cut: %v; errors: %v", err, vm.Errors())
	}
	time.Sleep(after)
	vm.Kill()
	t.Logf("power cut %v after %s", after, what)
}

// event is an event a test looks for: its name and key/values.
type event struct {
	name  string
	match map[string]string
}

// hasEvent says whether the console has an event named name with every
// key/value of match.
func hasEvent(vm *qemu.VM, name string, match map[string]string) bool {
	return countEvents(vm, name, match) > 0
}

// The server's raw disk, written to a larger (8 GiB) disk, through power
// cuts and reboots. The power is cut during the first boot's format, during
// the runtime extraction and during the airgap import: each next boot
// carries on and formats nothing it should not. The boot that completes
// imports; the kubelet, killed from inside, comes back with backoff; the
// power button stops the kubelet before containerd. The power is then cut
// while etcd takes writes, and the disk grows to 10 GiB, as a cloud disk is
// resized: the next boot grows the state filesystem, skips the extraction
// and the import, etcd has every key it acknowledged, the node password and
// the logs are kept, and a containerd that dies takes the node stack down
// and back up. A boot on which the state partition cannot be read stays in
// maintenance mode and writes nothing; the boot after it finds everything.
func TestNodeRawDisk(t *testing.T) {
	disk := rawDisk(t, 8<<30)
	n := newTestNode(t, qemu.Config{Disk: disk})

	// Cut during the format (the label is written last: formatted again).
	vm := qemu.Start(t, n.cfg)
	cutAt(t, vm, "event "+console.EventStateFormatting, 500*time.Millisecond, func() error {
		_, err := vm.WaitEvent(console.EventStateFormatting, nil, nodeTimeout)
		return err
	})
	// Cut during the runtime extraction (no .extracted marker: again).
	vm = qemu.Start(t, n.cfg)
	cutAt(t, vm, "milestone network-up", 5*time.Second, func() error {
		_, err := vm.WaitMilestone("network-up", nodeTimeout)
		return err
	})
	if !hasEvent(vm, console.EventStateReady, map[string]string{"device": "/dev/vda5", "formatted": "true"}) {
		t.Errorf("the boot after a format cut short did not format again:\n%s", grep(vm.Console(), "state"))
	}
	// Cut during the airgap import (the import record is written last).
	vm = qemu.Start(t, n.cfg)
	cutAt(t, vm, "milestone containerd-ready", 20*time.Second, func() error {
		_, err := vm.WaitMilestone("containerd-ready", nodeTimeout)
		return err
	})
	for _, ev := range []event{
		{console.EventStateReady, map[string]string{"device": "/dev/vda5", "formatted": "false"}},
		{console.EventContentReady, map[string]string{"skipped": "false"}},
	} {
		if !hasEvent(vm, ev.name, ev.match) {
			t.Errorf("the boot after a cut extraction: no event %s %v", ev.name, ev.match)
		}
	}

	vm = n.boot()
	for _, ev := range []event{
		{console.EventStateReady, map[string]string{"device": "/dev/vda5", "formatted": "false"}},
		{console.EventImagesImported, map[string]string{"imported": "1", "skipped": "0"}},
		// No ntp: in its config, none from QEMU's DHCP.
		{console.EventTimeUnsynced, map[string]string{"reason": "no-server"}},
	} {
		if _, err := vm.WaitEvent(ev.name, ev.match, time.Second); err != nil {
			t.Errorf("first complete boot: %v", err)
		}
	}
	n.put("/rke2os/test", "kept across boots")
	t.Logf("first complete boot timeline: %v", vm.Milestones())

	// The debug hooks refuse a request without the node's token or with
	// another, and log who sent it: QEMU's gateway, through hostfwd.
	for _, token := range []string{"", "not-the-token-of-this-node"} {
		if code, body := n.hook("kubelet", "KILL", token); code != http.StatusUnauthorized {
			t.Errorf("debug hook with token %q: %d %s, want 401", token, code, body)
		}
	}
	gateway := regexp.MustCompile(`^10\.0\.2\.2:\d+$`)
	for _, why := range []string{"no token", "wrong token"} {
		if _, err := vm.WaitEventFunc(console.EventDebugHookRefused, func(ev map[string]string) bool {
			return gateway.MatchString(ev["remote"]) && ev["reason"] == why
		}, "a refusal of 10.0.2.2 for "+why, 10*time.Second); err != nil {
			t.Errorf("a request with %s: %v", why, err)
		}
	}

	// Kill the kubelet from inside: the supervisor brings it back (backoff).
	kubeletRunning := map[string]string{"name": "kubelet", "state": "running"}
	before := countEvents(vm, console.EventService, kubeletRunning)
	n.signal("kubelet", "KILL")
	if _, err := vm.WaitEvent(console.EventService, map[string]string{"name": "kubelet", "state": "backoff"}, 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	waitMore(t, vm, console.EventService, kubeletRunning, before, 3*time.Minute)

	// Power off: the kubelet stops before containerd, then the disk is
	// unmounted and QEMU exits by itself.
	if err := vm.Powerdown(); err != nil {
		t.Fatal(err)
	}
	if err := vm.WaitExit(3 * time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := stopOrder(vm.Console()); err != nil {
		t.Error(err)
	}
	if evs := vm.Events(console.EventUnmountFailed); len(evs) > 0 {
		t.Errorf("the state was not unmounted cleanly: %s: %s", evs[0]["target"], evs[0]["err"])
	}
	password := stateFile(t, disk, "/lib/rke2os/etc/rancher/node/password")
	if !regexp.MustCompile(`^[0-9a-f]{32}\n$`).MatchString(password) {
		t.Errorf("node password %q", password)
	}

	// The power is cut while etcd takes writes: every acknowledged put
	// must be there after the next boot.
	vm = n.boot()
	acked := n.putUntilCut(vm, 15*time.Second)

	// The disk grows while the VM is off, as a cloud disk is resized: the
	// next boot grows the partition and the mounted filesystem.
	if err := os.Truncate(disk, 10<<30); err != nil {
		t.Fatal(err)
	}
	vm = n.boot()
	for _, ev := range []event{
		{console.EventStateReady, map[string]string{"device": "/dev/vda5", "formatted": "false"}},
		{console.EventContentReady, map[string]string{"skipped": "true"}},
		{console.EventImagesImported, map[string]string{"imported": "0", "skipped": "1"}},
		{console.EventNodePassword, map[string]string{"file": "/etc/rancher/node/password", "created": "false"}},
	} {
		if _, err := vm.WaitEvent(ev.name, ev.match, time.Second); err != nil {
			t.Errorf("boot after the cut: %v", err)
		}
	}
	// The disk grew by 2 GiB: the partition, and the filesystem with it,
	// by as much (less the partition alignment's MiB at most).
	if _, err := vm.WaitEventFunc(console.EventStateGrown, func(kv map[string]string) bool {
		n, err := strconv.Atoi(kv["added_mib"])
		return kv["device"] == "/dev/vda5" && err == nil && n >= 2047 && n <= 2048
	}, "state-grown by 2 GiB", time.Second); err != nil {
		t.Errorf("boot after the cut: %v", err)
	}
	t.Logf("boot after the cut timeline: %v", vm.Milestones())
	if got := n.get("/rke2os/test"); got != "kept across boots" {
		t.Fatalf("etcd has %q for the key put on the first boot", got)
	}
	n.checkKeys(acked)

	// containerd dies: the node stack stops and starts again (the default
	// on_containerd_exit: restart), and etcd answers again.
	containerdRunning := map[string]string{"name": "containerd", "state": "running"}
	containerd, kubelet := countEvents(vm, console.EventService, containerdRunning), countEvents(vm, console.EventService, kubeletRunning)
	n.signal("containerd", "KILL")
	if _, err := vm.WaitEvent(console.EventStackStopped, nil, 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	waitMore(t, vm, console.EventService, containerdRunning, containerd, 3*time.Minute)
	waitMore(t, vm, console.EventService, kubeletRunning, kubelet, 3*time.Minute)
	if got := n.get("/rke2os/test"); got != "kept across boots" {
		t.Fatalf("after the stack restart: etcd has %q", got)
	}
	if err := vm.Powerdown(); err != nil {
		t.Fatal(err)
	}
	if err := vm.WaitExit(3 * time.Minute); err != nil {
		t.Fatal(err)
	}
	if got := stateFile(t, disk, "/lib/rke2os/etc/rancher/node/password"); got != password {
		t.Errorf("node password changed across boots: %q -> %q", password, got)
	}
	if ls := stateList(t, disk, "/log/pods"); !strings.Contains(ls, "kube-system_etcd-node1_") {
		t.Errorf("/var/log/pods lacks etcd's logs:\n%s", ls)
	}
	// write_files wrote what the config says, with its mode, onto the state.
	if got := stateFile(t, disk, "/lib/rke2os-test/written.txt"); got != "written by write_files\n" {
		t.Errorf("write_files content %q", got)
	}
	if ls := stateList(t, disk, "/lib/rke2os-test"); !regexp.MustCompile(`100640 .*written.txt`).MatchString(ls) {
		t.Errorf("write_files mode, want 0640:\n%s", ls)
	}
	// Every key and kubeconfig of the server's PKI is 0600.
	for _, d := range []string{"/lib/rancher/rke2/server/tls", "/lib/rancher/rke2/server/cred"} {
		ls := stateList(t, disk, d)
		checked := 0
		for _, l := range strings.Split(ls, "\n") {
			f := strings.Fields(l)
			if len(f) < 9 || !(strings.HasSuffix(l, ".key") || strings.HasSuffix(l, ".kubeconfig") || strings.HasSuffix(l, ".json")) {
				continue
			}
			checked++
			if f[1] != "100600" {
				t.Errorf("%s: %s is mode %s, want 0600", d, f[len(f)-1], f[1])
			}
		}
		// Not a name in the listing: a file whose mode was read (a listing
		// of another format would check nothing).
		if checked == 0 {
			t.Errorf("%s: no key or kubeconfig whose mode could be read:\n%s", d, ls)
		}
	}

	// A boot on which the state partition's superblock cannot be read
	// (QEMU's blkdebug fails every read and write of its sector 2, where
	// ext4's superblock lies): maintenance mode, nothing written.
	start, size := statePartition(t, disk)
	sum := disktest.Hash(t, disk, start, 1<<20)
	rules := filepath.Join(t.TempDir(), "blkdebug.conf")
	sector := start/512 + 2
	if err := os.WriteFile(rules, []byte(fmt.Sprintf("[inject-error]\nevent = \"read_aio\"\nerrno = \"5\"\nsector = \"%d\"\n\n[inject-error]\nevent = \"write_aio\"\nerrno = \"5\"\nsector = \"%d\"\n", sector, sector)), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := n.cfg
	bad.Disk = ""
	bad.Extra = append(append([]string{}, n.cfg.Extra...), "-drive", "if=virtio,format=raw,file.driver=blkdebug,file.config="+rules+",file.image.filename="+disk)
	vm = qemu.Start(t, bad)
	// The whole line: the console may be read while it is being written.
	m, err := vm.WaitFor(regexp.MustCompile(`(?m)^rke2-init error=(".*state.*")\r?\n`), bootTimeout)
	if err != nil {
		t.Fatalf("a state partition that cannot be read: %v", err)
	}
	if !strings.Contains(m[1], "/dev/vda5") || !strings.Contains(m[1], "nothing was written") {
		t.Errorf("the error does not say which device and that nothing was written: %s", m[1])
	}
	if _, err := vm.WaitEvent(console.EventMaintenance, nil, time.Minute); err != nil {
		t.Error(err)
	}
	if hasEvent(vm, console.EventStateFormatting, nil) {
		t.Errorf("the init began to format a state partition it could not read")
	}
	powerOffInOrder(t, vm, regexp.MustCompile(`state`))
	if got := disktest.Hash(t, disk, start, 1<<20); got != sum {
		t.Errorf("the first MiB of the state partition changed on the boot that could not read it")
	}
	t.Logf("state partition at %d MiB, %d MiB", start>>20, size>>20)

	vm = n.boot()
	if _, err := vm.WaitEvent(console.EventStateReady, map[string]string{"device": "/dev/vda5", "formatted": "false"}, time.Second); err != nil {
		t.Error(err)
	}
	if got := n.get("/rke2os/test"); got != "kept across boots" {
		t.Fatalf("after the boot with a read error: etcd has %q", got)
	}
	powerOffInOrder(t, vm)
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// putUntilCut puts keys into the node's etcd for d, then cuts the power in
// the middle of the writes, and returns the keys etcd acknowledged.
func (n *testNode) putUntilCut(vm *qemu.VM, d time.Duration) []string {
	t := n.t
	n.put("/rke2os/cut/warmup", "x") // etcd answers
	cli := etcdClient(t, n.ca, n.etcd)
	defer cli.Close()
	var mu sync.Mutex
	var acked []string
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			key := fmt.Sprintf("/rke2os/cut/%06d", i)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err := cli.Put(ctx, key, key)
			cancel()
			if err != nil {
				continue
			}
			mu.Lock()
			acked = append(acked, key)
			mu.Unlock()
		}
	}()
	time.Sleep(d)
	vm.Kill() // the power goes while puts are in flight
	close(stop)
	<-done
	mu.Lock()
	defer mu.Unlock()
	if len(acked) == 0 {
		t.Fatalf("etcd acknowledged no put in %v", d)
	}
	t.Logf("etcd acknowledged %d puts before the power cut", len(acked))
	return acked
}

// checkKeys expects every key etcd acknowledged before a power cut.
func (n *testNode) checkKeys(keys []string) {
	var got map[string]bool
	n.etcdDo("get", func(ctx context.Context, cli *clientv3.Client) error {
		resp, err := cli.Get(ctx, "/rke2os/cut/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
		if err != nil {
			return err
		}
		got = map[string]bool{}
		for _, kv := range resp.Kvs {
			got[string(kv.Key)] = true
		}
		return nil
	})
	var lost []string
	for _, k := range keys {
		if !got[k] {
			lost = append(lost, k)
		}
	}
	if len(lost) > 0 {
		n.t.Errorf("%d of %d acknowledged keys lost in the power cut: %v", len(lost), len(keys), lost)
	}
}
