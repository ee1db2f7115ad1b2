package launch

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/rke2os/rke2os/init/shared/layout"
	"github.com/rke2os/rke2os/internal/golden"
)

func TestContainerdConfig(t *testing.T) {
	b, err := ContainerdConfig(ContainerdOptions{Paths: layout.DefaultPaths, SandboxImage: "index.docker.io/rancher/mirrored-pause:3.10",
		BinDir: "/var/lib/rancher/rke2/data/v1.34.4-rke2r1-0123456789ab/bin"})
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "containerd-config.toml", b)
	if _, err := ContainerdConfig(ContainerdOptions{Paths: layout.DefaultPaths}); err == nil {
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
		o := KubeletOptions{Paths: layout.DefaultPaths, NodeName: "node1", NodeIP: "10.0.2.15", Standalone: standalone}
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

func TestHTTPOK(t *testing.T) {
	for _, tc := range []struct {
		name  string
		reply string
		ok    bool
	}{
		{"ok", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", true},
		{"ok 1.0", "HTTP/1.0 200 OK\r\n\r\n", true},
		{"unhealthy", "HTTP/1.1 500 Internal Server Error\r\n\r\n", false},
		{"not http", "SSH-2.0-OpenSSH\r\n", false},
		{"closed", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			got := make(chan string, 1)
			go func() {
				c, err := l.Accept()
				if err != nil {
					return
				}
				defer c.Close()
				buf := make([]byte, 512)
				n, _ := c.Read(buf)
				got <- string(buf[:n])
				io.WriteString(c, tc.reply)
			}()
			err = httpOK(context.Background(), l.Addr().String(), "/healthz")
			if (err == nil) != tc.ok {
				t.Fatalf("httpOK = %v, want ok=%t", err, tc.ok)
			}
			if req := <-got; !strings.HasPrefix(req, "GET /healthz HTTP/1.0\r\n") {
				t.Errorf("request = %q", req)
			}
		})
	}
	// Nothing listening: an error, not a hang.
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	if err := httpOK(context.Background(), addr, "/healthz"); err == nil {
		t.Error("httpOK to a closed port succeeded")
	}
}
