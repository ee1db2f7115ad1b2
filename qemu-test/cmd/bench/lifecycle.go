package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"time"

	"github.com/rke2os/rke2os/builder/build"
	"github.com/rke2os/rke2os/init/rke2node/crds"
	"github.com/rke2os/rke2os/init/rke2node/upgradeapi"
	"github.com/rke2os/rke2os/init/shared/console"
	"github.com/rke2os/rke2os/init/shared/slots"
	"github.com/rke2os/rke2os/qemu-test/qemu"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// lifecycleTimeout bounds each wait of the lifecycle benchmark: a boot
// to node-ready, an upgrade's download and write, under TCG.
const lifecycleTimeout = 20 * time.Minute

// benchLifecycle measures an upgrade and a rollback of a single server,
// beside a plain reboot of the same node in the same run. The server's
// raw disk (the cluster's secrets baked) boots to node-ready; then:
//
//   - a plain reboot (the ACPI power button, QEMU started again at once):
//     power-off asked to node-ready, the baseline;
//   - an UpgradePlan to the artifact of another build of the same tree
//     (OS version bench-2), served over HTTP from the host: from the
//     plan's creation to node-ready on slot B, and the node's downtime,
//     from its shutdown to node-ready on slot B;
//   - an UpgradePlan to a broken build of the same key (its init a text
//     file), written into slot A: from the first trial boot's start to
//     node-ready on slot B again, after GRUB's two tries.
//
// QEMU runs with -no-reboot: a reboot is its exit, and the bench starts it
// again at once, as firmware would.
func benchLifecycle(tb *benchTB, images clusterImages, bin string) []row {
	good, goodSum := artifact(tb, images, "bench-2", "")
	notInit := filepath.Join(tb.TempDir(), "not-an-init")
	check(os.WriteFile(notInit, []byte("this is not a program\n"), 0o755))
	broken, brokenSum := artifact(tb, images, "bench-broken", notInit)

	api := freePort()
	plans := dynamic.NewForConfigOrDie(adminConfig(tb, images, bin, api)).Resource(crds.UpgradePlan)

	cfg := qemu.Config{Machine: "q35", MemoryMiB: 4096, CPUs: 2, Disk: qemu.Overlay(tb, images.server, 8<<30),
		NetdevOpts: fmt.Sprintf("hostfwd=tcp:127.0.0.1:%d-10.0.2.15:6443", api),
		Extra:      qemu.CIDataDrive(qemu.CIData(tb, "#cloud-config\nhostname: node1\n", "instance-id: node1\n"))}
	vm := qemu.Start(tb, cfg)
	waitReady(vm)

	// The baseline: a plain reboot.
	vm, plain := plainReboot(tb, vm, cfg)

	// The upgrade.
	url := serve(tb, good)
	asked := time.Now()
	createPlan(plans, "bench-2", url, goodSum)
	if _, err := vm.WaitFor(regexp.MustCompile(`event=shutdown-begin`), lifecycleTimeout); err != nil {
		check(fmt.Errorf("the upgrade's reboot: %w; errors: %v", err, vm.Errors()))
	}
	down := time.Now()
	phases := map[string]float64{}
	for _, ph := range []string{upgradeapi.PhaseDownloading, upgradeapi.PhaseWriting, upgradeapi.PhaseRebooting} {
		ev, err := vm.WaitEvent(console.EventUpgrade, map[string]string{"plan": "bench-2", "phase": ph}, time.Minute)
		check(err)
		phases[ph] = num(ev, "t")
	}
	check(vm.WaitExit(5 * time.Minute))
	shutdownT := vm.Milestones()["shutdown-done"] // once QEMU is gone: the last line is in
	vm = qemu.Start(tb, cfg)
	if _, err := vm.WaitFor(regexp.MustCompile(`Command line: .*rke2\.slot=B rke2\.trial=1`), 5*time.Minute); err != nil {
		check(fmt.Errorf("GRUB did not try slot B: %w", err))
	}
	waitReady(vm)
	upgraded, downtime := time.Since(asked).Seconds(), time.Since(down).Seconds()
	tb.Logf("lifecycle: plain reboot %.1f s; upgrade: request to node-ready on B %.1f s, downtime %.1f s; phases %v, shutdown-done %.1f", plain, upgraded, downtime, phases, shutdownT)
	waitPhase(plans, "bench-2", upgradeapi.PlanDone)

	// The rollback: two trial boots that panic, then slot A.
	url = serve(tb, broken)
	createPlan(plans, "bench-broken", url, brokenSum)
	check(vm.WaitExit(lifecycleTimeout))
	var firstTrial time.Time
	for try := 1; try <= slots.DefaultTries; try++ {
		vm = qemu.Start(tb, cfg)
		if try == 1 {
			firstTrial = vm.Started
		}
		check(vm.WaitExit(5 * time.Minute))
	}
	// Slot B is the good one since the upgrade: the broken build went
	// into slot A, and GRUB goes back to B.
	vm = qemu.Start(tb, cfg)
	if _, err := vm.WaitFor(regexp.MustCompile(`Command line: .*rke2\.slot=B rke2\.trial=0`), 5*time.Minute); err != nil {
		check(fmt.Errorf("after the tries GRUB did not boot slot B again: %w", err))
	}
	if _, err := vm.WaitMilestone("node-ready", lifecycleTimeout); err != nil {
		check(fmt.Errorf("slot A after the rollback: %w", err))
	}
	rolledBack := time.Since(firstTrial).Seconds()
	tb.Logf("lifecycle: rollback, first trial boot to node-ready on the good slot %.1f s", rolledBack)
	waitPhase(plans, "bench-broken", upgradeapi.PlanFailed)
	check(vm.Powerdown())
	check(vm.WaitExit(5 * time.Minute))

	return []row{
		{"plain reboot of a server: power-off asked to node-ready, wall (s)", f(plain), "", ""},
		ratioRow("upgrade: UpgradePlan created to node-ready on slot B, wall (s)", upgraded, "plain reboot", plain),
		ratioRow("upgrade: the node's downtime, its shutdown to node-ready on slot B, wall (s)", downtime, "plain reboot", plain),
		{"upgrade, guest: download / write+read back / reboot to shutdown-done (s)", f(phases[upgradeapi.PhaseWriting]-phases[upgradeapi.PhaseDownloading]) + " / " +
			f(phases[upgradeapi.PhaseRebooting]-phases[upgradeapi.PhaseWriting]) + " / " + f(shutdownT-phases[upgradeapi.PhaseRebooting]), "", ""},
		ratioRow("rollback: first trial boot's start to node-ready on the good slot, wall (s)", rolledBack, "plain reboot", plain),
	}
}

