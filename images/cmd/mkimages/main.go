// Command mkimages writes RKE2's images (rke2-runtime, hardened-kubernetes,
// hardened-etcd, mirrored-pause, hardened-cni-plugins, ...) as one docker-save
// archive, rke2-images.linux-amd64.tar.zst, from the binaries images/build.sh
// left in its cache, and the QEMU tests' own image (images/testworkload) as
// another, rke2os-test-images.linux-amd64.tar.zst, so that it never reaches a
// node. With -conformance it writes instead, and only, the images
// Kubernetes' conformance tests run (agnhost, busybox, httpd, nginx, ...,
// under their registry.k8s.io names) as rke2os-conformance-images.linux-amd64.tar.zst,
// for make conformance. The same inputs give the same bytes: every time
// stamp is SOURCE_DATE_EPOCH (0 when unset), every owner root, every list
// sorted.
package main

import (
	"flag"
	"log/slog"
	"os"
	"strconv"
	"time"
)

func main() {
	versions := flag.String("versions", "images/versions.env", "the versions and image references to build")
	cache := flag.String("cache", "build/cache", "images/build.sh's cache: <component>-<version>/ directories of binaries")
	out := flag.String("out", "build/images", "where to write the archives")
	keepTar := flag.Bool("keep-tar", true, "also keep the uncompressed rke2-images.linux-amd64.tar")
	conformance := flag.Bool("conformance", false, "write only rke2os-conformance-images.linux-amd64.tar.zst, the images Kubernetes' conformance tests run (images/build.sh OUT CACHE conformance-images builds what it needs)")
	flag.Parse()

	epoch, err := sourceDateEpoch()
	if err != nil {
		slog.Error("mkimages", "err", err)
		os.Exit(2)
	}
	start := time.Now()
	if *conformance {
		err = runConformance(*versions, *cache, *out, epoch)
	} else {
		err = run(*versions, *cache, *out, *keepTar, epoch)
	}
	if err != nil {
		slog.Error("mkimages", "err", err)
		os.Exit(1)
	}
	slog.Info("mkimages done", "out", *out, "took", time.Since(start).Round(time.Millisecond))
}

// sourceDateEpoch reads SOURCE_DATE_EPOCH, the reproducible-builds convention
// for "the time to stamp into everything".
func sourceDateEpoch() (time.Time, error) {
	s := os.Getenv("SOURCE_DATE_EPOCH")
	if s == "" {
		return time.Unix(0, 0).UTC(), nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, err
	}
	return time.Unix(n, 0).UTC(), nil
}
