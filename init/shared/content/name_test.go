package content

import (
	"strings"
	"testing"
)

func TestNormalizeName(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{in: "rancher/rke2-runtime:v1", want: "docker.io/rancher/rke2-runtime:v1"},
		{in: "docker.io/rancher/rke2-runtime:v1", want: "docker.io/rancher/rke2-runtime:v1"},
		{in: "index.docker.io/rancher/rke2-runtime:v1", want: "docker.io/rancher/rke2-runtime:v1"},
		{in: "Docker.IO/busybox:1", want: "docker.io/library/busybox:1"},
		{in: "busybox:1", want: "docker.io/library/busybox:1"},
		{in: "registry.example.com:5000/a/b:c", want: "registry.example.com:5000/a/b:c"},
		{in: "localhost:5000/a:1", want: "localhost:5000/a:1"},
		{in: "rancher/x@sha256:" + strings.Repeat("a", 64), want: "docker.io/rancher/x@sha256:" + strings.Repeat("a", 64)},
		{in: "rancher/x", err: "no tag"},
		{in: "localhost:5000/a", err: "no tag"},
		{in: "UPPER/x:1", err: "image name"},
		{in: "", err: "image name"},
	} {
		got, err := NormalizeName(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("NormalizeName(%q) = %q, %v; want error %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("NormalizeName(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

// TestDataKey checks the key against directories real RKE2 releases made
// (as seen on nodes: /var/lib/rancher/rke2/data/v1.28.8-rke2r1-c4073db9beee/bin),
// which pins down exactly which string RKE2 hashes.
func TestDataKey(t *testing.T) {
	for _, tc := range []struct{ version, want string }{
		{"v1.28.8+rke2r1", "v1.28.8-rke2r1-c4073db9beee"},
		{"v1.28.10+rke2r1", "v1.28.10-rke2r1-4fdaccf43ed6"},
		{"v1.28.12+rke2r1", "v1.28.12-rke2r1-aa38cd526ddb"},
	} {
		if got, err := DataKey(RuntimeRef(tc.version)); err != nil || got != tc.want {
			t.Errorf("DataKey(RuntimeRef(%q)) = %q, %v; want %q", tc.version, got, err, tc.want)
		}
	}
	// Another spelling of the same image is another key, as in RKE2.
	if a, b := mustKey(t, "rancher/rke2-runtime:v1.34.4-rke2r1"), mustKey(t, "docker.io/rancher/rke2-runtime:v1.34.4-rke2r1"); a == b {
		t.Errorf("two spellings gave the same key %s", a)
	}
	if got := mustKey(t, "rancher/rke2-runtime@sha256:"+strings.Repeat("ab", 32)); got != strings.Repeat("ab", 32) {
		t.Errorf("digest key = %q", got)
	}
	for _, bad := range []string{"rancher/rke2-runtime:latest", "rancher/rke2-runtime", "rancher/rke2-runtime:dev", "Not A Ref"} {
		if got, err := DataKey(bad); err == nil {
			t.Errorf("DataKey(%q) = %q, want an error", bad, got)
		}
	}
}

func mustKey(t *testing.T, ref string) string {
	t.Helper()
	k, err := DataKey(ref)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
