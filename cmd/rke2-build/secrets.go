package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"

	"github.com/rke2os/rke2os/init/shared/serverpki"
	"github.com/rke2os/rke2os/internal/durable"
)

// parse parses a command's flags: --help prints usage and the flags on
// standard output (exit 0), a bad flag is an error (exit 2); ok is false
// when the command is done.
func parse(fl *flag.FlagSet, args []string, usage string, stdout, stderr io.Writer) (exit int, ok bool) {
	fl.SetOutput(io.Discard)
	err := fl.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprintf(stdout, "usage: %s\n\nFlags:\n", usage)
		fl.SetOutput(stdout)
		fl.PrintDefaults()
		return 0, false
	case err != nil:
		fmt.Fprintf(stderr, "rke2-build %s: %v (see rke2-build %s --help)\n", fl.Name(), err, fl.Name())
		return 2, false
	case fl.NArg() > 0:
		fmt.Fprintf(stderr, "rke2-build %s: unexpected argument %q\n", fl.Name(), fl.Arg(0))
		return 2, false
	}
	return 0, true
}

// secrets makes a new cluster's CAs, service account key and tokens.
func secrets(args []string, stdout, stderr io.Writer) int {
	fl := flag.NewFlagSet("secrets", flag.ContinueOnError)
	out := fl.String("output", "", "directory to create for the secrets (must not exist)")
	if exit, ok := parse(fl, args, "rke2-build secrets --output DIR", stdout, stderr); !ok {
		return exit
	}
	if *out == "" {
		fmt.Fprintln(stderr, "rke2-build secrets: give --output DIR, a directory that does not exist yet")
		return 2
	}
	if err := serverpki.GenerateSecrets(*out); err != nil {
		fmt.Fprintln(stderr, "rke2-build:", err)
		return 2
	}
	fmt.Fprintf(stdout, "%s: the cluster's CAs and tokens; keep it private, and bake it with rke2-build image --secrets %s\n", *out, *out)
	fmt.Fprintf(stdout, "agents join with %s (rke2.token in an agent's config); %s is for servers only\n",
		filepath.Join(*out, "agent-token"), filepath.Join(*out, "token"))
	return 0
}

// kubeconfig prints, or writes, an admin kubeconfig made from the secrets.
func kubeconfig(args []string, stdout, stderr io.Writer) int {
	fl := flag.NewFlagSet("kubeconfig", flag.ContinueOnError)
	dir := fl.String("secrets", "", "the directory rke2-build secrets made")
	server := fl.String("server", "", "the apiserver's URL, like https://192.0.2.10:6443")
	out := fl.String("output", "", "file to write (0600, replaced); default standard output")
	if exit, ok := parse(fl, args, "rke2-build kubeconfig --secrets DIR --server https://ADDR:6443 [--output FILE]", stdout, stderr); !ok {
		return exit
	}
	if *dir == "" || *server == "" {
		fmt.Fprintln(stderr, "rke2-build kubeconfig: give --secrets DIR and --server https://ADDR:6443")
		return 2
	}
	kc, err := serverpki.AdminKubeconfig(*dir, *server)
	if err == nil && *out != "" {
		err = durable.WriteFile(*out, kc, 0o600)
	}
	if err != nil {
		fmt.Fprintln(stderr, "rke2-build:", err)
		return 2
	}
	if *out == "" {
		stdout.Write(kc)
	}
	return 0
}
