// Command rke2-build bakes bootable RKE2 node images (ISO, raw disk, PXE).
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"

	"github.com/rke2os/rke2os/builder/build"
)

const usage = `rke2-build bakes bootable RKE2 node images (ISO, raw disk, PXE).

Usage:
  rke2-build image --role server|agent [flags]
  rke2-build validate [--role server|agent] [--cmdline CMDLINE] FILE...
  rke2-build secrets --output DIR | --upgrade-key-only DIR
  rke2-build kubeconfig --secrets DIR --server https://ADDR:6443 [--output FILE]
  rke2-build etcd-snapshot save|ls|delete|prune|fetch --server https://ADDR:9345 --token TOKEN [flags]
  rke2-build version

Commands:
  image          build out/rke2-<role>.{iso,raw,vmlinuz,initrd,cmdline} and out/manifest.json
  validate       check node config files (and a kernel command line) as the init will at boot
  secrets        make a new cluster's CAs and tokens (servers', agents') and upgrade signing key, to bake into images
  kubeconfig     print an admin kubeconfig made from those secrets
  etcd-snapshot  save, list, delete, prune or fetch a server's etcd snapshots, through its supervisor
  version        print rke2-build's version
  help           print this help

Use "rke2-build <command> --help" for a command's flags.
`

// version is set at build time (-ldflags -X main.version=...).
var version = ""

// commands are the subcommands: each parses its own flags and returns
// its error to run, the one place that turns errors into exit codes.
var commands = map[string]func(args []string, stdout, stderr io.Writer) error{
	"image":         image,
	"validate":      validate,
	"secrets":       secrets,
	"kubeconfig":    kubeconfig,
	"etcd-snapshot": etcdSnapshot,
}

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// run runs one command. Help goes to standard output with exit 0, as
// kubectl does; a usage error or bad input to standard error with exit 2;
// a failure with exit 1.
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
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "rke2-build: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	err := cmd(args[1:], stdout, stderr)
	switch {
	case err == nil, errors.Is(err, errHelp):
		return 0
	case errors.As(err, new(reportedError)):
		return 2
	case errors.As(err, new(usageError)):
		fmt.Fprintf(stderr, "rke2-build %s: %v\n", args[0], err)
		return 2
	case errors.As(err, new(*build.InputError)), errors.As(err, new(inputError)):
		fmt.Fprintln(stderr, "rke2-build:", err)
		return 2
	default:
		fmt.Fprintln(stderr, "rke2-build:", err)
		return 1
	}
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
