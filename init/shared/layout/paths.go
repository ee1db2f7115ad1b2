// Package layout is the contract of where things are: RKE2's on-disk
// layout (kept exactly, so that its tools, docs and habits work on these
// nodes) and the image's own (labels, baked files), which the builder,
// PID 1 and rke2-node all read from here and nowhere else.
package layout

import "path/filepath"

// Paths is RKE2's on-disk layout below a data directory
// (/var/lib/rancher/rke2 on a node; a temporary directory in tests).
type Paths struct {
	DataDir string // /var/lib/rancher/rke2
	EtcDir  string // /etc/rancher/rke2
	RunDir  string // /run/k3s/containerd
}

// DefaultPaths is RKE2's layout on a node.
var DefaultPaths = Paths{DataDir: "/var/lib/rancher/rke2", EtcDir: "/etc/rancher/rke2", RunDir: "/run/k3s/containerd"}

// Agent is agent/ below the data directory.
func (p Paths) Agent(elem ...string) string {
	return filepath.Join(append([]string{p.DataDir, "agent"}, elem...)...)
}

// Server is server/ below the data directory.
func (p Paths) Server(elem ...string) string {
	return filepath.Join(append([]string{p.DataDir, "server"}, elem...)...)
}

// ContainerdSocket is containerd's API socket, where RKE2 has it.
func (p Paths) ContainerdSocket() string { return filepath.Join(p.RunDir, "containerd.sock") }

// ContainerdConfig is containerd's config.toml.
func (p Paths) ContainerdConfig() string { return p.Agent("etc", "containerd", "config.toml") }

// PodManifests is the kubelet's static pod directory.
func (p Paths) PodManifests() string { return p.Agent("pod-manifests") }

// Images is where the airgap image archives are found.
func (p Paths) Images() string { return p.Agent("images") }

// Bin is the symlink to the extracted runtime's binaries.
func (p Paths) Bin() string { return filepath.Join(p.DataDir, "bin") }

// EtcdTLS is where RKE2 keeps etcd's certificates.
func (p Paths) EtcdTLS(name string) string { return p.Server("tls", "etcd", name) }

// EtcdManifest is the file the kubelet runs etcd from.
func (p Paths) EtcdManifest() string { return filepath.Join(p.PodManifests(), "etcd.yaml") }

// KubeletConfigDir is the kubelet's drop-in config directory.
func (p Paths) KubeletConfigDir() string { return p.Agent("etc", "kubelet.conf.d") }
