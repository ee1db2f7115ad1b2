package rke2node

import (
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/rke2os/rke2os/init/rke2node/kubenode"
)

// clients are the server's own controllers' clients, of the supervisor's
// kubeconfig: cluster-admin, as RKE2's controllers.
type clients struct {
	rest *rest.Config
	kube kubernetes.Interface
	dyn  dynamic.Interface
}

// supervisorClients are the clients of the supervisor's kubeconfig, with
// userAgent ("" for client-go's). watches drops the client timeout, which
// would end informers' watches: the caller bounds its own requests.
func (e Env) supervisorClients(userAgent string, watches bool) (clients, error) {
	rc, err := kubenode.Config(e.Paths.Server("cred", "supervisor.kubeconfig"), e.APIServerURL)
	if err != nil {
		return clients{}, err
	}
	if watches {
		rc.Timeout = 0
	}
	if userAgent != "" {
		rc.UserAgent = userAgent
	}
	kube, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return clients{}, err
	}
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		return clients{}, err
	}
	return clients{rest: rc, kube: kube, dyn: dyn}, nil
}
