package launch

import (
	"cmp"
	"fmt"
	"strings"

	"github.com/rke2os/rke2os/init/shared/layout"
)

// KubeletOptions are the inputs of the kubelet's configuration.
type KubeletOptions struct {
	Paths    layout.Paths
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

// kubeletConfig writes the KubeletConfiguration drop-in RKE2 writes to
// agent/etc/kubelet.conf.d/00-rke2-defaults.conf. It is plain string
// building, not text/template: PID 1 renders it, and the template package
// (with reflect) is a large part of a small binary's resident pages.
func kubeletConfig(b *strings.Builder, o KubeletOptions, taints []taint) {
	w := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }
	w("# Written by rke2-init; regenerated at every boot.\n")
	w("apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\naddress: 0.0.0.0\n")
	w("authentication:\n  anonymous:\n    enabled: %t\n  webhook:\n    enabled: %t\n", o.Standalone, !o.Standalone)
	if !o.Standalone {
		w("  x509:\n    clientCAFile: %s\n", o.Paths.Agent("client-ca.crt"))
	}
	mode := "Webhook"
	if o.Standalone {
		mode = "AlwaysAllow"
	}
	w("authorization:\n  mode: %s\n", mode)
	w("cgroupDriver: cgroupfs\ncgroupsPerQOS: true\n")
	w("clusterDNS:\n- %s\nclusterDomain: %s\n", o.ClusterDNS, cmp.Or(o.ClusterDomain, "cluster.local"))
	w("containerRuntimeEndpoint: unix://%s\n", o.Paths.ContainerdSocket())
	w(`enforceNodeAllocatable: []
evictionHard:
  imagefs.available: 5%%
  nodefs.available: 5%%
evictionMinimumReclaim:
  imagefs.available: 10%%
  nodefs.available: 10%%
failSwapOn: false
fileCheckFrequency: 5s
healthzBindAddress: 127.0.0.1
healthzPort: 10248
imageGCHighThresholdPercent: 95
localStorageCapacityIsolation: true
readOnlyPort: 0
`)
	if len(taints) > 0 {
		w("registerWithTaints:\n")
		for _, t := range taints {
			w("- key: %q\n", t.Key)
			if t.Value != "" {
				w("  value: %q\n", t.Value)
			}
			w("  effect: %s\n", t.Effect)
		}
	}
	w("resolvConf: /etc/resolv.conf\nserializeImagePulls: false\n")
	w("staticPodPath: %s\nsyncFrequency: 0s\n", o.Paths.PodManifests())
	if !o.Standalone {
		w("tlsCertFile: %s\ntlsPrivateKeyFile: %s\n", o.Paths.Agent("serving-kubelet.crt"), o.Paths.Agent("serving-kubelet.key"))
	}
}

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
	var b strings.Builder
	kubeletConfig(&b, o, taints)
	return []byte(b.String()), nil
}

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