// adminConfig is the client config of the cluster's admin, as a
// workstation makes it (rke2-build kubeconfig), for the server's API
// forwarded to the host's port api.
func adminConfig(tb *benchTB, images clusterImages, bin string, api int) *rest.Config {
	kubeconfig := filepath.Join(tb.TempDir(), "admin.kubeconfig")
	if b, err := exec.Command(filepath.Join(bin, "rke2-build"), "kubeconfig", "--secrets", images.secrets,
		"--server", fmt.Sprintf("https://127.0.0.1:%d", api), "--output", kubeconfig).CombinedOutput(); err != nil {
		check(fmt.Errorf("rke2-build kubeconfig: %v: %s", err, b))
	}
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	check(err)
	rc.Timeout = 30 * time.Second
	return rc
}

// artifact builds the server's image again with another OS version (and
// init, if given) and returns its upgrade artifact and its sha256.
func artifact(tb *benchTB, images clusterImages, version, init string) (string, string) {
	opts := images.serverOpts
	opts.Output, opts.OSVersion = tb.TempDir(), version
	if init != "" {
		opts.Init = init
	}
	o, err := build.Image(opts)
	check(err)
	fh, err := os.Open(o.Upgrade)
	check(err)
	defer fh.Close()
	h := sha256.New()
	_, err = io.Copy(h, fh)
	check(err)
	return o.Upgrade, hex.EncodeToString(h.Sum(nil))
}

// serve serves one file over HTTP on the host, where the guest reaches it
// through QEMU's gateway.
func serve(tb *benchTB, path string) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, path) })}
	go srv.Serve(l)
	tb.Cleanup(func() { srv.Close() })
	return fmt.Sprintf("http://10.0.2.2:%d/%s", l.Addr().(*net.TCPAddr).Port, filepath.Base(path))
}

// createPlan asks for the servers' upgrade to the artifact at url,
// trying while the apiserver starts.
func createPlan(plans dynamic.NamespaceableResourceInterface, name, url, sum string) {
	p := upgradeapi.UpgradePlan{TypeMeta: metav1.TypeMeta{APIVersion: upgradeapi.Group + "/" + upgradeapi.Version, Kind: upgradeapi.Kind},
		ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: upgradeapi.PlanSpec{Server: &upgradeapi.Artifact{URL: url, SHA256: sum}}}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&p)
	check(err)
	delete(m, "status")
	poll(fmt.Sprintf("create the UpgradePlan %s", name), 5*time.Minute, func() error {
		_, err := plans.Create(context.Background(), &unstructured.Unstructured{Object: m}, metav1.CreateOptions{})
		return err
	})
}

// waitPhase waits for the plan's phase.
func waitPhase(plans dynamic.NamespaceableResourceInterface, name, phase string) {
	poll(fmt.Sprintf("the UpgradePlan %s %s", name, phase), lifecycleTimeout, func() error {
		u, err := plans.Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if got, _, _ := unstructured.NestedString(u.Object, "status", "phase"); got != phase {
			return fmt.Errorf("phase %q", got)
		}
		return nil
	})
}

// plainReboot powers vm off (the ACPI button), starts cfg again at once
// and waits for node-ready: a plain reboot, the baseline of the
// lifecycle's and the restore's figures. It returns the new machine and
// the seconds from the power-off asked to node-ready.
func plainReboot(tb *benchTB, vm *qemu.VM, cfg qemu.Config) (*qemu.VM, float64) {
	down := time.Now()
	check(vm.Powerdown())
	check(vm.WaitExit(5 * time.Minute))
	vm = qemu.Start(tb, cfg)
	waitReady(vm)
	return vm, time.Since(down).Seconds()
}

// waitReady waits for node-ready, failing at an error line.
func waitReady(vm *qemu.VM) {
	got, err := vm.WaitFor(regexp.MustCompile(`(?m)^rke2-init (milestone=node-ready |error=)`), lifecycleTimeout)
	if err != nil || got[1] == "error=" {
		check(fmt.Errorf("waiting for node-ready: %v; errors: %v", err, vm.Errors()))
	}
}

// poll calls f every 2 s until it succeeds, or fails the bench after
// timeout with f's last error.
func poll(what string, timeout time.Duration, f func() error) {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			check(fmt.Errorf("%s: %w", what, err))
		}
		time.Sleep(2 * time.Second)
	}
}

// freePort is a TCP port free on the host's loopback now.
func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
