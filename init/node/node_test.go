package node

import (
	"strings"
	"testing"

	"github.com/rke2os/rke2os/internal/golden"
)

func TestContainerdConfig(t *testing.T) {
	b, err := ContainerdConfig(ContainerdOptions{Paths: DefaultPaths, SandboxImage: "index.docker.io/rancher/mirrored-pause:3.10",
		BinDir: "/var/lib/rancher/rke2/data/v1.34.4-rke2r1-0123456789ab/bin"})
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "containerd-config.toml", b)
	if _, err := ContainerdConfig(ContainerdOptions{Paths: DefaultPaths}); err == nil {
		t.Error("a config without a sandbox image was accepted")
	}
}

func TestHostsTOML(t *testing.T) {
	got := HostsTOML(map[string]Mirror{
		"docker.io": {Endpoints: []string{"https://mirror.example.com:5000"}, Rewrite: map[string]string{"^rancher/(.*)": "mirrored/$1"}},
		"*":         {Endpoints: []string{"https://all.example.com"}},
	})
	golden.Check(t, "hosts-docker.io.toml", got["docker.io"])
	golden.Check(t, "hosts-default.toml", got["_default"])
}

func TestKubeletConfig(t *testing.T) {
	for _, standalone := range []bool{true, false} {
		o := KubeletOptions{Paths: DefaultPaths, NodeName: "node1", NodeIP: "10.0.2.15", Standalone: standalone}
		if !standalone {
			o.Labels = []string{"topology.kubernetes.io/zone=rack-2", "example.com/gpu="}
			o.Taints = []string{"dedicated=gpu:NoSchedule", "node-role.kubernetes.io/control-plane:NoExecute"}
		}
		b, err := KubeletConfig(o)
		if err != nil {
			t.Fatal(err)
		}
		name := "kubelet-standalone.yaml"
		if !standalone {
			name = "kubelet-cluster.yaml"
		}
		golden.Check(t, name, b)
		args := strings.Join(KubeletArgs(o), " ")
		if strings.Contains(args, "--kubeconfig") == standalone {
			t.Errorf("standalone=%v: args %s", standalone, args)
		}
		if want := "--node-labels=topology.kubernetes.io/zone=rack-2,example.com/gpu="; !standalone && !strings.Contains(args, want) {
			t.Errorf("args %s lack %s", args, want)
		}
	}
}
