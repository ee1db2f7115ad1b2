package main

import (
	"bufio"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/rke2os/rke2os/images/charts"
)

// imageSpec is one image to write: its reference, the files of its layer
// and its config. RKE2's images set only Entrypoint; the e2e test images
// set what their upstream Dockerfiles set.
type imageSpec struct {
	Ref   string
	Files []file
	// Base is the image this one is built FROM: its layers come first,
	// and this one's config is the base's with what this one sets over it.
	Base       *imageSpec
	Entrypoint []string
	Cmd        []string
	// Env replaces the base's (or, without a base, defaultPath alone).
	Env          []string
	User         string
	WorkingDir   string
	ExposedPorts []string // "80/tcp"
}

// file is one regular file, directory or symbolic link of a layer: Name is
// its path in the image without the leading slash ("bin/kubelet"); a file's
// content comes from Source on the host or, when Source is empty, from
// Data; a link (Link not "") points at Link; a directory (Dir) is written
// with its Mode (with the setuid, setgid and sticky bits: /tmp is 01777),
// where a directory only implied by a path is 0755.
type file struct {
	Name   string
	Source string
	Data   []byte
	Mode   int64
	Link   string
	Dir    bool
}

// tree lists the regular files and symbolic links below dir (a root
// fragment such as the iptables tree images/build.sh unpacks from Debian's
// packages) as layer files at the same paths, modes kept.
func tree(dir string) ([]file, error) {
	var out []file
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			out = append(out, file{Name: filepath.ToSlash(rel), Link: target})
		case info.Mode().IsRegular():
			out = append(out, file{Name: filepath.ToSlash(rel), Source: p, Mode: int64(info.Mode().Perm())})
		default:
			return fmt.Errorf("%s: neither a file, a directory nor a link", p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read tree %s (did images/build.sh run?): %w", dir, err)
	}
	return out, nil
}

