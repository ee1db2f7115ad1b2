package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/rke2os/rke2os/builder/build"
)

// validate checks each config file, and the kernel command line given,
// and prints every error, with its line, and every warning (a debug switch
// on, a token where it is exposed); warnings do not fail it.
func validate(args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("validate", flag.ContinueOnError)
	role := fl.String("role", "server", "the role of the image the config is for")
	cmdline := fl.String("cmdline", "", "a kernel command line (image --cmdline, or the boot loader's) whose rke2.config= parameters to check")
	if err := parse(fl, args, "rke2-build validate [--role server|agent] [--cmdline CMDLINE] FILE...", true, stdout); err != nil {
		return err
	}
	if fl.NArg() == 0 && *cmdline == "" {
		return usagef("name at least one config file, or give --cmdline")
	}
	var failed error
	if *cmdline != "" {
		warnings, err := build.ValidateCmdline(*cmdline)
		if err != nil {
			fmt.Fprintln(stderr, err)
			failed = reportedError{}
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
			failed = reportedError{}
			continue
		}
		for _, w := range warnings {
			fmt.Fprintf(stderr, "%s: warning: %s\n", f, w)
		}
		fmt.Fprintf(stdout, "%s: ok\n", f)
	}
	return failed
}
