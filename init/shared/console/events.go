package console

// The events the init and rke2-node write (Event), each with the keys it
// carries, in their order. An event named as a milestone is written with
// it and carries its details. README.md's "Console events" table lists
// every one; TestEventsInREADME keeps the two the same.
const (
	// EventMediumMounted: the boot medium is mounted read-only (device,
	// fstype, label, dir).
	EventMediumMounted = "medium-mounted"
	// EventMediumNone: the command line names no boot medium (PXE); the
	// node runs from the initramfs alone. No keys.
	EventMediumNone = "medium-none"
	// EventPowerButton: a power button is watched (device).
	EventPowerButton = "power-button"
	// EventRNGMissing: the machine has no hardware random number
	// generator. No keys.
	EventRNGMissing = "rng-missing"
	// EventRNGNotReady: the kernel's random number generator is still not
	// ready after a wait (waited).
	EventRNGNotReady = "rng-not-ready"
	// EventStateFormatting: the state partition is being formatted ext4
	// (device, mib).
	EventStateFormatting = "state-formatting"
	// EventStateGrown: the state filesystem grew to its enlarged partition
	// (device, added_mib).
	EventStateGrown = "state-grown"
	// EventStateReady: the state partition is mounted (device, formatted:
	// whether this boot formatted it).
	EventStateReady = "state-ready"
	// EventStateInMemory: no state partition; the node's state lives in
	// memory. No keys.
	EventStateInMemory = "state-in-memory"
	// EventStateReset: a reset (rke2.reset=1) wiped the state partition
	// before it was mounted: the node boots as new (device).
	EventStateReset = "state-reset"
	// EventSlot: the node booted from a disk's system slot (slot, good:
	// the good slot, outcome: steady, trying or rolled-back).
	EventSlot = "slot"
	// EventSlotConfirmed: the slot being tried reached node-ready and is
	// the good one from now on (slot).
	EventSlotConfirmed = "slot-confirmed"
	// EventInstalled: a boot from the ISO installed the system (device,
	// found: what the disk held, seconds: the whole install, written_mib:
	// the ESP and the system slot written, write_seconds: their writing,
	// sync and read-back).
	EventInstalled = "installed"
	// EventUpgrade: the node's upgrader says a phase of an upgrade on its
	// Node (phase, plan, generation, slot, reason).
	EventUpgrade = "upgrade"
	// EventConfigLoaded: the node config is read and valid (sources, role,
	// debug: the debug switches on, comma-separated).
	EventConfigLoaded = "config-loaded"
	// EventNodePassword: the node password is in place (file, created).
	EventNodePassword = "node-password"
	// EventImagesLinked: the boot medium's airgap archives are linked
	// where RKE2 reads them (count, dir).
	EventImagesLinked = "images-linked"
	// EventCarrierWaiting: with no network.interfaces, no physical link
	// has carrier yet; written about every 30 s (waited, links).
	EventCarrierWaiting = "carrier-waiting"
	// EventDHCPWaiting: a DHCP link has no lease yet; written about every
	// 30 s (iface, item, reason: no-carrier, no-answer or link-gone,
	// waited).
	EventDHCPWaiting = "dhcp-waiting"
	// EventDHCPLease: a link got a new DHCPv4 lease (iface, address,
	// item: the config entry or the automatic DHCP that asked).
	EventDHCPLease = "dhcp-lease"
	// EventNetworkUp: the network is up (links, node_ip).
	EventNetworkUp = "network-up"
	// EventTimeSynced: the clock is set from NTP (offset, stepped,
	// servers).
	EventTimeSynced = "time-synced"
	// EventTimeUnsynced: the boot goes on on the hardware clock (reason:
	// no-server, disabled or no-answer).
	EventTimeUnsynced = "time-unsynced"
	// EventContentReady: the runtime is extracted, or was already (key,
	// bin, skipped).
	EventContentReady = "content-ready"
	// EventImagesImported: the airgap images are in containerd (imported,
	// skipped: archives; images).
	EventImagesImported = "images-imported"
	// EventImagesUnpacked: the rke2-unpack service is done (unpacked: how
	// many were not yet; images; failed: left to the kubelet; seconds).
	EventImagesUnpacked = "images-unpacked"
	// EventService: a supervised service changed state (name, state, pid,
	// and exit, delay or for as the state has them).
	EventService = "service"
	// EventStackStopped: a critical service exited and the node stack
	// stopped (service, action: restart or reboot).
	EventStackStopped = "stack-stopped"
	// EventMaintenance: a boot step failed; the init stays up without
	// starting RKE2. No keys.
	EventMaintenance = "maintenance"
	// EventDebugHookRefused: the debug hooks refused a request without
	// the token (remote, request, reason).
	EventDebugHookRefused = "debug-hook-refused"
	// EventShutdownBegin: the shutdown begins (action: poweroff or
	// reboot).
	EventShutdownBegin = "shutdown-begin"
	// EventUnmountFailed: the shutdown could not unmount a filesystem and
	// remounted it read-only (target, err).
	EventUnmountFailed = "unmount-failed"
	// EventInitResources: PID 1's memory at a milestone (when, rss_kib,
	// anon_kib, file_kib, shmem_kib, heap_kib, goroutines).
	EventInitResources = "init-resources"
	// EventSecretsInstalled: the etcd step copied the image's baked
	// secrets where the node had none (dir, files).
	EventSecretsInstalled = "secrets-installed"
	// EventJoinRefused: the server refused this node's join (server,
	// status: 401 for the token, 403 for the node name; node).
	EventJoinRefused = "join-refused"
	// EventJoinCAMismatch: this node refused a server whose CA is not the
	// one it pins (server, ca, pinned, by: token or first-join).
	EventJoinCAMismatch = "join-ca-mismatch"
	// EventSupervisorRefused: the supervisor on 9345 refused a request
	// (remote, method, path, status, reason).
	EventSupervisorRefused = "supervisor-refused"
	// EventServerResources: the server's processes' memory at a milestone
	// (when, server_rss_kib, init_rss_kib, mem_used_kib).
	EventServerResources = "server-resources"
	// EventEtcdSnapshot: an etcd snapshot of this server was saved,
	// pruned, deleted, or failed (outcome, name; bytes, revision, seconds
	// when saved; err when failed).
	EventEtcdSnapshot = "etcd-snapshot"
	// EventClusterReset: cluster-reset made etcd a one-member cluster
	// before it started (outcome restored or reset; snapshot, moved_to:
	// where the old data went, force_new_cluster, seconds, next), or was
	// not done again
	// (outcome skipped, reason).
	EventClusterReset = "cluster-reset"
	// EventEtcdRejoin: a further server found itself outside its
	// cluster's etcd (outcome rebooting, reason: it rejoins at the next
	// boot; rejoining, moved_to: the old data set aside, joining again as
	// a learner; refused, reason: it stays out, and why).
	EventEtcdRejoin = "etcd-rejoin"
)
