package build

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/rke2os/rke2os/init/shared/layout"
	"github.com/rke2os/rke2os/init/shared/serverpki"
	"github.com/rke2os/rke2os/internal/artifact"
	"github.com/rke2os/rke2os/internal/diskimage"
	"github.com/u-root/u-root/pkg/cpio"
)

// inputs lays out a small but complete set of build inputs: a fake bzImage
// with one module, GRUB's four images, an init binary and an overlay.
func inputs(t *testing.T) Options {
	t.Helper()
	dir := t.TempDir()
	k := filepath.Join(dir, "kernel")
	mods := filepath.Join(k, "lib", "modules", "6.1.0-test")
	must(t, os.MkdirAll(filepath.Join(mods, "kernel", "fs"), 0o755))
	must(t, os.WriteFile(filepath.Join(mods, "kernel", "fs", "isofs.ko"), minimalELF(), 0o644))
	must(t, os.WriteFile(filepath.Join(mods, "modules.dep"), []byte("kernel/fs/isofs.ko:\n"), 0o644))
	img := make([]byte, 4096)
	copy(img[0x202:], "HdrS")
	must(t, os.WriteFile(filepath.Join(k, "vmlinuz"), img, 0o644))

	g := filepath.Join(dir, "grub")
	must(t, os.MkdirAll(g, 0o755))
	boot := make([]byte, 512)
	boot[510], boot[511] = 0x55, 0xAA
	must(t, os.WriteFile(filepath.Join(g, "boot.img"), boot, 0o644))
	must(t, os.WriteFile(filepath.Join(g, "core.img"), bytes.Repeat([]byte{0x90}, 4000), 0o644))
	must(t, os.WriteFile(filepath.Join(g, "eltorito.img"), bytes.Repeat([]byte{0xEB}, 6000), 0o644))
	must(t, os.WriteFile(filepath.Join(g, "bootx64.efi"), bytes.Repeat([]byte{'M'}, 9000), 0o644))
	must(t, os.WriteFile(filepath.Join(g, "bootx64-iso.efi"), bytes.Repeat([]byte{'N'}, 9000), 0o644))

	initBin := filepath.Join(dir, "rke2-init")
	must(t, os.WriteFile(initBin, []byte("\x7fELF fake init"), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "rke2-node"), []byte("\x7fELF fake rke2-node"), 0o755))
	ov := filepath.Join(dir, "overlays")
	must(t, os.MkdirAll(filepath.Join(ov, "etc", "modules-load.d"), 0o755))
	must(t, os.WriteFile(filepath.Join(ov, "etc", "modules-load.d", "rke2.conf"), []byte("# medium\nisofs\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(ov, "etc", "passwd"), []byte("root:x:0:0::/root:/bin/false\n"), 0o644))
	return Options{Role: "server", Output: filepath.Join(dir, "out"), Kernel: k, Grub: g, Init: initBin, Overlays: ov,
		Epoch: time.Unix(1735689600, 0).UTC()}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// minimalELF is an ELF64 header with no sections: enough for debug/elf.
func minimalELF() []byte {
	b := make([]byte, 64)
	copy(b, []byte{0x7f, 'E', 'L', 'F', 2, 1, 1})
	binary.LittleEndian.PutUint16(b[16:], 1)
	binary.LittleEndian.PutUint16(b[18:], 62)
	binary.LittleEndian.PutUint32(b[20:], 1)
	binary.LittleEndian.PutUint16(b[52:], 64)
	binary.LittleEndian.PutUint16(b[58:], 64)
	return b
}

func read(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Same inputs, same bytes: two builds a second apart, with the inputs'
// file dates changed in between, write identical ISO, disk and initrd.
func TestReproducible(t *testing.T) {
	o := inputs(t)
	t.Setenv("SOURCE_DATE_EPOCH", "1735689600")
	a, err := Image(o)
	if err != nil {
		t.Fatal(err)
	}
	first := map[string][]byte{"iso": read(t, a.ISO), "raw": read(t, a.Raw), "initrd": read(t, a.Initrd)}
	time.Sleep(1100 * time.Millisecond)
	now := time.Now()
	for _, p := range []string{o.Init, filepath.Join(o.Kernel, "vmlinuz"), filepath.Join(o.Grub, "bootx64.efi")} {
		must(t, os.Chtimes(p, now, now))
	}
	o.Output = filepath.Join(t.TempDir(), "second")
	b, err := Image(o)
	if err != nil {
		t.Fatal(err)
	}
	for kind, p := range map[string]string{"iso": b.ISO, "raw": b.Raw, "initrd": b.Initrd} {
		if !bytes.Equal(first[kind], read(t, p)) {
			t.Errorf("%s differs between two builds of the same inputs", kind)
		}
	}
	m := string(read(t, b.Manifest))
	for _, want := range []string{`"role": "server"`, `"kernel_version": "6.1.0-test"`, "rke2-server.iso", `"kind": "bootloader"`, `"kind": "overlay"`, "kernel/fs/isofs.ko"} {
		if !strings.Contains(m, want) {
			t.Errorf("manifest.json lacks %s", want)
		}
	}
	// No temporary files are left beside the outputs.
	ents, _ := os.ReadDir(o.Output)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("left behind: %s", e.Name())
		}
	}
}

func TestBadInput(t *testing.T) {
	tests := []struct {
		name   string
		change func(o *Options)
		want   string
	}{
		{"unknown role", func(o *Options) { o.Role = "worker" }, `unknown role "worker"`},
		{"missing kernel", func(o *Options) { o.Kernel = "/nonexistent" }, "kernel /nonexistent"},
		{"kernel without modules", func(o *Options) { os.RemoveAll(filepath.Join(o.Kernel, "lib")) }, "no modules"},
		{"missing init", func(o *Options) { o.Init = "/nonexistent/rke2-init" }, "init binary"},
		{"missing grub", func(o *Options) { o.Grub = t.TempDir() }, "make grub"},
		{"missing rke2-node", func(o *Options) { o.Node = "/nonexistent/rke2-node" }, "rke2-node binary"},
		{"images without rke2-node", func(o *Options) {
			o.Images, o.Version = []string{airgap(t, "rancher/rke2-runtime:v1.34.4-rke2r1")}, "v1.34.4+rke2r1"
			os.Remove(filepath.Join(filepath.Dir(o.Init), "rke2-node"))
		}, "no rke2-node beside"},
		{"bad config", func(o *Options) {
			o.Config = filepath.Join(t.TempDir(), "node.yaml")
			os.WriteFile(o.Config, []byte("hostname: node1\nhostnme: typo\n"), 0o644)
		}, "node.yaml line 2"},
		{"agent config without server", func(o *Options) {
			o.Role = "agent"
			o.Config = filepath.Join(t.TempDir(), "agent.yaml")
			os.WriteFile(o.Config, []byte("hostname: node1\n"), 0o644)
		}, "rke2.server"},
		{"reset on the command line", func(o *Options) { o.Cmdline = "quiet rke2.reset=1" }, "rke2.reset is set by the image's boot loader"},
		{"slot on the command line", func(o *Options) { o.Cmdline = "rke2.slot=B" }, "rke2.slot is set by"},
		{"quoted reset on the command line", func(o *Options) { o.Cmdline = `quiet "rke2.reset=1"` }, "rke2.reset is set by"},
		{"bad os version", func(o *Options) { o.OSVersion = "1 2" }, `--os-version "1 2"`},
		{"unwritable output", func(o *Options) {
			f := filepath.Join(t.TempDir(), "file")
			os.WriteFile(f, nil, 0o644)
			o.Output = filepath.Join(f, "out")
		}, "output directory"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := inputs(t)
			tc.change(&o)
			_, err := Image(o)
			var ie *InputError
			if !errors.As(err, &ie) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want an InputError with %q", err, tc.want)
			}
			// Nothing half-written: no image in the output directory.
			if ents, _ := os.ReadDir(o.Output); len(ents) > 0 {
				var names []string
				for _, e := range ents {
					names = append(names, e.Name())
				}
				t.Errorf("output directory holds %v after a failed build", names)
			}
		})
	}
}

