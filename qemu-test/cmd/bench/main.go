// Command bench measures the images (make bench): each figure beside a
// baseline measured in the same run, printed as one table.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rke2os/rke2os/builder/build"
	"github.com/rke2os/rke2os/builder/initramfs"
	"github.com/rke2os/rke2os/builder/iso"
	"github.com/rke2os/rke2os/init/shared/layout"
	"github.com/rke2os/rke2os/init/shared/serverpki"
	"github.com/rke2os/rke2os/qemu-test/qemu"
)

type row struct {
	what, value, baseline, ratio string
}

func main() {
	runs := flag.Int("runs", 3, "repetitions per measurement (the median is shown)")
	only := flag.String("only", "", "comma-separated parts to run (build, boot, node, lifecycle, snapshot, pods, install, sizes); all if empty")
	flag.Parse()
	part := func(name string) bool {
		return *only == "" || slices.Contains(strings.Split(*only, ","), name)
	}
	env := func(k, d string) string {
		if v := os.Getenv(k); v != "" {
			return v
		}
		return d
	}
	out, kernelDir, bin, grub := env("RKE2_OUT", "../out"), env("RKE2_KERNEL", ""), env("RKE2_BIN", "../build/bin"), env("RKE2_GRUB", "../build/grub")
	images, version := env("RKE2_IMAGES", "../build/images/rke2-images.linux-amd64.tar.zst"), env("RKE2_VERSION", "v1.34.4+rke2r1")
	tb := &benchTB{}
	running = tb
	defer tb.cleanup()
	var rows []row

	// 1. Image build: rke2-build against xorriso writing the same payload
	// tree; the images' share of it against a plain cp of the archive.
	var buildTimes, bareTimes, isoTimes, isoOwn, cpTimes []float64
	for i := 0; i < *runs && part("build"); i++ {
		opts := build.Options{Role: "server", Output: tb.TempDir(), Kernel: kernelDir, Grub: grub, Init: filepath.Join(bin, "rke2-init"),
			Overlays: "../overlays", Rootfs: env("RKE2_ROOTFS", "../build/cache/iptables/root"), Epoch: time.Unix(1735689600, 0).UTC(), Progress: quiet{}, Images: []string{images}, Version: version}
		start := time.Now()
		o, err := build.Image(opts)
		check(err)
		buildTimes = append(buildTimes, time.Since(start).Seconds())
		tree := payloadTree(tb, o, grub, images)
		isoTimes = append(isoTimes, xorrisoTime(tb, tree))
		isoOwn = append(isoOwn, isoTime(tb, tree))

		opts.Images, opts.Output = nil, tb.TempDir()
		start = time.Now()
		_, err = build.Image(opts)
		check(err)
		bareTimes = append(bareTimes, time.Since(start).Seconds())

		dst := filepath.Join(tb.TempDir(), "copy")
		start = time.Now()
		check(exec.Command("cp", images, dst).Run())
		cpTimes = append(cpTimes, time.Since(start).Seconds())
	}
	if part("build") {
		rows = append(rows, ratioRow("write the server ISO, same payload tree (s)", median(isoOwn), "xorriso -as mkisofs", median(isoTimes)))
		rows = append(rows, ratioRow("whole build: ISO+raw+PXE+manifest (s)", median(buildTimes), "xorriso -as mkisofs, ISO only", median(isoTimes)))
		rows = append(rows, ratioRow("read+bake airgap images, ISO and raw (s)", median(buildTimes)-median(bareTimes), "cp of the archive", median(cpTimes)))
		rows = append(rows, benchExtract(tb, images, version, *runs)...)
	}

	// 2. Boot floor: QEMU start to init-start, beside a hello-world PID 1.
	k := filepath.Join(out, "rke2-server.vmlinuz")
	cmdline, err := os.ReadFile(filepath.Join(out, "rke2-server.cmdline"))
	check(err)
	hello := helloInitrd(tb)
	var rkeWall, helloWall, rkeGuest, modGuest []float64
	for i := 0; i < *runs && (part("boot") || part("node")); i++ {
		vm := qemu.Start(tb, qemu.Config{Machine: "q35", Kernel: k, Initrd: filepath.Join(out, "rke2-server.initrd"), Append: strings.TrimSpace(string(cmdline))})
		t, err := vm.WaitMilestone("init-start", 5*time.Minute)
		check(err)
		rkeWall = append(rkeWall, time.Since(vm.Started).Seconds())
		rkeGuest = append(rkeGuest, t)
		m, err := vm.WaitMilestone("modules-loaded", 5*time.Minute)
		check(err)
		modGuest = append(modGuest, m)
		vm.Kill()

		hv := qemu.Start(tb, qemu.Config{Machine: "q35", Kernel: k, Initrd: hello, Append: "console=ttyS0,115200"})
		_, err = hv.WaitFor(regexp.MustCompile(`hello-init started`), 5*time.Minute)
		check(err)
		helloWall = append(helloWall, time.Since(hv.Started).Seconds())
		hv.Kill()
	}
	if part("boot") {
		rows = append(rows, ratioRow("QEMU start to init-start, wall (s)", median(rkeWall), "hello-world static PID 1", median(helloWall)))
		rows = append(rows, row{"kernel start to init-start, guest (s)", f(median(rkeGuest)), "", ""})
		rows = append(rows, row{"kernel start to modules-loaded, guest (s)", f(median(modGuest)), "", ""})
	}

	// 3. A node: the raw disk booted twice to kubelet-started; then a
	// server upgraded, and rolled back (one run each: many minutes).
	var cluster clusterImages
	if part("node") || part("lifecycle") || part("snapshot") || part("pods") {
		cluster = clusterImagesFor(tb, kernelDir, grub, bin, version, images, env("RKE2_TEST_IMAGES", ""))
	}
	if part("node") {
		rows = append(rows, benchNode(tb, cluster, median(helloWall))...)
	}
	if part("lifecycle") {
		rows = append(rows, benchLifecycle(tb, cluster, bin)...)
	}
	if part("pods") {
		rows = append(rows, benchPods(tb, cluster, bin)...)
	}
	if part("snapshot") {
		rows = append(rows, benchSnapshot(tb, cluster, bin, env("RKE2_ETCDCTL", etcdctlPath()), *runs)...)
	}

	// 4. Install from the ISO: two pairs (each install boot is minutes).
	if part("install") {
		rows = append(rows, benchInstall(tb, out, min(*runs, 2))...)
	}

	// 5. Sizes: what is not payload.
	for _, name := range []string{"rke2-server.iso", "rke2-server.raw", "rke2-server.initrd", "rke2-server.vmlinuz", "../build/images/rke2-images.linux-amd64.tar.zst"} {
		if !part("sizes") {
			break
		}
		fi, err := os.Stat(filepath.Join(out, name))
		check(err)
		rows = append(rows, row{"size " + filepath.Base(name) + " (MiB)", fmt.Sprintf("%.1f", float64(fi.Size())/(1<<20)), "", ""})
	}
	w := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintf(w, "measure (median of %d, TCG=%s)\tvalue\tbaseline\tbaseline value\tratio\n", *runs, qemu.Accel())
	for _, r := range rows {
		b := strings.SplitN(r.baseline, "|", 2)
		if len(b) < 2 {
			b = append(b, "")
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", r.what, r.value, b[0], b[1], r.ratio)
	}
	w.Flush()
}

func ratioRow(what string, v float64, baseName string, base float64) row {
	return row{what, f(v), baseName + "|" + f(base), fmt.Sprintf("%.2fx", v/base)}
}

func f(v float64) string { return fmt.Sprintf("%.2f", v) }

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}

