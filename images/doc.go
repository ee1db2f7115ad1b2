// Package images holds the recipes that build, from source and offline, the
// container images RKE2 runs: build.sh compiles containerd, runc, the
// Kubernetes components, etcd, crictl, the CNI plugins and pause from their
// Go modules at the versions in versions.env, and cmd/mkimages writes them as
// the docker-save archive rke2-images.linux-amd64.tar.zst, under RKE2's own
// image names. build.sh conformance-images builds, apart from them, the
// images Kubernetes' conformance tests run (agnhost, busybox, httpd, nginx,
// ...) from their sources and Debian's packages, for make conformance.
// This package's tests check both archives.
package images
