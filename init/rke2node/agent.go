package rke2node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/rke2os/rke2os/init/rke2node/join"
	"github.com/rke2os/rke2os/init/rke2node/kubenode"
	"github.com/rke2os/rke2os/init/rke2node/lb"
	"github.com/rke2os/rke2os/init/rke2node/pods"
	"github.com/rke2os/rke2os/init/shared/config"
	"github.com/rke2os/rke2os/init/shared/nodesteps"
	"github.com/rke2os/rke2os/internal/backoff"
)

// Join joins an agent to the cluster of the config's server: certificates
// and kubeconfigs through the supervisor, then kube-proxy's static pod.
// While the server is unreachable or not ready it waits, saying so about
// every minute; a refusal (the token, the CA, the name) fails at once.
func (e Env) Join(ctx context.Context, nodeName, nodeIP string) (*nodesteps.JoinResult, error) {
	start := time.Now()
	rc, err := e.rke2Config()
	if err != nil {
		return nil, err
	}
	rel, err := e.release()
	if err != nil {
		return nil, err
	}
	image := rel.Image("rancher/hardened-kubernetes")
	if image == "" {
		return nil, fmt.Errorf("join: the image carries no rancher/hardened-kubernetes (release %s)", e.Release)
	}
	token, err := joinToken(rc)
	if err != nil {
		return nil, err
	}
	pw, err := os.ReadFile(e.NodePasswordFile)
	if err != nil {
		return nil, fmt.Errorf("join: node password: %w", err)
	}
	o := join.Options{Server: rc.Server(), Token: token, NodeName: nodeName, Password: strings.TrimSpace(string(pw)),
		Paths: e.Paths, APIServer: "https://" + e.LBAddr}
	if ip := net.ParseIP(nodeIP); ip != nil {
		o.NodeIPs = []net.IP{ip}
	}
	var st *join.State
	err = backoff.Poll(ctx, 5*time.Second, "the server "+o.Server+" to accept this node", func(ctx context.Context) error {
		var err error
		st, err = join.Join(ctx, o)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("join: %w", err)
	}
	if _, err := e.writeKubeProxy(rc, image, nodeName, nodeIP, st.Config.ClusterCIDR); err != nil {
		return nil, err
	}
	slog.Info("joined", "server", o.Server, "apiservers", strings.Join(st.APIServers, ","))
	return &nodesteps.JoinResult{Server: o.Server, CAHash: st.CAHash, APIServers: st.APIServers,
		ClusterDNS: st.Config.ClusterDNS, ClusterDomain: st.Config.ClusterDomain, Seconds: time.Since(start).Seconds()}, nil
}

// joinToken is the config's token, or the content of its token-file.
func joinToken(rc config.RKE2Config) (string, error) {
	if t := rc.Token(); t != "" {
		return t, nil
	}
	if f := rc.String("token-file"); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return "", fmt.Errorf("join: token-file: %w", err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	return "", errors.New("join: the config sets server: but no token: (the server's /var/lib/rancher/rke2/server/node-token)")
}

func (e Env) writeKubeProxy(rc config.RKE2Config, image, nodeName, nodeIP, clusterCIDR string) (bool, error) {
	if c := rc.String("cluster-cidr"); c != "" {
		clusterCIDR = c
	}
	pod := pods.KubeProxyPod(pods.KubeProxyOptions{Paths: e.Paths, Image: image, NodeName: nodeName, NodeIP: nodeIP,
		ClusterCIDR: clusterCIDR, ExtraArgs: rc.Strings("kube-proxy-arg")})
	changed, err := e.staticPod(rc, pod)
	if err != nil {
		return false, fmt.Errorf("kube-proxy: %w", err)
	}
	return changed, nil
}

// Agent is an agent's long-running side: the load balancer its kubelet
// and kube-proxy reach the apiservers through, kept current from the
// supervisors, and node-ready once its Node is Ready.
func (e Env) Agent(ctx context.Context, nodeName, _ string) error {
	st, err := join.ReadState(e.Paths)
	if err != nil {
		return fmt.Errorf("agent: %w (the join step writes it)", err)
	}
	rc, err := e.rke2Config()
	if err != nil {
		return err
	}
	token, err := joinToken(rc)
	if err != nil {
		return err
	}
	b := lb.New(st.APIServers)
	ln, err := net.Listen("tcp", e.LBAddr)
	if err != nil {
		return fmt.Errorf("agent: load balancer: %w", err)
	}
	go func() {
		if err := b.Serve(ctx, ln); err != nil {
			slog.Error("load balancer", "err", err)
		}
	}()
	slog.Info("load balancer listening", "addr", e.LBAddr, "backends", strings.Join(st.APIServers, ","))
	go e.refreshBackends(ctx, b, st.Server, token)

	kc, err := kubenode.Client(e.Paths.Agent("kubelet.kubeconfig"), "")
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	return e.readyThenStay(ctx, kc, nodeName, config.RoleAgent)
}

// refreshBackends asks the supervisors (the configured server first, then
// each known apiserver's host) for the apiservers, every 30 seconds.
func (e Env) refreshBackends(ctx context.Context, b *lb.Balancer, server, token string) {
	for {
		if !backoff.Sleep(ctx, 30*time.Second) {
			return
		}
		var errs []error
		for _, s := range supervisors(server, b.Backends()) {
			addrs, err := join.APIServers(ctx, s, token, e.Paths.Agent("server-ca.crt"))
			if err == nil {
				b.SetBackends(addrs)
				errs = nil
				break
			}
			errs = append(errs, err)
		}
		if len(errs) > 0 {
			slog.Warn("load balancer: no supervisor answers", "err", errors.Join(errs...))
		}
	}
}

// supervisors are the supervisor URLs to ask: the configured one, then
// port 9345 of each apiserver's host.
func supervisors(server string, apiservers []string) []string {
	out := []string{server}
	port := "9345"
	if u, err := url.Parse(server); err == nil && u.Port() != "" {
		port = u.Port()
	}
	for _, a := range apiservers {
		if h, _, err := net.SplitHostPort(a); err == nil {
			if s := "https://" + net.JoinHostPort(h, port); !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	return out
}