// payloadTree lays out the ISO's payload (by hard link) as both ISO writers take it.
func payloadTree(tb *benchTB, o build.Outputs, grub, images string) string {
	tree := tb.TempDir()
	must := func(err error) { check(err) }
	must(os.MkdirAll(filepath.Join(tree, "boot", "grub"), 0o755))
	must(os.MkdirAll(filepath.Join(tree, "rke2", "agent", "images"), 0o755))
	for src, dst := range map[string]string{o.Kernel: "boot/vmlinuz", o.Initrd: "boot/initrd", filepath.Join(grub, "eltorito.img"): "boot/grub/eltorito.img",
		images: "rke2/agent/images/" + filepath.Base(images)} {
		must(os.Link(src, filepath.Join(tree, dst)))
	}
	must(os.WriteFile(filepath.Join(tree, "boot/grub/grub.cfg"), []byte("# bench\n"), 0o644))
	efi, err := os.Create(filepath.Join(tree, "boot/grub/efi.img"))
	must(err)
	must(efi.Truncate(40 << 20))
	efi.Close()
	return tree
}

// isoTime writes the payload tree with the builder's ISO writer.
func isoTime(tb *benchTB, tree string) float64 {
	var files []iso.File
	check(filepath.Walk(tree, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(tree, p)
		files = append(files, iso.File{Path: "/" + filepath.ToSlash(rel), Source: p})
		return nil
	}))
	ws := tb.TempDir()
	out := filepath.Join(tb.TempDir(), "own.iso")
	start := time.Now()
	check(iso.Write(out, ws, iso.Spec{VolumeID: layout.BootLabel, Files: files, BIOSBoot: "/boot/grub/eltorito.img",
		EFIBoot: "/boot/grub/efi.img", Epoch: time.Unix(1735689600, 0)}))
	return time.Since(start).Seconds()
}