// airgap writes a docker-save archive holding the given tags.
func airgap(t *testing.T, tags ...string) string {
	t.Helper()
	refs := map[name.Reference]v1.Image{}
	for _, tag := range tags {
		img, err := random.Image(512, 1)
		if err != nil {
			t.Fatal(err)
		}
		ref, err := name.NewTag(tag)
		if err != nil {
			t.Fatal(err)
		}
		refs[ref] = img
	}
	p := filepath.Join(t.TempDir(), "rke2-images.linux-amd64.tar")
	if err := tarball.MultiRefWriteToFile(p, refs); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestImagesBaked(t *testing.T) {
	o := inputs(t)
	o.Images = []string{airgap(t, "rancher/rke2-runtime:v1.34.4-rke2r1", "rancher/mirrored-pause:3.10")}
	o.Version = "v1.34.4+rke2r1"
	out, err := Image(o)
	if err != nil {
		t.Fatal(err)
	}
	m := string(read(t, out.Manifest))
	for _, want := range []string{`"rke2_version": "v1.34.4+rke2r1"`, "docker.io/rancher/rke2-runtime:v1.34.4-rke2r1", `"archive": "/rke2/agent/images/rke2-images.linux-amd64.tar"`, `"kind": "images"`} {
		if !strings.Contains(m, want) {
			t.Errorf("manifest.json lacks %s", want)
		}
	}
	archive := read(t, o.Images[0])
	for _, img := range []string{out.ISO, out.Raw} {
		if b := read(t, img); !bytes.Contains(b, archive[:2048]) || !bytes.Contains(b, []byte(`"archive": "/rke2/agent/images/`)) {
			t.Errorf("%s does not carry the archive and its index", filepath.Base(img))
		}
	}
	// The release file in the initramfs gives the archive's digest, so
	// that the node does not hash the archive at every boot.
	zr, err := gzip.NewReader(bytes.NewReader(read(t, out.Initrd)))
	if err != nil {
		t.Fatal(err)
	}
	initrd, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(archive)
	want := `"/rke2/agent/images/rke2-images.linux-amd64.tar": "sha256:` + hex.EncodeToString(sum[:]) + `"`
	if !bytes.Contains(initrd, []byte(want)) {
		t.Errorf("release.json in the initrd lacks %s", want)
	}
	// rke2-node, which extracts and imports the images, is where the init runs it.
	if !bytes.Contains(initrd, []byte(strings.TrimPrefix(layout.NodeBinary, "/"))) || !bytes.Contains(initrd, []byte("fake rke2-node")) {
		t.Errorf("the initrd lacks rke2-node at %s", layout.NodeBinary)
	}
}

func TestImagesWithoutRuntime(t *testing.T) {
	o := inputs(t)
	o.Images = []string{airgap(t, "rancher/rke2-runtime:v1.33.0-rke2r1")}
	o.Version = "v1.34.4+rke2r1"
	_, err := Image(o)
	var ie *InputError
	if !errors.As(err, &ie) || !strings.Contains(err.Error(), "v1.33.0-rke2r1") {
		t.Fatalf("err = %v, want an InputError naming the runtime tags found", err)
	}
	o.Version = ""
	if _, err := Image(o); err == nil || !strings.Contains(err.Error(), "--version") {
		t.Fatalf("err = %v, want a hint to give --version", err)
	}
}

// initrdRecords reads the initrd's cpio records by name.
func initrdRecords(t *testing.T, initrd string) map[string]cpio.Record {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(read(t, initrd)))
	must(t, err)
	raw, err := io.ReadAll(zr)
	must(t, err)
	recs, err := cpio.ReadAllRecords(cpio.Newc.Reader(bytes.NewReader(raw)))
	must(t, err)
	out := map[string]cpio.Record{}
	for _, r := range recs {
		out[r.Name] = r
	}
	return out
}

