package qemutest

import (
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rke2os/rke2os/init/rke2node/upgradeapi"
	"github.com/rke2os/rke2os/init/shared/console"
	"github.com/rke2os/rke2os/qemu-test/conformance"
	"github.com/rke2os/rke2os/qemu-test/qemu"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// inputOr is an input of the images the tests build, from the environment
// make qemu-test sets, or where the Makefile puts it.
func inputOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// clusterImage builds a server raw disk with the test's own secrets
// (rke2-build secrets, then image --secrets) and the test-only images
// beside RKE2's, as a user bakes an image for a cluster of their own.
func clusterImage(t *testing.T) (disk, secrets string) {
	t.Helper()
	secrets = secretsDir(t)
	raw := roleImage(t, "server", "--secrets", secrets)
	disk = filepath.Join(t.TempDir(), "rke2-server.raw")
	if b, err := exec.Command("cp", "--sparse=always", raw, disk).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, b)
	}
	if err := os.Truncate(disk, 8<<30); err != nil {
		t.Fatal(err)
	}
	return disk, secrets
}

// secretsDir makes a cluster's secrets with rke2-build secrets.
func secretsDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "secrets")
	if b, err := exec.Command(filepath.Join(buildEnv(t, "RKE2_BIN"), "rke2-build"), "secrets", "--output", dir).CombinedOutput(); err != nil {
		t.Fatalf("rke2-build secrets: %v\n%s", err, b)
	}
	return dir
}

// roleImage builds the role's raw disk with the test-only images beside
// RKE2's, and returns its path.
func roleImage(t *testing.T, role string, extra ...string) string {
	t.Helper()
	bin, kernel, grub := buildEnv(t, "RKE2_BIN"), buildEnv(t, "RKE2_KERNEL"), buildEnv(t, "RKE2_GRUB")
	out := filepath.Join(t.TempDir(), "out")
	args := append([]string{"image", "--role", role, "--output", out,
		"--kernel", kernel, "--grub", grub, "--init", filepath.Join(bin, "rke2-init"), "--node", filepath.Join(bin, "rke2-node"),
		"--overlays", "../overlays", "--rootfs", inputOr("RKE2_ROOTFS", "../build/cache/iptables/root"),
		"--version", rke2Version(t),
		"--images", inputOr("RKE2_IMAGES", "../build/images/rke2-images.linux-amd64.tar.zst"),
		"--images", inputOr("RKE2_TEST_IMAGES", "../build/images/rke2os-test-images.linux-amd64.tar.zst")}, extra...)
	// make conformance bakes the images Kubernetes' conformance tests run
	// too (their own archive: no other test carries them).
	if a := os.Getenv("RKE2_CONFORMANCE_IMAGES"); a != "" {
		args = append(args, "--images", a)
	}
	if b, err := exec.Command(filepath.Join(bin, "rke2-build"), args...).CombinedOutput(); err != nil {
		t.Fatalf("rke2-build image --role %s: %v\n%s", role, err, b)
	}
	return filepath.Join(out, "rke2-"+role+".raw")
}

// smallMachineRKE2 is what a user of a small machine sets in the rke2
// section (indented keys) for a control plane that shares two cores under
// TCG, and smallMachineFlannel the HelmChartConfig beside it in
// server/manifests: RKE2's knobs, no change to the OS.
//
// An idle server here keeps its two vCPUs 60 to 100 % busy (debug.cpu, one
// server, RKE2's defaults): of 72 CPU-seconds a minute, the apiserver's
// kubectl exec probes take 12 (and their shim's share), flanneld's
// iptables checks every 5 s another 11, the kubelet 10, the apiserver 10.
// At kubeadm's timing the apiserver's probes (a kubectl each, every 5 to
// 10 s) are a large part of the load, and a /livez that waits on a slow
// etcd gets the apiserver restarted, which loads the machine more; here
// they run every 30 s, and flanneld checks its rules every 60 s. The
// controller-manager's and scheduler's leases likewise: at Kubernetes'
// 15 s lease and 10 s renewal, a renewal late behind a slow etcd exits
// the process, and each restart of theirs costs the loaded machine
// minutes of CPU (seen: both in CrashLoopBackOff on the first HA server
// while the second imported its images).
const (
	smallMachineRKE2 = "  control-plane-probe-configuration: [kube-apiserver-liveness-period-seconds=30, kube-apiserver-liveness-failure-threshold=20," +
		" kube-apiserver-readiness-period-seconds=30, kube-apiserver-startup-period-seconds=30]\n" +
		"  kube-controller-manager-arg: " + smallMachineLease + "\n  kube-scheduler-arg: " + smallMachineLease + "\n"
	smallMachineLease   = "[leader-elect-lease-duration=60s, leader-elect-renew-deadline=40s, leader-elect-retry-period=10s]"
	smallMachineFlannel = "apiVersion: helm.cattle.io/v1\nkind: HelmChartConfig\nmetadata:\n  name: rke2-flannel\n  namespace: kube-system\nspec:\n" +
		"  valuesContent: |-\n    flannel:\n      args: [--ip-masq, --kube-subnet-mgr, --iptables-resync=60]\n"
)

