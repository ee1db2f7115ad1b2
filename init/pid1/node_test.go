package pid1

import (
	"slices"
	"testing"

	"github.com/rke2os/rke2os/init/shared/config"
)

// The etcd step gets the config's join.trust_on_first_use as a flag: it
// reads RKE2's config.yaml only, which has no such key.
func TestEtcdArgs(t *testing.T) {
	on := true
	for _, tc := range []struct {
		cfg  *config.Config
		want string
	}{
		{&config.Config{}, "--trust-on-first-use=false"},
		{&config.Config{Join: config.Join{TrustOnFirstUse: &on}}, "--trust-on-first-use=true"},
	} {
		got := etcdArgs(tc.cfg, "node1", "10.0.0.1")
		if want := []string{"--node-name=node1", "--node-ip=10.0.0.1", tc.want}; !slices.Equal(got, want) {
			t.Errorf("etcdArgs = %q, want %q", got, want)
		}
	}
}
