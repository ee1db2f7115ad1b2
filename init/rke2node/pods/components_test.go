package pods

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rke2os/rke2os/init/shared/layout"
	"github.com/rke2os/rke2os/internal/golden"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

const testImage = "rancher/hardened-kubernetes:v1.34.4-rke2r1-build20250101"

func testControlPlane(paths layout.Paths) ControlPlane {
	return ControlPlane{Paths: paths, Image: testImage, NodeName: "node1", NodeIP: "10.0.2.15"}
}

// testPods are the pods this package makes for a server, with its paths.
func testPods(paths layout.Paths) map[string]*corev1.Pod {
	cp := testControlPlane(paths)
	return map[string]*corev1.Pod{
		"kube-apiserver":          KubeAPIServerPod(KubeAPIServerOptions{ControlPlane: cp}),
		"kube-controller-manager": KubeControllerManagerPod(KubeControllerManagerOptions{ControlPlane: cp}),
		"kube-scheduler":          KubeSchedulerPod(KubeSchedulerOptions{ControlPlane: cp}),
		"kube-proxy":              KubeProxyPod(KubeProxyOptions{Paths: paths, Image: testImage, NodeName: "node1", NodeIP: "10.0.2.15"}),
	}
}

func TestComponentPodsGolden(t *testing.T) {
	pods := testPods(layout.DefaultPaths)
	// The host's CA directories, as RKE2 mounts those that exist.
	cp := testControlPlane(layout.DefaultPaths)
	cp.CADirs = []string{"/etc/ssl/certs"}
	pods["kube-apiserver"] = KubeAPIServerPod(KubeAPIServerOptions{ControlPlane: cp})
	pods["kube-controller-manager"] = KubeControllerManagerPod(KubeControllerManagerOptions{ControlPlane: cp})
	for name, pod := range pods {
		b, err := yamlOf(pod)
		if err != nil {
			t.Fatal(err)
		}
		golden.Check(t, name+"-pod.yaml", b)
	}
	golden.Check(t, "rke2-pss.yaml", PodSecurityConfig())
}

