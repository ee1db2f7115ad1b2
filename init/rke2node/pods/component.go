package pods

import (
	"crypto/sha256"
	"encoding/hex"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/rke2os/rke2os/init/shared/layout"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// ControlPlane is what the control plane's pods share: RKE2's layout, the
// image, this node and the cluster's networks. Empty fields take RKE2's
// defaults.
type ControlPlane struct {
	Paths layout.Paths
	// Image is rancher/hardened-kubernetes:<tag>; it carries every
	// component (and kubectl, which the apiserver's probes run).
	Image    string
	NodeName string
	// NodeIP is the first of RKE2's node-ip (node-external-ip wins for the
	// apiserver's advertise address in RKE2; pass that one then).
	NodeIP string
	// ClusterCIDR is cluster-cidr: 10.42.0.0/16, fd00:42::/56 on an IPv6
	// node; a comma-separated pair for dual-stack.
	ClusterCIDR string
	// ServiceCIDR is service-cidr: 10.43.0.0/16, fd00:43::/112 on an IPv6 node.
	ServiceCIDR string
	// ClusterDomain is cluster-domain: cluster.local.
	ClusterDomain string
	// ServiceNodePortRange is service-node-port-range: 30000-32767.
	ServiceNodePortRange string
	// CADirs are the host's CA certificate directories the apiserver and
	// the controller-manager see (for webhooks, OIDC and cloud endpoints):
	// RKE2 mounts those of SSLDirs that exist. See ExistingDirs.
	CADirs []string
}

// SSLDirs are the host CA directories RKE2 offers the apiserver and the
// controller-manager, when they exist.
var SSLDirs = []string{
	"/etc/ssl/certs",
	"/etc/pki/tls/certs",
	"/etc/ca-certificates",
	"/usr/local/share/ca-certificates",
	"/usr/share/ca-certificates",
}

// ExistingDirs keeps the paths that exist, as RKE2's OnlyExisting does.
func ExistingDirs(paths []string) []string {
	var out []string
	for _, p := range paths {
		if _, err := os.Stat(p); err == nil {
			out = append(out, p)
		}
	}
	return out
}

func (c ControlPlane) withDefaults() ControlPlane {
	v6 := isIPv6(c.NodeIP)
	if c.ClusterCIDR == "" {
		c.ClusterCIDR = "10.42.0.0/16"
		if v6 {
			c.ClusterCIDR = "fd00:42::/56"
		}
	}
	if c.ServiceCIDR == "" {
		c.ServiceCIDR = "10.43.0.0/16"
		if v6 {
			c.ServiceCIDR = "fd00:43::/112"
		}
	}
	if c.ClusterDomain == "" {
		c.ClusterDomain = "cluster.local"
	}
	if c.ServiceNodePortRange == "" {
		c.ServiceNodePortRange = "30000-32767"
	}
	return c
}

// loopback is the address the control plane binds its local ports to, as
// k3s's Loopback: ::1 when the cluster's services are IPv6 only.
func (c ControlPlane) loopback() string {
	first, _, _ := strings.Cut(c.ServiceCIDR, ",")
	if ip, _, err := net.ParseCIDR(first); err == nil && ip.To4() == nil {
		return "::1"
	}
	return "127.0.0.1"
}

func isIPv6(s string) bool {
	ip := net.ParseIP(s)
	return ip != nil && ip.To4() == nil
}

func (c ControlPlane) tls(elem ...string) string {
	return c.Paths.Server(append([]string{"tls"}, elem...)...)
}

func (c ControlPlane) cred(name string) string { return c.Paths.Server("cred", name) }

// probeConf is RKE2's default timing for one kind of probe (kubeadm's).
type probeConf struct{ delay, timeout, failures, period int32 }

var (
	liveness  = probeConf{delay: 10, timeout: 15, failures: 8, period: 10}
	readiness = probeConf{delay: 0, timeout: 15, failures: 3, period: 1}
	startup   = probeConf{delay: 10, timeout: 15, failures: 24, period: 10}
)

func (p probeConf) probe(h corev1.ProbeHandler) *corev1.Probe {
	pr := &corev1.Probe{ProbeHandler: h, InitialDelaySeconds: p.delay, TimeoutSeconds: p.timeout,
		FailureThreshold: p.failures, PeriodSeconds: p.period}
	// RKE2 runs exec probes at most every 5 seconds: each one is a process.
	if h.Exec != nil && pr.PeriodSeconds < 5 {
		pr.PeriodSeconds = 5
	}
	return pr
}

// httpGet is RKE2's HTTP probe of a host-network pod: on localhost.
func httpGet(scheme corev1.URIScheme, port int32, path string) corev1.ProbeHandler {
	return corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Host: "localhost", Scheme: scheme,
		Port: intstr.FromInt32(port), Path: path}}
}

