package pods

import (
	"net"
	"path/filepath"

	corev1 "k8s.io/api/core/v1"
)

// APIServerPort is where the apiserver serves, on every address (RKE2's
// https-listen-port; the supervisor has 9345).
const APIServerPort = 6443

// KubeAPIServerOptions describe this node's apiserver.
type KubeAPIServerOptions struct {
	ControlPlane
	// ExtraArgs are RKE2's kube-apiserver-arg, merged by MergeArgs.
	ExtraArgs []string
	// PodSecurityConfigFile is RKE2's pod-security-admission-config-file;
	// empty means the file RKE2 writes, /etc/rancher/rke2/rke2-pss.yaml
	// (PodSecurityConfigPath, content PodSecurityConfig).
	PodSecurityConfigFile string
	// EgressSelectorConfigFile, when set, routes the apiserver's traffic
	// to kubelets and pods through it (k3s's egress-selector-mode agent,
	// pod or cluster, with the supervisor's tunnel on 9345). Empty is
	// k3s's mode "disabled": the apiserver dials kubelets itself.
	EgressSelectorConfigFile string
}

// PodSecurityConfigPath is where RKE2 writes its Pod Security admission
// configuration.
func PodSecurityConfigPath(o KubeAPIServerOptions) string {
	if o.PodSecurityConfigFile != "" {
		return o.PodSecurityConfigFile
	}
	return filepath.Join(o.Paths.EtcDir, "rke2-pss.yaml")
}

// EncryptionConfigPath is the secrets encryption config the apiserver
// reads (RKE2 always encrypts secrets); the apiserver reloads it, so it is
// seen through the mounted server directory, not a file mount.
func EncryptionConfigPath(c ControlPlane) string { return c.cred("encryption-config.json") }

// k3s's default TLS ciphers (Mozilla's intermediate list without CBC),
// passed to the apiserver unless the user names others.
const tlsCipherSuites = "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384," +
	"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256," +
	"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305,TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305"

