package main

import (
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/rke2os/rke2os/builder/build"
	"github.com/rke2os/rke2os/init/shared/console"
	"github.com/rke2os/rke2os/qemu-test/qemu"
)

// nodeBoot is one boot of the server's raw disk up to node-ready.
type nodeBoot struct {
	wall      float64            // QEMU start to kubelet-started, seconds
	readyWall float64            // QEMU start to node-ready, seconds
	timeline  map[string]float64 // guest seconds since kernel start
	rssKiB    float64            // the init's resident set at kubelet-started
	anonKiB   float64            // of which its own memory (heap, stacks)
	shmemKiB  float64            // and the pages of its binary (on the tmpfs root)
	importSec float64            // containerd-ready to images-imported
	content   float64            // network-up to content-ready
	// At node-ready: the server process's and the init's resident sets,
	// and the guest's memory in use (MemTotal - MemAvailable).
	serverKiB, initReadyKiB, memUsedKiB float64
}

// kib reads the figure of key in an event.
func kib(ev map[string]string, key string) float64 {
	v, err := strconv.ParseFloat(ev[key], 64)
	if err != nil {
		check(fmt.Errorf("the resources event's %s: %w", key, err))
	}
	return v
}

// bootNode boots disk once up to node-ready, reads the figures, runs
// during (if not nil) with the cluster up, and powers the machine off (so
// the state partition is clean for the next).
func bootNode(tb *benchTB, cfg qemu.Config, during func()) nodeBoot {
	vm := qemu.Start(tb, cfg)
	_, err := vm.WaitMilestone("kubelet-started", 20*time.Minute)
	if err != nil {
		check(fmt.Errorf("%w; errors: %v", err, vm.Errors()))
	}
	nb := nodeBoot{wall: time.Since(vm.Started).Seconds(), timeline: vm.Milestones()}
	ev, err := vm.WaitEvent(console.EventInitResources, map[string]string{"when": "kubelet-started"}, time.Minute)
	check(err)
	nb.rssKiB, nb.anonKiB, nb.shmemKiB = kib(ev, "rss_kib"), kib(ev, "anon_kib"), kib(ev, "shmem_kib")
	nb.importSec = nb.timeline["images-imported"] - nb.timeline["containerd-ready"]
	nb.content = nb.timeline["content-ready"] - nb.timeline["network-up"]
	if _, err := vm.WaitMilestone("node-ready", 20*time.Minute); err != nil {
		check(fmt.Errorf("%w; errors: %v", err, vm.Errors()))
	}
	nb.readyWall = time.Since(vm.Started).Seconds()
	nb.timeline = vm.Milestones()
	ev, err = vm.WaitEvent(console.EventServerResources, map[string]string{"when": "node-ready"}, time.Minute)
	check(err)
	nb.serverKiB, nb.initReadyKiB, nb.memUsedKiB = kib(ev, "server_rss_kib"), kib(ev, "init_rss_kib"), kib(ev, "mem_used_kib")
	if during != nil {
		during()
	}
	check(vm.Powerdown())
	check(vm.WaitExit(3 * time.Minute))
	return nb
}

