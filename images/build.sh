#!/usr/bin/env bash
# Builds the binaries inside RKE2's images from their Go modules (nothing but
# the Go module proxy is needed), then writes the images as docker-save
# archives with images/cmd/mkimages.
#
# usage: images/build.sh [OUTDIR [CACHEDIR [COMPONENT...]]]
#
#   OUTDIR    where the archives go            (default: build/images)
#   CACHEDIR  binaries by component-version,   (default: build/cache)
#             wrapper modules and the GOCACHE
#   COMPONENT build only these (kubernetes etcd containerd runc crictl
#             cni-plugins pause iptables flannel coredns testworkload
#             versitygw; e2e and e2e-smoke, after kubernetes, only when
#             named) and
#             write no archive; conformance-images (only when named)
#             builds what Kubernetes' conformance tests run (agnhost,
#             busybox, httpd, nginx, ...: see below) and writes
#             rke2os-conformance-images.linux-amd64.tar.zst
#
# Each component lands in CACHEDIR/<component>-<version>/ with a .stamp file
# naming what built it (version, Go version, the recipe below); a rerun with
# nothing changed skips it. Versions live in images/versions.env.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
out=$(realpath -m "${1:-$root/build/images}")
cache=$(realpath -m "${2:-$root/build/cache}")
shift $(($# < 2 ? $# : 2))

# shellcheck source=versions.env
source "$here/versions.env"

# One GOCACHE for every component: kubelet, kube-apiserver, ... share most of
# their packages, and containerd, crictl and the CNI plugins share many.
export GOCACHE="${IMAGES_GOCACHE:-$cache/go-build}"
export GOTOOLCHAIN=local
export GOFLAGS="-buildvcs=false -trimpath"
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-0}"
go_version=$(go env GOVERSION)
build_date=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)

log() { printf 'images: %s\n' "$*" >&2; }

# component NAME VERSION RECIPE BINARY... builds CACHEDIR/NAME-VERSION with
# RECIPE (a function called with the target dir) unless its stamp matches.
# The stamp holds a hash of the recipe's own text, so a changed flag rebuilds.
component() {
	local name=$1 version=$2 recipe=$3
	shift 3
	local dir=$cache/$name-$version
	local key
	key="$name $version $go_version recipe=$(declare -f "$recipe" | sha256sum | cut -c1-16) extra=${KEY_EXTRA:-} bins=$*"
	if [[ -f $dir/.stamp && "$(<"$dir/.stamp")" == "$key" ]]; then
		log "$name $version: cached in $dir"
		return
	fi
	local tmp=$dir.tmp start=$SECONDS
	rm -rf "$tmp"
	mkdir -p "$tmp"
	log "$name $version: building"
	"$recipe" "$tmp" "$version"
	local b
	for b in "$@"; do
		if [[ ! -x $tmp/$b ]]; then
			log "$name $version: recipe did not produce $b"
			exit 1
		fi
	done
	printf '%s\n' "$key" >"$tmp/.stamp"
	rm -rf "$dir"
	mv "$tmp" "$dir"
	log "$name $version: built in $((SECONDS - start))s"
}

# wrapper NAME writes an empty module at CACHEDIR/wrap/NAME and prints its
# path. A module of our own is how a module with replace directives (which
# `go install mod@version` refuses) gets built: only the main module's
# replaces count, and ours point at published versions.
wrapper() {
	local dir=$cache/wrap/$1
	mkdir -p "$dir"
	printf 'module rke2os.local/wrap/%s\n\ngo %s\n' "$1" "${go_version#go}" >"$dir/go.mod"
	: >"$dir/go.sum"
	echo "$dir"
}

# gomod_of DIR MODULE@VERSION prints the path of that go.mod in the module
# cache, downloading it from within DIR (a wrapper, so that no other go.sum
# learns of it).
gomod_of() {
	(cd "$1" && go mod download -json "$2") | sed -n 's/^\t"GoMod": "\(.*\)",$/\1/p'
}

