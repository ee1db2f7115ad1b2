package serverpki

import (
	"fmt"
	"os"

	"sigs.k8s.io/yaml"
)

// kubeconfig is the subset of client-go's clientcmd v1 Config that RKE2
// writes, with its field names: sigs.k8s.io/yaml renders it as
// clientcmd.Write does (JSON field names, keys sorted, []byte as base64),
// without linking client-go for two structs.
type kubeconfig struct {
	APIVersion     string         `json:"apiVersion"`
	Kind           string         `json:"kind"`
	Clusters       []namedCluster `json:"clusters"`
	Contexts       []namedContext `json:"contexts"`
	CurrentContext string         `json:"current-context"`
	Preferences    *struct{}      `json:"preferences,omitempty"`
	Users          []namedUser    `json:"users"`
}

type namedCluster struct {
	Name    string    `json:"name"`
	Cluster kcCluster `json:"cluster"`
}

type kcCluster struct {
	Server                   string `json:"server"`
	CertificateAuthority     string `json:"certificate-authority,omitempty"`
	CertificateAuthorityData []byte `json:"certificate-authority-data,omitempty"`
}

type namedContext struct {
	Name    string    `json:"name"`
	Context kcContext `json:"context"`
}

type kcContext struct {
	Cluster   string `json:"cluster"`
	User      string `json:"user"`
	Namespace string `json:"namespace,omitempty"`
}

type namedUser struct {
	Name string `json:"name"`
	User kcUser `json:"user"`
}

type kcUser struct {
	ClientCertificate     string `json:"client-certificate,omitempty"`
	ClientCertificateData []byte `json:"client-certificate-data,omitempty"`
	ClientKey             string `json:"client-key,omitempty"`
	ClientKeyData         []byte `json:"client-key-data,omitempty"`
}

// fileKubeconfig is a kubeconfig of the control plane and the agent, shaped
// like k3s's (cluster "local", context "Default", user "user"): the CA, the
// certificate and the key are referenced by path, so that a re-issued
// certificate needs no new kubeconfig.
func fileKubeconfig(server, ca, crt, key string) ([]byte, error) {
	return yaml.Marshal(kubeconfig{
		APIVersion:     "v1",
		Kind:           "Config",
		Clusters:       []namedCluster{{Name: "local", Cluster: kcCluster{Server: server, CertificateAuthority: ca}}},
		Contexts:       []namedContext{{Name: "Default", Context: kcContext{Cluster: "local", User: "user", Namespace: "default"}}},
		CurrentContext: "Default",
		Preferences:    &struct{}{},
		Users:          []namedUser{{Name: "user", User: kcUser{ClientCertificate: crt, ClientKey: key}}},
	})
}

// inlineKubeconfig is the admin's rke2.yaml as k3s's WriteClientKubeConfig
// makes it (names "default"): CA, certificate and key inlined, so that the
// file can be copied off the node.
func inlineKubeconfig(server string, ca, crt, key []byte) ([]byte, error) {
	return yaml.Marshal(kubeconfig{
		APIVersion:     "v1",
		Kind:           "Config",
		Clusters:       []namedCluster{{Name: "default", Cluster: kcCluster{Server: server, CertificateAuthorityData: ca}}},
		Contexts:       []namedContext{{Name: "default", Context: kcContext{Cluster: "default", User: "default"}}},
		CurrentContext: "default",
		Users:          []namedUser{{Name: "default", User: kcUser{ClientCertificateData: crt, ClientKeyData: key}}},
	})
}

// kubeconfigs writes server/cred/*.kubeconfig and the agent's kubeconfigs.
func (b *builder) kubeconfigs(server string) error {
	p := b.paths
	serverCA, agentCA := p.Server("tls", "server-ca.crt"), p.Agent("server-ca.crt")
	for _, k := range []struct{ path, ca, cert string }{
		{p.Server("cred", "admin.kubeconfig"), serverCA, p.Server("tls", "client-admin")},
		{p.Server("cred", "supervisor.kubeconfig"), serverCA, p.Server("tls", "client-supervisor")},
		{p.Server("cred", "controller.kubeconfig"), serverCA, p.Server("tls", "client-controller")},
		{p.Server("cred", "scheduler.kubeconfig"), serverCA, p.Server("tls", "client-scheduler")},
		{p.Server("cred", "api-server.kubeconfig"), serverCA, p.Server("tls", "client-kube-apiserver")},
		{p.Server("cred", "cloud-controller.kubeconfig"), serverCA, p.Server("tls", "client-rke2-cloud-controller")},
		{p.Agent("kubelet.kubeconfig"), agentCA, p.Agent("client-kubelet")},
		{p.Agent("kubeproxy.kubeconfig"), agentCA, p.Agent("client-kube-proxy")},
		{p.Agent("rke2controller.kubeconfig"), agentCA, p.Agent("client-rke2-controller")},
	} {
		data, err := fileKubeconfig(server, k.ca, k.cert+".crt", k.cert+".key")
		if err == nil {
			err = b.writeFile(k.path, data, 0o600)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", k.path, err)
		}
	}
	return nil
}

// adminKubeconfig writes the admin's kubeconfig (write-kubeconfig, by
// default /etc/rancher/rke2/rke2.yaml) with write-kubeconfig-mode.
func (b *builder) adminKubeconfig(path, server string, mode os.FileMode) error {
	var data [3][]byte
	for i, f := range []string{b.paths.Server("tls", "server-ca.crt"), b.paths.Server("tls", "client-admin.crt"), b.paths.Server("tls", "client-admin.key")} {
		var err error
		if data[i], err = os.ReadFile(f); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	}
	out, err := inlineKubeconfig(server, data[0], data[1], data[2])
	if err == nil {
		err = b.writeFileIn(path, out, mode, 0o755)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