// rootTree lists everything below dir as the layer of an image whose whole
// root it is (an e2e test image's Debian tree): regular files and links as
// tree does, and the directories too, so that empty ones (/uploads,
// /var/lib/nginx) and their modes (/tmp 01777, /root 0700) are kept.
func rootTree(dir string) ([]file, error) {
	var out []file
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		name := filepath.ToSlash(rel)
		switch {
		case info.IsDir():
			out = append(out, file{Name: name, Dir: true, Mode: tarMode(info.Mode())})
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			out = append(out, file{Name: name, Link: target})
		case info.Mode().IsRegular():
			out = append(out, file{Name: name, Source: p, Mode: tarMode(info.Mode())})
		default:
			return fmt.Errorf("%s: neither a file, a directory nor a link", p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read tree %s (did images/build.sh conformance-images run?): %w", dir, err)
	}
	return out, nil
}

// tarMode is m as a tar header's mode: the permissions and the setuid,
// setgid and sticky bits, which fs.FileMode keeps apart from Perm.
func tarMode(m fs.FileMode) int64 {
	mode := int64(m.Perm())
	if m&fs.ModeSetuid != 0 {
		mode |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		mode |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		mode |= 0o1000
	}
	return mode
}

// readEnv parses a shell-sourceable KEY=value file such as versions.env.
// Quotes and expansions are not supported, so that the shell and this parser
// can never disagree about a value.
func readEnv(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read versions: %w", err)
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || k == "" || strings.ContainsAny(v, "\"'$` \t") {
			return nil, fmt.Errorf("%s line %d: want KEY=value without quotes, spaces or $, got %q", path, n, line)
		}
		env[k] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return env, nil
}

// imageSpecs lists the images to write, with their files taken from the
// component directories images/build.sh filled in cache.
func imageSpecs(env map[string]string, cache, chartsDir string, epoch time.Time) ([]imageSpec, error) {
	var missing []string
	get := func(k string) string {
		if env[k] == "" {
			missing = append(missing, k)
		}
		return env[k]
	}
	dir := func(component, versionKey string) string {
		return filepath.Join(cache, component+"-"+get(versionKey))
	}
	k8s := dir("kubernetes", "KUBERNETES_VERSION")
	containerd := dir("containerd", "CONTAINERD_VERSION")
	runc := dir("runc", "RUNC_VERSION")
	crictl := dir("crictl", "CRICTL_VERSION")
	etcd := dir("etcd", "ETCD_VERSION")
	pause := dir("pause", "PAUSE_VERSION")
	cni := dir("cni-plugins", "CNI_PLUGINS_VERSION")
	flannel := dir("flannel", "FLANNEL_VERSION")
	coredns := dir("coredns", "COREDNS_VERSION")
	// iptables' version is Debian's of the day: build.sh points
	// cache/iptables at the tree it unpacked.
	iptables, err := tree(filepath.Join(cache, "iptables", "root"))
	if err != nil {
		return nil, err
	}
	refs := map[string]string{}
	for _, k := range []string{"RUNTIME_IMAGE", "KUBERNETES_IMAGE", "ETCD_IMAGE", "PAUSE_IMAGE", "CNI_PLUGINS_IMAGE", "FLANNEL_IMAGE", "COREDNS_IMAGE"} {
		refs[k] = get(k)
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("versions: %s not set", strings.Join(missing, ", "))
	}

	bins := func(prefix string, srcs ...string) []file {
		var fs []file
		for _, s := range srcs {
			fs = append(fs, file{Name: prefix + filepath.Base(s), Source: s, Mode: 0o755})
		}
		return fs
	}
	cniBins, err := executables(cni)
	if err != nil {
		return nil, err
	}
	// The runtime's /charts: our charts as HelmChart manifests, which a
	// server copies into server/manifests as RKE2 does.
	manifests, err := charts.All(chartsDir, epoch)
	if err != nil {
		return nil, fmt.Errorf("charts: %w", err)
	}
	var chartFiles []file
	for _, name := range slices.Sorted(maps.Keys(manifests)) {
		chartFiles = append(chartFiles, file{Name: "charts/" + name, Data: manifests[name], Mode: 0o644})
	}
	specs := []imageSpec{
		{
			Ref: refs["RUNTIME_IMAGE"],
			Files: append(bins("bin/",
				filepath.Join(containerd, "containerd"),
				filepath.Join(containerd, "containerd-shim-runc-v2"),
				filepath.Join(containerd, "ctr"),
				filepath.Join(runc, "runc"),
				filepath.Join(k8s, "kubelet"),
				filepath.Join(k8s, "kubectl"),
				filepath.Join(crictl, "crictl"),
				// Not in RKE2's runtime (RKE2 restores a snapshot with
				// etcd's code linked in): rke2-node runs it for
				// cluster-reset-restore-path.
				filepath.Join(etcd, "etcdutl"),
			), chartFiles...),
		},
		{
			// kube-proxy runs iptables-restore/-save: Debian's iptables
			// with its libraries and extensions, as the hardened image
			// carries them.
			Ref: refs["KUBERNETES_IMAGE"],
			Files: append(bins("usr/local/bin/",
				filepath.Join(k8s, "kube-apiserver"),
				filepath.Join(k8s, "kube-controller-manager"),
				filepath.Join(k8s, "kube-scheduler"),
				filepath.Join(k8s, "kube-proxy"),
				filepath.Join(k8s, "kubelet"),
				filepath.Join(k8s, "kubectl"),
			), iptables...),
		},
		{
			Ref: refs["ETCD_IMAGE"],
			Files: bins("usr/local/bin/",
				filepath.Join(etcd, "etcd"),
				filepath.Join(etcd, "etcdctl"),
				filepath.Join(etcd, "etcdutl"),
			),
		},
		{
			Ref:        refs["PAUSE_IMAGE"],
			Files:      bins("", filepath.Join(pause, "pause")),
			Entrypoint: []string{"/pause"},
		},
		{
			Ref:   refs["CNI_PLUGINS_IMAGE"],
			Files: bins("opt/cni/bin/", cniBins...),
		},
		{
			// flanneld runs iptables (even in nftables mode); its init
			// containers copy the CNI plugins it delegates to onto the host.
			Ref: refs["FLANNEL_IMAGE"],
			Files: slices.Concat(
				bins("opt/bin/", filepath.Join(flannel, "flanneld"), filepath.Join(flannel, "flannel"), filepath.Join(flannel, "install-cni")),
				bins("opt/cni/bin/", filepath.Join(cni, "bridge"), filepath.Join(cni, "host-local"), filepath.Join(cni, "loopback"), filepath.Join(cni, "portmap")),
				iptables),
		},
		{
			Ref:        refs["COREDNS_IMAGE"],
			Files:      bins("", filepath.Join(coredns, "coredns")),
			Entrypoint: []string{"/coredns"},
		},
	}
	sort.Slice(specs, func(i, j int) bool { return specs[i].Ref < specs[j].Ref })
	return specs, nil
}

// testImageSpecs lists the images of the QEMU tests' own archive: the test
// workload (images/testworkload), alone in its image.
func testImageSpecs(env map[string]string, cache string) ([]imageSpec, error) {
	var missing []string
	for _, k := range []string{"TESTWORKLOAD_VERSION", "TESTWORKLOAD_IMAGE"} {
		if env[k] == "" {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("versions: %s not set", strings.Join(missing, ", "))
	}
	bin := filepath.Join(cache, "testworkload-"+env["TESTWORKLOAD_VERSION"], "testworkload")
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("test workload (did images/build.sh run?): %w", err)
	}
	return []imageSpec{{
		Ref:        env["TESTWORKLOAD_IMAGE"],
		Files:      []file{{Name: "testworkload", Source: bin, Mode: 0o755}},
		Entrypoint: []string{"/testworkload"},
	}}, nil
}

// executables lists the executable regular files of dir, sorted.
func executables(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list %s (did images/build.sh run?): %w", dir, err)
	}
	var out []string
	for _, e := range ents {
		info, err := e.Info()
		if err != nil {
			return nil, fmt.Errorf("stat %s: %w", filepath.Join(dir, e.Name()), err)
		}
		if info.Mode().IsRegular() && info.Mode()&0o111 != 0 {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s holds no executables", dir)
	}
	return out, nil
}
