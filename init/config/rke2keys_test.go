package config

import (
	"strings"
	"testing"
)

func TestRKE2Warnings(t *testing.T) {
	c, err := Parse("t", []byte("rke2:\n  tls-san: [a.example.com]\n  kube-apiserver-arg+: [v=2]\n  etcd-snapshot-schedule-cron: \"0 */5 * * *\"\n  cni: flannel\n"))
	if err != nil {
		t.Fatal(err)
	}
	w := c.RKE2Warnings()
	if len(w) != 2 || !strings.HasPrefix(w[0], "rke2.cni is written to /etc/rancher/rke2/config.yaml but not acted on") ||
		!strings.HasPrefix(w[1], "rke2.etcd-snapshot-schedule-cron ") {
		t.Errorf("warnings %q: want cni and etcd-snapshot-schedule-cron, not tls-san or kube-apiserver-arg+", w)
	}
	if w := (&Config{}).RKE2Warnings(); len(w) != 0 {
		t.Errorf("empty config: %q", w)
	}
}