func TestPodSecurityConfigParses(t *testing.T) {
	var doc struct {
		Kind    string `json:"kind"`
		Plugins []struct {
			Name          string `json:"name"`
			Configuration struct {
				Defaults map[string]string `json:"defaults"`
			} `json:"configuration"`
		} `json:"plugins"`
	}
	if err := yaml.Unmarshal(PodSecurityConfig(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Kind != "AdmissionConfiguration" || len(doc.Plugins) != 1 || doc.Plugins[0].Name != "PodSecurity" ||
		doc.Plugins[0].Configuration.Defaults["enforce"] != "privileged" {
		t.Errorf("unexpected config: %+v", doc)
	}
}

func TestExtraArgs(t *testing.T) {
	cp := testControlPlane(layout.DefaultPaths)
	tls := cp.tls
	for _, tc := range []struct {
		name       string
		args       []string
		want, lack []string
	}{
		{
			name: "apiserver: a default overridden, a flag added",
			args: KubeAPIServerArgs(KubeAPIServerOptions{ControlPlane: cp,
				ExtraArgs: []string{"service-node-port-range=20000-22767", "--audit-log-maxage=30"}}),
			want: []string{"--service-node-port-range=20000-22767", "--audit-log-maxage=30"},
			lack: []string{"--service-node-port-range=30000-32767"},
		},
		{
			name: "apiserver: RKE2's own flags",
			args: KubeAPIServerArgs(KubeAPIServerOptions{ControlPlane: cp, ExtraArgs: []string{"advertise-port=6443"}}),
			want: []string{
				"--admission-control-config-file=/etc/rancher/rke2/rke2-pss.yaml",
				"--advertise-address=10.0.2.15",
				"--etcd-servers=https://127.0.0.1:2379",
				"--etcd-cafile=" + tls("etcd", "server-ca.crt"),
				"--kubelet-certificate-authority=" + tls("kubelet-serving-ca.crt"),
				"--encryption-provider-config=/var/lib/rancher/rke2/server/cred/encryption-config.json",
				"--encryption-provider-config-automatic-reload=true",
				"--authorization-mode=Node,RBAC",
				"--anonymous-auth=false",
				"--bind-address=0.0.0.0",
			},
			lack: []string{"--advertise-port=6443", "--egress-selector-config-file=", "--enable-aggregator-routing=true"},
		},
		{
			name: "apiserver: structured authorization and authentication replace their flags",
			args: KubeAPIServerArgs(KubeAPIServerOptions{ControlPlane: cp, PodSecurityConfigFile: "/etc/pss.yaml",
				ExtraArgs: []string{"authorization-config=/etc/authz.yaml", "authentication-config=/etc/authn.yaml"}}),
			want: []string{"--admission-control-config-file=/etc/pss.yaml", "--authorization-config=/etc/authz.yaml", "--authentication-config=/etc/authn.yaml"},
			lack: []string{"--authorization-mode=Node,RBAC", "--anonymous-auth=false"},
		},
		{
			name: "apiserver: admission plugins add to NodeRestriction, ciphers replace k3s's",
			args: KubeAPIServerArgs(KubeAPIServerOptions{ControlPlane: cp,
				ExtraArgs: []string{"enable-admission-plugins=PodNodeSelector", "tls-cipher-suites=TLS_AES_128_GCM_SHA256"}}),
			want: []string{"--enable-admission-plugins=NodeRestriction", "--enable-admission-plugins=PodNodeSelector",
				"--tls-cipher-suites=TLS_AES_128_GCM_SHA256"},
			lack: []string{"--tls-cipher-suites=TLS_ECDHE"},
		},
		{
			name: "apiserver: egress selector",
			args: KubeAPIServerArgs(KubeAPIServerOptions{ControlPlane: cp, EgressSelectorConfigFile: "/var/lib/rancher/rke2/server/etc/egress-selector-config.yaml"}),
			want: []string{"--egress-selector-config-file=/var/lib/rancher/rke2/server/etc/egress-selector-config.yaml", "--enable-aggregator-routing=true"},
		},
		{
			name: "controller-manager: without a cloud controller",
			args: KubeControllerManagerArgs(KubeControllerManagerOptions{ControlPlane: cp, ExtraArgs: []string{"node-monitor-grace-period=20s"}}),
			want: []string{"--permit-port-sharing=true", "--terminated-pod-gc-threshold=1000", "--controllers=*,tokencleaner",
				"--cluster-cidr=10.42.0.0/16", "--service-cluster-ip-range=10.43.0.0/16", "--node-monitor-grace-period=20s",
				"--cluster-signing-kubelet-serving-cert-file=" + tls("kubelet-serving-ca.nochain.crt"),
				"--cluster-signing-kubelet-serving-key-file=" + tls("kubelet-serving-ca.key")},
			lack: []string{"--configure-cloud-routes=false"},
		},
		{
			name: "controller-manager: with a cloud controller",
			args: KubeControllerManagerArgs(KubeControllerManagerOptions{ControlPlane: cp, CloudController: true}),
			want: []string{"--controllers=*,tokencleaner,-service,-route,-cloud-node-lifecycle", "--configure-cloud-routes=false"},
		},
		{
			name: "scheduler: a default overridden, a flag added",
			args: KubeSchedulerArgs(KubeSchedulerOptions{ControlPlane: cp, ExtraArgs: []string{"-v=2", "profiling=true"}}),
			want: []string{"--permit-port-sharing=true", "--v=2", "--profiling=true", "--secure-port=10259"},
			lack: []string{"--profiling=false"},
		},
		{
			name: "kube-proxy: a default overridden, a flag added",
			args: KubeProxyArgs(KubeProxyOptions{Paths: layout.DefaultPaths, NodeName: "node1", ClusterCIDR: "10.52.0.0/16",
				ExtraArgs: []string{"proxy-mode=nftables", "metrics-bind-address=0.0.0.0"}}),
			want: []string{"--proxy-mode=nftables", "--metrics-bind-address=0.0.0.0", "--cluster-cidr=10.52.0.0/16",
				"--hostname-override=node1", "--kubeconfig=/var/lib/rancher/rke2/agent/kubeproxy.kubeconfig", "--healthz-bind-address=127.0.0.1"},
			lack: []string{"--proxy-mode=iptables"},
		},
		{
			name: "IPv6: loopback and default networks",
			args: KubeAPIServerArgs(KubeAPIServerOptions{ControlPlane: ControlPlane{Paths: layout.DefaultPaths, NodeIP: "fd00::15"}}),
			want: []string{"--etcd-servers=https://[::1]:2379", "--service-cluster-ip-range=fd00:43::/112", "--advertise-address=fd00::15"},
		},
		{
			name: "IPv6: controller-manager",
			args: KubeControllerManagerArgs(KubeControllerManagerOptions{ControlPlane: ControlPlane{Paths: layout.DefaultPaths, NodeIP: "fd00::15"}}),
			want: []string{"--bind-address=::1", "--cluster-cidr=fd00:42::/56"},
		},
		{
			name: "IPv6: kube-proxy",
			args: KubeProxyArgs(KubeProxyOptions{Paths: layout.DefaultPaths, NodeIP: "fd00::15"}),
			want: []string{"--healthz-bind-address=::1", "--cluster-cidr=fd00:42::/56"},
		},
		{
			name: "etcd: a flag replaced in place, one added",
			args: EtcdPod(EtcdOptions{Paths: layout.DefaultPaths, NodeName: "node1",
				ExtraArgs: []string{"snapshot-count=5000", "--quota-backend-bytes=8589934592"}}).Spec.Containers[0].Args,
			want: []string{"--snapshot-count=5000", "--quota-backend-bytes=8589934592"},
			lack: []string{"--snapshot-count=10000"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, w := range tc.want {
				if !slices.Contains(tc.args, w) {
					t.Errorf("args lack %q:\n%s", w, strings.Join(tc.args, "\n"))
				}
			}
			for _, l := range tc.lack {
				for _, a := range tc.args {
					if strings.HasPrefix(a, l) {
						t.Errorf("args hold %q", a)
					}
				}
			}
			seen := map[string]bool{}
			for _, a := range tc.args {
				if !strings.HasPrefix(a, "--") || strings.HasPrefix(a, "---") {
					t.Errorf("malformed flag %q", a)
				}
				if seen[a] {
					t.Errorf("flag %q twice", a)
				}
				seen[a] = true
			}
		})
	}
}

// makeFiles creates, under dir, every file the pod's flags name (what the
// control package's certificates and kubeconfigs would be), and the files
// each kubeconfig names in turn. It returns the files.
func makeFiles(t *testing.T, dir string, pod *corev1.Pod) []string {
	t.Helper()
	var files []string
	write := func(p, content string) {
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		files = append(files, p)
	}
	for _, a := range pod.Spec.Containers[0].Args {
		flag, v, _ := strings.Cut(a, "=")
		if !strings.HasPrefix(v, dir) || filepath.Ext(v) == "" {
			continue // a directory (cert-dir), or not ours
		}
		if strings.HasSuffix(flag, "kubeconfig") {
			// As k3s writes them: a CA and a client certificate beside the
			// server's other files.
			base := strings.TrimSuffix(filepath.Base(v), ".kubeconfig")
			crt := filepath.Join(filepath.Dir(filepath.Dir(v)), "tls", "client-"+base+".crt")
			key := strings.TrimSuffix(crt, ".crt") + ".key"
			ca := filepath.Join(filepath.Dir(filepath.Dir(v)), "tls", "server-ca.crt")
			write(crt, "cert of "+base)
			write(key, "key of "+base)
			write(ca, "server ca")
			write(v, fmt.Sprintf("apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    server: https://127.0.0.1:6443\n"+
				"    certificate-authority: %s\n  name: local\nusers:\n- name: user\n  user:\n    client-certificate: %s\n"+
				"    client-key: %s\n", ca, crt, key))
			continue
		}
		write(v, "content of "+filepath.Base(v))
	}
	return files
}

func writtenPod(t *testing.T, path string) *corev1.Pod {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var pod corev1.Pod
	if err := yaml.UnmarshalStrict(b, &pod); err != nil {
		t.Fatal(err)
	}
	return &pod
}

func fileHash(pod *corev1.Pod) string {
	for _, e := range pod.Spec.Containers[0].Env {
		if e.Name == "FILE_HASH" {
			return e.Value
		}
	}
	return ""
}

// TestComponentPodsWritten writes each pod as a node would, with every file
// it names in place: each file is mounted read-only, a second write leaves
// the manifest alone, and a changed certificate changes FILE_HASH.
func TestComponentPodsWritten(t *testing.T) {
	dir := t.TempDir()
	paths := layout.Paths{DataDir: filepath.Join(dir, "rke2"), EtcDir: filepath.Join(dir, "etc"), RunDir: filepath.Join(dir, "run")}
	for name, pod := range testPods(paths) {
		t.Run(name, func(t *testing.T) {
			files := makeFiles(t, dir, pod)
			if len(files) == 0 {
				t.Fatal("the pod names no files")
			}
			changed, err := StaticPod(paths.PodManifests(), pod)
			if err != nil || !changed {
				t.Fatalf("first write: changed=%v err=%v", changed, err)
			}
			manifest := filepath.Join(paths.PodManifests(), name+".yaml")
			before, _ := os.ReadFile(manifest)
			if changed, err := StaticPod(paths.PodManifests(), pod); err != nil || changed {
				t.Fatalf("second write: changed=%v err=%v", changed, err)
			}
			if after, _ := os.ReadFile(manifest); string(after) != string(before) {
				t.Fatal("second write changed the manifest")
			}

			got := writtenPod(t, manifest)
			mounts := map[string]corev1.VolumeMount{}
			for _, m := range got.Spec.Containers[0].VolumeMounts {
				if _, dup := mounts[m.MountPath]; dup {
					t.Errorf("%s mounted twice", m.MountPath)
				}
				mounts[m.MountPath] = m
			}
			encryption := EncryptionConfigPath(ControlPlane{Paths: paths})
			for _, f := range files {
				m, ok := mounts[f]
				switch {
				case f == encryption && ok:
					t.Errorf("%s is mounted as a file: a reloaded config would never change inside", f)
				case f == encryption:
				case !ok:
					t.Errorf("%s is not mounted", f)
				case !m.ReadOnly:
					t.Errorf("%s is mounted read-write", f)
				}
			}
			hash := fileHash(got)
			if hash == "" {
				t.Fatal("no FILE_HASH")
			}

			// A changed certificate (one a kubeconfig names, for the
			// components that have one) restarts the pod.
			cert := files[0]
			for _, f := range files {
				if strings.Contains(filepath.Base(f), "client-") && strings.HasSuffix(f, ".crt") {
					cert = f
				}
			}
			if err := os.WriteFile(cert, []byte("renewed"), 0o600); err != nil {
				t.Fatal(err)
			}
			if changed, err := StaticPod(paths.PodManifests(), pod); err != nil || !changed {
				t.Fatalf("after %s changed: changed=%v err=%v", cert, changed, err)
			}
			if fileHash(writtenPod(t, manifest)) == hash {
				t.Errorf("FILE_HASH unchanged after %s changed", cert)
			}

			// The encryption config is reloaded by the apiserver, not a
			// reason to restart it.
			if name == "kube-apiserver" {
				if err := os.WriteFile(encryption, []byte("rotated key"), 0o600); err != nil {
					t.Fatal(err)
				}
				if changed, err := StaticPod(paths.PodManifests(), pod); err != nil || changed {
					t.Errorf("after the encryption config changed: changed=%v err=%v", changed, err)
				}
			}
		})
	}
}

func TestKubeconfigFilesBadYAML(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.kubeconfig")
	os.WriteFile(p, []byte("clusters: {"), 0o600)
	pod := KubeSchedulerPod(KubeSchedulerOptions{ControlPlane: ControlPlane{Paths: layout.DefaultPaths}})
	pod.Spec.Containers[0].Args = append(pod.Spec.Containers[0].Args, "--kubeconfig="+p)
	if _, err := StaticPod(t.TempDir(), pod); err == nil || !strings.Contains(err.Error(), p) {
		t.Errorf("err = %v, want one naming %s", err, p)
	}
}
