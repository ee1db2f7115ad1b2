package launch

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rke2os/rke2os/init/shared/config"
	"github.com/rke2os/rke2os/init/shared/layout"
	"github.com/rke2os/rke2os/init/shared/supervise"
	"github.com/rke2os/rke2os/internal/durable"
)

// Stack is the node's RKE2 processes: containerd, then the kubelet, under
// the init's supervisor, with their configuration where RKE2 writes it.
type Stack struct {
	Paths    layout.Paths
	Sup      *supervise.Supervisor
	BinDir   string // data/<key>/bin: containerd, runc, kubelet, ...
	Config   *config.Config
	Role     string
	NodeName string
	NodeIP   string
	// SandboxImage is the pause image the airgap archives carry.
	SandboxImage string
	// ClusterDNS and ClusterDomain are the cluster's, as a joined agent
	// learnt them from its server; the config's own win.
	ClusterDNS, ClusterDomain string
}

// WriteRKE2Config writes /etc/rancher/rke2/config.yaml and registries.yaml
// from the node config, so that RKE2's own tools read what the node runs with.
func (s *Stack) WriteRKE2Config() error {
	cfg, err := s.Config.RKE2ConfigYAML()
	if err != nil {
		return err
	}
	if err := writeFile(filepath.Join(s.Paths.EtcDir, "config.yaml"), cfg, 0o600); err != nil {
		return err
	}
	reg, err := s.Config.RegistriesYAML()
	if err != nil {
		return err
	}
	if err := writeFile(filepath.Join(s.Paths.EtcDir, "registries.yaml"), reg, 0o600); err != nil {
		return err
	}
	mirrors := map[string]Mirror{}
	for host, m := range s.Config.Registries.Mirrors {
		mirrors[host] = Mirror{Endpoints: m.Endpoints, Rewrite: m.Rewrites}
	}
	for dir, b := range HostsTOML(mirrors) {
		if err := writeFile(s.Paths.Agent("etc", "containerd", "certs.d", dir, "hosts.toml"), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// StartContainerd writes containerd's config, starts it as RKE2 does and
// waits until its API answers.
func (s *Stack) StartContainerd(ctx context.Context) error {
	cfg, err := ContainerdConfig(ContainerdOptions{Paths: s.Paths, SandboxImage: s.SandboxImage, BinDir: s.BinDir})
	if err != nil {
		return err
	}
	if err := writeFile(s.Paths.ContainerdConfig(), cfg, 0o600); err != nil {
		return err
	}
	for _, d := range []string{s.Paths.RunDir, s.Paths.Agent("containerd")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	env := append(os.Environ(), "PATH="+s.BinDir+":/usr/sbin:/usr/bin:/sbin:/bin")
	err = s.Sup.Add(&supervise.Service{
		Name: "containerd", Path: filepath.Join(s.BinDir, "containerd"), Env: env,
		Args: []string{"-c", s.Paths.ContainerdConfig(), "-a", s.Paths.ContainerdSocket(),
			"--state", s.Paths.RunDir, "--root", s.Paths.Agent("containerd")},
		LogFile:  s.Paths.Agent("containerd", "containerd.log"),
		Critical: true, // containerd exiting stops the node stack, as in RKE2
		// Ready once its socket accepts connections: containerd listens
		// after its plugins have loaded. (The import then waits for the
		// API itself; the init stays free of containerd's client.)
		Ready: func(ctx context.Context) error {
			var d net.Dialer
			c, err := d.DialContext(ctx, "unix", s.Paths.ContainerdSocket())
			if err != nil {
				return err
			}
			return c.Close()
		},
	})
	if err != nil {
		return err
	}
	s.Sup.Start()
	return s.Sup.WaitReady(ctx, "containerd")
}

// StartKubelet writes the kubelet's configuration and starts it; the
// supervisor restarts it after every exit, with backoff. A kubelet that
// is not standalone registers its Node with the config's node-label and
// node-taint through agent/kubelet.kubeconfig; it runs the static pods
// meanwhile, the apiserver's among them.
func (s *Stack) StartKubelet(standalone bool) error {
	o := KubeletOptions{Paths: s.Paths, NodeName: s.NodeName, NodeIP: s.NodeIP, Standalone: standalone}
	if s.Config != nil {
		o.ClusterDNS, o.ClusterDomain = s.Config.RKE2.String("cluster-dns"), s.Config.RKE2.String("cluster-domain")
	}
	if o.ClusterDNS == "" {
		o.ClusterDNS = s.ClusterDNS
	}
	if o.ClusterDomain == "" {
		o.ClusterDomain = s.ClusterDomain
	}
	if s.Config != nil {
		if !standalone {
			o.Labels, o.Taints = s.Config.RKE2.NodeLabels(), s.Config.RKE2.NodeTaints()
		}
	}
	cfg, err := KubeletConfig(o)
	if err != nil {
		return err
	}
	if err := writeFile(filepath.Join(s.Paths.KubeletConfigDir(), "00-rke2-defaults.conf"), cfg, 0o600); err != nil {
		return err
	}
	for _, d := range []string{s.Paths.PodManifests(), "/var/lib/kubelet", s.Paths.Agent("logs")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	env := append(os.Environ(), "PATH="+s.BinDir+":/usr/sbin:/usr/bin:/sbin:/bin")
	return s.Sup.Add(&supervise.Service{
		Name: "kubelet", Path: filepath.Join(s.BinDir, "kubelet"), Env: env,
		Args:    KubeletArgs(o),
		LogFile: s.Paths.Agent("logs", "kubelet.log"),
		Ready: func(ctx context.Context) error {
			return httpOK(ctx, "127.0.0.1:10248", "/healthz")
		},
	}, "containerd")
}

// httpOK asks a plain-HTTP health endpoint on this host (the kubelet's
// healthz) and wants a 200. It speaks HTTP/1.0 over a TCP connection
// itself: net/http would bring TLS, HTTP/2 and their certificate code into
// PID 1 for one local GET.
func httpOK(ctx context.Context, hostport, path string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", hostport)
	if err != nil {
		return err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n", path, hostport); err != nil {
		return err
	}
	line, err := bufio.NewReaderSize(io.LimitReader(c, 4096), 512).ReadString('\n')
	if err != nil {
		return fmt.Errorf("http://%s%s: reading the status line: %w", hostport, path, err)
	}
	if _, status, ok := strings.Cut(strings.TrimSpace(line), " "); !ok || !strings.HasPrefix(line, "HTTP/1.") || !strings.HasPrefix(status, "200") {
		return fmt.Errorf("http://%s%s: %s", hostport, path, strings.TrimSpace(line))
	}
	return nil
}

func writeFile(p string, data []byte, mode os.FileMode) error {
	return durable.WriteFile(p, data, mode)
}
