// Command install-cni copies CNI plugins and configs from a container
// image onto the host, as the flannel DaemonSet's init containers do. The
// images carry no shell, so this replaces their `cp`. Each file is written
// beside its destination and renamed over it: the container runtime,
// which runs the plugins at any moment, never sees half a binary.
//
//	install-cni SRC... DIR/     copies each SRC into DIR, modes kept
//	install-cni SRC DST         copies SRC to the file DST
package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "install-cni:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) < 2 {
		return fmt.Errorf("usage: install-cni SRC... DIR/ | install-cni SRC DST")
	}
	srcs, dst := args[:len(args)-1], args[len(args)-1]
	if !strings.HasSuffix(dst, "/") {
		if len(srcs) != 1 {
			return fmt.Errorf("%d sources need a directory (ending in /) as the destination, not %s", len(srcs), dst)
		}
		return install(srcs[0], dst)
	}
	for _, s := range srcs {
		if err := install(s, filepath.Join(dst, filepath.Base(s))); err != nil {
			return err
		}
	}
	return nil
}

// install copies src to dst through a temporary file in dst's directory.
func install(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	info, err := in.Stat()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, in); err != nil {
		tmp.Close()
		return fmt.Errorf("copy %s: %w", src, err)
	}
	if err := tmp.Chmod(info.Mode().Perm()); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return err
	}
	fmt.Printf("installed %s\n", dst)
	return nil
}