// --rootfs lays a root fragment (iptables from Debian) into the root, its
// links kept, through a link to the tree of the day; an overlay file of
// the same name wins.
func TestRootfs(t *testing.T) {
	o := inputs(t)
	dir := t.TempDir()
	tree := filepath.Join(dir, "iptables-1.8.9-2", "root")
	must(t, os.MkdirAll(filepath.Join(tree, "usr", "sbin"), 0o755))
	must(t, os.MkdirAll(filepath.Join(tree, "etc"), 0o755))
	must(t, os.WriteFile(filepath.Join(tree, "usr", "sbin", "xtables-nft-multi"), []byte("\x7fELF"), 0o755))
	must(t, os.Symlink("xtables-nft-multi", filepath.Join(tree, "usr", "sbin", "iptables")))
	must(t, os.WriteFile(filepath.Join(tree, "etc", "passwd"), []byte("from the rootfs\n"), 0o644))
	must(t, os.Symlink("iptables-1.8.9-2", filepath.Join(dir, "iptables")))
	o.Rootfs = filepath.Join(dir, "iptables", "root")
	out, err := Image(o)
	if err != nil {
		t.Fatal(err)
	}
	recs := initrdRecords(t, out.Initrd)
	if r, ok := recs["usr/sbin/xtables-nft-multi"]; !ok || r.Mode != cpio.S_IFREG|0o755 {
		t.Errorf("xtables-nft-multi: in the initrd %v, mode %o", ok, r.Mode)
	}
	if r, ok := recs["usr/sbin/iptables"]; !ok || r.Mode&cpio.S_IFMT != cpio.S_IFLNK {
		t.Errorf("iptables: in the initrd %v, mode %o, want a link", ok, r.Mode)
	}
	r := recs["etc/passwd"]
	if got, _ := io.ReadAll(io.NewSectionReader(r.ReaderAt, 0, int64(r.FileSize))); !bytes.HasPrefix(got, []byte("root:")) {
		t.Errorf("etc/passwd = %q, want the overlay's", got)
	}
	o.Rootfs = filepath.Join(dir, "missing")
	if _, err := Image(o); err == nil || !strings.Contains(err.Error(), "rootfs") {
		t.Errorf("a missing rootfs: err = %v", err)
	}
}

