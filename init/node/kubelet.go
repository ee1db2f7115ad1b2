package node

import (
	"bytes"
	"cmp"
	"fmt"
	"strings"
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
	// ClusterDNS and ClusterDomain are RKE2's cluster-dns and
	// cluster-domain ("" for 10.43.0.10 and cluster.local).
	ClusterDNS, ClusterDomain string
	// Labels ("key=value") and Taints ("key=value:Effect") are RKE2's
	// node-label and node-taint: the kubelet registers its Node with them.
	Labels, Taints []string
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
{{- if not .Standalone}}
  x509:
    clientCAFile: {{.ClientCA}}
{{- end}}
authorization:
  mode: {{if .Standalone}}AlwaysAllow{{else}}Webhook{{end}}
cgroupDriver: cgroupfs
cgroupsPerQOS: true
clusterDNS:
- {{.ClusterDNS}}
clusterDomain: {{.ClusterDomain}}
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
{{- if .Taints}}
registerWithTaints:
{{- range .Taints}}
- key: {{printf "%q" .Key}}
{{- if .Value}}
  value: {{printf "%q" .Value}}
{{- end}}
  effect: {{.Effect}}
{{- end}}
{{- end}}
resolvConf: /etc/resolv.conf
serializeImagePulls: false
staticPodPath: {{.PodManifests}}
syncFrequency: 0s
{{- if not .Standalone}}
tlsCertFile: {{.ServingCert}}
tlsPrivateKeyFile: {{.ServingKey}}
{{- end}}
`))

// taint is one node-taint, "key=value:Effect" taken apart.
type taint struct{ Key, Value, Effect string }

// parseTaint splits "key=value:Effect" (or "key:Effect"), as config
// validation has checked it.
func parseTaint(s string) (taint, error) {
	i := strings.LastIndex(s, ":")
	if i < 0 {
		return taint{}, fmt.Errorf("node-taint %q is not \"key=value:Effect\"", s)
	}
	k, v, _ := strings.Cut(s[:i], "=")
	return taint{Key: k, Value: v, Effect: s[i+1:]}, nil
}

// KubeletConfig renders the KubeletConfiguration drop-in.
func KubeletConfig(o KubeletOptions) ([]byte, error) {
	if o.ClusterDNS == "" {
		o.ClusterDNS = "10.43.0.10"
	}
	var taints []taint
	for _, s := range o.Taints {
		t, err := parseTaint(s)
		if err != nil {
			return nil, err
		}
		taints = append(taints, t)
	}
	var b bytes.Buffer
	err := kubeletTemplate.Execute(&b, map[string]any{
		"Standalone":    o.Standalone,
		"ClientCA":      o.Paths.Agent("client-ca.crt"),
		"ServingCert":   o.Paths.Agent("serving-kubelet.crt"),
		"ServingKey":    o.Paths.Agent("serving-kubelet.key"),
		"Taints":        taints,
		"ClusterDNS":    o.ClusterDNS,
		"ClusterDomain": cmp.Or(o.ClusterDomain, "cluster.local"),
		"Socket":        o.Paths.ContainerdSocket(),
		"PodManifests":  o.Paths.PodManifests(),
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
	if len(o.Labels) > 0 {
		args = append(args, "--node-labels="+strings.Join(o.Labels, ","))
	}
	return args
}

// String describes the options for logs.
func (o KubeletOptions) String() string {
	return fmt.Sprintf("node=%s ip=%s standalone=%v", o.NodeName, o.NodeIP, o.Standalone)
}
