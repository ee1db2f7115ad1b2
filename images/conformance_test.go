package images

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/klauspost/compress/zstd"

	"github.com/rke2os/rke2os/builder/content"
)

// conformanceArchivePath is where `images/build.sh OUT CACHE
// conformance-images` leaves the images Kubernetes' conformance tests run:
// RKE2_CONFORMANCE_IMAGES, or beside the archive.
func conformanceArchivePath() string {
	if p := os.Getenv("RKE2_CONFORMANCE_IMAGES"); p != "" {
		return p
	}
	return filepath.Join(filepath.Dir(archivePath()), "rke2os-conformance-images.linux-amd64.tar.zst")
}

// conformanceImage is what one image of the conformance archive must be,
// after its upstream Dockerfile: its config, and check, which looks at its
// unpacked files.
type conformanceImage struct {
	key    string // its reference's key in versions.env
	config v1.Config
	check  func(t *testing.T, r imageRoot, v map[string]string)
}

// TestConformanceImages checks each image of the conformance archive
// against its upstream Dockerfile: its config, the tools the Dockerfile
// installs present where the tests call them (through the image's PATH and
// /bin/sh), every ELF file loadable with the image's own loader and
// libraries, and the tools' flags the tests use accepted, all run from
// the unpacked image without root (through its loader, or directly when
// static). It is skipped when the archive has not been built, and fails
// instead when RKE2_REQUIRE_CONFORMANCE_IMAGES=1 (make test's
// RKE2_REQUIRE_IMAGES=1 does not build these).
func TestConformanceImages(t *testing.T) {
	path := conformanceArchivePath()
	requireBuilt(t, path, "RKE2_REQUIRE_CONFORMANCE_IMAGES", "images/build.sh OUT CACHE conformance-images")
	v := versions(t)
	s, err := content.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	raw := decompressed(t, path)
	images := conformanceImages()
	if len(s.Images()) != len(images) {
		t.Errorf("archive holds %d images, want %d: %v", len(s.Images()), len(images), s.Index())
	}
	for _, ci := range images {
		ref := v[ci.key]
		t.Run(ref, func(t *testing.T) {
			img, err := s.Find(ref)
			if err != nil {
				t.Fatal(err)
			}
			got := img.Config().Config
			want := ci.config
			if want.Env == nil {
				want.Env = []string{defaultPATH}
			}
			if !slices.Equal(got.Entrypoint, want.Entrypoint) || !slices.Equal(got.Cmd, want.Cmd) || !slices.Equal(got.Env, want.Env) ||
				got.User != want.User || got.WorkingDir != want.WorkingDir || !slices.Equal(sortedKeys(got.ExposedPorts), sortedKeys(want.ExposedPorts)) {
				t.Errorf("config:\n  %+v\nwant\n  %+v", got, want)
			}
			dir := filepath.Join(t.TempDir(), "root")
			if err := content.ExtractPaths(img, dir, []string{"/"}); err != nil {
				t.Fatal(err)
			}
			r := imageRoot{dir: dir, hdrs: layerHeaders(t, raw, ref), path: imagePATH(got.Env)}
			if ci.key != "E2E_PAUSE_IMAGE" { // FROM scratch upstream
				r.debianBase(t)
			}
			ci.check(t, r, v)
		})
	}
}