// --secrets puts the cluster's secrets into the server's initramfs, in
// RKE2's layout and private, and keeps them out of manifest.json: no
// path, no name, no digest.
func TestSecretsBaked(t *testing.T) {
	o := inputs(t)
	o.Secrets = filepath.Join(t.TempDir(), "secrets")
	must(t, serverpki.GenerateSecrets(o.Secrets))
	out, err := Image(o)
	if err != nil {
		t.Fatal(err)
	}
	inInitrd := initrdRecords(t, out.Initrd)
	root := strings.TrimPrefix(layout.BakedSecrets, "/")
	for _, d := range []string{root, root + "/tls", root + "/tls/etcd"} {
		if r, ok := inInitrd[d]; !ok || r.Mode != cpio.S_IFDIR|0o700 {
			t.Errorf("%s: in the initrd %v, mode %o, want a directory 0700", d, ok, r.Mode)
		}
	}
	m := read(t, out.Manifest)
	for _, rel := range serverpki.SecretFiles() {
		want := read(t, filepath.Join(o.Secrets, rel))
		r, ok := inInitrd[root+"/"+rel]
		if !ok {
			t.Errorf("%s is not in the initrd", rel)
			continue
		}
		got, err := io.ReadAll(io.NewSectionReader(r.ReaderAt, 0, int64(r.FileSize)))
		if err != nil || !bytes.Equal(got, want) || r.Mode != cpio.S_IFREG|0o600 {
			t.Errorf("%s: mode %o, same content %v (%v), want 0600 and the file", rel, r.Mode, bytes.Equal(got, want), err)
		}
		sum := sha256.Sum256(want)
		if bytes.Contains(m, []byte(hex.EncodeToString(sum[:]))) {
			t.Errorf("manifest.json holds the digest of %s", rel)
		}
	}
	for _, leak := range []string{o.Secrets, "secrets/", "server-ca", "service.key", "token"} {
		if bytes.Contains(m, []byte(leak)) {
			t.Errorf("manifest.json mentions %q", leak)
		}
	}
	if !bytes.Contains(m, []byte(`"secrets": "baked"`)) {
		t.Errorf("manifest.json lacks \"secrets\": \"baked\"")
	}
	// The upgrade artifact: signed with the secrets' key, carrying the
	// bytes of the raw disk's slot A, private as the image is.
	pub, err := serverpki.CheckUpgradeKey(o.Secrets)
	must(t, err)
	am, err := artifact.VerifyFile(out.Upgrade, pub)
	if err != nil {
		t.Fatalf("the upgrade artifact: %v", err)
	}
	if am.Role != "server" || am.Build != "dev" {
		t.Errorf("artifact manifest %+v", am)
	}
	if fi, err := os.Stat(out.Upgrade); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("artifact mode %v (%v), want 0600", fi.Mode(), err)
	}
	if sum := slotASHA256(t, out.Raw, am.SlotSize); sum != am.SlotSHA256 {
		t.Errorf("the artifact's slot is %s, the raw disk's slot A %s", am.SlotSHA256, sum)
	}
	for _, p := range []string{out.ISO, out.Raw, out.Initrd} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, want mode 0600 (it holds the CA keys)", filepath.Base(p), err)
		}
	}
	checkUpgradeKeyBaked(t, o.Secrets, inInitrd, m)
}

