package node

import (
	"bytes"
	"fmt"
	"text/template"
)

// KubeletOptions are the inputs of the kubelet's configuration.
type KubeletOptions struct {
	Paths    Paths
	NodeName string
	NodeIP   string
	// Standalone runs the kubelet without an API server: static pods only,
	// anonymous access to its read API on localhost (no webhook to ask).
	Standalone bool
	ClusterDNS string
}

// kubeletTemplate is the KubeletConfiguration drop-in RKE2 writes to
// agent/etc/kubelet.conf.d/00-rke2-defaults.conf.
var kubeletTemplate = template.Must(template.New("kubelet").Parse(`# Written by rke2-init; regenerated at every boot.
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 0.0.0.0
authentication:
  anonymous:
    enabled: {{.Standalone}}
  webhook:
    enabled: {{not .Standalone}}
authorization:
  mode: {{if .Standalone}}AlwaysAllow{{else}}Webhook{{end}}
cgroupDriver: cgroupfs
cgroupsPerQOS: true
clusterDNS:
- {{.ClusterDNS}}
clusterDomain: cluster.local
containerRuntimeEndpoint: unix://{{.Socket}}
enforceNodeAllocatable: []
evictionHard:
  imagefs.available: 5%
  nodefs.available: 5%
evictionMinimumReclaim:
  imagefs.available: 10%
  nodefs.available: 10%
failSwapOn: false
fileCheckFrequency: 5s
healthzBindAddress: 127.0.0.1
healthzPort: 10248
imageGCHighThresholdPercent: 95
localStorageCapacityIsolation: true
readOnlyPort: 0
resolvConf: /etc/resolv.conf
serializeImagePulls: false
staticPodPath: {{.PodManifests}}
syncFrequency: 0s
`))

// KubeletConfig renders the KubeletConfiguration drop-in.
func KubeletConfig(o KubeletOptions) ([]byte, error) {
	if o.ClusterDNS == "" {
		o.ClusterDNS = "10.43.0.10"
	}
	var b bytes.Buffer
	err := kubeletTemplate.Execute(&b, map[string]any{
		"Standalone":   o.Standalone,
		"ClusterDNS":   o.ClusterDNS,
		"Socket":       o.Paths.ContainerdSocket(),
		"PodManifests": o.Paths.PodManifests(),
	})
	return b.Bytes(), err
}

// KubeletConfigDir is the drop-in directory the kubelet reads (--config-dir).
func (p Paths) KubeletConfigDir() string { return p.Agent("etc", "kubelet.conf.d") }

// KubeletArgs are the kubelet's flags, as RKE2 passes them.
func KubeletArgs(o KubeletOptions) []string {
	args := []string{
		"--config-dir=" + o.Paths.KubeletConfigDir(),
		"--hostname-override=" + o.NodeName,
		"--root-dir=/var/lib/kubelet",
		"--cert-dir=" + o.Paths.Agent("pki"),
	}
	if o.NodeIP != "" {
		args = append(args, "--node-ip="+o.NodeIP)
	}
	if !o.Standalone {
		args = append(args, "--kubeconfig="+o.Paths.Agent("kubelet.kubeconfig"))
	}
	return args
}

// String describes the options for logs.
func (o KubeletOptions) String() string {
	return fmt.Sprintf("node=%s ip=%s standalone=%v", o.NodeName, o.NodeIP, o.Standalone)
}
