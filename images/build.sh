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
#             versitygw; e2e, after kubernetes, only when named) and
#             write no archive
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

# Kubernetes' own e2e tests, for make conformance on the host (never in an
# image): e2e.test from the wrapper module recipe_kubernetes made for the
# same version, so it shares that build's packages in the GOCACHE.
recipe_e2e() {
	local target=$1 version=$2 w minor ldflags="-s -w" pkg
	w=$cache/wrap/kubernetes-$version
	if ! grep -q "k8s.io/kubernetes $version" "$w/go.mod" 2>/dev/null; then
		log "e2e $version: build kubernetes $version first (its wrapper module $w)"
		return 1
	fi
	minor=${version#v1.}
	minor=${minor%%.*}
	for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		ldflags+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
		ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$build_date"
	done
	(cd "$w" && CGO_ENABLED=0 GOFLAGS="$GOFLAGS -mod=mod" go test -c -ldflags "$ldflags" -o "$target/e2e.test" k8s.io/kubernetes/test/e2e)
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

build() {
	case $1 in
	kubernetes) component kubernetes "$KUBERNETES_VERSION" recipe_kubernetes \
		kubelet kubectl kube-apiserver kube-controller-manager kube-scheduler kube-proxy ;;
	e2e) component e2e "$KUBERNETES_VERSION" recipe_e2e e2e.test ;;
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
