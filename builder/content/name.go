package content

import (
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// dockerHub is how this package spells Docker Hub's registry in a normalised
// name, as containerd and RKE2 do ("docker.io/rancher/rke2-runtime:...").
// go-containerregistry says "index.docker.io".
const dockerHub = "docker.io"

// NormalizeName returns ref in the one form images are compared in: the
// registry always present ("docker.io" for Docker Hub, whether given as
// nothing, "docker.io" or "index.docker.io"), "library/" for Docker Hub's
// official images, and the tag or digest kept. "rancher/pause:3.10" becomes
// "docker.io/rancher/pause:3.10". A reference without a tag or digest is an
// error: "latest" is never assumed.
func NormalizeName(ref string) (string, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return "", fmt.Errorf("image name %q: %w", ref, err)
	}
	reg := strings.ToLower(r.Context().RegistryStr())
	if reg == name.DefaultRegistry || reg == dockerHub {
		reg = dockerHub
	}
	repo := r.Context().RepositoryStr()
	if reg == dockerHub && !strings.Contains(repo, "/") {
		repo = "library/" + repo // go-containerregistry misses "Docker.IO/x"
	}
	var n string
	switch r := r.(type) {
	case name.Tag:
		if !hasExplicitTag(ref) {
			return "", fmt.Errorf("image name %q has no tag", ref)
		}
		n = reg + "/" + repo + ":" + r.TagStr()
	case name.Digest:
		n = reg + "/" + repo + "@" + r.DigestStr()
	default:
		return "", fmt.Errorf("image name %q: neither tag nor digest", ref)
	}
	// Adding "library/" can make a name too long to be one.
	if _, err := name.ParseReference(n); err != nil {
		return "", fmt.Errorf("image name %q: %w", ref, err)
	}
	return n, nil
}

// hasExplicitTag tells whether the last path element of ref carries a tag.
func hasExplicitTag(ref string) bool {
	return strings.Contains(ref[strings.LastIndex(ref, "/")+1:], ":")
}

// runtimeTag turns an RKE2 version into the rke2-runtime image's tag:
// "v1.34.4+rke2r1" becomes "v1.34.4-rke2r1", since "+" is not allowed in tags.
func runtimeTag(rke2Version string) string {
	return strings.ReplaceAll(rke2Version, "+", "-")
}

// splitTag splits a normalised name into repository and tag ("" if none).
func splitTag(n string) (repo, tag string) {
	if i := strings.LastIndex(n, ":"); i > strings.LastIndex(n, "/") {
		return n[:i], n[i+1:]
	}
	return n, ""
}