// component is one static pod as RKE2's pod template makes it.
type component struct {
	name                         string // the pod, its container, its binary and its component label
	image                        string
	args                         []string
	cpu, mem                     string // requests
	port                         corev1.ContainerPort
	privileged                   bool
	dirs                         []string // host directories mounted read-write (DirectoryOrCreate)
	liveness, readiness, startup *corev1.Probe
}

// pod builds the pod: host network, kube-system, labelled
// component=<name> and tier=control-plane (kube-proxy's too, as in RKE2),
// system-cluster-critical. StaticPod adds the file mounts and FILE_HASH.
func (c component) pod() *corev1.Pod {
	privileged := c.privileged
	ctr := corev1.Container{
		Name:            c.name,
		Image:           c.image,
		Command:         []string{c.name},
		Args:            c.args,
		Ports:           []corev1.ContainerPort{c.port},
		ImagePullPolicy: corev1.PullIfNotPresent,
		Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
			corev1.ResourceCPU: resource.MustParse(c.cpu), corev1.ResourceMemory: resource.MustParse(c.mem)}},
		LivenessProbe:   c.liveness,
		ReadinessProbe:  c.readiness,
		StartupProbe:    c.startup,
		SecurityContext: &corev1.SecurityContext{Privileged: &privileged},
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: c.name, Namespace: "kube-system",
			Labels: map[string]string{"component": c.name, "tier": "control-plane"}},
		Spec: corev1.PodSpec{
			HostNetwork:       true,
			PriorityClassName: "system-cluster-critical",
		},
	}
	for _, d := range c.dirs {
		name := pathVolumeName("dir", d)
		if hasVolume(pod, name) {
			continue
		}
		t := corev1.HostPathDirectoryOrCreate
		pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{Name: name,
			VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: d, Type: &t}}})
		ctr.VolumeMounts = append(ctr.VolumeMounts, corev1.VolumeMount{Name: name, MountPath: d})
	}
	pod.Spec.Containers = []corev1.Container{ctr}
	return pod
}

// pathVolumeName makes a DNS-label volume name for a host path.
func pathVolumeName(prefix, p string) string {
	sum := sha256.Sum256([]byte(p))
	base := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, strings.ToLower(filepath.Base(p)))
	if len(base) > 40 {
		base = base[:40]
	}
	base = strings.Trim(base, "-")
	if base == "" {
		base = "root"
	}
	return prefix + "-" + base + "-" + hex.EncodeToString(sum[:4])
}

// WithDefaults is c with RKE2's defaults where c leaves a value out.
func (c ControlPlane) WithDefaults() ControlPlane { return c.withDefaults() }

// leaderElection sets the controller-manager's and the scheduler's lease
// timings on d. Upstream's (a 15 s lease, 10 s to renew, a retry every
// 2 s) give up the lease, and so exit, whenever the apiserver stalls for
// 10 s, which a small or emulated machine under load does; each exit
// costs a restart with growing backoff, and the node's pods wait. A
// controller that stops renewing is still replaced within a minute. The
// user's arguments, merged after, win.
func leaderElection(d map[string]string) {
	d["leader-elect-lease-duration"] = "60s"
	d["leader-elect-renew-deadline"] = "40s"
	d["leader-elect-retry-period"] = "10s"
}

// SetProbes applies RKE2's control-plane-probe-configuration settings
// ("<component>-<probe>-<setting>": see config.ParseProbeConfiguration) to
// the probes of a static pod, its component named by its first container.
// A probe the pod does not have is not added; exec probes still run at
// most every 5 seconds.
func SetProbes(pod *corev1.Pod, settings map[string]int32) {
	if len(settings) == 0 || len(pod.Spec.Containers) == 0 {
		return
	}
	c := &pod.Spec.Containers[0]
	for kind, p := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe, "startup": c.StartupProbe} {
		if p == nil {
			continue
		}
		for setting, field := range map[string]*int32{"initial-delay-seconds": &p.InitialDelaySeconds, "timeout-seconds": &p.TimeoutSeconds,
			"failure-threshold": &p.FailureThreshold, "period-seconds": &p.PeriodSeconds} {
			if v, ok := settings[c.Name+"-"+kind+"-"+setting]; ok {
				*field = v
			}
		}
		if p.Exec != nil && p.PeriodSeconds < 5 {
			p.PeriodSeconds = 5
		}
	}
}
