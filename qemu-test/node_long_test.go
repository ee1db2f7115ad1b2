//go:build nodetest

// The node's longer proofs, one machine each: the live ISO through an
// unplugged cable, a clock years behind and a refused restore; the raw disk
// through power cuts, growth and an unreadable state. About 16 minutes
// under TCG on 2 cores: they run with make node-test, beside CI's budget.

package qemutest

import (
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rke2os/rke2os/init/pid1/timesync/ntptest"
	"github.com/rke2os/rke2os/init/shared/console"
	"github.com/rke2os/rke2os/internal/disktest"
	"github.com/rke2os/rke2os/qemu-test/qemu"
)

// The server ISO with a NoCloud volume comes up as a live node: hostname,
// a written file, DHCP, the runtime extracted as RKE2 does, containerd,
// the airgap images imported, a standalone kubelet running etcd's static
// pod, which the test reaches through QEMU's port forwarding.
//
// Its cable is unplugged from power-on for 90 seconds, as when the switch
// comes back after the node: the boot waits, says what for, and goes on by
// itself once the link is up.
//
// Its hardware clock is six years behind (QEMU's -rtc base=2020-01-01) and
// the test serves the host's time over NTP: the clock is set before any
// certificate is made, and etcd's are valid today. A second disk with a
// state partition of another machine is attached: the live ISO leaves it
// alone.
func TestNodeRunsEtcd(t *testing.T) {
	ntp, err := ntptest.Listen("127.0.0.1:0", 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ntp.Close() })
	foreign := foreignStateDisk(t)
	rtc := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	n := newTestNode(t, qemu.Config{ISO: filepath.Join(outDir(t), "rke2-server.iso"), Disk: foreign, RTCBase: rtc.Format("2006-01-02")})
	// A restore of a file that is no snapshot: refused, and etcd starts
	// on the data as it is (here, a first boot's: none).
	n.userData(fmt.Sprintf("ntp:\n  servers: [\"10.0.2.2:%d\"]\nrke2:\n  node-label: rke2os.test/role=server\n  node-taint: [\"rke2os.test/dedicated=true:PreferNoSchedule\"]\n"+
		"  cluster-reset: true\n  cluster-reset-restore-path: /etc/os-release\n", ntp.Port()))
	started := time.Now()
	const unplugged = 90 * time.Second
	vm := n.bootWith(func(vm *qemu.VM) {
		if err := vm.SetLink(false); err != nil {
			t.Fatal(err)
		}
		if _, err := vm.WaitEvent(console.EventDHCPWaiting, map[string]string{"iface": "eth0", "reason": "no-carrier", "waited": "30s"}, bootTimeout); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Until(vm.Started.Add(unplugged)))
		if ms := vm.Milestones(); ms["network-up"] != 0 {
			t.Fatalf("network-up at t=%.3f with the cable unplugged", ms["network-up"])
		}
		if err := vm.SetLink(true); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("waiting messages while unplugged: %d", countEvents(vm, console.EventDHCPWaiting, map[string]string{"iface": "eth0"}))
	if ev, err := vm.WaitEvent(console.EventClusterReset, map[string]string{"outcome": "refused"}, time.Second); err != nil ||
		!strings.Contains(ev["reason"], "/etc/os-release") || !strings.Contains(ev["reason"], "not an etcd snapshot") {
		t.Errorf("the restore of a file that is no snapshot: %v %v", ev, err)
	}
	// DHCP on the interface the config names (not the automatic DHCP).
	if _, err := vm.WaitEvent(console.EventDHCPLease, map[string]string{"item": "network.interfaces[0] (name eth0)"}, time.Second); err != nil {
		t.Error(err)
	}

	// The clock: set from NTP after network-up and before content-ready,
	// by the offset the test made.
	ms := vm.Milestones()
	if !(ms["network-up"] <= ms["time-synced"] && ms["time-synced"] > 0 && ms["time-synced"] < ms["content-ready"]) {
		t.Errorf("time-synced at %.3f, want after network-up (%.3f) and before content-ready (%.3f)", ms["time-synced"], ms["network-up"], ms["content-ready"])
	}
	synced, err := vm.WaitEvent(console.EventTimeSynced, map[string]string{"stepped": "true"}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	offset, err := time.ParseDuration(synced["offset"])
	if err != nil {
		t.Fatal(err)
	}
	// The guest started at rtc when QEMU started; its clock ran since.
	if want := started.Sub(rtc); offset < want-5*time.Minute || offset > want+5*time.Minute {
		t.Errorf("logged offset %v, want about %v", offset, want)
	}
	if ntp.Queries() == 0 {
		t.Errorf("the node never asked the test's NTP server")
	}
	// With virtio-rng the kernel's RNG is ready at once: no word about it.
	if len(vm.Events(console.EventRNGNotReady)) > 0 || len(vm.Events(console.EventRNGMissing)) > 0 {
		t.Errorf("the RNG message appeared although the VM has virtio-rng")
	}
	if _, err := vm.WaitEventFunc(console.EventConfigLoaded, func(ev map[string]string) bool { return strings.HasPrefix(ev["sources"], "cidata") },
		"the config from cidata", time.Second); err != nil {
		t.Error(err)
	}
	if _, err := vm.WaitEvent(console.EventStateInMemory, nil, time.Second); err != nil {
		t.Error(err)
	}
	if _, err := vm.WaitEvent(console.EventContentReady, map[string]string{"skipped": "false"}, time.Second); err != nil {
		t.Error(err)
	}
	// The airgap images are pinned: the kubelet's image GC, which a live
	// node's full tmpfs triggers, never removes them. A third-party line:
	// containerd's own log.
	if _, err := vm.WaitFor(regexp.MustCompile(`ImageCreate event name:.*docker.io/rancher/hardened-flannel:.*io.cri-containerd.pinned.*pinned`), time.Second); err != nil {
		t.Error(err)
	}
	n.put("/rke2os/test", "hello from the host")
	if got := n.get("/rke2os/test"); got != "hello from the host" {
		t.Fatalf("get = %q", got)
	}
	// etcd's serving certificate, made by the node, is valid today.
	conn, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", n.etcd), &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{n.ca.client(t)}})
	if err != nil {
		t.Fatal(err)
	}
	cert := conn.ConnectionState().PeerCertificates[0]
	conn.Close()
	if now := time.Now(); cert.NotBefore.After(now) || cert.NotAfter.Before(now) || now.Sub(cert.NotBefore) > time.Hour+10*time.Minute {
		t.Errorf("etcd's certificate is valid %v to %v, not from about now (%v)", cert.NotBefore, cert.NotAfter, now)
	}
	n.checkControlPlane(vm)
	t.Logf("timeline: %v", vm.Milestones())
	if err := vm.Powerdown(); err != nil {
		t.Fatal(err)
	}
	if _, err := vm.WaitMilestone("shutdown-done", 3*time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := vm.WaitExit(time.Minute); err != nil {
		// Stopped here so that the disk is read at rest.
		t.Errorf("after shutdown-done: %v", err)
		vm.Kill()
	}
	// The other machine's blank state partition is still blank.
	start, size := statePartition(t, foreign)
	if sum, zero := disktest.Hash(t, foreign, start, size), sha256.Sum256(make([]byte, size)); sum != zero {
		t.Errorf("the state partition of a disk the node did not boot from was written to")
	}
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