// benchNode boots the server's raw disk (on a larger qcow2 overlay, as if
// written to a real disk) twice: the first boot formats the state,
// extracts the runtime and imports the airgap images; the second finds
// them done. Each node boot is minutes under TCG, so this runs once.
//
// The server has baked secrets and a second NIC on a private segment,
// where, during its first boot, an agent joins it (benchAgent).
func benchNode(tb *benchTB, images clusterImages, helloWall float64) []row {
	sw := qemu.StartSwitch(tb)
	cfg := qemu.Config{Machine: "q35", MemoryMiB: 4096, CPUs: 2, Disk: qemu.Overlay(tb, images.server, 8<<30),
		Switch: sw, SwitchMAC: "52:54:00:76:00:0a",
		Extra: qemu.CIDataDrive(qemu.CIData(tb, clusterConfig("node1", "192.168.76.10", ""), "instance-id: node1\n"))}
	var agent agentBoot
	first := bootNode(tb, cfg, func() { agent = bootAgent(tb, images, sw) })
	// The further server joins during the second boot, the last of the
	// server's, and runs on until the server is off: killed earlier, it
	// would leave the server's etcd (two voters) without its quorum while
	// the server shuts down.
	var joiner joinerBoot
	second := bootNode(tb, cfg, func() { joiner = bootJoiner(tb, images, sw) })
	joiner.vm.Kill()
	tb.Logf("first boot: %v\nsecond boot: %v\nagent: %v\nfurther server: %v", first.timeline, second.timeline, agent.timeline, joiner.timeline)
	return []row{
		ratioRow("QEMU start to kubelet-started, first boot, wall (s)", first.wall, "hello-world static PID 1 started", helloWall),
		ratioRow("QEMU start to kubelet-started, second boot, wall (s)", second.wall, "hello-world static PID 1 started", helloWall),
		{"kernel start to kubelet-started, first / second boot, guest (s)", f(first.timeline["kubelet-started"]) + " / " + f(second.timeline["kubelet-started"]), "", ""},
		ratioRow("runtime content, second boot (s)", second.content, "first boot (extraction)", first.content),
		ratioRow("airgap import, second boot (s)", second.importSec, "first boot (970 MiB import)", first.importSec),
		ratioRow("init RSS at kubelet-started, second boot (MiB)", second.rssKiB/1024, "goal", 15),
		{"init RSS at kubelet-started, first boot (MiB)", f(first.rssKiB / 1024), "", ""},
		{"  of which anon / binary pages, first / second boot (MiB)", f(first.anonKiB/1024) + " / " + f(first.shmemKiB/1024) + ", " +
			f(second.anonKiB/1024) + " / " + f(second.shmemKiB/1024), "", ""},
		ratioRow("QEMU start to node-ready, first boot, wall (s)", first.readyWall, "hello-world static PID 1 started", helloWall),
		ratioRow("QEMU start to node-ready, second boot, wall (s)", second.readyWall, "hello-world static PID 1 started", helloWall),
		milestonesRow(first, second, "etcd-healthy", "apiserver-ready", "node-ready"),
		componentsRow("first boot", first), componentsRow("second boot", second),
		ratioRow("init RSS at node-ready, second boot (MiB)", second.initReadyKiB/1024, "goal", 15),
		{"init RSS at node-ready, first boot (MiB)", f(first.initReadyKiB / 1024), "", ""},
		{"rke2-node server RSS at node-ready, first / second boot (MiB)", f(first.serverKiB/1024) + " / " + f(second.serverKiB/1024), "", ""},
		{"guest memory in use at node-ready, first / second boot (MiB)", f(first.memUsedKiB/1024) + " / " + f(second.memUsedKiB/1024), "", ""},
		ratioRow("agent: kernel start to node-ready, guest (s)", agent.timeline["node-ready"], "server, first boot", first.timeline["node-ready"]),
		ratioRow("agent: the join (network-up to joined: cacerts, CSRs, kubeconfigs) (s)", agent.timeline["joined"]-agent.timeline["network-up"],
			"agent: kernel start to node-ready", agent.timeline["node-ready"]),
		{"agent: kubelet-started to node-ready (registration, kube-proxy, flannel) (s)", f(agent.timeline["node-ready"] - agent.timeline["kubelet-started"]), "", ""},
		{"agent: QEMU start to node-ready, wall (s)", f(agent.readyWall), "", ""},
		ratioRow("further server: kernel start to etcd-voter (learner promoted), guest (s)", joiner.timeline["etcd-voter"],
			"server, first boot: kernel start to etcd-healthy", first.timeline["etcd-healthy"]),
		{"further server: kubelet-started to etcd-healthy (learner started) / to etcd-voter (promoted) (s)",
			f(joiner.timeline["etcd-healthy"]-joiner.timeline["kubelet-started"]) + " / " + f(joiner.timeline["etcd-voter"]-joiner.timeline["kubelet-started"]), "", ""},
	}
}

// clusterImages are the images the node benchmark boots: a server with the
// cluster's secrets baked in, and an agent.
type clusterImages struct {
	server, agent, token string
	// secrets are the cluster's (the server's baked, the upgrade key's);
	// serverOpts built the server's image, for more of the same tree.
	secrets    string
	serverOpts build.Options
}

// clusterConfig is the NoCloud user-data of a machine of the benchmark's
// cluster: DHCP on the user-mode NIC, ip on the private segment as its
// node-ip, and rke2 keys (join) after.
func clusterConfig(name, ip, join string) string {
	v4 := net.ParseIP(ip).To4()
	return fmt.Sprintf(`#cloud-config
hostname: %s
network:
  interfaces:
    - name: eth0
      dhcp4: true
    - name: eth1
      mac: "52:54:00:76:00:%02x"
      addresses: [%s/24]
rke2:
  node-ip: %s
%s`, name, v4[3], ip, ip, join)
}

