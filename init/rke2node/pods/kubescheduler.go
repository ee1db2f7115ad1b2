package pods

import corev1 "k8s.io/api/core/v1"

// KubeSchedulerOptions describe this node's scheduler.
type KubeSchedulerOptions struct {
	ControlPlane
	// ExtraArgs are RKE2's kube-scheduler-arg, merged by MergeArgs.
	ExtraArgs []string
}

// KubeSchedulerArgs are the scheduler's flags as RKE2 passes them.
func KubeSchedulerArgs(o KubeSchedulerOptions) []string {
	c := o.ControlPlane.withDefaults()
	kubeconfig := c.cred("scheduler.kubeconfig")
	d := map[string]string{
		"kubeconfig":                kubeconfig,
		"authentication-kubeconfig": kubeconfig,
		"authorization-kubeconfig":  kubeconfig,
		"bind-address":              c.loopback(),
		"secure-port":               "10259",
		"tls-cert-file":             c.tls("kube-scheduler", "kube-scheduler.crt"),
		"tls-private-key-file":      c.tls("kube-scheduler", "kube-scheduler.key"),
		"profiling":                 "false",
	}
	leaderElection(d)
	return append([]string{"--permit-port-sharing=true"}, MergeArgs(d, o.ExtraArgs)...)
}

// KubeSchedulerPod is the scheduler's static pod, as RKE2 writes it once
// the apiserver is ready: probes on /livez and /readyz of 10259.
func KubeSchedulerPod(o KubeSchedulerOptions) *corev1.Pod {
	c := o.ControlPlane.withDefaults()
	return component{
		name:      "kube-scheduler",
		image:     c.Image,
		args:      KubeSchedulerArgs(o),
		cpu:       "100m",
		mem:       "128Mi",
		port:      corev1.ContainerPort{Name: "metrics", Protocol: corev1.ProtocolTCP, ContainerPort: 10259},
		liveness:  liveness.probe(httpGet(corev1.URISchemeHTTPS, 10259, "/livez")),
		readiness: readiness.probe(httpGet(corev1.URISchemeHTTPS, 10259, "/readyz")),
		startup:   startup.probe(httpGet(corev1.URISchemeHTTPS, 10259, "/livez")),
	}.pod()
}