// defaultPATH is the PATH of an image that sets none of its own (alpine's,
// Debian's), as mkimages writes it.
const defaultPATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// conformanceImages lists the images of the conformance archive with what
// each must be.
func conformanceImages() []conformanceImage {
	agnhostConfig := v1.Config{
		Entrypoint:   []string{"/agnhost"},
		Cmd:          []string{"pause"},
		ExposedPorts: portSet("80/tcp", "8080/tcp", "8081/tcp", "9376/tcp", "5000/tcp"),
	}
	httpdConfig := v1.Config{
		Env:          []string{"PATH=/usr/local/apache2/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HTTPD_PREFIX=/usr/local/apache2"},
		WorkingDir:   "/usr/local/apache2",
		ExposedPorts: portSet("80/tcp"),
		Cmd:          []string{"httpd-foreground"},
	}
	nginxConfig := v1.Config{ExposedPorts: portSet("80/tcp"), Cmd: []string{"nginx", "-g", "daemon off;"}}
	return []conformanceImage{
		{"E2E_AGNHOST_IMAGE", agnhostConfig, checkAgnhost},
		{"E2E_NAUTILUS_IMAGE", v1.Config{Entrypoint: []string{"/agnhost"}, Cmd: []string{"test-webserver"}, ExposedPorts: agnhostConfig.ExposedPorts}, checkNautilus},
		{"E2E_BUSYBOX_IMAGE", v1.Config{Cmd: []string{"sh"}}, checkBusybox},
		{"E2E_HTTPD_IMAGE", httpdConfig, checkHttpd},
		{"E2E_HTTPD_NEW_IMAGE", httpdConfig, checkHttpd},
		{"E2E_NGINX_IMAGE", nginxConfig, checkNginx},
		{"E2E_NGINX_NEW_IMAGE", nginxConfig, checkNginx},
		{"E2E_NONROOT_IMAGE", v1.Config{User: "1234", Cmd: []string{"/bin/sh"}}, checkNonroot},
		{"E2E_JESSIE_DNSUTILS_IMAGE", v1.Config{Cmd: []string{"bash"}}, checkJessieDnsutils},
		{"E2E_NONEWPRIVS_IMAGE", v1.Config{Cmd: []string{"nnp"}}, checkNonewprivs},
		{"E2E_SAMPLE_APISERVER_IMAGE", v1.Config{Entrypoint: []string{"/sample-apiserver"}}, checkSampleAPIServer},
		{"E2E_ETCD_IMAGE", v1.Config{WorkingDir: "/", ExposedPorts: portSet("2379/tcp", "2380/tcp", "4001/tcp", "7001/tcp")}, checkEtcd},
		{"E2E_PAUSE_IMAGE", v1.Config{Entrypoint: []string{"/pause"}, User: "65535:65535"}, checkPause},
	}
}

// agnhost: alpine + bind-tools curl netcat-openbsd iproute2 iperf bash;
// the tests run `nc -v -t -w 2`, `nc -v -u -w 2`, dig, curl, getent, ip,
// iperf through sh -c, and `id -G` as the user the Dockerfile adds.
func checkAgnhost(t *testing.T, r imageRoot, v map[string]string) {
	r.static(t, "agnhost", "coredns")
	r.runs(t, "agnhost", []string{"--help"}, "netexec", "pause", "test-webserver", "porter")
	r.runs(t, "coredns", []string{"-version"}, "CoreDNS-")
	r.link(t, "agnhost-2", "agnhost")
	r.files(t, "localhost.crt", "localhost.key")
	r.hasDir(t, "uploads", 0o755)
	// /bin/sh is bash, whose nc is PATH's: netcat-openbsd.
	r.shell(t, "bin/bash")
	r.runs(t, "bin/sh", []string{"--version"}, "GNU bash")
	r.runs(t, r.which(t, "nc"), []string{"-h"}, "OpenBSD netcat",
		"\t-t\t\tAnswer TELNET negotiation", "\t-u\t\tUDP mode", "\t-v\t\tVerbose", "\t-w timeout\t")
	if nc := r.resolve(t, r.which(t, "nc")); nc != "bin/nc.openbsd" {
		t.Errorf("nc on PATH is %s, want netcat-openbsd's bin/nc.openbsd", nc)
	}
	for tool, want := range map[string][]string{
		"dig":      {"-v", "DiG 9."},
		"nslookup": {"-version", "nslookup 9."},
		"host":     {"-V", "host 9."},
		"curl":     {"--version", "curl 7."},
		"getent":   {"--version", "getent"},
		"bash":     {"--version", "GNU bash"},
		"ip":       {"-V", "iproute2"},
		"iperf":    {"-v", "iperf version 2."},
	} {
		r.runs(t, r.which(t, tool), want[:1], want[1])
	}
	r.link(t, "usr/local/bin/iperf", "../../bin/iperf")
	r.onPATH(t, "cat", "ls", "sleep", "seq", "test", "echo", "wc", "grep", "sed", "awk", "hostname", "ps", "wget",
		"timeout", "mkdir", "rm", "mv", "touch", "id", "nc", "ss", "tc")
	r.lines(t, "etc/passwd", "user-defined-in-image:x:1000:1000:")
	r.lines(t, "etc/group", "user-defined-in-image:x:1000:", "group-defined-in-image:x:50000:user-defined-in-image")
	r.allLoad(t)
}

