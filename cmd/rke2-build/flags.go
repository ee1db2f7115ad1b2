package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
)

// errHelp is a command's answer to --help, which it printed: exit 0.
var errHelp = errors.New("help printed")

// usageError is a command used wrongly: exit 2, with the message.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

// inputError is bad input (a file, a directory, a URL the user gave):
// exit 2.
type inputError struct{ error }

func (e inputError) Unwrap() error { return e.error }

// reportedError is bad input the command has already reported, line by
// line: exit 2 with nothing more said.
type reportedError struct{}

func (reportedError) Error() string { return "invalid input (reported above)" }

// parse parses a command's flags: --help prints the usage and the flags
// on standard output (errHelp), a bad flag or, unless args are wanted, an
// argument is a usageError.
func parse(fl *flag.FlagSet, args []string, usage string, wantArgs bool, stdout io.Writer) error {
	fl.SetOutput(io.Discard)
	err := fl.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprintf(stdout, "usage: %s\n\nFlags:\n", usage)
		fl.SetOutput(stdout)
		fl.PrintDefaults()
		return errHelp
	case err != nil:
		return usagef("%v (see rke2-build %s --help)", err, fl.Name())
	case !wantArgs && fl.NArg() > 0:
		return usagef("unexpected argument %q", fl.Arg(0))
	}
	return nil
}
