package pods

import (
	"fmt"
	"net"

	"github.com/rke2os/rke2os/init/shared/layout"
	"github.com/rke2os/rke2os/init/shared/pki"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// EtcdOptions describe this node's etcd member.
type EtcdOptions struct {
	Paths    layout.Paths
	Image    string // rancher/hardened-etcd:...
	NodeName string
	NodeIP   string
	// InitialCluster and ClusterState are a joining member's
	// --initial-cluster and "existing"; "" for the first server's own
	// single-member cluster ("name=https://ip:2380", "new").
	InitialCluster, ClusterState string
	// ExtraArgs are RKE2's etcd-arg ("name=value"): k3s writes them into
	// etcd's config file over its own keys, so here one replaces the flag
	// of the same name in place and a new one is appended.
	ExtraArgs []string
	// ForceNewCluster starts etcd with --force-new-cluster (a
	// cluster-reset without a snapshot): one member, its data kept.
	ForceNewCluster bool
}

// EtcdCerts makes etcd's CAs (kept if present: a custom CA) and the
// server, peer and client certificates, as RKE2 lays them out.
func EtcdCerts(o EtcdOptions) error {
	ips := []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")}
	if ip := net.ParseIP(o.NodeIP); ip != nil {
		ips = append(ips, ip)
	}
	dns := []string{"localhost", o.NodeName}
	server, err := pki.EnsureCA(o.Paths.EtcdTLS("server-ca.crt"), o.Paths.EtcdTLS("server-ca.key"), "etcd-server-ca")
	if err != nil {
		return fmt.Errorf("etcd server CA: %w", err)
	}
	peer, err := pki.EnsureCA(o.Paths.EtcdTLS("peer-ca.crt"), o.Paths.EtcdTLS("peer-ca.key"), "etcd-peer-ca")
	if err != nil {
		return fmt.Errorf("etcd peer CA: %w", err)
	}
	for _, c := range []struct {
		ca   *pki.CA
		name string
		leaf pki.Leaf
	}{
		{server, "server-client", pki.Leaf{CN: "etcd-server", DNS: dns, IPs: ips, Server: true, Client: true}},
		{server, "client", pki.Leaf{CN: "etcd-client", Client: true}},
		{peer, "peer-server-client", pki.Leaf{CN: "etcd-peer", DNS: dns, IPs: ips, Server: true, Client: true}},
	} {
		if _, err := c.ca.Issue(o.Paths.EtcdTLS(c.name+".crt"), o.Paths.EtcdTLS(c.name+".key"), c.leaf); err != nil {
			return fmt.Errorf("etcd %s certificate: %w", c.name, err)
		}
	}
	return nil
}

// PeerURL is the member's peer URL, https://<node IP>:2380.
func (o EtcdOptions) PeerURL() string {
	ip := o.NodeIP
	if ip == "" {
		ip = "127.0.0.1"
	}
	return "https://" + ip + ":2380"
}

// EtcdPod is etcd's static pod, shaped like RKE2's: host network, data in
// server/db/etcd, TLS with client certificates on both client and peer ports.
func EtcdPod(o EtcdOptions) *corev1.Pod {
	ip := o.NodeIP
	if ip == "" {
		ip = "127.0.0.1"
	}
	tls := o.Paths.EtcdTLS
	dataDir := o.Paths.Server("db", "etcd")
	initial, state := o.InitialCluster, o.ClusterState
	if initial == "" {
		initial = o.NodeName + "=" + o.PeerURL()
	}
	if state == "" {
		state = "new"
	}
	hostPathDir := corev1.HostPathDirectoryOrCreate
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "etcd", Namespace: "kube-system",
			Labels: map[string]string{"component": "etcd", "tier": "control-plane"}},
		Spec: corev1.PodSpec{
			HostNetwork:       true,
			PriorityClassName: "system-cluster-critical",
			Containers: []corev1.Container{{
				Name:    "etcd",
				Image:   o.Image,
				Command: []string{"etcd"},
				Args: overrideArgs([]string{
					"--name=" + o.NodeName,
					"--data-dir=" + dataDir,
					"--advertise-client-urls=https://" + ip + ":2379",
					"--listen-client-urls=https://127.0.0.1:2379,https://" + ip + ":2379",
					"--listen-metrics-urls=http://127.0.0.1:2381",
					"--listen-peer-urls=https://127.0.0.1:2380,https://" + ip + ":2380",
					"--initial-advertise-peer-urls=https://" + ip + ":2380",
					"--initial-cluster=" + initial,
					"--initial-cluster-state=" + state,
					"--client-cert-auth=true",
					"--cert-file=" + tls("server-client.crt"),
					"--key-file=" + tls("server-client.key"),
					"--trusted-ca-file=" + tls("server-ca.crt"),
					"--peer-client-cert-auth=true",
					"--peer-cert-file=" + tls("peer-server-client.crt"),
					"--peer-key-file=" + tls("peer-server-client.key"),
					"--peer-trusted-ca-file=" + tls("peer-ca.crt"),
					"--heartbeat-interval=500",
					"--election-timeout=5000",
					"--snapshot-count=10000",
				}, o.ExtraArgs),
				Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
					corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")}},
				LivenessProbe: &corev1.Probe{
					ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
						Host: "127.0.0.1", Path: "/health?serializable=true", Port: intstr.FromInt32(2381)}},
					InitialDelaySeconds: 10, TimeoutSeconds: 15, PeriodSeconds: 10, FailureThreshold: 8,
				},
				VolumeMounts: []corev1.VolumeMount{{Name: "dir-etcd", MountPath: dataDir}},
			}},
			Volumes: []corev1.Volume{{Name: "dir-etcd", VolumeSource: corev1.VolumeSource{
				HostPath: &corev1.HostPathVolumeSource{Path: dataDir, Type: &hostPathDir}}}},
		},
	}
	if o.ForceNewCluster {
		pod.Spec.Containers[0].Args = append(pod.Spec.Containers[0].Args, "--force-new-cluster")
	}
	return pod
}
