package images

import (
	"bufio"
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/rke2os/rke2os/builder/content"
)

// archivePath is where `images/build.sh` leaves the archive, seen from this
// directory; RKE2_IMAGES_ARCHIVE names another.
func archivePath() string {
	if p := os.Getenv("RKE2_IMAGES_ARCHIVE"); p != "" {
		return p
	}
	return filepath.Join("..", "build", "images", "rke2-images.linux-amd64.tar.zst")
}

// testArchivePath is where `images/build.sh` leaves the QEMU tests' own
// images: RKE2_TEST_IMAGES (as the Makefile passes it to the QEMU tests), or
// beside the archive.
func testArchivePath() string {
	if p := os.Getenv("RKE2_TEST_IMAGES"); p != "" {
		return p
	}
	return filepath.Join(filepath.Dir(archivePath()), "rke2os-test-images.linux-amd64.tar.zst")
}

// versions reads versions.env.
func versions(t *testing.T) map[string]string {
	t.Helper()
	f, err := os.Open("versions.env")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			env[k] = v
		}
	}
	return env
}

// requireBuilt skips the test when path (an archive images/build.sh
// writes) is missing, or fails it when env=1 says the build ran: how says
// which build writes it.
func requireBuilt(t *testing.T, path, env, how string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		if os.Getenv(env) == "1" {
			t.Fatalf("%s=1 but %s is missing (run %s): %v", env, path, how, err)
		}
		t.Skipf("%s not built (%s builds it; %s=1 makes this a failure)", path, how, env)
	}
}