// xorrisoTime writes the payload tree with xorriso's mkisofs emulation,
// with the same El Torito entries, and returns the seconds it took.
func xorrisoTime(tb *benchTB, tree string) float64 {
	iso := filepath.Join(tb.TempDir(), "x.iso")
	start := time.Now()
	cmd := exec.Command("xorriso", "-as", "mkisofs", "-quiet", "-R", "-V", layout.BootLabel, "-o", iso,
		"-b", "boot/grub/eltorito.img", "-no-emul-boot", "-boot-load-size", "4", "-boot-info-table",
		"-eltorito-alt-boot", "-e", "boot/grub/efi.img", "-no-emul-boot", tree)
	if b, err := cmd.CombinedOutput(); err != nil {
		check(fmt.Errorf("xorriso: %v: %s", err, b))
	}
	return time.Since(start).Seconds()
}

// helloInitrd builds the hello-world PID 1 and packs it as an initramfs.
func helloInitrd(tb *benchTB) string {
	dir := tb.TempDir()
	bin := filepath.Join(dir, "hello-init")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/hello-init")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		check(fmt.Errorf("build hello-init: %v: %s", err, b))
	}
	a := initramfs.New(0)
	check(a.File("init", bin, 0o755))
	check(a.CharDev("dev/console", 0o600, 5, 1))
	p := filepath.Join(dir, "hello.initrd")
	fh, err := os.Create(p)
	check(err)
	_, err = a.WriteTo(fh)
	check(err)
	check(fh.Close())
	return p
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		// The machines it started and its temporary files go with it.
		if running != nil {
			running.cleanup()
		}
		os.Exit(1)
	}
}

// running is the benchmark's benchTB, whose cleanups check runs before it
// exits.
var running *benchTB

type quiet struct{}

func (quiet) Step(string) func() { return func() {} }

// benchTB lets the test harness run outside `go test`.
type benchTB struct{ cleanups []func() }

func (b *benchTB) Helper()          {}
func (b *benchTB) Name() string     { return "bench" }
func (b *benchTB) Failed() bool     { return false }
func (b *benchTB) Cleanup(f func()) { b.cleanups = append(b.cleanups, f) }
func (b *benchTB) Logf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", a...)
}
func (b *benchTB) Fatal(a ...any)                 { check(fmt.Errorf("%s", fmt.Sprint(a...))) }
func (b *benchTB) Fatalf(format string, a ...any) { check(fmt.Errorf(format, a...)) }
func (b *benchTB) TempDir() string {
	d, err := os.MkdirTemp("", "rke2-bench-")
	check(err)
	b.cleanups = append(b.cleanups, func() { os.RemoveAll(d) })
	return d
}
func (b *benchTB) cleanup() {
	for i := len(b.cleanups) - 1; i >= 0; i-- {
		b.cleanups[i]()
	}
	b.cleanups = nil
}

// clusterImagesFor builds the node benchmark's images: the cluster's
// secrets (as rke2-build secrets makes them), a server image with them
// baked in, and an agent image.
func clusterImagesFor(tb *benchTB, kernelDir, grub, bin, version string, images ...string) clusterImages {
	secrets := filepath.Join(tb.TempDir(), "secrets")
	check(serverpki.GenerateSecrets(secrets))
	token, err := os.ReadFile(filepath.Join(secrets, "token"))
	check(err)
	var archives []string
	for _, a := range images {
		if a != "" {
			archives = append(archives, a)
		}
	}
	out := clusterImages{token: strings.TrimSpace(string(token)), secrets: secrets}
	for _, role := range []string{"server", "agent"} {
		opts := build.Options{Role: role, Output: tb.TempDir(), Kernel: kernelDir, Grub: grub, Init: filepath.Join(bin, "rke2-init"),
			Node: filepath.Join(bin, "rke2-node"), Overlays: "../overlays", Rootfs: "../build/cache/iptables/root",
			Epoch: time.Unix(1735689600, 0).UTC(), Progress: quiet{}, Images: archives, Version: version}
		if role == "server" {
			opts.Secrets = secrets
		}
		o, err := build.Image(opts)
		check(err)
		if role == "server" {
			out.server, out.serverOpts = o.Raw, opts
		} else {
			out.agent = o.Raw
		}
	}
	return out
}

// etcdctlPath is the etcdctl make images built, of the version the images
// run (images/versions.env).
func etcdctlPath() string {
	b, err := os.ReadFile("../images/versions.env")
	check(err)
	m := regexp.MustCompile(`(?m)^ETCD_VERSION=(\S+)$`).FindSubmatch(b)
	if m == nil {
		check(fmt.Errorf("images/versions.env has no ETCD_VERSION"))
	}
	return "../build/cache/etcd-" + string(m[1]) + "/etcdctl"
}