// nautilus: FROM agnhost, its picture and data.json, agnhost's web server.
func checkNautilus(t *testing.T, r imageRoot, v map[string]string) {
	r.static(t, "agnhost")
	r.files(t, "nautilus.jpg")
	if b, err := os.ReadFile(filepath.Join(r.dir, "data.json")); err != nil || !strings.Contains(string(b), `"nautilus.jpg"`) {
		t.Errorf("data.json = %q, %v; want it to name nautilus.jpg", b, err)
	}
	r.runs(t, "agnhost", []string{"test-webserver", "--help"}, "--port")
}

// busybox: the static busybox, every applet linked in /bin.
func checkBusybox(t *testing.T, r imageRoot, v map[string]string) {
	r.static(t, "bin/busybox")
	r.shell(t, "bin/busybox")
	for _, a := range []string{"sh", "ls", "cat", "sleep", "wget", "nslookup", "nc", "hostname", "id", "mount", "stat", "top"} {
		r.link(t, "bin/"+a, "busybox")
	}
	r.runs(t, "bin/busybox", []string{"sh", "-c", "echo $((6*7))"}, "42")
}

// httpd: httpd:2.4-alpine's /usr/local/apache2 on Debian's Apache, serving
// htdocs ("It works!") on port 80; the tests move htdocs/index.html away
// with sh -c 'mv -v ...' to fail its readiness probe.
func checkHttpd(t *testing.T, r imageRoot, v map[string]string) {
	a := "usr/local/apache2/"
	r.files(t, a+"bin/httpd-foreground", a+"conf/httpd.conf", a+"conf/mime.types")
	r.hasDir(t, a+"logs", 0o755)
	if b, err := os.ReadFile(filepath.Join(r.dir, a+"htdocs/index.html")); err != nil || string(b) != "<html><body><h1>It works!</h1></body></html>\n" {
		t.Errorf("htdocs/index.html = %q, %v; want upstream's \"It works!\"", b, err)
	}
	if httpd := r.resolve(t, r.which(t, "httpd")); httpd != "usr/sbin/apache2" {
		t.Errorf("httpd on PATH is %s, want Apache's usr/sbin/apache2", httpd)
	}
	r.runs(t, "usr/sbin/apache2", []string{"-v"}, "Server version: Apache/2.4.")
	r.lines(t, a+"conf/httpd.conf", "Listen 80", `DocumentRoot "/usr/local/apache2/htdocs"`, "User daemon")
	r.lines(t, "etc/passwd", "daemon:")
	// The configuration with its paths moved into the unpacked image:
	// every module loads, every directive parses.
	conf, err := os.ReadFile(filepath.Join(r.dir, a+"conf/httpd.conf"))
	if err != nil {
		t.Fatal(err)
	}
	test := filepath.Join(t.TempDir(), "httpd.conf")
	if err := os.WriteFile(test, bytes.ReplaceAll(conf, []byte(`"/usr/local/apache2`), []byte(`"`+r.dir+"/usr/local/apache2")), 0o644); err != nil {
		t.Fatal(err)
	}
	r.runs(t, "usr/sbin/apache2", []string{"-t", "-f", test}, "Syntax OK")
	r.alpineShell(t, "httpd", a+"bin/httpd")
	r.onPATH(t, "mv", "sh", "ls", "cat", "rm")
	r.allLoad(t)
}