// agentBoot is an agent's boot up to node-ready.
type agentBoot struct {
	timeline  map[string]float64
	readyWall float64
}

// bootAgent boots the agent image on the private segment, joined to the
// server at .10, up to node-ready, and powers it off.
func bootAgent(tb *benchTB, images clusterImages, sw string) agentBoot {
	join := fmt.Sprintf("  server: https://192.168.76.10:9345\n  token: %q\n", images.token)
	// One vCPU at nice 5, as the multinode test boots it: beside the
	// running server on two cores (see qemu-test/agents_test.go).
	vm := qemu.Start(tb, qemu.Config{Machine: "q35", MemoryMiB: 3072, CPUs: 1, Nice: 5, Disk: qemu.Overlay(tb, images.agent, 8<<30),
		Switch: sw, SwitchMAC: "52:54:00:76:00:0b",
		Extra: qemu.CIDataDrive(qemu.CIData(tb, clusterConfig("agent1", "192.168.76.11", join), "instance-id: agent1\n"))})
	if _, err := vm.WaitMilestone("node-ready", 40*time.Minute); err != nil {
		check(fmt.Errorf("agent: %w; errors: %v", err, vm.Errors()))
	}
	ab := agentBoot{timeline: vm.Milestones(), readyWall: time.Since(vm.Started).Seconds()}
	check(vm.Powerdown())
	check(vm.WaitExit(3 * time.Minute))
	return ab
}

// joinerBoot is a further server's boot up to etcd-voter, its machine
// still running.
type joinerBoot struct {
	timeline map[string]float64
	vm       *qemu.VM
}

// bootJoiner boots a second server on the private segment, joined to the
// server at .10, up to its etcd member being a voter (the caller kills it;
// its overlay is thrown away). Two vCPUs, as make ha-test boots it.
func bootJoiner(tb *benchTB, images clusterImages, sw string) joinerBoot {
	join := fmt.Sprintf("  server: https://192.168.76.10:9345\n  token: %q\n", images.token)
	vm := qemu.Start(tb, qemu.Config{Machine: "q35", MemoryMiB: 3072, CPUs: 2, Disk: qemu.Overlay(tb, images.server, 8<<30),
		Switch: sw, SwitchMAC: "52:54:00:76:00:0c",
		Extra: qemu.CIDataDrive(qemu.CIData(tb, clusterConfig("server2", "192.168.76.12", join), "instance-id: server2\n"))})
	if _, err := vm.WaitMilestone("etcd-voter", 40*time.Minute); err != nil {
		check(fmt.Errorf("further server: %w; errors: %v", err, vm.Errors()))
	}
	return joinerBoot{timeline: vm.Milestones(), vm: vm}
}

// milestonesRow is the guest time of each milestone, first / second boot.
func milestonesRow(first, second nodeBoot, names ...string) row {
	var v string
	for i, n := range names {
		if i > 0 {
			v += ", "
		}
		v += f(first.timeline[n]) + " / " + f(second.timeline[n])
	}
	return row{"kernel start to " + fmt.Sprint(names) + ", first / second boot, guest (s)", v, "", ""}
}

// componentsRow splits a boot's kernel start to node-ready into each
// component's own start-to-ready time (etcd: kubelet started to healthy;
// kube-apiserver: etcd healthy to ready; the kubelet's registration and
// the CNI: apiserver ready to node-ready) and the rest, the init's share.
func componentsRow(which string, b nodeBoot) row {
	t := b.timeline
	etcd := t["etcd-healthy"] - t["kubelet-started"]
	api := t["apiserver-ready"] - t["etcd-healthy"]
	node := t["node-ready"] - t["apiserver-ready"]
	total := t["node-ready"]
	rest := total - etcd - api - node
	return row{"node-ready, " + which + ": etcd / apiserver / registration+CNI / init's share (s)",
		fmt.Sprintf("%s / %s / %s / %s", f(etcd), f(api), f(node), f(rest)), "kernel start to node-ready|" + f(total), fmt.Sprintf("%.2fx", rest/total)}
}
