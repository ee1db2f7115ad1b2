package launch

import (
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/rke2os/rke2os/init/shared/layout"
)

// ContainerdOptions are the inputs of containerd's config.
type ContainerdOptions struct {
	Paths layout.Paths
	// SandboxImage is the pause image, from the airgap archive.
	SandboxImage string
	// BinDir holds runc and the shims (data/<key>/bin).
	BinDir string
	// CNIBinDir and CNIConfDir are where the CNI plugins and configs live.
	CNIBinDir, CNIConfDir string
}

// containerdTemplate is config version 3, for containerd 2.x, shaped like
// the config RKE2 generates. Each {{Name}} is replaced by its value as a
// quoted string (Go's quoting, which TOML's basic strings read the same):
// PID 1 renders it, and text/template is large for a small binary.
const containerdTemplate = `# Written by rke2-init; regenerated at every boot.
version = 3
root = {{Root}}
state = {{State}}

[grpc]
  address = {{Socket}}

[plugins.'io.containerd.internal.v1.opt']
  path = {{Opt}}

[plugins.'io.containerd.grpc.v1.cri']
  stream_server_address = "127.0.0.1"
  stream_server_port = "10010"

[plugins.'io.containerd.cri.v1.runtime']
  enable_selinux = false
  enable_unprivileged_ports = true
  enable_unprivileged_icmp = true
  device_ownership_from_security_context = false

[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  disable_snapshot_annotations = true

[plugins.'io.containerd.cri.v1.images'.pinned_images]
  sandbox = {{SandboxImage}}

[plugins.'io.containerd.cri.v1.images'.registry]
  config_path = {{CertsDir}}

[plugins.'io.containerd.cri.v1.runtime'.cni]
  bin_dirs = [{{CNIBinDir}}]
  conf_dir = {{CNIConfDir}}

[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
  SystemdCgroup = false
  BinaryName = {{Runc}}
`

// ContainerdConfig renders containerd's config.toml.
func ContainerdConfig(o ContainerdOptions) ([]byte, error) {
	if o.SandboxImage == "" {
		return nil, fmt.Errorf("containerd config: no sandbox (pause) image")
	}
	if o.CNIBinDir == "" {
		o.CNIBinDir = "/opt/cni/bin"
	}
	if o.CNIConfDir == "" {
		o.CNIConfDir = "/etc/cni/net.d"
	}
	vals := map[string]string{
		"Root":         o.Paths.Agent("containerd"),
		"State":        o.Paths.RunDir,
		"Socket":       o.Paths.ContainerdSocket(),
		"Opt":          o.Paths.Agent("containerd"),
		"SandboxImage": o.SandboxImage,
		"CertsDir":     o.Paths.Agent("etc", "containerd", "certs.d"),
		"CNIBinDir":    o.CNIBinDir,
		"CNIConfDir":   o.CNIConfDir,
		"Runc":         filepath.Join(o.BinDir, "runc"),
	}
	var pairs []string
	for k, v := range vals {
		pairs = append(pairs, "{{"+k+"}}", strconv.Quote(v))
	}
	out := strings.NewReplacer(pairs...).Replace(containerdTemplate)
	if i := strings.Index(out, "{{"); i >= 0 {
		return nil, fmt.Errorf("containerd config: unfilled placeholder at %q", out[i:min(len(out), i+40)])
	}
	return []byte(out), nil
}

// Mirror is one registries.yaml mirror: the endpoints to try for a registry.
type Mirror struct {
	Endpoints []string
	Rewrite   map[string]string
}

// HostsTOML renders containerd's certs.d/<registry>/hosts.toml for each
// mirror, as RKE2 turns registries.yaml into containerd's host config.
// The map key is the directory name ("docker.io", or "_default" for "*").
func HostsTOML(mirrors map[string]Mirror) map[string][]byte {
	out := map[string][]byte{}
	for reg, m := range mirrors {
		dir := reg
		if reg == "*" {
			dir = "_default"
		}
		var b strings.Builder
		b.WriteString("# Written by rke2-init from registries.yaml.\n")
		if reg != "*" {
			fmt.Fprintf(&b, "server = %q\n", defaultEndpoint(reg))
		}
		for _, ep := range m.Endpoints {
			fmt.Fprintf(&b, "\n[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n", ep)
			if len(m.Rewrite) > 0 {
				fmt.Fprintf(&b, "  [host.%q.rewrite]\n", ep)
				keys := make([]string, 0, len(m.Rewrite))
				for k := range m.Rewrite {
					keys = append(keys, k)
				}
				sort.Strings(keys)
				for _, k := range keys {
					fmt.Fprintf(&b, "    %q = %q\n", k, m.Rewrite[k])
				}
			}
		}
		out[dir] = []byte(b.String())
	}
	return out
}

func defaultEndpoint(reg string) string {
	if reg == "docker.io" {
		return "https://registry-1.docker.io"
	}
	return "https://" + reg
}