// clusterUserData is the NoCloud user-data of the cluster node: its name,
// DHCP, and what a user puts into server/manifests with write_files (a
// HelmChart with chartContent and a plain manifest, version gen, and the
// manifests of more, by file name); rke2 is more of its rke2 section,
// indented keys ("  token: x\n").
func clusterUserData(t *testing.T, gen int, rke2 string, more map[string]string) string {
	plain := fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: rke2os-test-plain\n  namespace: default\ndata:\n  generation: \"%d\"\n", gen)
	if gen == 1 {
		// Dropped from the file at the next boot: pruned.
		plain += "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: rke2os-test-pruned\n  namespace: default\n"
	}
	var b strings.Builder
	b.WriteString("#cloud-config\nhostname: node1\nwrite_files:\n")
	files := map[string]string{"rke2os-test-chart.yaml": testChart(t), "rke2os-test-plain.yaml": plain}
	for name, content := range more {
		files[name] = content
	}
	for _, name := range slices.Sorted(maps.Keys(files)) {
		content := files[name]
		fmt.Fprintf(&b, "  - path: /var/lib/rancher/rke2/server/manifests/%s\n    content: |\n%s\n", name, indent(content, 6))
	}
	b.WriteString(clusterNetwork(serverIP, "rke2:\n  node-ip: "+serverIP+"\n"+rke2))
	return b.String()
}

