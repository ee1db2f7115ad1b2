package config

import (
	"strings"
	"testing"
)

func TestRKE2Warnings(t *testing.T) {
	c, err := Parse("t", []byte("rke2:\n  tls-san: [a.example.com]\n  kube-apiserver-arg+: [v=2]\n  kubelet-arg: [v=2]\n  cni: flannel\n  selinux: true\n"))
	if err != nil {
		t.Fatal(err)
	}
	w := c.RKE2Warnings()
	if len(w) != 2 || !strings.HasPrefix(w[0], "rke2.kubelet-arg is written to /etc/rancher/rke2/config.yaml but not acted on") ||
		!strings.HasPrefix(w[1], "rke2.selinux ") {
		t.Errorf("warnings %q: want kubelet-arg and selinux, not tls-san, kube-apiserver-arg+ or cni", w)
	}
	if w := (&Config{}).RKE2Warnings(); len(w) != 0 {
		t.Errorf("empty config: %q", w)
	}
}