// TestArchive checks the built archive from the archive alone: every image
// under its name, every file where RKE2 looks for it, every binary a static
// x86-64 executable, and the binaries saying the versions asked for. It is
// skipped when the archive has not been built, and fails instead when
// RKE2_REQUIRE_IMAGES=1 (as `make test` after `make images` sets it).
func TestArchive(t *testing.T) {
	path := archivePath()
	requireBuilt(t, path, "RKE2_REQUIRE_IMAGES", "images/build.sh")
	v := versions(t)
	s, err := content.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	k8sBins := []string{"kube-apiserver", "kube-controller-manager", "kube-proxy", "kube-scheduler", "kubectl", "kubelet"}
	cniBins := []string{"bridge", "host-local", "loopback", "portmap"}
	// The static binaries of each image; kube-proxy's and flannel's also
	// carry Debian's iptables tree (withIptables), checked below.
	want := map[string][]string{
		v["RUNTIME_IMAGE"]:     {"bin/containerd", "bin/containerd-shim-runc-v2", "bin/crictl", "bin/ctr", "bin/etcdutl", "bin/kubectl", "bin/kubelet", "bin/runc", "charts/rke2-coredns.yaml", "charts/rke2-flannel.yaml"},
		v["KUBERNETES_IMAGE"]:  prefixed("usr/local/bin/", k8sBins),
		v["ETCD_IMAGE"]:        {"usr/local/bin/etcd", "usr/local/bin/etcdctl", "usr/local/bin/etcdutl"},
		v["PAUSE_IMAGE"]:       {"pause"},
		v["CNI_PLUGINS_IMAGE"]: prefixed("opt/cni/bin/", []string{"bandwidth", "bridge", "firewall", "host-device", "host-local", "ipvlan", "loopback", "macvlan", "portmap", "ptp", "sbr", "static", "tuning", "vlan", "vrf"}),
		v["FLANNEL_IMAGE"]:     append(prefixed("opt/bin/", []string{"flannel", "flanneld", "install-cni"}), prefixed("opt/cni/bin/", cniBins)...),
		v["COREDNS_IMAGE"]:     {"coredns"},
	}
	withIptables := map[string]bool{v["KUBERNETES_IMAGE"]: true, v["FLANNEL_IMAGE"]: true}
	if len(s.Images()) != len(want) {
		t.Errorf("archive holds %d images, want %d: %v", len(s.Images()), len(want), s.Index())
	}
	trees := map[string]string{}
	for ref, files := range want {
		img, err := s.Find(ref)
		if err != nil {
			t.Error(err)
			continue
		}
		dest := filepath.Join(t.TempDir(), "root")
		if err := content.ExtractPaths(img, dest, []string{"/"}); err != nil {
			t.Fatal(err)
		}
		trees[ref] = dest
		if withIptables[ref] {
			checkIptables(t, ref, dest)
		}
		if got := regularFiles(t, dest, withIptables[ref]); strings.Join(got, " ") != strings.Join(files, " ") {
			t.Errorf("%s holds\n  %v\nwant\n  %v", ref, got, files)
		}
		for _, f := range files {
			if strings.HasPrefix(f, "charts/") {
				continue
			}
			checkStaticBinary(t, filepath.Join(dest, f))
		}
	}
	if img, err := s.FindRuntime(v["RKE2_VERSION"]); err != nil {
		t.Error(err)
	} else if img.Name != "docker.io/"+v["RUNTIME_IMAGE"] {
		t.Errorf("FindRuntime(%s) = %s", v["RKE2_VERSION"], img.Name)
	}

	rt, k8s, etcd := trees[v["RUNTIME_IMAGE"]], trees[v["KUBERNETES_IMAGE"]], trees[v["ETCD_IMAGE"]]
	for _, tc := range []struct {
		root, bin string
		args      []string
		want      string
	}{
		{rt, "bin/kubelet", []string{"--version"}, "Kubernetes " + v["KUBERNETES_VERSION"]},
		{rt, "bin/kubectl", []string{"version", "--client"}, "Client Version: " + v["KUBERNETES_VERSION"]},
		{rt, "bin/containerd", []string{"--version"}, v["CONTAINERD_VERSION"]},
		{rt, "bin/runc", []string{"--version"}, "runc version " + strings.TrimPrefix(v["RUNC_VERSION"], "v")},
		{rt, "bin/crictl", []string{"--version"}, "crictl version " + v["CRICTL_VERSION"]},
		{k8s, "usr/local/bin/kube-apiserver", []string{"--version"}, "Kubernetes " + v["KUBERNETES_VERSION"]},
		{etcd, "usr/local/bin/etcd", []string{"--version"}, "etcd Version: " + strings.TrimPrefix(v["ETCD_VERSION"], "v")},
		{rt, "bin/etcdutl", []string{"version"}, "etcdutl version: " + strings.TrimPrefix(v["ETCD_VERSION"], "v")},
		{trees[v["FLANNEL_IMAGE"]], "opt/bin/flanneld", []string{"--version"}, v["FLANNEL_VERSION"]},
		{trees[v["COREDNS_IMAGE"]], "coredns", []string{"-version"}, "CoreDNS-" + strings.TrimPrefix(v["COREDNS_VERSION"], "v")},
	} {
		if tc.root == "" {
			continue // the image is missing: reported above
		}
		out, err := exec.Command(filepath.Join(tc.root, tc.bin), tc.args...).CombinedOutput()
		if err != nil || !strings.Contains(string(out), tc.want) {
			t.Errorf("%s %s: %v\n%s\nwant %q", tc.bin, strings.Join(tc.args, " "), err, out, tc.want)
		}
	}
}

// TestTestArchive checks the QEMU tests' own archive: the test workload
// alone, a static binary run as the image's entrypoint, and saying it is
// testworkload. TestArchive checks that the main archive does not hold it.
func TestTestArchive(t *testing.T) {
	path := testArchivePath()
	requireBuilt(t, path, "RKE2_REQUIRE_IMAGES", "images/build.sh")
	v := versions(t)
	s, err := content.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if len(s.Images()) != 1 {
		t.Errorf("test archive holds %d images, want only %s: %v", len(s.Images()), v["TESTWORKLOAD_IMAGE"], s.Index())
	}
	img, err := s.Find(v["TESTWORKLOAD_IMAGE"])
	if err != nil {
		t.Fatal(err)
	}
	if ep := img.Config().Config.Entrypoint; !slices.Equal(ep, []string{"/testworkload"}) {
		t.Errorf("%s: entrypoint %q, want [/testworkload]", img.Name, ep)
	}
	dest := filepath.Join(t.TempDir(), "root")
	if err := content.ExtractPaths(img, dest, []string{"/"}); err != nil {
		t.Fatal(err)
	}
	if got := regularFiles(t, dest, false); !slices.Equal(got, []string{"testworkload"}) {
		t.Errorf("%s holds %v, want only testworkload", img.Name, got)
	}
	bin := filepath.Join(dest, "testworkload")
	checkStaticBinary(t, bin)
	if out, err := exec.Command(bin, "--help").CombinedOutput(); err != nil || !strings.Contains(string(out), "testworkload check") {
		t.Errorf("testworkload --help: %v\n%s", err, out)
	}
}

