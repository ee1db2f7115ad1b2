package pods

import corev1 "k8s.io/api/core/v1"

// KubeControllerManagerOptions describe this node's controller-manager.
type KubeControllerManagerOptions struct {
	ControlPlane
	// ExtraArgs are RKE2's kube-controller-manager-arg, merged by MergeArgs.
	ExtraArgs []string
	// CloudController says a cloud-controller-manager runs (RKE2's
	// rke2-cloud-provider, on unless disable-cloud-controller): it then
	// owns the service, route and node-lifecycle controllers. This system
	// runs none, so the zero value keeps them here.
	CloudController bool
}

// KubeControllerManagerArgs are the controller-manager's flags as RKE2
// passes them: three of its own first, then k3s's defaults merged with
// the user's (a user flag of the same name comes later and wins).
func KubeControllerManagerArgs(o KubeControllerManagerOptions) []string {
	c := o.ControlPlane.withDefaults()
	kubeconfig := c.cred("controller.kubeconfig")
	d := map[string]string{
		"controllers":                      "*,tokencleaner",
		"kubeconfig":                       kubeconfig,
		"authentication-kubeconfig":        kubeconfig,
		"authorization-kubeconfig":         kubeconfig,
		"service-account-private-key-file": c.tls("service.current.key"),
		"allocate-node-cidrs":              "true",
		"cluster-cidr":                     c.ClusterCIDR,
		"service-cluster-ip-range":         c.ServiceCIDR,
		"root-ca-file":                     c.tls("server-ca.crt"),
		"profiling":                        "false",
		"tls-cert-file":                    c.tls("kube-controller-manager", "kube-controller-manager.crt"),
		"tls-private-key-file":             c.tls("kube-controller-manager", "kube-controller-manager.key"),
		"bind-address":                     c.loopback(),
		"secure-port":                      "10257",
		"use-service-account-credentials":  "true",
		// The signing certificates are the CAs alone (k3s's *.nochain.crt):
		// with an intermediate CA the chain would be signed into every
		// issued certificate. Kubelet serving certificates are the kubelet
		// serving CA's, the one the apiserver trusts for kubelets (k3s
		// signs them with the server CA).
		"cluster-signing-kube-apiserver-client-cert-file": c.tls("client-ca.nochain.crt"),
		"cluster-signing-kube-apiserver-client-key-file":  c.tls("client-ca.key"),
		"cluster-signing-kubelet-client-cert-file":        c.tls("client-ca.nochain.crt"),
		"cluster-signing-kubelet-client-key-file":         c.tls("client-ca.key"),
		"cluster-signing-kubelet-serving-cert-file":       c.tls("kubelet-serving-ca.nochain.crt"),
		"cluster-signing-kubelet-serving-key-file":        c.tls("kubelet-serving-ca.key"),
		"cluster-signing-legacy-unknown-cert-file":        c.tls("server-ca.nochain.crt"),
		"cluster-signing-legacy-unknown-key-file":         c.tls("server-ca.key"),
	}
	if o.CloudController {
		d["configure-cloud-routes"] = "false"
		d["controllers"] += ",-service,-route,-cloud-node-lifecycle"
	}
	leaderElection(d)
	return append([]string{
		"--permit-port-sharing=true",
		"--flex-volume-plugin-dir=/var/lib/kubelet/volumeplugins",
		"--terminated-pod-gc-threshold=1000",
	}, MergeArgs(d, o.ExtraArgs)...)
}

// KubeControllerManagerPod is the controller-manager's static pod, as RKE2
// writes it once the apiserver is ready: probes on /healthz of 10257.
func KubeControllerManagerPod(o KubeControllerManagerOptions) *corev1.Pod {
	c := o.ControlPlane.withDefaults()
	return component{
		name:     "kube-controller-manager",
		image:    c.Image,
		args:     KubeControllerManagerArgs(o),
		cpu:      "200m",
		mem:      "256Mi",
		port:     corev1.ContainerPort{Name: "metrics", Protocol: corev1.ProtocolTCP, ContainerPort: 10257},
		dirs:     c.CADirs,
		liveness: liveness.probe(httpGet(corev1.URISchemeHTTPS, 10257, "/healthz")),
		startup:  startup.probe(httpGet(corev1.URISchemeHTTPS, 10257, "/healthz")),
	}.pod()
}
