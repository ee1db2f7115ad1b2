package rke2node

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/rke2os/rke2os/init/rke2node/join"
	"github.com/rke2os/rke2os/init/rke2node/pods"
	"github.com/rke2os/rke2os/init/rke2node/supervisorapi"
	"github.com/rke2os/rke2os/init/shared/config"
	"github.com/rke2os/rke2os/internal/backoff"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// serveSupervisor starts RKE2's supervisor on :9345 with the apiserver's
// serving certificate (its names are the server's: tls-san, node name
// and addresses). /cacerts and /ping answer at once; what needs the
// cluster answers 503 until clusterReady hands it the apiserver.
func (e Env) serveSupervisor(ctx context.Context, cp pods.ControlPlane, rc config.RKE2Config, admin *http.Client) (*supervisorapi.Server, error) {
	d := cp.WithDefaults()
	cfg := supervisorapi.AgentConfig{ClusterCIDR: d.ClusterCIDR, ServiceCIDR: d.ServiceCIDR, ClusterDomain: d.ClusterDomain,
		ClusterDNS: cmp.Or(rc.String("cluster-dns"), "10.43.0.10")}
	s, err := supervisorapi.New(e.Paths, cfg, func(ctx context.Context) error { return httpOK(ctx, admin, e.APIServerURL+"/readyz") })
	if err != nil {
		return nil, err
	}
	pair, err := tls.LoadX509KeyPair(e.Paths.Server("tls", "serving-kube-apiserver.crt"), e.Paths.Server("tls", "serving-kube-apiserver.key"))
	if err != nil {
		return nil, fmt.Errorf("supervisor: %w", err)
	}
	ln, err := net.Listen("tcp", e.SupervisorAddr)
	if err != nil {
		return nil, fmt.Errorf("supervisor: %w", err)
	}
	tln := tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12})
	go func() {
		if err := s.Serve(ctx, tln); err != nil {
			slog.Error("supervisor", "err", err)
		}
	}()
	slog.Info("supervisor listening", "addr", ln.Addr().String())
	return s, nil
}

// clusterReady hands the supervisor the running cluster: node passwords
// kept in secrets, the apiservers' addresses, etcd's members. It also
// gives, now and then, each node password secret its Node as owner.
func (e Env) clusterReady(ctx context.Context, s *supervisorapi.Server, kc kubernetes.Interface, etcd *http.Client, nodeName string) error {
	np := &supervisorapi.NodePasswords{Kube: kc}
	// The server's own name first, before any node may claim names: a
	// server issues its own kubelet certificates, so without its claim the
	// name would go to the first token holder who asks for it.
	err := backoff.Poll(ctx, 5*time.Second, "the apiserver to record this server's node password", func(ctx context.Context) error {
		return e.claimOwnName(ctx, np, nodeName)
	})
	if err != nil {
		return err
	}
	s.SetCluster(&supervisorapi.Cluster{
		Passwords:  np,
		APIServers: func(ctx context.Context) ([]string, error) { return apiServers(ctx, kc) },
		Members:    func(ctx context.Context) (json.RawMessage, error) { return etcdMembers(ctx, etcd, e.EtcdURL) },
		Nodes: func(ctx context.Context) ([]corev1.Node, error) {
			// A consistent read, not the watch cache's: a Node registered
			// a moment ago must count.
			list, err := kc.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
			if err != nil {
				return nil, err
			}
			return list.Items, nil
		},
	})
	go func() {
		for {
			if err := np.Adopt(ctx); err != nil && ctx.Err() == nil {
				slog.Warn("node passwords", "err", err)
			}
			if !backoff.Sleep(ctx, 30*time.Second) {
				return
			}
		}
	}()
	return nil
}

// claimOwnName claims the server's node name with its node password
// (NodePasswordFile), as an agent's join does through the supervisor. A
// name claimed with another password is a permanent error with the fix.
func (e Env) claimOwnName(ctx context.Context, np *supervisorapi.NodePasswords, name string) error {
	b, err := os.ReadFile(e.NodePasswordFile)
	if err != nil {
		return &join.PermanentError{Err: fmt.Errorf("node password: %w", err)}
	}
	pw := strings.TrimSpace(string(b))
	if pw == "" {
		return &join.PermanentError{Err: fmt.Errorf("node password: %s is empty", e.NodePasswordFile)}
	}
	err = np.ClaimOwn(ctx, name, pw)
	if errors.Is(err, supervisorapi.ErrPasswordRejected) {
		return &join.PermanentError{Err: fmt.Errorf("node %s: the name is claimed with another password than this server's (%s): give this server another node-name, or, if the name is rightly this server's, kubectl -n kube-system delete secret %s", name, e.NodePasswordFile, supervisorapi.SecretName(name))}
	}
	if err != nil {
		return fmt.Errorf("node %s: claim its name: %w", name, err)
	}
	return nil
}

// apiServers are the addresses of the cluster's apiservers, the endpoints
// of the kubernetes service, as k3s reads them.
func apiServers(ctx context.Context, kc kubernetes.Interface) ([]string, error) {
	list, err := kc.DiscoveryV1().EndpointSlices(metav1.NamespaceDefault).List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=kubernetes"})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, sl := range list.Items {
		for _, p := range sl.Ports {
			if p.Port == nil {
				continue
			}
			for _, ep := range sl.Endpoints {
				if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
					continue
				}
				for _, a := range ep.Addresses {
					out = append(out, net.JoinHostPort(a, strconv.Itoa(int(*p.Port))))
				}
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("the kubernetes service has no ready endpoints")
	}
	return out, nil
}

// etcdMembers is etcd's member list, asked through its JSON gateway.
func etcdMembers(ctx context.Context, c *http.Client, etcdURL string) (json.RawMessage, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, etcdURL+"/v3/cluster/member/list", bytes.NewReader([]byte("{}")))
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("etcd member list: %s %s", resp.Status, b)
	}
	if !json.Valid(b) {
		return nil, fmt.Errorf("etcd member list: not JSON")
	}
	return b, nil
}
