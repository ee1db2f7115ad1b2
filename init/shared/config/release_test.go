package config

import "testing"

func TestReleaseImage(t *testing.T) {
	r := &Release{RKE2Version: "v1.34.4+rke2r1", Images: []ReleaseImage{
		{Name: "docker.io/rancher/hardened-etcd:v3.6.7-build20250101"},
		{Name: "docker.io/rancher/mirrored-pause:3.10"},
		{Name: "registry.example.com:5000/rancher/mirrored-pause-other:1"},
	}}
	tests := map[string]string{
		"rancher/mirrored-pause": "docker.io/rancher/mirrored-pause:3.10",
		"rancher/hardened-etcd":  "docker.io/rancher/hardened-etcd:v3.6.7-build20250101",
		"rancher/nothing":        "",
		"pause":                  "",
	}
	for repo, want := range tests {
		if got := r.Image(repo); got != want {
			t.Errorf("Image(%q) = %q, want %q", repo, got, want)
		}
	}
}