// The server disk, its cluster's secrets baked in with --secrets, boots into
// a single-server cluster that the host drives with client-go and the
// kubeconfig rke2-build kubeconfig writes: the Node Ready, the control
// plane, kube-proxy, flannel and CoreDNS running, a test workload resolving
// and reaching a Service through CoreDNS and the pod network, the user's
// HelmChart (with a HelmChartConfig) and plain manifest applied. After a
// reboot the same cluster comes back: what was made before is there, the
// changed manifest is applied again and what left it is pruned.
//
// The reboot is an upgrade, asked for through the Kubernetes API: an
// UpgradePlan names the artifact of another image of the same tree (OS
// version test-2), served over HTTP by the test. The node is drained,
// downloads and checks the artifact, writes it into slot B, reboots into
// it as a trial, is Ready on it (which makes slot B the good one), and
// reports the new version: in its Node's osImage and the plan's status.
//
// On the first boot, Kubernetes' own conformance tests of conformance.Smoke
// pass.
//
// Its etcd is snapshotted every minute, two kept (checkSnapshots); a
// snapshot taken on demand before the upgrade is there after it, and is
// restored at a third boot (cluster-reset): what was made after it is
// gone, what was made before it is there.
func TestCluster(t *testing.T) {
	cs := newClusterServer(t)
	s3Port, bucket := s3Server(t)
	cs.rke2 = snapshotRKE2(s3Port)
	cfg, seed, kc, rc := cs.cfg, cs.seed, cs.kc, cs.rc
	ctx := context.Background()
	// The next version's artifact is built while the first boot runs.
	type built struct{ path, sum string }
	next := make(chan built, 1)
	go func() {
		p, s := upgradeArtifact(t, cs.secrets, "test-2")
		next <- built{p, s}
	}()

	cfg.Extra = seed(1)
	vm := qemu.Start(t, cfg)
	waitNodeReady(t, vm)
	// The secrets baked in are the cluster's: the node installs them (and
	// so makes no CA of its own), and the workstation's kubeconfig works.
	if _, err := vm.WaitEvent(console.EventSecretsInstalled, nil, time.Second); err != nil {
		t.Errorf("the node did not install the baked secrets: %v", err)
	}
	poll(t, "the Node Ready through client-go", 5*time.Minute, func() error {
		n, err := kc.CoreV1().Nodes().Get(ctx, "node1", metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				return nil
			}
		}
		return fmt.Errorf("conditions %v", n.Status.Conditions)
	})
	for _, name := range []string{"etcd-node1", "kube-apiserver-node1", "kube-controller-manager-node1", "kube-scheduler-node1", "kube-proxy-node1"} {
		poll(t, name+" Running", 5*time.Minute, func() error {
			p, err := kc.CoreV1().Pods("kube-system").Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if p.Status.Phase != corev1.PodRunning {
				return fmt.Errorf("phase %s", p.Status.Phase)
			}
			return nil
		})
	}
	a := (&testNode{t: t}).clientWith(rc)
	a.runningPods("flannel", "app=flannel", 10*time.Minute)
	a.runningPods("CoreDNS", "k8s-app=kube-dns", 10*time.Minute)
	checkWorkload(t, ctx, kc)
	a.checkManifests(1)
	a.refusesStrangers()
	if _, err := kc.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "made-before-reboot"},
		Data: map[string]string{"k": "v"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	kept := cs.checkSnapshots(t, vm, bucket)
	// Kubernetes' own conformance tests, a few (make conformance runs
	// the rest).
	smoke := runConformance(t, cs.kubeconfig, conformance.Focus(conformance.Smoke), "", 10*time.Minute)
	if m := smoke.Missing(conformance.Smoke); len(m) > 0 {
		t.Errorf("the conformance smoke: %s (RKE2_E2E) has no test named %q", os.Getenv("RKE2_E2E"), m)
	}
	first := vm.Milestones()
	t.Logf("first boot timeline: %v", first)
	checkOSImage(t, kc, "rke2os "+rke2Version(t)+" (server)")

	// The upgrade: the node reboots by itself into slot B (QEMU runs
	// with -no-reboot: it exits, and the test starts it again).
	b := <-next
	url, downloads := serveFile(t, b.path)
	createPlan(t, rc, "to-test-2", url, b.sum)
	if err := vm.WaitExit(nodeTimeout); err != nil {
		t.Fatalf("the node did not reboot for the upgrade: %v; errors: %v", err, vm.Errors())
	}
	var phases []string
	for _, phase := range []string{upgradeapi.PhaseDownloading, upgradeapi.PhaseWriting, upgradeapi.PhaseRebooting} {
		ev, err := vm.WaitEvent(console.EventUpgrade, map[string]string{"phase": phase, "plan": "to-test-2"}, time.Second)
		if err != nil {
			t.Errorf("the upgrade's console: %v", err)
		}
		phases = append(phases, phase+" t="+ev["t"])
	}
	t.Logf("upgrade: %s; shutdown-done t=%.3f", strings.Join(phases, ", "), vm.Milestones()["shutdown-done"])
	if ev, _ := vm.WaitEvent(console.EventUpgrade, map[string]string{"phase": upgradeapi.PhaseRebooting}, time.Second); ev["slot"] != "B" {
		t.Errorf("the upgrade wrote slot %q, want B", ev["slot"])
	}
	if n := downloads.Load(); n != 1 {
		t.Errorf("the artifact was downloaded %d times, want once", n)
	}
	// Boot on the new slot, with the manifest changed.
	cfg.Extra = seed(2)
	vm = qemu.Start(t, cfg)
	if _, err := vm.WaitFor(regexp.MustCompile(`Command line: .*rke2\.slot=B rke2\.trial=1`), bootTimeout); err != nil {
		t.Fatalf("GRUB did not try slot B: %v", err)
	}
	waitNodeReady(t, vm)
	t.Logf("second boot timeline: %v", vm.Milestones())
	if _, err := vm.WaitEvent(console.EventSlotConfirmed, map[string]string{"slot": "B"}, time.Minute); err != nil {
		t.Errorf("slot B was not confirmed: %v", err)
	}
	checkOSImage(t, kc, "rke2os test-2 (server)")
	if st := waitPlan(t, rc, "to-test-2", upgradeapi.PlanDone); st.Done != 1 || st.Total != 1 {
		t.Errorf("the plan done: status %+v", st)
	}
	waitUncordoned(t, kc)
	if cm, err := kc.CoreV1().ConfigMaps("default").Get(ctx, "made-before-reboot", metav1.GetOptions{}); err != nil || cm.Data["k"] != "v" {
		t.Errorf("the ConfigMap made before the reboot: %v %v", cm, err)
	}
	a.checkManifests(2)
	cs.checkSnapshotKept(t, kept)
	poll(t, "the object dropped from the manifest pruned", 5*time.Minute, func() error {
		_, err := kc.CoreV1().ConfigMaps("default").Get(ctx, "rke2os-test-pruned", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("still there (%v)", err)
	})
	if _, err := kc.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "made-after-the-snapshot"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	powerOffInOrder(t, vm)

	// A restore: the snapshot taken before the upgrade, named in the
	// config as a user names it (cluster-reset-restore-path), with a
	// snapshot directory that does not hold it: as on a new machine, it
	// comes from S3.
	cs.rke2 += "  cluster-reset: true\n  cluster-reset-restore-path: " + kept + "\n  etcd-snapshot-dir: /var/lib/rke2os-test/snapshots\n"
	cfg.Extra = seed(2)
	vm = qemu.Start(t, cfg)
	ev, err := vm.WaitEvent(console.EventClusterReset, nil, nodeTimeout)
	if err != nil || ev["outcome"] != "restored" || ev["snapshot"] != "/var/lib/rke2os-test/snapshots/"+kept || !strings.Contains(ev["moved_to"], "/db/etcd-old-") {
		t.Fatalf("cluster-reset: %v %v; errors: %v", ev, err, vm.Errors())
	}
	waitNodeReady(t, vm)
	t.Logf("restore boot: %v; timeline %v", ev, vm.Milestones())
	poll(t, "the cluster as the snapshot holds it", 5*time.Minute, func() error {
		if _, err := kc.CoreV1().ConfigMaps("default").Get(ctx, "made-before-reboot", metav1.GetOptions{}); err != nil {
			return fmt.Errorf("made-before-reboot: %v", err)
		}
		if _, err := kc.CoreV1().ConfigMaps("default").Get(ctx, "made-after-the-snapshot", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("made-after-the-snapshot: %v, want not found", err)
		}
		return nil
	})
	powerOffInOrder(t, vm)
}

// clusterServer is the test cluster's server: its machine (the server disk
// with the test's secrets baked in, the API port forwarded, a NIC on the
// cluster's private segment), its NoCloud config of generation gen (with
// rke2, more of its rke2 section, as set when seed is called), and
// client-go through the kubeconfig rke2-build kubeconfig writes.
type clusterServer struct {
	cfg  qemu.Config
	seed func(gen int) []string
	rke2 string
	// manifests are more files of server/manifests, by name.
	manifests map[string]string
	secrets   string
	// supervisor is the host's port forwarded to the server's 9345.
	supervisor int
	kc         kubernetes.Interface
	rc         *rest.Config
	// kubeconfig is the admin kubeconfig's file.
	kubeconfig string
}

func newClusterServer(t *testing.T) *clusterServer {
	disk, secrets := clusterImage(t)
	api, sup := freePort(t), freePort(t)
	cs := &clusterServer{secrets: secrets, supervisor: sup, cfg: qemu.Config{Machine: "q35", MemoryMiB: 4096, CPUs: 2, Disk: disk,
		NetdevOpts: fmt.Sprintf("hostfwd=tcp:127.0.0.1:%d-10.0.2.15:6443,hostfwd=tcp:127.0.0.1:%d-10.0.2.15:9345", api, sup),
		Switch:     qemu.StartSwitch(t), SwitchMAC: clusterMAC(serverIP)}}
	cs.seed = func(gen int) []string {
		return qemu.CIDataDrive(cidata(t, clusterUserData(t, gen, cs.rke2, cs.manifests), "instance-id: node1\n"))
	}
	cs.kubeconfig = filepath.Join(t.TempDir(), "admin.kubeconfig")
	if b, err := exec.Command(filepath.Join(buildEnv(t, "RKE2_BIN"), "rke2-build"), "kubeconfig", "--secrets", secrets,
		"--server", fmt.Sprintf("https://127.0.0.1:%d", api), "--output", cs.kubeconfig).CombinedOutput(); err != nil {
		t.Fatalf("rke2-build kubeconfig: %v\n%s", err, b)
	}
	var err error
	if cs.rc, err = clientcmd.BuildConfigFromFlags("", cs.kubeconfig); err != nil {
		t.Fatal(err)
	}
	cs.rc.Timeout = 30 * time.Second
	cs.kc = kubernetes.NewForConfigOrDie(cs.rc)
	return cs
}

// waitNodeReady waits for the boot timeline up to node-ready, with no
// error on the way.
func waitNodeReady(t *testing.T, vm *qemu.VM) {
	t.Helper()
	for _, m := range []string{"kubelet-started", "etcd-healthy", "apiserver-ready", "node-ready"} {
		got, err := vm.WaitFor(regexp.MustCompile(`(?m)^rke2-init (milestone=`+m+` |error=)`), nodeTimeout)
		if err != nil || got[1] == "error=" {
			t.Fatalf("waiting for %s: %v; errors: %v", m, err, vm.Errors())
		}
	}
}

// checkOSImage waits for node1's osImage (the image's os-release
// PRETTY_NAME, as the kubelet reads it) to be want.
func checkOSImage(t *testing.T, kc kubernetes.Interface, want string) {
	t.Helper()
	poll(t, "osImage "+want, 5*time.Minute, func() error {
		n, err := kc.CoreV1().Nodes().Get(context.Background(), "node1", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if got := n.Status.NodeInfo.OSImage; got != want {
			return fmt.Errorf("osImage %q", got)
		}
		return nil
	})
}

// rke2Version is the RKE2 version the images run (images/versions.env).
func rke2Version(t *testing.T) string {
	t.Helper()
	versions, err := os.ReadFile("../images/versions.env")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^RKE2_VERSION=(\S+)$`).FindSubmatch(versions)
	if m == nil {
		t.Fatal("images/versions.env has no RKE2_VERSION")
	}
	return string(m[1])
}
