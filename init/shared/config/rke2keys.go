package config

import (
	"fmt"
	"maps"
	"slices"
)

// RKE2KeysActedOn are the keys of RKE2's config.yaml that this OS acts on
// today, with where: every other key is still written to config.yaml (so
// RKE2's own tools read it), but does nothing yet, and the node says so.
var RKE2KeysActedOn = map[string]string{
	"node-name":                          "the kubelet's and the certificates' node name",
	"token":                              "the cluster's token (server/token); an agent's join credentials",
	"token-file":                         "an agent's join credentials, read from that file",
	"server":                             "the supervisor an agent joins through (https://ADDR:9345)",
	"agent-token":                        "the agents' token (server/agent-token); a server makes one when it is not set",
	"tls-san":                            "the apiserver's serving certificate",
	"node-ip":                            "the kubelet's --node-ip, the certificates, the static pods",
	"node-label":                         "the kubelet's --node-labels (registration)",
	"node-taint":                         "the kubelet's registerWithTaints",
	"service-cidr":                       "the apiserver, the certificates",
	"cluster-cidr":                       "the controller-manager",
	"cluster-domain":                     "the certificates, the apiserver",
	"service-node-port-range":            "the apiserver",
	"write-kubeconfig":                   "where rke2.yaml is written",
	"write-kubeconfig-mode":              "rke2.yaml's mode",
	"kube-apiserver-arg":                 "the apiserver's static pod",
	"kube-controller-manager-arg":        "the controller-manager's static pod",
	"kube-scheduler-arg":                 "the scheduler's static pod",
	"etcd-arg":                           "etcd's static pod",
	"kube-proxy-arg":                     "kube-proxy's static pod",
	"cni":                                "which CNI chart is installed (flannel, or none)",
	"disable":                            "the charts not installed (their manifests and HelmCharts removed)",
	"system-default-registry":            "the charts' global.systemDefaultRegistry",
	"cluster-dns":                        "the kubelet's clusterDNS, the charts' global.clusterDNS",
	"pod-security-admission-config-file": "the apiserver's Pod Security configuration",
	"control-plane-probe-configuration":  "the control plane's and kube-proxy's probe timing",
	"etcd-snapshot-schedule-cron":        "when a server takes its scheduled etcd snapshots",
	"etcd-snapshot-retention":            "how many snapshots of a name a server keeps",
	"etcd-snapshot-name":                 "the scheduled snapshots' name",
	"etcd-snapshot-dir":                  "where a server keeps its snapshots",
	"etcd-snapshot-compress":             "whether snapshots are zipped",
	"etcd-disable-snapshots":             "no scheduled snapshots",
	"cluster-reset":                      "etcd made a one-member cluster before it starts (once: db/reset-flag)",
	"etcd-s3":                            "each snapshot also uploaded to S3, retention there too",
	"etcd-s3-endpoint":                   "the S3 endpoint (host[:port])",
	"etcd-s3-endpoint-ca":                "a CA the S3 endpoint's certificate is checked against",
	"etcd-s3-skip-ssl-verify":            "no check of the S3 endpoint's certificate",
	"etcd-s3-access-key":                 "the S3 credentials",
	"etcd-s3-secret-key":                 "the S3 credentials",
	"etcd-s3-session-token":              "the S3 credentials",
	"etcd-s3-bucket":                     "the bucket the snapshots go to",
	"etcd-s3-region":                     "the bucket's region",
	"etcd-s3-folder":                     "the folder in the bucket",
	"etcd-s3-insecure":                   "plain http to the S3 endpoint",
	"etcd-s3-timeout":                    "each S3 request's time limit",
	"etcd-s3-bucket-lookup-type":         "path- or host-style bucket addressing",
	"etcd-s3-config-secret":              "a kube-system Secret holding the etcd-s3-* keys (when no other is set)",
	"etcd-s3-proxy":                      "the proxy S3 requests go through (none: no proxy), not the environment's",
	"cluster-reset-restore-path":         "the snapshot cluster-reset restores (a file, or a snapshot's name)",
}

// RKE2Warnings names, one sentence each, the keys under rke2: that this OS
// writes to config.yaml but does not act on yet, for rke2-build validate
// and for every boot.
func (c *Config) RKE2Warnings() []string {
	if c == nil {
		return nil
	}
	var out []string
	for _, k := range slices.Sorted(maps.Keys(c.RKE2)) {
		base := k
		if len(base) > 1 && base[len(base)-1] == '+' {
			base = base[:len(base)-1]
		}
		if _, ok := RKE2KeysActedOn[base]; ok {
			continue
		}
		out = append(out, fmt.Sprintf("rke2.%s is written to /etc/rancher/rke2/config.yaml but not acted on by this OS yet (the README lists the keys it acts on)", k))
	}
	return out
}