func prefixed(prefix string, names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = prefix + n
	}
	return out
}

// iptablesTree are the directories of Debian's iptables tree in an image.
var iptablesTree = []string{"bin/", "etc/", "lib/", "lib64/", "usr/lib/", "usr/sbin/"}

// checkIptables runs the image's own iptables and nft from its extracted
// tree (chroot: CI runs as root), as kube-proxy and flanneld run them.
func checkIptables(t *testing.T, ref, root string) {
	t.Helper()
	if target, err := os.Readlink(filepath.Join(root, "usr/sbin/iptables")); err != nil || target != "xtables-nft-multi" {
		t.Errorf("%s: usr/sbin/iptables -> %q (%v), want the nft variant as update-alternatives makes it", ref, target, err)
	}
	for _, args := range [][]string{{"/usr/sbin/iptables", "--version"}, {"/usr/sbin/iptables-restore", "--version"}, {"/usr/sbin/nft", "--version"}, {"/bin/mount", "--version"}} {
		out, err := exec.Command("chroot", append([]string{root}, args...)...).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "v1.") && !strings.Contains(string(out), "util-linux") {
			t.Errorf("%s: %s in the image: %v\n%s", ref, strings.Join(args, " "), err, out)
		}
	}
}

// regularFiles lists the regular files under dir, sorted, and checks that
// each executable is mode 0755; with skipTree, the iptables tree (its
// links and libraries) is left out.
func regularFiles(t *testing.T, dir string, skipTree bool) []string {
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if skipTree && slices.ContainsFunc(iptablesTree, func(prefix string) bool { return strings.HasPrefix(rel, prefix) }) {
			return nil
		}
		if !info.Mode().IsRegular() {
			t.Errorf("%s is not a regular file: %v", rel, info.Mode())
		}
		if info.Mode().Perm()&0o111 != 0 && info.Mode().Perm() != 0o755 {
			t.Errorf("%s has mode %v, want 0755", rel, info.Mode().Perm())
		}
		out = append(out, rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// checkStaticBinary fails the test unless p is a static x86-64 executable.
func checkStaticBinary(t *testing.T, p string) {
	t.Helper()
	for _, problem := range staticProblems(p) {
		t.Errorf("%s: %s", p, problem)
	}
}

// staticProblems says why p is not an x86-64 ELF executable that needs no
// dynamic loader and no shared library (and so runs in an image with
// nothing else in it), or nothing.
func staticProblems(p string) []string {
	f, err := elf.Open(p)
	if err != nil {
		return []string{"not an ELF file: " + err.Error()}
	}
	defer f.Close()
	var out []string
	if f.Machine != elf.EM_X86_64 || f.Class != elf.ELFCLASS64 || f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		out = append(out, fmt.Sprintf("%v %v %v, want an x86-64 executable", f.Class, f.Machine, f.Type))
	}
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			out = append(out, "has an ELF interpreter (PT_INTERP): dynamically linked")
		}
	}
	libs, err := f.ImportedLibraries()
	if err != nil && !errors.Is(err, elf.ErrNoSymbols) {
		out = append(out, err.Error())
	}
	if len(libs) > 0 {
		out = append(out, fmt.Sprintf("needs shared libraries %v (DT_NEEDED)", libs))
	}
	return out
}

// TestStaticProblems checks the check itself on binaries of this machine.
func TestStaticProblems(t *testing.T) {
	if _, err := os.Stat("/bin/ls"); err == nil {
		if got := staticProblems("/bin/ls"); len(got) != 2 {
			t.Errorf("/bin/ls (dynamic): %v, want PT_INTERP and DT_NEEDED", got)
		}
	}
	if got := staticProblems("versions.env"); len(got) != 1 || !strings.Contains(got[0], "not an ELF") {
		t.Errorf("versions.env: %v", got)
	}
}