// checkUpgradeKeyBaked checks that an image built with the secrets dir
// carries its upgrade.pub where the node looks, and never upgrade.key.
func checkUpgradeKeyBaked(t *testing.T, dir string, inInitrd map[string]cpio.Record, manifest []byte) {
	t.Helper()
	pub := read(t, filepath.Join(dir, serverpki.UpgradePublicKeyFile))
	r, ok := inInitrd[strings.TrimPrefix(layout.UpgradePublicKey, "/")]
	if !ok {
		t.Fatalf("the initrd lacks %s", layout.UpgradePublicKey)
	}
	got, err := io.ReadAll(io.NewSectionReader(r.ReaderAt, 0, int64(r.FileSize)))
	if err != nil || !bytes.Equal(got, pub) || r.Mode != cpio.S_IFREG|0o644 {
		t.Errorf("%s: mode %o, the secrets' upgrade.pub %v (%v)", layout.UpgradePublicKey, r.Mode, bytes.Equal(got, pub), err)
	}
	key := read(t, filepath.Join(dir, serverpki.UpgradeKeyFile))
	seed, _ := artifact.ParsePrivateKey(key)
	for name, r := range inInitrd {
		if strings.HasSuffix(name, "upgrade.key") || (strings.HasPrefix(name, strings.TrimPrefix(layout.BakedSecrets, "/")) && strings.HasPrefix(path.Base(name), "upgrade.")) {
			t.Errorf("the initrd holds %s", name)
		}
		if r.Mode&cpio.S_IFMT == cpio.S_IFREG {
			if b, _ := io.ReadAll(io.NewSectionReader(r.ReaderAt, 0, int64(r.FileSize))); bytes.Contains(b, key[40:80]) || bytes.Contains(b, seed.Seed()) {
				t.Errorf("%s holds the upgrade signing key", name)
			}
		}
	}
	p, err := artifact.ParsePublicKey(pub)
	must(t, err)
	if !bytes.Contains(manifest, []byte(`"upgrade_key": "`+artifact.Fingerprint(p)+`"`)) {
		t.Errorf("manifest.json lacks the upgrade key's fingerprint")
	}
}

// An agent built with --secrets carries the upgrade public key and none
// of the cluster's CAs and tokens: its outputs stay readable.
func TestAgentSecrets(t *testing.T) {
	o := inputs(t)
	o.Role = "agent"
	o.Secrets = filepath.Join(t.TempDir(), "secrets")
	must(t, serverpki.GenerateSecrets(o.Secrets))
	out, err := Image(o)
	if err != nil {
		t.Fatal(err)
	}
	inInitrd := initrdRecords(t, out.Initrd)
	root := strings.TrimPrefix(layout.BakedSecrets, "/")
	for name := range inInitrd {
		if name == root || strings.HasPrefix(name, root+"/") {
			t.Errorf("the agent's initrd holds %s", name)
		}
	}
	m := read(t, out.Manifest)
	if bytes.Contains(m, []byte(`"secrets"`)) {
		t.Error("manifest.json says an agent carries secrets")
	}
	checkUpgradeKeyBaked(t, o.Secrets, inInitrd, m)
	for _, p := range []string{out.ISO, out.Raw, out.Initrd} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o644 {
			t.Errorf("%s: %v, want mode 0644 (it holds no secret)", filepath.Base(p), err)
		}
	}
}

