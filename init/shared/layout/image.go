package layout

// The image's own layout: what the builder writes where PID 1 and
// rke2-node look for it. Nothing else in the tree spells these.
const (
	// BootLabel labels the filesystem of the boot medium (the ISO's
	// volume, the raw disk's ESP) that holds /boot/grub/grub.cfg, the
	// kernel, the initramfs and the airgap images.
	BootLabel = "RKE2_BOOT"
	// StateLabel names the state partition: its GPT name and, once
	// formatted, its filesystem label.
	StateLabel = "RKE2_STATE"

	// ModuleList names the file, in lib/modules/<release>/, that lists the
	// kernel modules the init loads, in order.
	ModuleList = "rke2-modules.load"
	// BakedConfig is where rke2-build image --config puts the node config.
	BakedConfig = "/etc/rke2/config.yaml"
	// Release says which RKE2 an image runs and which images it carries.
	Release = "/etc/rke2/release.json"
	// BakedSecrets is where rke2-build image --secrets puts a cluster's
	// CAs and tokens in a server image.
	BakedSecrets = "/usr/lib/rke2os/secrets"
	// UpgradePublicKey is where rke2-build image --secrets puts the
	// upgrade.pub of the secrets, in every image: the key that the
	// node's upgrade artifacts must be signed by.
	UpgradePublicKey = "/usr/lib/rke2os/upgrade.pub"
	// NodeBinary is rke2-node, which PID 1 runs for the heavy steps.
	NodeBinary = "/usr/lib/rke2os/rke2-node"
	// DebugHooksToken is the secret the debug hooks want (debug.hooks);
	// the config's write_files puts it there.
	DebugHooksToken = "/etc/rke2/debug-hooks.token"

	// MediumDir is where PID 1 mounts the boot medium, read-only.
	MediumDir = "/run/rke2/medium"
	// MediumImagesDir holds the airgap image archives on the medium (a
	// path below its root).
	MediumImagesDir = "/rke2/agent/images"
	// MediumConfig is a node config placed on the medium (a path below
	// its root), read after the baked one.
	MediumConfig = "/rke2/config.yaml"
)

// MediumIndex lists the airgap archives on the medium with their images
// (a path below its root).
const MediumIndex = "/rke2/images.json"

// NodePassword is where RKE2 keeps the password a node proves its name
// with when it joins (the server stores its hash in the secret
// <node>.node-password.rke2). It lives on the state partition, through the
// /etc/rancher bind, so the node keeps its name across reboots.
const NodePassword = "/etc/rancher/node/password"

// The raw disk's partitions that the node finds by GPT name (the system
// slots are RKE2_A and RKE2_B: see init/shared/slots).
const (
	// ESPPartition names the EFI system partition: GRUB, grub.cfg and
	// GRUB's environment block, where the slots' boot state lives.
	ESPPartition = "EFI"
	// ESPLabel labels the ESP's filesystem. It differs from the ISO's
	// BootLabel, so that the ISO's GRUB, searching by label, never takes
	// an installed disk's ESP for its own.
	ESPLabel = "RKE2_ESP"
	// SlotLabel labels a system slot's filesystem, the same in both
	// slots: a slot's bytes do not depend on where they are written, and
	// the slots are told apart by partition name.
	SlotLabel = "RKE2_SYS"
	// GRUBEnv is GRUB's environment block on the ESP (a path below its
	// root).
	GRUBEnv = "/boot/grub/grubenv"
	// ESPDir is where the node mounts the ESP while it changes the
	// environment block.
	ESPDir = "/run/rke2/esp"
	// OSRelease is the image's os-release, in the initramfs and in the
	// slot (a path below its root), saying what the image is.
	OSRelease = "/etc/os-release"
	// OSReleaseBuildDate is the os-release field with the image's build
	// date (SOURCE_DATE_EPOCH, RFC 3339): a node installs no upgrade
	// built before it.
	OSReleaseBuildDate = "RKE2OS_BUILD_DATE"
)

// SlotFile is where PID 1 says which slot booted (init/shared/slots).
const SlotFile = "/run/rke2/slot.json"

// The upgrader's files, on the state partition: an upgrade survives the
// reboot it asks for, and a download never fills the memory.
const (
	// UpgradeDir holds the artifact being downloaded and the records
	// below.
	UpgradeDir = "/var/lib/rke2os/upgrade"
	// RollbackFile keeps a rolled-back upgrade until the node has
	// reported it.
	RollbackFile = UpgradeDir + "/rollback.json"
	// PendingFile keeps the upgrade the node rebooted for (the request
	// and the slot written) until the node has reported how the boot
	// went.
	PendingFile = UpgradeDir + "/pending.json"
)

// ESPConfig is the node config an install carries over from the ISO boot
// onto the installed disk's ESP (a path below its root): the config the
// ISO booted with, but its install section. PID 1 reads it on boots from
// the disk, after the medium's config and before NoCloud's.
const ESPConfig = "/rke2/config.yaml"

// What the ISO carries for an install onto a disk, below its root: GRUB's
// disk images (boot code, core image, EFI binary, the disk's grub.cfg and
// environment block) under InstallDir, and InstallManifest, which lists
// them with the ESP paths they go to and the system slot's files, in the
// order the slot image holds them, with the image's size and digest.
const (
	InstallDir      = "/boot/install"
	InstallManifest = InstallDir + "/install.json"
)

// MinStateSize is the least a node's state partition needs: the airgap
// images twice (containerd's content store and its unpacked snapshots),
// the extracted runtime, etcd and the logs.
const MinStateSize = 4 << 30
