package config

import (
	"maps"
	"os"
	"path"
	"regexp"
	"slices"
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

// The README's table of RKE2's keys lists in its "acted on" row exactly
// the keys of RKE2KeysActedOn, and none of them, not even by a pattern
// like etcd-s3*, in its "written, not acted on yet" row.
func TestRKE2KeysInREADME(t *testing.T) {
	b, err := os.ReadFile("../../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string][]string{}
	code := regexp.MustCompile("`([^`]+)`")
	for _, line := range strings.Split(string(b), "\n") {
		cells := strings.Split(line, "|")
		if len(cells) != 4 || (cells[1] != " acted on " && cells[1] != " written, not acted on yet ") {
			continue
		}
		for _, m := range code.FindAllStringSubmatch(cells[2], -1) {
			rows[strings.TrimSpace(cells[1])] = append(rows[strings.TrimSpace(cells[1])], m[1])
		}
	}
	acted, notActed := rows["acted on"], rows["written, not acted on yet"]
	if len(acted) == 0 || len(notActed) == 0 {
		t.Fatalf("README.md has no table of RKE2's keys with rows \"acted on\" and \"written, not acted on yet\"")
	}
	// Words of the rows' notes that are not keys.
	notes := map[string]bool{"KEY+": true, "flannel": true, "none": true}
	listed := map[string]bool{}
	for _, k := range acted {
		if notes[k] {
			continue
		}
		listed[k] = true
		if _, ok := RKE2KeysActedOn[k]; !ok {
			t.Errorf("README.md lists %s as acted on; RKE2KeysActedOn does not", k)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(RKE2KeysActedOn)) {
		if !listed[k] {
			t.Errorf("README.md does not list %s as acted on; RKE2KeysActedOn does", k)
		}
		for _, pattern := range notActed {
			if ok, _ := path.Match(pattern, k); ok || pattern == k {
				t.Errorf("README.md lists %s as not acted on (%s); RKE2KeysActedOn acts on it", k, pattern)
			}
		}
	}
}