// nginx: nginx:1.x-alpine's configuration on Debian's nginx: port 80,
// /usr/share/nginx/html, user nginx, logs on stdout and stderr.
func checkNginx(t *testing.T, r imageRoot, v map[string]string) {
	r.runs(t, r.which(t, "nginx"), []string{"-v"}, "nginx version: nginx/1.")
	r.lines(t, "etc/nginx/nginx.conf", "user  nginx;", "include /etc/nginx/conf.d/*.conf;", "include       /etc/nginx/mime.types;")
	r.lines(t, "etc/nginx/conf.d/default.conf", "listen       80;", "root   /usr/share/nginx/html;")
	r.lines(t, "usr/share/nginx/html/index.html", "<title>Welcome to nginx!</title>")
	r.lines(t, "etc/passwd", "nginx:x:101:101:")
	r.lines(t, "etc/group", "nginx:x:101:")
	r.link(t, "var/log/nginx/access.log", "../../../dev/stdout")
	r.link(t, "var/log/nginx/error.log", "../../../dev/stderr")
	r.hasDir(t, "var/lib/nginx", 0o755)
	r.files(t, "etc/nginx/mime.types")
	// The configuration with its paths moved into the unpacked image and
	// a temporary directory: it parses, mime.types and conf.d included.
	tmp := t.TempDir()
	conf, err := os.ReadFile(filepath.Join(r.dir, "etc/nginx/nginx.conf"))
	if err != nil {
		t.Fatal(err)
	}
	var test []string
	for _, l := range strings.Split(string(conf), "\n") {
		switch f := strings.Fields(l); {
		case len(f) > 0 && f[0] == "user":
			continue // as root, nginx would look the user up on this machine
		case len(f) > 0 && f[0] == "pid":
			l = "pid " + filepath.Join(tmp, "nginx.pid") + ";"
		case len(f) > 0 && f[0] == "error_log":
			l = "error_log stderr warn;"
		case len(f) > 0 && f[0] == "access_log":
			l = "access_log /dev/stderr main;"
		case len(f) > 1 && f[0] == "http" && f[1] == "{":
			l += "\n"
			for _, p := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
				l += fmt.Sprintf("%s_temp_path %s;\n", p, filepath.Join(tmp, p))
			}
		default:
			l = strings.ReplaceAll(l, "/etc/nginx/", r.dir+"/etc/nginx/")
		}
		test = append(test, l)
	}
	conf2 := filepath.Join(tmp, "nginx.conf")
	if err := os.WriteFile(conf2, []byte(strings.Join(test, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	r.runs(t, "usr/sbin/nginx", []string{"-t", "-e", "stderr", "-p", tmp + "/", "-c", conf2}, "test is successful")
	r.alpineShell(t, "nginx", "usr/sbin/nginx")
	r.allLoad(t)
}

// nonroot: debian-base with USER 1234; the tests run `id -u`.
func checkNonroot(t *testing.T, r imageRoot, v map[string]string) {
	r.shell(t, "bin/dash")
	r.runs(t, r.which(t, "id"), []string{"--version"}, "GNU coreutils")
	r.onPATH(t, "sh", "bash", "cat", "ls", "sleep", "grep", "sed", "awk", "find", "hostname", "gzip", "tar")
	r.allLoad(t)
}

// jessie-dnsutils: Debian with dnsutils; the tests' probes run
// `dig +notcp/+tcp +noall +answer +search`, `getent hosts`, seq, test,
// sleep in sh -c.
func checkJessieDnsutils(t *testing.T, r imageRoot, v map[string]string) {
	r.shell(t, "bin/dash")
	r.runs(t, r.which(t, "dig"), []string{"-v"}, "DiG 9.")
	r.runs(t, r.which(t, "dig"), []string{"+notcp", "+noall", "+answer", "+search", "-h"}, "Usage:  dig")
	r.runs(t, r.which(t, "nslookup"), []string{"-version"}, "nslookup 9.")
	r.runs(t, r.which(t, "host"), []string{"-V"}, "host 9.")
	r.runs(t, r.which(t, "getent"), []string{"--version"}, "getent")
	r.onPATH(t, "sh", "bash", "seq", "test", "echo", "sleep", "cat", "grep", "awk", "hostname")
	r.allLoad(t)
}

// nonewprivs: nnp setuid root; the test runs it as uid 1000 without
// privilege escalation and reads "Effective uid: 1000".
func checkNonewprivs(t *testing.T, r imageRoot, v map[string]string) {
	if nnp := r.which(t, "nnp"); nnp != "usr/local/bin/nnp" {
		t.Errorf("nnp on PATH is %q, want usr/local/bin/nnp", nnp)
	}
	r.static(t, "usr/local/bin/nnp")
	if h := r.hdrs["usr/local/bin/nnp"]; h == nil || h.Mode != 0o4755 || h.Uid != 0 {
		t.Errorf("usr/local/bin/nnp: %+v, want mode 04755 owned by root", h)
	}
	r.runs(t, "usr/local/bin/nnp", nil, fmt.Sprintf("Effective uid: %d", os.Geteuid()))
	r.alpineShell(t, "nnp", "usr/local/bin/nnp")
	r.allLoad(t)
}

// sample-apiserver: the aggregator test runs it with --etcd-servers.
func checkSampleAPIServer(t *testing.T, r imageRoot, v map[string]string) {
	r.static(t, "sample-apiserver")
	r.runs(t, "sample-apiserver", []string{"--help"}, "--etcd-servers")
	r.allLoad(t)
}

// etcd: the aggregator test runs /usr/local/bin/etcd --listen-client-urls.
func checkEtcd(t *testing.T, r imageRoot, v map[string]string) {
	bin := "usr/local/bin/"
	r.static(t, bin+"etcd", bin+"etcdctl", bin+"etcdutl", bin+"migrate", "bin/sh")
	r.runs(t, bin+"etcd", []string{"--version"}, "etcd Version: "+strings.TrimPrefix(v["E2E_ETCD_VERSION"], "v"))
	r.runs(t, bin+"etcdctl", []string{"version"}, "etcdctl version: "+strings.TrimPrefix(v["E2E_ETCD_VERSION"], "v"))
	r.runs(t, bin+"migrate", []string{"--help"}, "--target-version")
	r.runs(t, "bin/sh", []string{"--version"}, "GNU bash")
	r.files(t, bin+"migrate-if-needed.sh")
}

// pause: registry.k8s.io/pause is FROM scratch with /pause alone.
func checkPause(t *testing.T, r imageRoot, v map[string]string) {
	if got := regularFiles(t, r.dir, false); !slices.Equal(got, []string{"pause"}) {
		t.Errorf("holds %v, want only pause", got)
	}
	r.static(t, "pause")
}

// imageRoot is one image of the conformance archive unpacked for checking:
// its files under dir, every tar header of its layers by path (the
// extraction drops setuid and sticky bits; the headers keep them), and
// its PATH.
type imageRoot struct {
	dir  string
	hdrs map[string]*tar.Header
	path []string
}

// debianBase checks what every image's base has: /etc/passwd, /etc/group,
// /etc/nsswitch.conf and a sticky /tmp.
func (r imageRoot) debianBase(t *testing.T) {
	t.Helper()
	r.lines(t, "etc/passwd", "root:")
	r.lines(t, "etc/group", "root:")
	r.lines(t, "etc/nsswitch.conf", "hosts:          files dns")
	r.hasDir(t, "tmp", 0o1777)
}

// files fails the test unless each path is a regular file.
func (r imageRoot) files(t *testing.T, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if info, err := os.Stat(filepath.Join(r.dir, p)); err != nil || !info.Mode().IsRegular() {
			t.Errorf("/%s: %v, want a file", p, err)
		}
	}
}

// hasDir fails the test unless p is a directory of mode in the layer.
func (r imageRoot) hasDir(t *testing.T, p string, mode int64) {
	t.Helper()
	if h := r.hdrs[p+"/"]; h == nil || h.Typeflag != tar.TypeDir || h.Mode != mode {
		t.Errorf("/%s: %+v, want a directory of mode %#o", p, h, mode)
	}
}

// link fails the test unless p is a symbolic link to target.
func (r imageRoot) link(t *testing.T, p, target string) {
	t.Helper()
	if got, err := os.Readlink(filepath.Join(r.dir, p)); err != nil || got != target {
		t.Errorf("/%s -> %q (%v), want -> %q", p, got, err, target)
	}
}

// lines fails the test unless file p holds each of want as a line, or
// the start of one.
func (r imageRoot) lines(t *testing.T, p string, want ...string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(r.dir, p))
	if err != nil {
		t.Errorf("/%s: %v", p, err)
		return
	}
	lines := strings.Split(string(b), "\n")
	for _, w := range want {
		if !slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(strings.TrimSpace(l), w) }) {
			t.Errorf("/%s has no line %q:\n%s", p, w, b)
		}
	}
}