// An image whose baked config or kernel command line holds a token is
// written private, as one with --secrets is: each output that carries the
// secret is 0600, the others stay readable. (Only --secrets made outputs
// private: a baked token was 0644.)
func TestSecretOutputsPrivate(t *testing.T) {
	token := "rke2:\n  token: K10" + strings.Repeat("ab", 32) + "::server:s3cr3t\n"
	for _, tc := range []struct {
		name, config, cmdline string
		private               []string // the outputs 0600: iso raw initrd cmdline
	}{
		{"no secret", "hostname: node-1\n", "rke2.config=" + base64.StdEncoding.EncodeToString([]byte("hostname: node-1\n")), nil},
		{"baked token", token, "", []string{"iso", "raw", "initrd"}},
		{"baked registry password", "registries:\n  configs:\n    r.example.com:\n      auth: {username: u, password: p}\n", "", []string{"iso", "raw", "initrd"}},
		{"token on the command line", "", "rke2.config=" + base64.StdEncoding.EncodeToString([]byte(token)), []string{"iso", "raw", "cmdline"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := inputs(t)
			o.Cmdline = tc.cmdline
			if tc.config != "" {
				o.Config = filepath.Join(t.TempDir(), "config.yaml")
				must(t, os.WriteFile(o.Config, []byte(tc.config), 0o644))
			}
			out, err := Image(o)
			if err != nil {
				t.Fatal(err)
			}
			for kind, p := range map[string]string{"iso": out.ISO, "raw": out.Raw, "initrd": out.Initrd, "cmdline": out.Cmdline, "kernel": out.Kernel} {
				want := os.FileMode(0o644)
				if slices.Contains(tc.private, kind) {
					want = 0o600
				}
				if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != want {
					t.Errorf("%s: %v %v, want mode %v", kind, fi.Mode().Perm(), err, want)
				}
			}
		})
	}
	// A command line whose config does not parse is refused, as a config
	// file is.
	o := inputs(t)
	o.Cmdline = "rke2.config=!!!"
	var ie *InputError
	if _, err := Image(o); !errors.As(err, &ie) || !strings.Contains(err.Error(), "base64") {
		t.Errorf("bad command line: err = %v, want an InputError", err)
	}
}

// --secrets is a directory rke2-build secrets made, with the upgrade key
// pair (a directory made before it is told how to add one).
func TestSecretsRefused(t *testing.T) {
	old := filepath.Join(t.TempDir(), "secrets")
	must(t, serverpki.GenerateSecrets(old))
	for _, f := range serverpki.UpgradeKeyFiles() {
		must(t, os.Remove(filepath.Join(old, f)))
	}
	for _, c := range []struct {
		name   string
		change func(o *Options)
		want   string
	}{
		{"not made by rke2-build secrets", func(o *Options) { o.Secrets = t.TempDir() }, "tls/server-ca.crt is missing"},
		{"made before upgrade signing", func(o *Options) { o.Secrets = old }, "rke2-build secrets --upgrade-key-only " + old},
		{"agent, made before upgrade signing", func(o *Options) { o.Role, o.Secrets = "agent", old }, "no upgrade.key"},
		{"agent, not made by rke2-build secrets", func(o *Options) { o.Role, o.Secrets = "agent", t.TempDir() }, "no upgrade.key"},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := inputs(t)
			c.change(&o)
			_, err := Image(o)
			var ie *InputError
			if !errors.As(err, &ie) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want an InputError with %q", err, c.want)
			}
			if ents, _ := os.ReadDir(o.Output); len(ents) > 0 {
				t.Errorf("output directory holds %d entries after a refused build", len(ents))
			}
		})
	}
}

