package main

import (
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

// image builds the role's ISO, raw disk and PXE files.
func image(args []string, stdout, stderr io.Writer) error {
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
	fl.StringVar(&o.OSVersion, "os-version", "", "the image's own version, in its /etc/os-release and the Node's osImage (default: --version)")
	fl.Func("images", "airgap image archive to bake (docker save .tar, .tar.gz, .tar.zst); repeat for more", func(v string) error {
		o.Images = append(o.Images, v)
		return nil
	})
	fl.StringVar(&o.Config, "config", "", "node config file baked into the image (validated first)")
	fl.StringVar(&o.Secrets, "secrets", "", "the cluster's secrets (rke2-build secrets): a server image carries its CAs and tokens (an agent's never does), every image its upgrade.pub, and its upgrade.key signs out/rke2-<role>.upgrade; without --secrets no upgrade artifact is written, and the image takes none")
	if err := parse(fl, args, "rke2-build image --role server|agent [flags]", false, stdout); err != nil {
		return err
	}
	epoch, err := sourceDateEpoch()
	if err != nil {
		return usageError{err.Error()}
	}
	o.Epoch = epoch
	if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		o.Progress = build.TerminalProgress{W: stderr}
	}
	out, err := build.Image(o)
	if err != nil {
		return err
	}
	slog.Info("built", "iso", out.ISO, "raw", out.Raw, "kernel", out.Kernel, "initrd", out.Initrd, "manifest", out.Manifest)
	return nil
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