// resolve follows the links of p (relative to the image's root) inside the
// image and returns the file it names, relative to the root.
func (r imageRoot) resolve(t *testing.T, p string) string {
	t.Helper()
	target, err := filepath.EvalSymlinks(filepath.Join(r.dir, p))
	if err != nil {
		t.Errorf("/%s: %v", p, err)
		return ""
	}
	root, err := filepath.EvalSymlinks(r.dir)
	if err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(root, target)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		t.Errorf("/%s leads out of the image to %s", p, target)
		return ""
	}
	return filepath.ToSlash(rel)
}

// which is where name is found on the image's PATH, relative to its root,
// or "" (a failure).
func (r imageRoot) which(t *testing.T, name string) string {
	t.Helper()
	for _, d := range r.path {
		p := strings.TrimPrefix(d, "/") + "/" + name
		if _, err := os.Stat(filepath.Join(r.dir, p)); err == nil {
			return p
		}
	}
	t.Errorf("%s is not on the image's PATH %v", name, r.path)
	return ""
}

// onPATH fails the test unless each name is on the image's PATH.
func (r imageRoot) onPATH(t *testing.T, names ...string) {
	t.Helper()
	for _, n := range names {
		r.which(t, n)
	}
}

// shell fails the test unless /bin/sh is the program at p.
func (r imageRoot) shell(t *testing.T, p string) {
	t.Helper()
	if got := r.resolve(t, "bin/sh"); got != p {
		t.Errorf("/bin/sh is /%s, want /%s", got, p)
	}
}