// slotASHA256 hashes the first size bytes of the raw disk's slot A.
func slotASHA256(t *testing.T, raw string, size int64) string {
	t.Helper()
	d, err := diskfs.Open(raw, diskfs.WithOpenMode(diskfs.ReadOnly))
	must(t, err)
	defer d.Close()
	pt, err := d.GetPartitionTable()
	must(t, err)
	start := int64(pt.GetPartitions()[2].GetStart())
	f, err := os.Open(raw)
	must(t, err)
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, start, size)); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// The ISO carries what an install needs: the slot image rebuilt from the
// ISO's own files, as its install manifest lists them, is the raw disk's
// slot A, and a disk installed from them has the raw disk's partition
// table and slot A.
func TestISOInstallsTheRawDisk(t *testing.T) {
	o := inputs(t)
	o.Images = []string{airgap(t, "rancher/rke2-runtime:v1.34.4-rke2r1")}
	o.Version = "v1.34.4+rke2r1"
	out, err := Image(o)
	if err != nil {
		t.Fatal(err)
	}
	// Copy the ISO's files out, as the node reads them from the mounted ISO.
	d, err := diskfs.Open(out.ISO, diskfs.WithOpenMode(diskfs.ReadOnly))
	must(t, err)
	defer d.Close()
	isofs, err := d.GetFilesystem(0)
	must(t, err)
	root := t.TempDir()
	extract := func(p string) string {
		f, err := isofs.OpenFile(p, os.O_RDONLY)
		if err != nil {
			t.Fatalf("the ISO has no %s: %v", p, err)
		}
		b, err := io.ReadAll(f)
		must(t, err)
		local := filepath.Join(root, filepath.FromSlash(p))
		must(t, os.MkdirAll(filepath.Dir(local), 0o755))
		must(t, os.WriteFile(local, b, 0o644))
		return local
	}
	m, err := diskimage.ReadManifest(extract(layout.InstallManifest))
	must(t, err)
	for _, f := range append(append([]diskimage.ManifestFile{}, m.ESP...), m.Slot...) {
		extract(f.Medium)
	}
	extract(m.MBR)
	extract(m.Core)
	var paths []string
	for _, f := range m.Slot {
		paths = append(paths, f.Path)
	}
	if want := []string{"/boot/vmlinuz", "/boot/initrd", "/boot/grub/slot.cfg", "/boot/os-release", layout.MediumIndex, "/rke2/agent/images/rke2-images.linux-amd64.tar"}; !slices.Equal(paths, want) {
		t.Errorf("slot files %v, want %v", paths, want)
	}
	local := func(p string) string { return filepath.Join(root, filepath.FromSlash(p)) }
	spec, err := m.Spec(local)
	must(t, err)
	slot := filepath.Join(t.TempDir(), "slot.img")
	must(t, diskimage.WriteSlot(slot, spec.SlotFiles))
	if got, want := "sha256:"+slotASHA256(t, out.Raw, m.SlotSize), m.SlotSHA256; got != want {
		t.Fatalf("the raw disk's slot A is %s, the manifest says %s", got, want)
	}
	if got := "sha256:" + hex.EncodeToString(sha256Of(t, slot)); got != m.SlotSHA256 {
		t.Fatalf("the slot image rebuilt from the ISO's files is %s, the raw disk's slot A %s", got, m.SlotSHA256)
	}
	// And a disk installed from them.
	dev := filepath.Join(t.TempDir(), "dev.img")
	must(t, os.WriteFile(dev, nil, 0o644))
	must(t, os.Truncate(dev, 2<<30))
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	must(t, err)
	defer f.Close()
	l, err := diskimage.Install(f, 2<<30, spec)
	must(t, err)
	if got := "sha256:" + slotASHA256(t, dev, l.SlotImageSize); got != m.SlotSHA256 {
		t.Errorf("the installed slot A is %s, want %s", got, m.SlotSHA256)
	}
	raw, inst := partitions(t, out.Raw), partitions(t, dev)
	if !slices.Equal(raw, inst) {
		t.Errorf("installed partitions %v, want the raw disk's %v", inst, raw)
	}
}

func sha256Of(t *testing.T, p string) []byte {
	t.Helper()
	sum := sha256.Sum256(read(t, p))
	return sum[:]
}

// partitions lists a disk's partitions: name, GUID, start and end.
func partitions(t *testing.T, p string) []string {
	t.Helper()
	d, err := diskfs.Open(p, diskfs.WithOpenMode(diskfs.ReadOnly))
	must(t, err)
	defer d.Close()
	pt, err := d.GetPartitionTable()
	must(t, err)
	var out []string
	for _, q := range pt.(*gpt.Table).Partitions {
		out = append(out, fmt.Sprintf("%s %s %d-%d", q.Name, q.GUID, q.Start, q.End))
	}
	return out
}
