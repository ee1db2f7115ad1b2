package serverpki

import (
	"fmt"

	"github.com/rke2os/rke2os/init/shared/layout"
)

// ClusterSecrets are the secrets the supervisor checks a caller's basic
// auth against: the servers' ("server" in server/cred/passwd) and the
// agents' ("node", the agent-token's secret, or the server's when no
// agent-token is set).
func ClusterSecrets(p layout.Paths) (server, agent string, err error) {
	users, err := readPasswd(p.Server("cred", "passwd"))
	if err != nil {
		return "", "", fmt.Errorf("cluster secrets: %w", err)
	}
	server, agent = users["server"].secret, users["node"].secret
	if server == "" {
		return "", "", fmt.Errorf("cluster secrets: %s has no server secret", p.Server("cred", "passwd"))
	}
	if agent == "" {
		agent = server
	}
	return server, agent, nil
}

// FileKubeconfig is a kubeconfig shaped like k3s's whose CA, certificate
// and key are files (an agent's kubelet.kubeconfig and
// kubeproxy.kubeconfig).
func FileKubeconfig(server, ca, crt, key string) ([]byte, error) {
	return fileKubeconfig(server, ca, crt, key)
}

// BootstrapFiles are the files below server/ a further server takes from
// the first one (RKE2's server-bootstrap): the CAs with their keys, the
// service account key, the secrets encryption config and the cluster's
// passwd. Everything else a server makes for itself.
func BootstrapFiles() []string {
	var files []string
	for _, c := range clusterCAs {
		files = append(files, c.rel+".crt", c.rel+".key")
	}
	return append(files, "tls/service.key", "cred/passwd", "cred/encryption-config.json")
}
