package content

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// dockerHub is how this package spells Docker Hub's registry in a normalised
// name, as containerd and RKE2 do ("docker.io/rancher/rke2-runtime:...").
// go-containerregistry says "index.docker.io".
const dockerHub = "docker.io"

// RuntimeRepo is the runtime image's repository, as RKE2's release builds
// set it (-X .../pkg/images.DefaultRuntimeImage=rancher/rke2-runtime:<tag>).
const RuntimeRepo = "rancher/rke2-runtime"

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

// RuntimeTag turns an RKE2 version into the rke2-runtime image's tag:
// "v1.34.4+rke2r1" becomes "v1.34.4-rke2r1", since "+" is not allowed in tags.
func RuntimeTag(rke2Version string) string {
	return strings.ReplaceAll(rke2Version, "+", "-")
}

// RuntimeRef is the runtime image of an RKE2 version, spelt as RKE2 spells
// it: "rancher/rke2-runtime:v1.34.4-rke2r1". The spelling matters: DataKey
// hashes it.
func RuntimeRef(rke2Version string) string {
	return RuntimeRepo + ":" + RuntimeTag(rke2Version)
}

// splitTag splits a normalised name into repository and tag ("" if none).
func splitTag(n string) (repo, tag string) {
	if i := strings.LastIndex(n, ":"); i > strings.LastIndex(n, "/") {
		return n[:i], n[i+1:]
	}
	return n, ""
}

// releaseTag is what RKE2 takes for a release tag (pkg/bootstrap's
// releasePattern).
var releaseTag = regexp.MustCompile(`^v[0-9]`)

// DataKey is the name of the directory under data/ that RKE2 extracts the
// runtime image ref into, computed as RKE2's releaseRefDigest does: for a
// tag that looks like a release, the tag, a dash and the first 12 hex
// digits of the sha256 of ref exactly as written (not normalised:
// "rancher/rke2-runtime:v1.28.8-rke2r1" gives "v1.28.8-rke2r1-c4073db9beee",
// what RKE2 v1.28.8 makes); for a digest, its hex. Any other reference is
// an error, as in RKE2.
func DataKey(ref string) (string, error) {
	r, err := name.ParseReference(ref, name.WeakValidation)
	if err != nil {
		return "", fmt.Errorf("runtime image %q: %w", ref, err)
	}
	switch r := r.(type) {
	case name.Tag:
		if releaseTag.MatchString(r.TagStr()) {
			sum := sha256.Sum256([]byte(ref))
			return r.TagStr() + "-" + hex.EncodeToString(sum[:])[:12], nil
		}
	case name.Digest:
		_, hexPart, _ := strings.Cut(r.DigestStr(), ":")
		return hexPart, nil
	}
	return "", fmt.Errorf("runtime image %q is neither a digest nor a release tag like v1.34.4-rke2r1", ref)
}
