package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// conformanceRefKeys are the versions.env keys of the images Kubernetes'
// conformance tests run, under the names its
// test/utils/image/manifest.go gives them (images/build.sh checks them
// against it).
var conformanceRefKeys = []string{
	"E2E_AGNHOST_IMAGE", "E2E_BUSYBOX_IMAGE", "E2E_HTTPD_IMAGE", "E2E_HTTPD_NEW_IMAGE",
	"E2E_NGINX_IMAGE", "E2E_NGINX_NEW_IMAGE", "E2E_NONROOT_IMAGE", "E2E_JESSIE_DNSUTILS_IMAGE",
	"E2E_NONEWPRIVS_IMAGE", "E2E_NAUTILUS_IMAGE", "E2E_SAMPLE_APISERVER_IMAGE", "E2E_ETCD_IMAGE",
	"E2E_PAUSE_IMAGE",
}

// conformanceTrees are the Debian trees images/build.sh's e2e-debs step
// leaves in cache/e2e-debs/, one per kind of base.
var conformanceTrees = []string{"agnhost", "busybox", "httpd", "nginx", "nonroot", "jessie-dnsutils", "minimal", "etcd"}

// conformanceImageSpecs lists the images of the conformance archive, each
// with what its upstream Dockerfile sets: the Debian trees of
// cache/e2e-debs and the programs built from source (agnhost, nnp and
// migrate from Kubernetes' module, CoreDNS, our pause, sample-apiserver,
// etcd) that images/build.sh conformance-images left in cache.
func conformanceImageSpecs(env map[string]string, cache string) ([]imageSpec, error) {
	var missing []string
	get := func(k string) string {
		if env[k] == "" {
			missing = append(missing, k)
		}
		return env[k]
	}
	e2e := filepath.Join(cache, "e2e-test-images-"+get("KUBERNETES_VERSION"))
	coredns := filepath.Join(cache, "coredns-"+get("COREDNS_VERSION"), "coredns")
	pause := filepath.Join(cache, "pause-"+get("PAUSE_VERSION"), "pause")
	sampleAPIServer := filepath.Join(cache, "sample-apiserver-"+get("SAMPLE_APISERVER_VERSION"), "sample-apiserver")
	etcd := filepath.Join(cache, "etcd-"+get("E2E_ETCD_VERSION"))
	refs := map[string]string{}
	for _, k := range conformanceRefKeys {
		refs[k] = get(k)
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("versions: %s not set", strings.Join(missing, ", "))
	}
	in := func(dir, name string) string { return filepath.Join(dir, name) }
	for _, p := range []string{
		in(e2e, "agnhost"), in(e2e, "nnp"), in(e2e, "migrate"), in(e2e, "migrate-if-needed.sh"),
		in(e2e, "localhost.crt"), in(e2e, "localhost.key"), in(e2e, "nautilus.jpg"), in(e2e, "data.json"),
		coredns, pause, sampleAPIServer, in(etcd, "etcd"), in(etcd, "etcdctl"), in(etcd, "etcdutl"),
	} {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("conformance images (run images/build.sh OUT CACHE conformance-images): %w", err)
		}
	}
	// e2e-debs names the trees of the day's Debian packages.
	trees := map[string][]file{}
	for _, n := range conformanceTrees {
		t, err := rootTree(filepath.Join(cache, "e2e-debs", n))
		if err != nil {
			return nil, err
		}
		trees[n] = t
	}
	bin := func(name, src string) file { return file{Name: name, Source: src, Mode: 0o755} }
	data := func(name, src string) file { return file{Name: name, Source: src, Mode: 0o644} }

	// agnhost: alpine + bind-tools curl netcat-openbsd iproute2 iperf
	// bash (the tree), CoreDNS at /coredns (ours, not 1.6.2: the DNS tests
	// that run it are not [Conformance] ones), porter's certificate and
	// key and agnhost at /, /agnhost-2 linked to it.
	agnhost := imageSpec{
		Ref: refs["E2E_AGNHOST_IMAGE"],
		Files: slices.Concat(trees["agnhost"], []file{
			bin("agnhost", in(e2e, "agnhost")),
			{Name: "agnhost-2", Link: "agnhost"},
			bin("coredns", coredns),
			data("localhost.crt", in(e2e, "localhost.crt")),
			data("localhost.key", in(e2e, "localhost.key")),
		}),
		Entrypoint:   []string{"/agnhost"},
		Cmd:          []string{"pause"},
		ExposedPorts: []string{"80/tcp", "8080/tcp", "8081/tcp", "9376/tcp", "5000/tcp"},
	}
	// httpd: httpd:2.4-alpine's prefix, PATH and command. Both tags are
	// Debian's one Apache.
	httpd := func(ref string) imageSpec {
		return imageSpec{
			Ref:   ref,
			Files: trees["httpd"],
			Env: []string{
				"PATH=/usr/local/apache2/bin:" + strings.TrimPrefix(defaultPath, "PATH="),
				"HTTPD_PREFIX=/usr/local/apache2",
			},
			WorkingDir:   "/usr/local/apache2",
			ExposedPorts: []string{"80/tcp"},
			Cmd:          []string{"httpd-foreground"},
		}
	}
	// nginx: nginx:1.x-alpine's command. Both tags are Debian's one nginx.
	nginx := func(ref string) imageSpec {
		return imageSpec{
			Ref:          ref,
			Files:        trees["nginx"],
			ExposedPorts: []string{"80/tcp"},
			Cmd:          []string{"nginx", "-g", "daemon off;"},
		}
	}
	specs := []imageSpec{
		agnhost,
		{
			// nautilus: FROM agnhost, its two files, agnhost's web server.
			Ref:  refs["E2E_NAUTILUS_IMAGE"],
			Base: &agnhost,
			Files: []file{
				data("nautilus.jpg", in(e2e, "nautilus.jpg")),
				data("data.json", in(e2e, "data.json")),
			},
			Cmd: []string{"test-webserver"},
		},
		{
			// busybox: the busybox image, every applet in /bin.
			Ref:   refs["E2E_BUSYBOX_IMAGE"],
			Files: trees["busybox"],
			Cmd:   []string{"sh"},
		},
		httpd(refs["E2E_HTTPD_IMAGE"]),
		httpd(refs["E2E_HTTPD_NEW_IMAGE"]),
		nginx(refs["E2E_NGINX_IMAGE"]),
		nginx(refs["E2E_NGINX_NEW_IMAGE"]),
		{
			// nonroot: debian-base with USER 1234.
			Ref:   refs["E2E_NONROOT_IMAGE"],
			Files: trees["nonroot"],
			User:  "1234",
			Cmd:   []string{"/bin/sh"},
		},
		{
			// jessie-dnsutils: Debian with dnsutils. Its Dockerfile's
			// /coredns (73 MB of ours) is left out: no test runs it.
			Ref:   refs["E2E_JESSIE_DNSUTILS_IMAGE"],
			Files: trees["jessie-dnsutils"],
			Cmd:   []string{"bash"},
		},
		{
			// nonewprivs: alpine with nnp setuid root.
			Ref:   refs["E2E_NONEWPRIVS_IMAGE"],
			Files: append(slices.Clone(trees["minimal"]), file{Name: "usr/local/bin/nnp", Source: in(e2e, "nnp"), Mode: 0o4755}),
			Cmd:   []string{"nnp"},
		},
		{
			// sample-apiserver: alpine with the server at /.
			Ref:        refs["E2E_SAMPLE_APISERVER_IMAGE"],
			Files:      append(slices.Clone(trees["minimal"]), bin("sample-apiserver", sampleAPIServer)),
			Entrypoint: []string{"/sample-apiserver"},
		},
		{
			// etcd: distroless with bash-static as /bin/sh (the tree),
			// etcd, its tools and migrate in /usr/local/bin.
			Ref: refs["E2E_ETCD_IMAGE"],
			Files: append(slices.Clone(trees["etcd"]),
				bin("usr/local/bin/etcd", in(etcd, "etcd")),
				bin("usr/local/bin/etcdctl", in(etcd, "etcdctl")),
				bin("usr/local/bin/etcdutl", in(etcd, "etcdutl")),
				bin("usr/local/bin/migrate", in(e2e, "migrate")),
				bin("usr/local/bin/migrate-if-needed.sh", in(e2e, "migrate-if-needed.sh")),
			),
			WorkingDir:   "/",
			ExposedPorts: []string{"2379/tcp", "2380/tcp", "4001/tcp", "7001/tcp"},
		},
		{
			// pause: registry.k8s.io/pause's entrypoint and user, our
			// images/pause.
			Ref:        refs["E2E_PAUSE_IMAGE"],
			Files:      []file{bin("pause", pause)},
			Entrypoint: []string{"/pause"},
			User:       "65535:65535",
		},
	}
	slices.SortFunc(specs, func(a, b imageSpec) int { return strings.Compare(a.Ref, b.Ref) })
	return specs, nil
}