// KubeAPIServerArgs are the apiserver's flags as RKE2 passes them: k3s's
// defaults merged with the user's, the Pod Security config first.
func KubeAPIServerArgs(o KubeAPIServerOptions) []string {
	c := o.ControlPlane.withDefaults()
	tls := c.tls
	apiServer := "https://kubernetes.default.svc." + c.ClusterDomain
	d := map[string]string{
		"storage-backend":                             "etcd3",
		"etcd-servers":                                "https://" + net.JoinHostPort(c.loopback(), "2379"),
		"etcd-cafile":                                 tls("etcd", "server-ca.crt"),
		"etcd-certfile":                               tls("etcd", "client.crt"),
		"etcd-keyfile":                                tls("etcd", "client.key"),
		"cert-dir":                                    tls("temporary-certs"),
		"allow-privileged":                            "true",
		"enable-bootstrap-token-auth":                 "true",
		"service-account-signing-key-file":            tls("service.current.key"),
		"service-account-key-file":                    tls("service.key"),
		"service-account-issuer":                      apiServer,
		"api-audiences":                               apiServer + ",rke2",
		"service-cluster-ip-range":                    c.ServiceCIDR,
		"service-node-port-range":                     c.ServiceNodePortRange,
		"secure-port":                                 "6443",
		"bind-address":                                "0.0.0.0", // RKE2's default; k3s binds the loopback
		"tls-cert-file":                               tls("serving-kube-apiserver.crt"),
		"tls-private-key-file":                        tls("serving-kube-apiserver.key"),
		"kubelet-certificate-authority":               tls("kubelet-serving-ca.crt"), // not the server CA, which agents trust for the apiserver
		"kubelet-client-certificate":                  tls("client-kube-apiserver.crt"),
		"kubelet-client-key":                          tls("client-kube-apiserver.key"),
		"kubelet-preferred-address-types":             "InternalIP,ExternalIP,Hostname",
		"requestheader-client-ca-file":                tls("request-header-ca.crt"),
		"requestheader-allowed-names":                 "system:auth-proxy",
		"requestheader-extra-headers-prefix":          "X-Remote-Extra-",
		"requestheader-group-headers":                 "X-Remote-Group",
		"requestheader-username-headers":              "X-Remote-User",
		"proxy-client-cert-file":                      tls("client-auth-proxy.crt"),
		"proxy-client-key-file":                       tls("client-auth-proxy.key"),
		"client-ca-file":                              tls("client-ca.crt"),
		"enable-admission-plugins":                    "NodeRestriction",
		"profiling":                                   "false",
		"encryption-provider-config":                  EncryptionConfigPath(c),
		"encryption-provider-config-automatic-reload": "true",
	}
	if c.NodeIP != "" {
		d["advertise-address"] = c.NodeIP
	}
	// A structured authorization or authentication config excludes the
	// flags it replaces: the apiserver refuses both.
	if argValue("authorization-config", o.ExtraArgs) == "" {
		d["authorization-mode"] = "Node,RBAC"
	}
	if argValue("authentication-config", o.ExtraArgs) == "" {
		d["anonymous-auth"] = "false"
	}
	if o.EgressSelectorConfigFile != "" {
		d["enable-aggregator-routing"] = "true"
		d["egress-selector-config-file"] = o.EgressSelectorConfigFile
	}
	// RKE2 puts NodeRestriction before the user's flags, not among the
	// defaults: a user's enable-admission-plugins adds to it (the flag is
	// a list, and given twice it accumulates) rather than dropping it. k3s
	// adds its ciphers after them, unless the user names some.
	user := append([]string{"enable-admission-plugins=NodeRestriction"}, o.ExtraArgs...)
	if argValue("tls-cipher-suites", o.ExtraArgs) == "" {
		user = append(user, "tls-cipher-suites="+tlsCipherSuites)
	}
	// k3s also sets --advertise-port, which is not an apiserver flag: RKE2
	// drops it, and so it is never set here.
	args := withoutFlag(MergeArgs(d, user), "advertise-port")
	return append([]string{"--admission-control-config-file=" + PodSecurityConfigPath(o)}, args...)
}

// KubeAPIServerPod is the apiserver's static pod, as RKE2 writes it once
// etcd answers: the whole server directory mounted (certificates and the
// encryption config replaced while it runs stay visible), probes that run
// kubectl against /livez and /readyz with the apiserver's client
// certificate, and the file arguments mounted read-only by StaticPod.
func KubeAPIServerPod(o KubeAPIServerOptions) *corev1.Pod {
	c := o.ControlPlane.withDefaults()
	args := KubeAPIServerArgs(o)
	dirs := append([]string{}, c.CADirs...)
	// An audit log is written, not read: its directory is mounted instead.
	for _, p := range flagValues(args, "audit-log-path") {
		if p != "-" && filepath.IsAbs(p) {
			dirs = append(dirs, filepath.Dir(p))
		}
	}
	dirs = append(dirs, c.Paths.Server())
	kubectl := func(path string) corev1.ProbeHandler {
		return corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{
			"kubectl", "get",
			"--server=https://localhost:6443/",
			"--client-certificate=" + c.tls("client-kube-apiserver.crt"),
			"--client-key=" + c.tls("client-kube-apiserver.key"),
			"--certificate-authority=" + c.tls("server-ca.crt"),
			"--raw=" + path,
		}}}
	}
	return component{
		name:      "kube-apiserver",
		image:     c.Image,
		args:      args,
		cpu:       "250m",
		mem:       "1024Mi",
		port:      corev1.ContainerPort{Name: "apiserver", Protocol: corev1.ProtocolTCP, ContainerPort: APIServerPort},
		dirs:      dirs,
		liveness:  liveness.probe(kubectl("/livez")),
		readiness: readiness.probe(kubectl("/readyz")),
		startup:   startup.probe(kubectl("/livez")),
	}.pod()
}
