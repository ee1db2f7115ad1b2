// Command rke2-build bakes bootable RKE2 node images (ISO, raw disk, PXE).
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/rke2os/rke2os/builder/build"
	"golang.org/x/term"
)

const usage = `rke2-build bakes bootable RKE2 node images (ISO, raw disk, PXE).

Usage:
  rke2-build image --role server|agent [flags]
  rke2-build validate [--role server|agent] [--cmdline CMDLINE] FILE...
  rke2-build secrets --output DIR
  rke2-build kubeconfig --secrets DIR --server https://ADDR:6443 [--output FILE]
  rke2-build version

Commands:
  image       build out/rke2-<role>.{iso,raw,vmlinuz,initrd,cmdline} and out/manifest.json
  validate    check node config files (and a kernel command line) as the init will at boot
  secrets     make a new cluster's CAs and tokens (servers', agents'), to bake into server images
  kubeconfig  print an admin kubeconfig made from those secrets
  version     print rke2-build's version
  help        print this help

Use "rke2-build <command> --help" for a command's flags.
`

// version is set at build time (-ldflags -X main.version=...); else the
// module's version from the build info.
var version = ""

func main() {
	if len(os.Args) >= 2 && os.Args[1] == "image" {
		image(os.Args[2:])
		return
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is every command but image: help on standard output with exit 0, as
// kubectl does, and a usage error on standard error with exit 2.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	case "version", "--version":
		fmt.Fprintf(stdout, "rke2-build %s\n", buildVersion())
		return 0
	case "validate":
		return validate(args[1:], stdout, stderr)
	case "secrets":
		return secrets(args[1:], stdout, stderr)
	case "kubeconfig":
		return kubeconfig(args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "rke2-build: unknown command %q\n\n%s", args[0], usage)
	return 2
}

func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

// validate checks each config file, and the kernel command line given,
// and prints every error, with its line, and every warning (a debug switch
// on, a token where it is exposed); warnings do not fail it.
func validate(args []string, stdout, stderr io.Writer) (exit int) {
	fl := flag.NewFlagSet("validate", flag.ContinueOnError)
	fl.SetOutput(io.Discard)
	role := fl.String("role", "server", "the role of the image the config is for")
	cmdline := fl.String("cmdline", "", "a kernel command line (image --cmdline, or the boot loader's) whose rke2.config= parameters to check")
	if err := fl.Parse(args); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stderr, "rke2-build validate: %v (see rke2-build validate --help)\n", err)
		}
		if errors.Is(err, flag.ErrHelp) {
			fl.SetOutput(stdout)
			fmt.Fprintln(stdout, "usage: rke2-build validate [--role server|agent] [--cmdline CMDLINE] FILE...")
			fl.PrintDefaults()
			return 0
		}
		return 2
	}
	if fl.NArg() == 0 && *cmdline == "" {
		fmt.Fprintln(stderr, "rke2-build validate: name at least one config file, or give --cmdline")
		return 2
	}
	if *cmdline != "" {
		warnings, err := build.ValidateCmdline(*cmdline)
		if err != nil {
			fmt.Fprintln(stderr, err)
			exit = 2
		}
		for _, w := range warnings {
			fmt.Fprintf(stderr, "--cmdline: warning: %s\n", w)
		}
		if err == nil {
			fmt.Fprintln(stdout, "--cmdline: ok")
		}
	}
	for _, f := range fl.Args() {
		warnings, err := build.ValidateConfig(f, *role)
		if err != nil {
			fmt.Fprintln(stderr, err)
			exit = 2
			continue
		}
		for _, w := range warnings {
			fmt.Fprintf(stderr, "%s: warning: %s\n", f, w)
		}
		fmt.Fprintf(stdout, "%s: ok\n", f)
	}
	return exit
}

func image(args []string) {
	fl := flag.NewFlagSet("image", flag.ContinueOnError)
	var o build.Options
	fl.StringVar(&o.Role, "role", "server", "node role: server or agent")
	fl.StringVar(&o.Output, "output", "out", "directory for the images")
	fl.StringVar(&o.Kernel, "kernel", "build/kernel/current", "kernel: a directory with vmlinuz and lib/modules, or a linux-image .deb")
	fl.StringVar(&o.Grub, "grub", "build/grub", "directory of GRUB's prepared images (make grub)")
	fl.StringVar(&o.Init, "init", "build/bin/rke2-init", "the rke2-init binary")
	fl.StringVar(&o.Node, "node", "", "the rke2-node binary (default: rke2-node beside --init)")
	fl.StringVar(&o.Overlays, "overlays", "overlays", "directory laid into every image's root")
	fl.StringVar(&o.Rootfs, "rootfs", "", "root fragment laid into the OS root before the overlays (iptables: build/cache/iptables/root)")
	fl.StringVar(&o.Cmdline, "cmdline", "", "extra kernel command line")
	fl.StringVar(&o.Version, "version", "", "RKE2 version, like v1.34.4+rke2r1 (needed with --images)")
	fl.Func("images", "airgap image archive to bake (docker save .tar, .tar.gz, .tar.zst); repeat for more", func(v string) error {
		o.Images = append(o.Images, v)
		return nil
	})
	fl.StringVar(&o.Config, "config", "", "node config file baked into the image (validated first)")
	fl.StringVar(&o.Secrets, "secrets", "", "the cluster's secrets (rke2-build secrets) baked into a server image")
	fl.SetOutput(io.Discard)
	if err := fl.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stdout, "usage: rke2-build image --role server|agent [flags]\n\nFlags:")
			fl.SetOutput(os.Stdout)
			fl.PrintDefaults()
			os.Exit(0)
		}
		fmt.Fprintf(os.Stderr, "rke2-build image: %v (see rke2-build image --help)\n", err)
		os.Exit(2)
	}
	if fl.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "rke2-build image: unexpected argument %q\n", fl.Arg(0))
		os.Exit(2)
	}
	epoch, err := sourceDateEpoch()
	if err != nil {
		fmt.Fprintln(os.Stderr, "rke2-build:", err)
		os.Exit(2)
	}
	o.Epoch = epoch
	if term.IsTerminal(int(os.Stderr.Fd())) {
		o.Progress = build.TerminalProgress{W: os.Stderr}
	}
	out, err := build.Image(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "rke2-build:", err)
		var ie *build.InputError
		if errors.As(err, &ie) {
			os.Exit(2)
		}
		os.Exit(1)
	}
	slog.Info("built", "iso", out.ISO, "raw", out.Raw, "kernel", out.Kernel, "initrd", out.Initrd, "manifest", out.Manifest)
}

// sourceDateEpoch reads SOURCE_DATE_EPOCH; the builder sets it for go-diskfs
// too, so that every date in every image is the same on every build.
func sourceDateEpoch() (time.Time, error) {
	v := os.Getenv("SOURCE_DATE_EPOCH")
	if v == "" {
		v = "1735689600" // 2025-01-01: reproducible by default
		os.Setenv("SOURCE_DATE_EPOCH", v)
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 315532800 {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH=%q: want seconds since 1970, 1980 or later (FAT cannot store earlier dates)", v)
	}
	return time.Unix(n, 0).UTC(), nil
}