// alpineShell checks that /bin/sh is Debian's dynamic busybox, whose ash
// runs name from PATH (want, relative to the root) as alpine's does, where
// busybox-static's would run an applet of that name first.
func (r imageRoot) alpineShell(t *testing.T, name, want string) {
	t.Helper()
	r.shell(t, "bin/busybox")
	if _, interp := r.elfKind(t, "bin/busybox"); !interp {
		t.Errorf("/bin/busybox is static: its ash would run its own applets before PATH's programs")
	}
	out := r.runs(t, "bin/busybox", []string{"sh", "-c", "command -v " + name})
	if got := strings.TrimSpace(out); got != filepath.Join(r.dir, want) {
		t.Errorf("busybox sh: command -v %s = %q, want %s", name, got, filepath.Join(r.dir, want))
	}
}

// static fails the test unless each path is a static x86-64 executable.
func (r imageRoot) static(t *testing.T, paths ...string) {
	t.Helper()
	for _, p := range paths {
		for _, problem := range staticProblems(filepath.Join(r.dir, p)) {
			t.Errorf("/%s: %s", p, problem)
		}
	}
}

// elfKind tells whether the file at p is an x86-64 ELF file and whether it
// names an interpreter (is dynamically linked).
func (r imageRoot) elfKind(t *testing.T, p string) (isELF, interp bool) {
	t.Helper()
	f, err := elf.Open(filepath.Join(r.dir, r.resolve(t, p)))
	if err != nil {
		return false, false
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			b, err := io.ReadAll(prog.Open())
			if err != nil || string(bytes.TrimRight(b, "\x00")) != "/lib64/ld-linux-x86-64.so.2" {
				t.Errorf("/%s: interpreter %q (%v), want /lib64/ld-linux-x86-64.so.2", p, b, err)
			}
			interp = true
		}
	}
	if f.Machine != elf.EM_X86_64 {
		t.Errorf("/%s: %v, want x86-64", p, f.Machine)
	}
	return true, interp
}

// libraryPath is the image's own library directories, for its loader.
func (r imageRoot) libraryPath() string {
	return filepath.Join(r.dir, "lib/x86_64-linux-gnu") + ":" + filepath.Join(r.dir, "usr/lib/x86_64-linux-gnu")
}

