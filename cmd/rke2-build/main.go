// Command rke2-build bakes bootable RKE2 node images (ISO, raw disk, PXE).
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/rke2os/rke2os/builder/build"
	"golang.org/x/term"
)

const usage = `usage: rke2-build image --role server|agent [flags]
       rke2-build validate [--role server|agent] FILE...

Commands:
  image     build out/rke2-<role>.{iso,raw,vmlinuz,initrd,cmdline} and out/manifest.json
  validate  check node config files as the init will at boot
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	switch os.Args[1] {
	case "image":
		image(os.Args[2:])
	case "validate":
		os.Exit(validate(os.Args[2:], os.Stdout, os.Stderr))
	default:
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
}

// validate checks each config file and prints every error, with its
// line, and every warning (a debug switch on); warnings do not fail it.
func validate(args []string, stdout, stderr io.Writer) (exit int) {
	fl := flag.NewFlagSet("validate", flag.ContinueOnError)
	fl.SetOutput(stderr)
	role := fl.String("role", "server", "the role of the image the config is for")
	if err := fl.Parse(args); err != nil {
		return 2
	}
	if fl.NArg() == 0 {
		fmt.Fprintln(stderr, "rke2-build validate: name at least one config file")
		return 2
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
	fl.StringVar(&o.Cmdline, "cmdline", "", "extra kernel command line")
	fl.StringVar(&o.Version, "version", "", "RKE2 version, like v1.34.4+rke2r1 (needed with --images)")
	fl.Func("images", "airgap image archive to bake (docker save .tar, .tar.gz, .tar.zst); repeat for more", func(v string) error {
		o.Images = append(o.Images, v)
		return nil
	})
	fl.StringVar(&o.Config, "config", "", "node config file baked into the image (validated first)")
	if err := fl.Parse(args); err != nil {
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