recipe_kubernetes() {
	local target=$1 version=$2 w staging mod
	w=$(wrapper "kubernetes-$version")
	staging="v0.${version#v1.}"
	(cd "$w" && go mod edit -require "k8s.io/kubernetes@$version")
	# k8s.io/kubernetes replaces each k8s.io/<staging> module with its own
	# ./staging/src copy; ours points each at the published v0.Y.Z instead.
	local gomod edits=()
	gomod=$(gomod_of "$w" "k8s.io/kubernetes@$version")
	for mod in $(awk '$2 == "=>" && $3 ~ /^\.\/staging\// { print $1 }' "$gomod"); do
		edits+=(-replace "$mod=$mod@$staging")
	done
	if ((${#edits[@]} == 0)); then
		log "no staging replaces found in $gomod"
		return 1
	fi
	(cd "$w" && go mod edit "${edits[@]}")
	local minor=${version#v1.}
	minor=${minor%%.*}
	local ldflags="-s -w"
	local pkg
	for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		ldflags+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
		ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$build_date"
	done
	# One invocation for all six: they share most of the compile.
	(cd "$w" && CGO_ENABLED=0 GOFLAGS="$GOFLAGS -mod=mod" go build -ldflags "$ldflags" -o "$target/" \
		k8s.io/kubernetes/cmd/kubelet \
		k8s.io/kubernetes/cmd/kubectl \
		k8s.io/kubernetes/cmd/kube-apiserver \
		k8s.io/kubernetes/cmd/kube-controller-manager \
		k8s.io/kubernetes/cmd/kube-scheduler \
		k8s.io/kubernetes/cmd/kube-proxy)
}

# e2e_binary TARGET VERSION NAME PACKAGE [GO TEST FLAG...] builds
# TARGET/NAME, the test binary of PACKAGE, in the wrapper module
# recipe_kubernetes made for VERSION, so it shares that build's packages
# in the GOCACHE, with the version stamped as in the kubernetes binaries.
# (Its text is in the keys of the e2e components: a change rebuilds them.)
e2e_binary() {
	local target=$1 version=$2 name=$3 package=$4 w minor ldflags="-s -w" pkg
	shift 4
	w=$cache/wrap/kubernetes-$version
	if ! grep -q "k8s.io/kubernetes $version" "$w/go.mod" 2>/dev/null; then
		log "$name $version: build kubernetes $version first (its wrapper module $w)"
		return 1
	fi
	minor=${version#v1.}
	minor=${minor%%.*}
	for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		ldflags+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
		ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$build_date"
	done
	(cd "$w" && CGO_ENABLED=0 GOFLAGS="$GOFLAGS -mod=mod" go test -c "$@" -ldflags "$ldflags" -o "$target/$name" "$package")
}

# Kubernetes' own e2e tests, for make conformance on the host (never in an
# image).
recipe_e2e() {
	e2e_binary "$1" "$2" e2e.test k8s.io/kubernetes/test/e2e
}

# The conformance smoke's e2e binary, for make test: Kubernetes' own e2e
# suite setup and the API machinery, auth and network suites
# (images/e2esmoke, copied into the wrapper module), the other suites left
# out: 212 s against e2e.test's 253 s on 2 cores after the kubernetes
# binaries (most of either is the framework both link).
recipe_e2e_smoke() {
	local w=$cache/wrap/kubernetes-$2
	rm -rf "$w/e2esmoke"
	mkdir -p "$w/e2esmoke"
	cp "$here/e2esmoke/e2esmoke_test.go" "$w/e2esmoke/"
	e2e_binary "$1" "$2" e2e-smoke.test ./e2esmoke -tags e2esmoke
}

recipe_etcd() {
	local target=$1 version=$2 w mod
	w=$(wrapper "etcd-$version")
	(cd "$w" && go mod edit -require "go.etcd.io/etcd/server/v3@$version" -require "go.etcd.io/etcd/etcdctl/v3@$version" -require "go.etcd.io/etcd/etcdutl/v3@$version")
	for mod in go.etcd.io/etcd/api/v3 go.etcd.io/etcd/client/pkg/v3 go.etcd.io/etcd/client/v3 go.etcd.io/etcd/pkg/v3; do
		(cd "$w" && go mod edit -replace "$mod=$mod@$version")
	done
	(cd "$w" && CGO_ENABLED=0 GOFLAGS="$GOFLAGS -mod=mod" go build -ldflags "-s -w" -o "$target/etcd" go.etcd.io/etcd/server/v3)
	(cd "$w" && CGO_ENABLED=0 GOFLAGS="$GOFLAGS -mod=mod" go build -ldflags "-s -w" -o "$target/etcdctl" go.etcd.io/etcd/etcdctl/v3)
	# etcdutl restores a snapshot (cluster-reset-restore-path) with the
	# code of the etcd that will run on the restored data.
	(cd "$w" && CGO_ENABLED=0 GOFLAGS="$GOFLAGS -mod=mod" go build -ldflags "-s -w" -o "$target/etcdutl" go.etcd.io/etcd/etcdutl/v3)
}

recipe_containerd() {
	local target=$1 version=$2 w
	w=$(wrapper "containerd-$version")
	(cd "$w" && go mod edit -require "github.com/containerd/containerd/v2@$version")
	local v=github.com/containerd/containerd/v2/version
	(cd "$w" && CGO_ENABLED=0 GOFLAGS="$GOFLAGS -mod=mod" go build \
		-tags "urfave_cli_no_docs no_btrfs no_devmapper" \
		-ldflags "-s -w -X $v.Version=$version -X $v.Revision=rke2os" -o "$target/" \
		github.com/containerd/containerd/v2/cmd/containerd \
		github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2 \
		github.com/containerd/containerd/v2/cmd/ctr)
}

recipe_runc() {
	local target=$1 version=$2
	if ! dpkg -s libseccomp-dev >/dev/null 2>&1; then
		log "installing libseccomp-dev (runc links it statically)"
		apt-get install -y libseccomp-dev >&2 || { apt-get update >&2 && apt-get install -y libseccomp-dev >&2; }
	fi
	# runc needs cgo for seccomp; -extldflags -static keeps it free of
	# ld.so. GOFLAGS=-mod=... is not allowed with `go install mod@version`.
	GOBIN="$target" CGO_ENABLED=1 go install -tags seccomp \
		-ldflags "-s -w -extldflags -static" "github.com/opencontainers/runc@$version"
}

recipe_crictl() {
	local target=$1 version=$2 w
	w=$(wrapper "crictl-$version")
	(cd "$w" && go mod edit -require "sigs.k8s.io/cri-tools@$version")
	# The checksum database does not know cri-tools: check the hashes
	# pinned in versions.env instead of asking it.
	printf 'sigs.k8s.io/cri-tools %s %s\nsigs.k8s.io/cri-tools %s/go.mod %s\n' \
		"$version" "$CRICTL_MODULE_SUM" "$version" "$CRICTL_GOMOD_SUM" >"$w/go.sum"
	# cri-tools requires release candidates of the k8s.io modules, which
	# the checksum database does not know either: use the released ones
	# of our Kubernetes version.
	local gomod mod edits=()
	gomod=$(gomod_of "$w" "sigs.k8s.io/cri-tools@$version")
	for mod in $(awk '$1 ~ /^k8s\.io\// && $2 ~ /^v0\.[1-9][0-9]*\./ { print $1 }' "$gomod"); do
		edits+=(-replace "$mod=$mod@v0.${KUBERNETES_VERSION#v1.}")
	done
	if ((${#edits[@]} > 0)); then
		(cd "$w" && go mod edit "${edits[@]}")
	fi
	(cd "$w" && CGO_ENABLED=0 GOFLAGS="$GOFLAGS -mod=mod" go build \
		-ldflags "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$version" -o "$target/crictl" \
		sigs.k8s.io/cri-tools/cmd/crictl)
}

recipe_cni_plugins() {
	local target=$1 version=$2 w p pkgs=()
	w=$(wrapper "cni-plugins-$version")
	(cd "$w" && go mod edit -require "github.com/containernetworking/plugins@$version")
	for p in main/bridge main/loopback main/ptp main/host-device main/macvlan main/ipvlan main/vlan \
		ipam/host-local ipam/static meta/portmap meta/bandwidth meta/firewall meta/tuning meta/sbr meta/vrf; do
		pkgs+=("github.com/containernetworking/plugins/plugins/$p")
	done
	(cd "$w" && CGO_ENABLED=0 GOFLAGS="$GOFLAGS -mod=mod" go build \
		-ldflags "-s -w -X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion=$version" \
		-o "$target/" "${pkgs[@]}")
}

# Debian's iptables and nftables (kube-proxy, flannel and the host's CNI
# plugins run them) and mount (the kubelet mounts a pod's service account
# token as a tmpfs with it) with the libraries they link, unpacked from the
# .debs as the kernel is: no static builds exist. Their version is Debian's
# of the day, so the cache key is every package's resolved version.
IPTABLES_DEBS="iptables libip4tc2 libip6tc2 libxtables12 libmnl0 libnetfilter-conntrack3 libnfnetlink0
	libnftnl11 nftables libnftables1 libedit2 libjansson4 libbsd0 libmd0 libtinfo6 libgmp10 libc6 netbase
	mount libmount1 libblkid1 libselinux1 libsmartcols1 libpcre2-8-0"
# The loader and the parts of libc6 these programs link.
IPTABLES_LIBC="ld-linux-x86-64.so.2 libc.so.6 libm.so.6 libdl.so.2 libpthread.so.0 librt.so.1 libresolv.so.2"

recipe_iptables() {
	local target=$1 root=$1/root d f
	mkdir -p "$target/debs" "$root" "$target/libc6"
	# shellcheck disable=SC2086
	(cd "$target/debs" && apt-get download -qq $IPTABLES_DEBS 2>/dev/null) ||
		{ apt-get update -qq && (cd "$target/debs" && apt-get download -qq $IPTABLES_DEBS); }
	for d in "$target"/debs/*.deb; do
		case ${d##*/} in
		libc6_*) dpkg-deb -x "$d" "$target/libc6" ;;
		*) dpkg-deb -x "$d" "$root" ;;
		esac
	done
	# Of libc6, the loader and the libraries these programs link.
	mkdir -p "$root/lib/x86_64-linux-gnu" "$root/lib64"
	for f in $IPTABLES_LIBC; do
		cp -a "$target/libc6/lib/x86_64-linux-gnu/$f" "$root/lib/x86_64-linux-gnu/"
	done
	rm -rf "$target/debs" "$target/libc6" "$root/usr/share" "$root/usr/lib/x86_64-linux-gnu/audit" \
		"$root/usr/bin" "$root/sbin"
	# What update-alternatives does in iptables' postinst: the nft
	# variants (priority 20) win over legacy (10).
	for f in iptables iptables-restore iptables-save ip6tables ip6tables-restore ip6tables-save; do
		ln -sfn xtables-nft-multi "$root/usr/sbin/$f"
	done
	for f in arptables ebtables; do
		for d in "" -restore -save; do ln -sfn "$f-nft$d" "$root/usr/sbin/$f$d"; done
	done
	ln -sfn ../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 "$root/lib64/ld-linux-x86-64.so.2"
	# Every library the programs link must be in the tree: the tree's own
	# loader lists what it would load (no root needed), all from the tree.
	for f in usr/sbin/xtables-nft-multi usr/sbin/nft bin/mount bin/umount; do
		local libs
		libs=$(LD_TRACE_LOADED_OBJECTS=1 "$root/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" --inhibit-cache \
			--library-path "$root/lib/x86_64-linux-gnu:$root/usr/lib/x86_64-linux-gnu" "$root/$f") ||
			{ log "iptables: $f does not load"; return 1; }
		if grep -v -e "=> $root/" -e 'linux-vdso' -e "^\s*$root/" <<<"$libs" | grep -q .; then
			log "iptables: $f needs libraries from outside the tree:"
			grep -v -e "=> $root/" -e 'linux-vdso' -e "^\s*$root/" <<<"$libs" >&2
			return 1
		fi
	done
	printf '%s\n' "$IPTABLES_RESOLVED" >"$target/debs.txt"
	ln -sfn root/usr/sbin/xtables-nft-multi "$target/xtables-nft-multi"
}

recipe_flannel() {
	local target=$1 version=$2 w
	w=$(wrapper "flannel-$version")
	(cd "$w" && go mod edit -require "github.com/flannel-io/flannel@$version" \
		-replace "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/vpc=github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/vpc@$FLANNEL_TENCENT_VPC")
	# The udp backend is cgo: a static binary, with Go's own resolver and
	# user lookup so that no glibc NSS module is needed at run time.
	(cd "$w" && CGO_ENABLED=1 GOFLAGS="$GOFLAGS -mod=mod" go build -tags "netgo osusergo" \
		-ldflags "-s -w -extldflags -static -X github.com/flannel-io/flannel/pkg/version.Version=$version" \
		-o "$target/flanneld" github.com/flannel-io/flannel)
	# Our CNI plugin (flannel-io/cni-plugin is not served) and the copier
	# the DaemonSet's init containers run.
	(cd "$root" && CGO_ENABLED=0 go build -ldflags "-s -w" -o "$target/flannel" ./images/flannelcni &&
		CGO_ENABLED=0 go build -ldflags "-s -w" -o "$target/install-cni" ./images/installcni)
}

recipe_coredns() {
	local target=$1 version=$2
	GOBIN="$target" CGO_ENABLED=0 go install -ldflags "-s -w" "github.com/coredns/coredns@$version"
}

recipe_pause() {
	local target=$1
	(cd "$root" && CGO_ENABLED=0 go build -ldflags "-s -w" -o "$target/pause" ./images/pause)
}

# The QEMU tests' workload: static, with Go's own resolver (it proves the
# cluster DNS through /etc/resolv.conf). It goes into the test archive only.
recipe_testworkload() {
	local target=$1
	(cd "$root" && CGO_ENABLED=0 go build -tags netgo -ldflags "-s -w" -o "$target/testworkload" ./images/testworkload)
}

# The QEMU tests' S3 server: versitygw's posix gateway (real S3 requests,
# objects as files, metadata in xattrs). For the host only.
recipe_versitygw() {
	local target=$1 version=$2 w
	w=$(wrapper "versitygw-$version")
	(cd "$w" && GOBIN="$target" CGO_ENABLED=0 GOFLAGS="$GOFLAGS -mod=mod" go install -ldflags "-s -w" "github.com/versity/versitygw/cmd/versitygw@$version")
}

# --- Kubernetes' e2e test images, for make conformance (never on a node) ---
#
# The conformance tests run their pods in the images
# k8s.io/kubernetes/test/utils/image/manifest.go names (versions.env's
# E2E_*_IMAGE). Each is built here from its real sources, offline: the Go
# programs from their modules, the rest from Debian's packages, each image
# holding what its upstream Dockerfile installs (on Debian where upstream
# has alpine or an old Debian). mkimages -conformance writes them into
# rke2os-conformance-images.linux-amd64.tar.zst, apart from RKE2's and the
# QEMU tests' archives. What upstream has that these lack:
#   etcd:3.6.4-0       the older etcd versions it bundles for migrate (3.4.18,
#                      3.5.21): only migrate-if-needed.sh runs them, on old
#                      data; the tests run /usr/local/bin/etcd alone
#   nautilus:1.7       is built on our agnhost (2.56), not on agnhost 2.33
#   agnhost            /coredns is our CoreDNS (COREDNS_VERSION), not 1.6.2
#                      (only DNS tests that are not [Conformance] run it)
#   jessie-dnsutils    no /coredns (1.5.0 upstream): no test runs it;
#                      bookworm's tools, not jessie's
#   httpd, nginx       Debian bookworm's Apache 2.4 and nginx 1.22, one
#                      build under both tags of each (2.4.38-4 and 2.4.39-4,
#                      1.14-4 and 1.15-4): the tests only tell them apart
#   busybox            Debian's busybox 1.35, not 1.37
#   agnhost            no /home/user-defined-in-image (layers here own
#                      everything as root); /bin/sh is bash, not ash
#   nonewprivs:1.3     nnp from KUBERNETES_VERSION's tree (which says 1.4)
# Images of manifest.go no [Conformance] test of KUBERNETES_VERSION runs
# are not built: kitten, perl, resource-consumer, ipc-utils, volume/*,
# node-perf/*, apparmor-loader, regression-issue-74839, the private and
# invalid registries' images.

# moddir_of DIR MODULE@VERSION prints where that module's files are in the
# module cache, downloading it from within DIR (a wrapper).
moddir_of() {
	(cd "$1" && go mod download -json "$2") | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p'
}

# check_e2e_refs MANIFEST: every E2E_*_IMAGE of versions.env is the
# reference test/utils/image/manifest.go (MANIFEST) makes the tests pull, so
# that a new Kubernetes version whose tests pull other tags fails here and
# not with an ImagePullBackOff in a test.
check_e2e_refs() {
	local manifest=$1 pair id key line reg name tag url bad=0
	for pair in Agnhost:E2E_AGNHOST_IMAGE BusyBox:E2E_BUSYBOX_IMAGE Httpd:E2E_HTTPD_IMAGE \
		HttpdNew:E2E_HTTPD_NEW_IMAGE Nginx:E2E_NGINX_IMAGE NginxNew:E2E_NGINX_NEW_IMAGE \
		NonRoot:E2E_NONROOT_IMAGE JessieDnsutils:E2E_JESSIE_DNSUTILS_IMAGE Nonewprivs:E2E_NONEWPRIVS_IMAGE \
		Nautilus:E2E_NAUTILUS_IMAGE APIServer:E2E_SAMPLE_APISERVER_IMAGE Etcd:E2E_ETCD_IMAGE Pause:E2E_PAUSE_IMAGE; do
		id=${pair%%:*} key=${pair#*:}
		if ! line=$(grep -E "^\s*configs\[$id\] = Config\{list\.[A-Za-z0-9]+, \"[^\"]+\", \"[^\"]+\"\}" "$manifest"); then
			log "e2e-test-images: $manifest names no image $id"
			bad=1
			continue
		fi
		read -r reg name tag < <(sed -E 's/.*Config\{list\.([A-Za-z0-9]+), "([^"]+)", "([^"]+)"\}.*/\1 \2 \3/' <<<"$line")
		url=$(sed -n -E "s/^\s*$reg:\s*\"([^\"]+)\",.*/\1/p" "$manifest" | head -n1)
		if [[ "$url/$name:$tag" != "${!key}" ]]; then
			log "e2e-test-images: versions.env has $key=${!key}, but the tests of Kubernetes $KUBERNETES_VERSION pull $url/$name:$tag"
			bad=1
		fi
	done
	return "$bad"
}

# The Go programs of the e2e test images that Kubernetes' own tree holds
# (test/images: agnhost and nonewprivs' nnp; cluster/images/etcd: migrate),
# built from the wrapper module recipe_kubernetes made, static as upstream's
# image-util.sh builds them, with the files their Dockerfiles ADD. (The
# conformance-images step checks versions.env's tags against the tests'.)
recipe_e2e_test_images() {
	local target=$1 version=$2 w src got
	w=$cache/wrap/kubernetes-$version
	if ! grep -q "k8s.io/kubernetes $version" "$w/go.mod" 2>/dev/null; then
		log "e2e-test-images $version: build kubernetes $version first (its wrapper module $w)"
		return 1
	fi
	src=$(moddir_of "$w" "k8s.io/kubernetes@$version")
	got=$(<"$src/test/images/agnhost/VERSION")
	if [[ $got != "$AGNHOST_VERSION" ]]; then
		log "e2e-test-images: k8s.io/kubernetes $version holds agnhost $got, versions.env says AGNHOST_VERSION=$AGNHOST_VERSION"
		return 1
	fi
	(cd "$w" && CGO_ENABLED=0 GOFLAGS="$GOFLAGS -mod=mod" go build -ldflags "-s -w -X main.Version=$AGNHOST_VERSION" \
		-o "$target/agnhost" k8s.io/kubernetes/test/images/agnhost)
	(cd "$w" && CGO_ENABLED=0 GOFLAGS="$GOFLAGS -mod=mod" go build -ldflags "-s -w" -o "$target/nnp" k8s.io/kubernetes/test/images/nonewprivs)
	(cd "$w" && CGO_ENABLED=0 GOFLAGS="$GOFLAGS -mod=mod" go build -ldflags "-s -w" -o "$target/migrate" k8s.io/kubernetes/cluster/images/etcd/migrate)
	install -m 0644 "$src/test/images/agnhost/porter/localhost.crt" "$src/test/images/agnhost/porter/localhost.key" \
		"$src/test/images/nautilus/html/nautilus.jpg" "$src/test/images/nautilus/html/data.json" "$target/"
	install -m 0755 "$src/cluster/images/etcd/migrate-if-needed.sh" "$target/"
}

# The aggregator test's API server: k8s.io/sample-apiserver at the version
# of the image the test pulls (sample-apiserver:1.29.2 is v0.29.2), as
# upstream's Makefile builds it, from a wrapper module carrying the replace
# directives of its go.mod (all to published versions).
recipe_sample_apiserver() {
	local target=$1 version=$2 w gomod r edits=()
	w=$(wrapper "sample-apiserver-$version")
	(cd "$w" && go mod edit -require "k8s.io/sample-apiserver@$version")
	gomod=$(gomod_of "$w" "k8s.io/sample-apiserver@$version")
	for r in $(awk '/^replace \($/ { inblock = 1; next }
		inblock && /^\)/ { inblock = 0 }
		inblock && $2 == "=>" && NF == 4 { print $1 "=" $3 "@" $4 }
		$1 == "replace" && $3 == "=>" && NF == 5 { print $2 "=" $4 "@" $5 }' "$gomod"); do
		edits+=(-replace "$r")
	done
	if ((${#edits[@]} > 0)); then
		(cd "$w" && go mod edit "${edits[@]}")
	fi
	(cd "$w" && CGO_ENABLED=0 GOFLAGS="$GOFLAGS -mod=mod" go build -ldflags "-s -w" -o "$target/sample-apiserver" k8s.io/sample-apiserver)
}

# Each image's Debian packages, with the libraries they link (the loader
# check in e2e_check_tree proves the lists complete). Where upstream's base
# is alpine, busybox is Debian's dynamic busybox: its ash, like alpine's,
# runs a command from PATH, where busybox-static's runs its own applet of
# that name first (nc, httpd); the busybox image alone is busybox-static.
E2E_LIBC_DEBS="libc6 libc-bin netbase"
E2E_BIND_DEBS="bind9-dnsutils bind9-host bind9-libs libedit2 libbsd0 libmd0 libidn2-0 libunistring2 libjemalloc2
	libkrb5-3 libk5crypto3 libkrb5support0 libkeyutils1 libcom-err2 libgssapi-krb5-2 libprotobuf-c1 libuv1 libfstrm0
	libjson-c5 liblmdb0 libmaxminddb0 libnghttp2-14 libssl3 libxml2 libicu72 liblzma5 zlib1g libstdc++6 libgcc-s1"
E2E_CURL_DEBS="curl libcurl4 libssl3 libcom-err2 libgssapi-krb5-2 libk5crypto3 libkeyutils1 libkrb5-3 libkrb5support0
	libidn2-0 libunistring2 libldap-2.5-0 libsasl2-2 libgnutls30 libp11-kit0 libffi8 libtasn1-6 libnettle8 libhogweed6
	libgmp10 libnghttp2-14 libpsl5 librtmp1 libssh2-1 libzstd1 zlib1g libbrotli1"
# agnhost: alpine + bind-tools curl netcat-openbsd iproute2 iperf bash.
E2E_AGNHOST_DEBS="$E2E_LIBC_DEBS busybox bash libtinfo6 netcat-openbsd $E2E_BIND_DEBS $E2E_CURL_DEBS
	iproute2 libbpf1 libelf1 libcap2 libdb5.3 libmnl0 libselinux1 libpcre2-8-0 libtirpc3 libxtables12 libatm1 iperf"
# busybox: the static busybox alone.
E2E_BUSYBOX_DEBS="busybox-static netbase"
# httpd: httpd:2.4-alpine, Apache with all its modules and tools.
E2E_HTTPD_DEBS="$E2E_LIBC_DEBS busybox apache2-bin apache2-utils media-types libapr1 libaprutil1
	libaprutil1-dbd-sqlite3 libaprutil1-ldap libsqlite3-0 libcrypt1 libjansson4 liblua5.3-0 libuuid1 libexpat1 libgdbm6
	libdb5.3 libxml2 libicu72 liblzma5 libpcre2-8-0 libstdc++6 libgcc-s1 $E2E_CURL_DEBS"
# nginx: nginx:1.x-alpine.
E2E_NGINX_DEBS="$E2E_LIBC_DEBS busybox nginx nginx-common libcrypt1 libpcre2-8-0 libssl3 zlib1g"
# nonroot: debian-base (bookworm), Debian's essential tools.
E2E_DEBIAN_DEBS="$E2E_LIBC_DEBS dash bash coreutils grep sed findutils hostname mawk debianutils diffutils gzip tar
	libtinfo6 libacl1 libattr1 libselinux1 libpcre2-8-0 libgmp10 libssl3"
# jessie-dnsutils: debian:jessie + dnsutils.
E2E_DNSUTILS_DEBS="$E2E_DEBIAN_DEBS $E2E_BIND_DEBS"
# nonewprivs, sample-apiserver: alpine and one static program.
E2E_MINIMAL_DEBS="$E2E_LIBC_DEBS busybox"
# etcd: distroless static + bash-static as /bin/sh.
E2E_ETCD_DEBS="netbase bash-static"
# Read for the files of /etc every image has (base-passwd's passwd and
# group, libc-bin's nsswitch.conf), not unpacked as they are.
E2E_ETC_DEBS="base-passwd libc-bin"
# shellcheck disable=SC2086
E2E_ALL_DEBS=$(printf '%s\n' $E2E_AGNHOST_DEBS $E2E_BUSYBOX_DEBS $E2E_HTTPD_DEBS $E2E_NGINX_DEBS $E2E_DNSUTILS_DEBS \
	$E2E_MINIMAL_DEBS $E2E_ETCD_DEBS $E2E_ETC_DEBS | LC_ALL=C sort -u | paste -sd' ')

# e2e_tree TARGET NAME DEB...: TARGET/NAME, the packages DEB (downloaded to
# TARGET/debs) unpacked, without what no container reads (documentation,
# init scripts, iconv's modules), with a base image's /etc/passwd,
# /etc/group, /etc/nsswitch.conf and directories (/tmp 1777, /root 0700).
e2e_tree() {
	local target=$1 name=$2 p shell=/bin/sh
	local r=$target/$name
	shift 2
	mkdir -p "$r/etc"
	for p in $(printf '%s\n' "$@" | LC_ALL=C sort -u); do
		dpkg-deb -x "$target/debs/$p"_*.deb "$r"
	done
	rm -rf "$r"/usr/share/{doc,man,info,locale,lintian,bug,menu,bash-completion,zsh,apport,gdb,debianutils} \
		"$r/usr/include" "$r/usr/lib/x86_64-linux-gnu/gconv" "$r/lib/systemd" \
		"$r"/etc/{init.d,logrotate.d,ufw,default,cron.daily}
	if [[ -e $r/bin/bash ]]; then
		shell=/bin/bash
	fi
	sed "s|^root:\(.*\):/bin/bash\$|root:\1:$shell|" "$target/etc-src/usr/share/base-passwd/passwd.master" >"$r/etc/passwd"
	cp "$target/etc-src/usr/share/base-passwd/group.master" "$r/etc/group"
	cp "$target/etc-src/usr/share/libc-bin/nsswitch.conf" "$r/etc/nsswitch.conf"
	chmod 0644 "$r/etc/passwd" "$r/etc/group" "$r/etc/nsswitch.conf"
	mkdir -p "$r/tmp" "$r/root" "$r/home" "$r/run" "$r/var/tmp"
	chmod 1777 "$r/tmp" "$r/var/tmp"
	chmod 0700 "$r/root"
	ln -sfn ../run "$r/var/run"
}

# e2e_busybox_links ROOT [flat]: busybox's applets linked where busybox's
# own installer puts them (alpine's layout), or all in /bin (flat: the
# busybox image's), leaving out every name a program of the image's
# Debian packages already has on PATH.
e2e_busybox_links() {
	local r=$1 flat=${2:-} a name d
	while read -r a; do
		name=${a##*/}
		if [[ $name == busybox || $a != */* ]]; then
			continue # busybox itself, and linuxrc (an init)
		fi
		if [[ -n $flat ]]; then
			a=bin/$name
		fi
		for d in usr/local/sbin usr/local/bin usr/sbin usr/bin sbin bin; do
			if [[ -e $r/$d/$name || -L $r/$d/$name ]]; then
				continue 2
			fi
		done
		mkdir -p "$r/${a%/*}"
		ln -s "$(realpath -m -s --relative-to="$r/${a%/*}" "$r/bin/busybox")" "$r/$a"
	done < <("$r/bin/busybox" --list-full)
}

# e2e_relative_links ROOT: every absolute link in ROOT made relative, so
# that it points into the image wherever the tree is unpacked (the content
# extractor refuses absolute links).
e2e_relative_links() {
	local r=$1 l t
	while IFS= read -r -d '' l; do
		t=$(readlink "$l")
		if [[ $t == /* ]]; then
			ln -sfn "$(realpath -m -s --relative-to="$(dirname "$l")" "$r$t")" "$l"
		fi
	done < <(find "$r" -type l -print0)
}

# e2e_check_tree ROOT: every ELF file in ROOT that links a library loads
# with the tree's own loader and libraries alone (the loader lists what it
# would load; no root needed).
e2e_check_tree() {
	local r=$1 f libs bad=0
	local ld=$r/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2
	while IFS= read -r -d '' f; do
		if [[ $(head -c4 "$f") != $'\x7fELF' ]] || ! readelf -d "$f" 2>/dev/null | grep -q '(NEEDED)'; then
			continue
		fi
		if [[ ! -x $ld ]]; then
			log "e2e-debs: ${f#"$r"} links libraries but ${r##*/} has no loader"
			return 1
		fi
		if ! libs=$(LD_TRACE_LOADED_OBJECTS=1 "$ld" --inhibit-cache \
			--library-path "$r/lib/x86_64-linux-gnu:$r/usr/lib/x86_64-linux-gnu" "$f" 2>&1); then
			log "e2e-debs: ${f#"$r"} does not load:"
			printf '%s\n' "$libs" >&2
			bad=1
			continue
		fi
		if grep -v -e "=> $r/" -e 'linux-vdso' -e "^\s*$r/" <<<"$libs" | grep -q .; then
			log "e2e-debs: ${f#"$r"} needs libraries from outside ${r##*/}:"
			grep -v -e "=> $r/" -e 'linux-vdso' -e "^\s*$r/" <<<"$libs" >&2
			bad=1
		fi
	done < <(find "$r" -type f -print0)
	return "$bad"
}

# The upstream httpd image's setup on Debian's Apache: its prefix
# /usr/local/apache2 (bin/httpd, bin/httpd-foreground, conf/httpd.conf,
# htdocs/index.html "It works!", logs/, modules/), serving port 80 as
# daemon with its logs on the container's stdout and stderr.
e2e_httpd() {
	local r=$1 a=$1/usr/local/apache2 f
	mkdir -p "$a/bin" "$a/conf" "$a/htdocs" "$a/logs" "$r/etc/apache2"
	ln -sfn ../../../sbin/apache2 "$a/bin/httpd"
	for f in ab checkgid fcgistarter htcacheclean htdbm htdigest htpasswd logresolve rotatelogs; do
		ln -sfn "../../../bin/$f" "$a/bin/$f"
	done
	ln -sfn ../../lib/apache2/modules "$a/modules"
	ln -sfn ../../../../etc/mime.types "$a/conf/mime.types"
	cat >"$a/bin/httpd-foreground" <<-'EOF'
		#!/bin/sh
		set -e

		# Apache gets grumpy about PID files pre-existing
		rm -f /usr/local/apache2/logs/httpd.pid

		exec httpd -DFOREGROUND "$@"
	EOF
	chmod 0755 "$a/bin/httpd-foreground"
	printf '<html><body><h1>It works!</h1></body></html>\n' >"$a/htdocs/index.html"
	# Debian's apache2 reads /etc/apache2/apache2.conf by default.
	printf 'ServerRoot "/usr/local/apache2"\nInclude conf/httpd.conf\n' >"$r/etc/apache2/apache2.conf"
	# Upstream's conf/httpd.conf as its image has it (logs to
	# /proc/self/fd/1 and 2), less the modules Debian compiles in.
	cat >"$a/conf/httpd.conf" <<-'EOF'
		ServerRoot "/usr/local/apache2"
		Listen 80
		LoadModule mpm_event_module modules/mod_mpm_event.so
		LoadModule authn_file_module modules/mod_authn_file.so
		LoadModule authn_core_module modules/mod_authn_core.so
		LoadModule authz_host_module modules/mod_authz_host.so
		LoadModule authz_groupfile_module modules/mod_authz_groupfile.so
		LoadModule authz_user_module modules/mod_authz_user.so
		LoadModule authz_core_module modules/mod_authz_core.so
		LoadModule access_compat_module modules/mod_access_compat.so
		LoadModule auth_basic_module modules/mod_auth_basic.so
		LoadModule reqtimeout_module modules/mod_reqtimeout.so
		LoadModule filter_module modules/mod_filter.so
		LoadModule mime_module modules/mod_mime.so
		LoadModule env_module modules/mod_env.so
		LoadModule headers_module modules/mod_headers.so
		LoadModule setenvif_module modules/mod_setenvif.so
		LoadModule status_module modules/mod_status.so
		LoadModule autoindex_module modules/mod_autoindex.so
		LoadModule dir_module modules/mod_dir.so
		LoadModule alias_module modules/mod_alias.so
		User daemon
		Group daemon
		ServerAdmin you@example.com
		PidFile logs/httpd.pid
		<Directory />
		    AllowOverride none
		    Require all denied
		</Directory>
		DocumentRoot "/usr/local/apache2/htdocs"
		<Directory "/usr/local/apache2/htdocs">
		    Options Indexes FollowSymLinks
		    AllowOverride None
		    Require all granted
		</Directory>
		DirectoryIndex index.html
		<Files ".ht*">
		    Require all denied
		</Files>
		ErrorLog /proc/self/fd/2
		LogLevel warn
		LogFormat "%h %l %u %t \"%r\" %>s %b \"%{Referer}i\" \"%{User-Agent}i\"" combined
		LogFormat "%h %l %u %t \"%r\" %>s %b" common
		CustomLog /proc/self/fd/1 common
		TypesConfig conf/mime.types
		AddType application/x-compress .Z
		AddType application/x-gzip .gz .tgz
	EOF
}

# The upstream nginx image's setup on Debian's nginx: its nginx.conf and
# conf.d/default.conf (port 80, /usr/share/nginx/html), its user nginx
# (101), its logs linked to the container's stdout and stderr.
e2e_nginx() {
	local r=$1
	rm -rf "$r"/etc/nginx/{sites-available,sites-enabled,modules-available,modules-enabled,snippets} "$r/usr/share/nginx/modules"
	mkdir -p "$r/etc/nginx/conf.d" "$r/var/log/nginx" "$r/var/cache/nginx"
	ln -sfn ../../../dev/stdout "$r/var/log/nginx/access.log"
	ln -sfn ../../../dev/stderr "$r/var/log/nginx/error.log"
	printf 'nginx:x:101:101:nginx:/var/cache/nginx:/sbin/nologin\n' >>"$r/etc/passwd"
	printf 'nginx:x:101:nginx\n' >>"$r/etc/group"
	cat >"$r/etc/nginx/nginx.conf" <<-'EOF'
		user  nginx;
		worker_processes  1;

		error_log  /var/log/nginx/error.log warn;
		pid        /var/run/nginx.pid;

		events {
		    worker_connections  1024;
		}

		http {
		    include       /etc/nginx/mime.types;
		    default_type  application/octet-stream;

		    log_format  main  '$remote_addr - $remote_user [$time_local] "$request" '
		                      '$status $body_bytes_sent "$http_referer" '
		                      '"$http_user_agent" "$http_x_forwarded_for"';

		    access_log  /var/log/nginx/access.log  main;

		    sendfile        on;
		    keepalive_timeout  65;

		    include /etc/nginx/conf.d/*.conf;
		}
	EOF
	cat >"$r/etc/nginx/conf.d/default.conf" <<-'EOF'
		server {
		    listen       80;
		    server_name  localhost;

		    location / {
		        root   /usr/share/nginx/html;
		        index  index.html index.htm;
		    }
		}
	EOF
}

# The Debian trees of the e2e test images. Their version is Debian's of the
# day, so the cache key is every package's resolved version. A subshell:
# the umask is set so that the directories made here have the modes the
# image gets, whatever the caller's.
recipe_e2e_debs() (
	local target=$1 d
	umask 022
	mkdir -p "$target/debs" "$target/etc-src"
	# shellcheck disable=SC2086
	(cd "$target/debs" && apt-get download -qq $E2E_ALL_DEBS 2>/dev/null) ||
		{ apt-get update -qq && (cd "$target/debs" && apt-get download -qq $E2E_ALL_DEBS); }
	for d in $E2E_ETC_DEBS; do
		dpkg-deb -x "$target/debs/$d"_*.deb "$target/etc-src"
	done

	# agnhost: /bin/sh is bash (which the Dockerfile installs), so that a
	# test's sh -c runs PATH's nc, netcat-openbsd, linked as its
	# alternative links it; iperf also in /usr/local/bin, /uploads, and the
	# user and groups the Dockerfile adds.
	# shellcheck disable=SC2086
	e2e_tree "$target" agnhost $E2E_AGNHOST_DEBS
	d=$target/agnhost
	ln -sfn bash "$d/bin/sh"
	ln -sfn nc.openbsd "$d/bin/nc"
	e2e_busybox_links "$d"
	mkdir -p "$d/usr/local/bin" "$d/uploads"
	ln -sfn ../../bin/iperf "$d/usr/local/bin/iperf"
	printf 'user-defined-in-image:x:1000:1000:Linux User,,,:/home/user-defined-in-image:/bin/sh\n' >>"$d/etc/passwd"
	printf 'user-defined-in-image:x:1000:\ngroup-defined-in-image:x:50000:user-defined-in-image\n' >>"$d/etc/group"

	# shellcheck disable=SC2086
	e2e_tree "$target" busybox $E2E_BUSYBOX_DEBS
	e2e_busybox_links "$target/busybox" flat

	# shellcheck disable=SC2086
	e2e_tree "$target" httpd $E2E_HTTPD_DEBS
	e2e_busybox_links "$target/httpd"
	rm -f "$target/httpd/usr/sbin/httpd" # busybox's applet; alpine's busybox has none
	e2e_httpd "$target/httpd"

	# shellcheck disable=SC2086
	e2e_tree "$target" nginx $E2E_NGINX_DEBS
	e2e_busybox_links "$target/nginx"
	e2e_nginx "$target/nginx"

	# shellcheck disable=SC2086
	e2e_tree "$target" nonroot $E2E_DEBIAN_DEBS
	# shellcheck disable=SC2086
	e2e_tree "$target" jessie-dnsutils $E2E_DNSUTILS_DEBS
	for d in nonroot jessie-dnsutils; do # update-alternatives' links
		ln -sfn mawk "$target/$d/usr/bin/awk"
		ln -sfn rmt-tar "$target/$d/usr/sbin/rmt"
	done

	# shellcheck disable=SC2086
	e2e_tree "$target" minimal $E2E_MINIMAL_DEBS
	e2e_busybox_links "$target/minimal"

	# shellcheck disable=SC2086
	e2e_tree "$target" etcd $E2E_ETCD_DEBS
	mv "$target/etcd/bin/bash-static" "$target/etcd/bin/sh"

	rm -rf "$target/debs" "$target/etc-src"
	for d in agnhost busybox httpd nginx nonroot jessie-dnsutils minimal etcd; do
		e2e_relative_links "$target/$d"
		e2e_check_tree "$target/$d"
	done
	printf '%s\n' "$E2E_RESOLVED" >"$target/debs.txt"
)

# pack_conformance writes rke2os-conformance-images.linux-amd64.tar.zst
# (and its .txt) with mkimages -conformance when something it is made of
# changed.
pack_conformance() {
	local key
	key=$({
		cat "$here/versions.env" "$here"/cmd/mkimages/*.go
		echo "$go_version $SOURCE_DATE_EPOCH"
		cat "$cache/pause-$PAUSE_VERSION/.stamp" "$cache/coredns-$COREDNS_VERSION/.stamp" \
			"$cache/e2e-test-images-$KUBERNETES_VERSION/.stamp" "$cache/e2e-debs/.stamp" \
			"$cache/sample-apiserver-$SAMPLE_APISERVER_VERSION/.stamp" "$cache/etcd-$E2E_ETCD_VERSION/.stamp"
	} | sha256sum | cut -c1-32)
	if [[ -f $out/rke2os-conformance-images.linux-amd64.tar.zst && -f $out/.conformance-stamp &&
		"$(<"$out/.conformance-stamp")" == "$key" ]]; then
		log "conformance archive: up to date in $out"
		return
	fi
	mkdir -p "$out"
	rm -f "$out/.conformance-stamp"
	(cd "$root" && go run ./images/cmd/mkimages -conformance -versions "$here/versions.env" -cache "$cache" -out "$out")
	printf '%s\n' "$key" >"$out/.conformance-stamp"
}

build() {
	case $1 in
	kubernetes) component kubernetes "$KUBERNETES_VERSION" recipe_kubernetes \
		kubelet kubectl kube-apiserver kube-controller-manager kube-scheduler kube-proxy ;;
	e2e) KEY_EXTRA=$(declare -f e2e_binary | sha256sum | cut -c1-16) \
		component e2e "$KUBERNETES_VERSION" recipe_e2e e2e.test ;;
	e2e-smoke) KEY_EXTRA=$({ declare -f e2e_binary; cat "$here/e2esmoke/e2esmoke_test.go"; } | sha256sum | cut -c1-16) \
		component e2e-smoke "$KUBERNETES_VERSION" recipe_e2e_smoke e2e-smoke.test ;;
	etcd) component etcd "$ETCD_VERSION" recipe_etcd etcd etcdctl etcdutl ;;
	containerd) component containerd "$CONTAINERD_VERSION" recipe_containerd \
		containerd containerd-shim-runc-v2 ctr ;;
	runc) component runc "$RUNC_VERSION" recipe_runc runc ;;
	crictl) component crictl "$CRICTL_VERSION" recipe_crictl crictl ;;
	cni-plugins) component cni-plugins "$CNI_PLUGINS_VERSION" recipe_cni_plugins \
		bridge loopback host-local portmap ;;
	pause) KEY_EXTRA=$(cat "$here"/pause/*.go | sha256sum | cut -c1-16) \
		component pause "$PAUSE_VERSION" recipe_pause pause ;;
	flannel) KEY_EXTRA=$(cat "$here"/flannelcni/*.go "$here"/installcni/*.go | sha256sum | cut -c1-16) \
		component flannel "$FLANNEL_VERSION" recipe_flannel flanneld flannel install-cni ;;
	coredns) component coredns "$COREDNS_VERSION" recipe_coredns coredns ;;
	versitygw) component versitygw "$VERSITYGW_VERSION" recipe_versitygw versitygw ;;
	testworkload) KEY_EXTRA=$(cat "$here"/testworkload/*.go | sha256sum | cut -c1-16) \
		component testworkload "$TESTWORKLOAD_VERSION" recipe_testworkload testworkload ;;
	iptables)
		# shellcheck disable=SC2086
		IPTABLES_RESOLVED=$(apt-cache show --no-all-versions $IPTABLES_DEBS | sed -n 's/^\(Package\|Version\): //p' | paste -sd' ')
		local v
		v=$(apt-cache show --no-all-versions iptables | sed -n 's/^Version: //p')-$(sha256sum <<<"$IPTABLES_RESOLVED $IPTABLES_LIBC" | cut -c1-12)
		component iptables "$v" recipe_iptables xtables-nft-multi
		ln -sfn "iptables-$v" "$cache/iptables"
		;;
	e2e-test-images) KEY_EXTRA="agnhost=$AGNHOST_VERSION" \
		component e2e-test-images "$KUBERNETES_VERSION" recipe_e2e_test_images agnhost nnp migrate ;;
	sample-apiserver) component sample-apiserver "$SAMPLE_APISERVER_VERSION" recipe_sample_apiserver sample-apiserver ;;
	e2e-etcd) component etcd "$E2E_ETCD_VERSION" recipe_etcd etcd etcdctl etcdutl ;;
	e2e-debs)
		# shellcheck disable=SC2086
		if ! apt-cache show --no-all-versions $E2E_ALL_DEBS >/dev/null 2>&1; then
			apt-get update -qq
		fi
		# shellcheck disable=SC2086
		E2E_RESOLVED=$(apt-cache show --no-all-versions $E2E_ALL_DEBS | sed -n 's/^\(Package\|Version\): //p' | paste -sd' ')
		local v
		v=$(sha256sum <<<"$E2E_RESOLVED" | cut -c1-16)
		# The key also holds each image's list and the helpers' text.
		KEY_EXTRA=$({
			declare -f e2e_tree e2e_busybox_links e2e_relative_links e2e_check_tree e2e_httpd e2e_nginx
			declare -p E2E_AGNHOST_DEBS E2E_BUSYBOX_DEBS E2E_HTTPD_DEBS E2E_NGINX_DEBS E2E_DEBIAN_DEBS \
				E2E_DNSUTILS_DEBS E2E_MINIMAL_DEBS E2E_ETCD_DEBS E2E_ETC_DEBS
		} | sha256sum | cut -c1-16) component e2e-debs "$v" recipe_e2e_debs agnhost/bin/bash
		ln -sfn "e2e-debs-$v" "$cache/e2e-debs"
		;;
	conformance-images)
		local c
		for c in kubernetes pause coredns e2e-test-images e2e-debs sample-apiserver e2e-etcd; do
			build "$c"
		done
		check_e2e_refs "$(moddir_of "$cache/wrap/kubernetes-$KUBERNETES_VERSION" "k8s.io/kubernetes@$KUBERNETES_VERSION")/test/utils/image/manifest.go"
		pack_conformance
		;;
	*)
		log "unknown component $1"
		exit 2
		;;
	esac
}

mkdir -p "$cache"
start=$SECONDS
if (($# > 0)); then
	for c in "$@"; do build "$c"; done
	exit 0
fi
# Quick ones first: a broken recipe shows before the long kubernetes build.
for c in pause testworkload iptables runc etcd containerd crictl cni-plugins flannel coredns versitygw kubernetes; do
	build "$c"
done
# The archives too are rewritten only when something they are made of
# changed: the binaries (their stamps), the versions, mkimages itself.
pack_key=$({
	cat "$here/versions.env" "$here"/cmd/mkimages/*.go
	find "$here/charts" -type f -not -path '*/testdata/*' -not -name '*_test.go' | LC_ALL=C sort | xargs cat
	echo "$go_version $SOURCE_DATE_EPOCH"
	cat "$cache/pause-$PAUSE_VERSION/.stamp" "$cache/runc-$RUNC_VERSION/.stamp" \
		"$cache/etcd-$ETCD_VERSION/.stamp" "$cache/containerd-$CONTAINERD_VERSION/.stamp" \
		"$cache/crictl-$CRICTL_VERSION/.stamp" "$cache/cni-plugins-$CNI_PLUGINS_VERSION/.stamp" \
		"$cache/kubernetes-$KUBERNETES_VERSION/.stamp" "$cache/iptables/.stamp" \
		"$cache/flannel-$FLANNEL_VERSION/.stamp" "$cache/coredns-$COREDNS_VERSION/.stamp" \
		"$cache/testworkload-$TESTWORKLOAD_VERSION/.stamp"
} | sha256sum | cut -c1-32)
if [[ -f $out/rke2-images.linux-amd64.tar.zst && -f $out/rke2os-test-images.linux-amd64.tar.zst &&
	-f $out/.stamp && "$(<"$out/.stamp")" == "$pack_key" ]]; then
	log "archives: up to date in $out"
else
	mkdir -p "$out"
	rm -f "$out/.stamp"
	(cd "$root" && go run ./images/cmd/mkimages -versions "$here/versions.env" -cache "$cache" -out "$out")
	printf '%s\n' "$pack_key" >"$out/.stamp"
fi
log "done in $((SECONDS - start))s: $out"