// command runs the program at p (relative to the root) with args: through
// the image's own loader and libraries when it is dynamically linked,
// directly when static, with the image's PATH moved under its root.
func (r imageRoot) command(t *testing.T, p string, args ...string) *exec.Cmd {
	t.Helper()
	bin := filepath.Join(r.dir, p)
	var cmd *exec.Cmd
	if _, interp := r.elfKind(t, p); interp {
		cmd = exec.Command(filepath.Join(r.dir, "lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"),
			append([]string{"--inhibit-cache", "--library-path", r.libraryPath(), bin}, args...)...)
	} else {
		cmd = exec.Command(bin, args...)
	}
	var path []string
	for _, d := range r.path {
		path = append(path, filepath.Join(r.dir, d))
	}
	cmd.Env = []string{"PATH=" + strings.Join(path, ":"), "LC_ALL=C", "HOME=" + t.TempDir()}
	return cmd
}

// runs runs p with args and fails the test unless its output (stdout and
// stderr) holds each of want; it returns the output. The exit status is
// not looked at: some tools exit 1 after printing their version (iperf -v).
func (r imageRoot) runs(t *testing.T, p string, args []string, want ...string) string {
	t.Helper()
	if p == "" {
		return "" // not found: reported
	}
	out, err := r.command(t, p, args...).CombinedOutput()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Errorf("/%s %s: %v", p, strings.Join(args, " "), err)
		return ""
	}
	for _, w := range want {
		if !strings.Contains(string(out), w) {
			t.Errorf("/%s %s: output lacks %q:\n%s", p, strings.Join(args, " "), w, out)
		}
	}
	return string(out)
}

// allLoad checks every ELF file of the image that links libraries with the
// image's own loader: each library it needs is found in the image.
func (r imageRoot) allLoad(t *testing.T) {
	t.Helper()
	n := 0
	err := filepath.WalkDir(r.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		f, err := elf.Open(p)
		if err != nil {
			return nil // not ELF
		}
		libs, _ := f.ImportedLibraries()
		f.Close()
		if len(libs) == 0 {
			return nil
		}
		n++
		rel, _ := filepath.Rel(r.dir, p)
		cmd := exec.Command(filepath.Join(r.dir, "lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"), "--inhibit-cache", "--library-path", r.libraryPath(), p)
		cmd.Env = []string{"LD_TRACE_LOADED_OBJECTS=1"}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("/%s does not load with the image's loader: %v\n%s", rel, err, out)
			return nil
		}
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if !strings.Contains(l, r.dir+"/") && !strings.Contains(l, "linux-vdso") {
				t.Errorf("/%s needs a library from outside the image: %s", rel, strings.TrimSpace(l))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Errorf("no dynamically linked file found: the walk is broken")
	}
}

// imagePATH is the directories of an image config's PATH.
func imagePATH(env []string) []string {
	for _, e := range env {
		if p, ok := strings.CutPrefix(e, "PATH="); ok {
			return strings.Split(p, ":")
		}
	}
	return nil
}

// decompressed writes the archive at path uncompressed into a temporary
// file, for go-containerregistry's reader, and returns its path.
func decompressed(t *testing.T, path string) string {
	t.Helper()
	in, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	dec, err := zstd.NewReader(in)
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	p := filepath.Join(t.TempDir(), "conformance.tar")
	out, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, dec); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}

// layerHeaders reads the tar headers of every layer of image ref in the
// docker-save archive at raw, by name; a later layer's header wins.
func layerHeaders(t *testing.T, raw, ref string) map[string]*tar.Header {
	t.Helper()
	tag, err := name.NewTag(ref)
	if err != nil {
		t.Fatal(err)
	}
	img, err := tarball.ImageFromPath(raw, &tag)
	if err != nil {
		t.Fatalf("%s: %v", ref, err)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	hdrs := map[string]*tar.Header{}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			hdr, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				rc.Close()
				t.Fatal(err)
			}
			hdrs[hdr.Name] = hdr
		}
		rc.Close()
	}
	return hdrs
}

func portSet(ps ...string) map[string]struct{} {
	m := map[string]struct{}{}
	for _, p := range ps {
		m[p] = struct{}{}
	}
	return m
}

func sortedKeys(m map[string]struct{}) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
