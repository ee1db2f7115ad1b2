package pods

import (
	"github.com/rke2os/rke2os/init/shared/layout"
	corev1 "k8s.io/api/core/v1"
)

// KubeProxyOptions describe kube-proxy on this node (every node, server or
// agent).
type KubeProxyOptions struct {
	Paths layout.Paths
	// Image is rancher/hardened-kubernetes:<tag>, as for the control plane.
	Image    string
	NodeName string
	NodeIP   string
	// ClusterCIDR is the cluster's cluster-cidr (10.42.0.0/16, or
	// fd00:42::/56 on an IPv6 node), which an agent learns from the server.
	ClusterCIDR string
	// ExtraArgs are RKE2's kube-proxy-arg, merged by MergeArgs.
	ExtraArgs []string
}

// KubeProxyArgs are kube-proxy's flags as k3s passes them.
func KubeProxyArgs(o KubeProxyOptions) []string {
	cidr, healthz := o.ClusterCIDR, "127.0.0.1"
	if isIPv6(o.NodeIP) {
		healthz = "::1"
	}
	if cidr == "" {
		cidr = ControlPlane{NodeIP: o.NodeIP}.withDefaults().ClusterCIDR
	}
	d := map[string]string{
		"proxy-mode":           "iptables",
		"healthz-bind-address": healthz,
		"kubeconfig":           o.Paths.Agent("kubeproxy.kubeconfig"),
		"cluster-cidr":         cidr,
		// Leave the conntrack table and timeouts as the host's sysctls
		// have them: kube-proxy would otherwise write them at start.
		"conntrack-max-per-core":            "0",
		"conntrack-tcp-timeout-established": "0s",
		"conntrack-tcp-timeout-close-wait":  "0s",
	}
	if o.NodeName != "" {
		d["hostname-override"] = o.NodeName
	}
	return MergeArgs(d, o.ExtraArgs)
}

// KubeProxyPod is kube-proxy's static pod, as RKE2 writes it on every node
// once the apiserver answers: privileged (it writes iptables rules of the
// host's network namespace), a liveness probe on its healthz port 10256.
// RKE2 mounts nothing but the file arguments (its kubeconfig and the
// certificates that names), which StaticPod adds.
func KubeProxyPod(o KubeProxyOptions) *corev1.Pod {
	return component{
		name:       "kube-proxy",
		image:      o.Image,
		args:       KubeProxyArgs(o),
		cpu:        "250m",
		mem:        "128Mi",
		port:       corev1.ContainerPort{Name: "metrics", Protocol: corev1.ProtocolTCP, ContainerPort: 10256},
		privileged: true,
		liveness:   liveness.probe(httpGet(corev1.URISchemeHTTP, 10256, "/livez")),
	}.pod()
}
