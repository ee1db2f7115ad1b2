// Package host applies the machine-wide settings of the node config: the
// host name, kernel parameters (sysctls) and files to write at boot, and
// makes the node's password once (see layout.NodePassword).
package host

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/rke2os/rke2os/internal/durable"

	"github.com/rke2os/rke2os/init/shared/config"
	"golang.org/x/sys/unix"
)

// SetHostname sets the kernel's host name and /etc/hostname.
func SetHostname(root, name string) error {
	if name == "" {
		return nil
	}
	if err := unix.Sethostname([]byte(name)); err != nil {
		return fmt.Errorf("hostname %q: %w", name, err)
	}
	return durable.WriteFile(filepath.Join(root, "etc", "hostname"), []byte(name+"\n"), 0o644)
}

// Sysctls writes each kernel parameter under procSys (/proc/sys).
func Sysctls(procSys string, sysctls map[string]string) error {
	var errs []error
	for k, v := range sysctls {
		p := filepath.Join(procSys, strings.TrimPrefix(config.SysctlPath(k), "/proc/sys/"))
		if err := os.WriteFile(p, []byte(v), 0); err != nil {
			errs = append(errs, fmt.Errorf("sysctl %s=%s: %w", k, v, err))
		}
	}
	return errors.Join(errs...)
}

// WriteFiles writes the config's write_files under root, creating parent
// directories, with their modes and owners; append adds to a file.
func WriteFiles(root string, files []config.WriteFile) error {
	var errs []error
	for i := range files {
		if err := writeFile(root, &files[i]); err != nil {
			errs = append(errs, fmt.Errorf("write_files[%d] %s: %w", i, files[i].Path, err))
		}
	}
	return errors.Join(errs...)
}

func writeFile(root string, f *config.WriteFile) error {
	data, err := f.Decode()
	if err != nil {
		return err
	}
	mode, err := f.Mode()
	if err != nil {
		return err
	}
	uid, gid, err := f.OwnerIDs()
	if err != nil {
		return err
	}
	p := filepath.Join(root, filepath.Clean("/"+f.Path))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	if f.Append {
		out, err := os.OpenFile(p, os.O_CREATE|os.O_APPEND|os.O_WRONLY, mode)
		if err != nil {
			return err
		}
		if _, err := out.Write(data); err != nil {
			out.Close()
			return err
		}
		if err := out.Close(); err != nil {
			return err
		}
	} else if err := durable.WriteFile(p, data, mode); err != nil {
		return err
	}
	if err := os.Chmod(p, mode); err != nil {
		return err
	}
	return os.Lchown(p, uid, gid)
}

// DefaultHostname names a machine whose config gives it no hostname, as
// Talos does: "rke2-" and the last three bytes of the first Ethernet
// address (by interface name), the same at every boot of the machine and
// different between machines booted from one image. The kernel's own
// "(none)" is no name for a node: its certificates and its Node need one.
func DefaultHostname(ifaces []net.Interface) string {
	sort.Slice(ifaces, func(i, j int) bool { return ifaces[i].Name < ifaces[j].Name })
	for _, i := range ifaces {
		if i.Flags&net.FlagLoopback == 0 && len(i.HardwareAddr) == 6 {
			a := i.HardwareAddr
			return fmt.Sprintf("rke2-%02x%02x%02x", a[3], a[4], a[5])
		}
	}
	return "rke2-node"
}

// NeedsHostname says whether the running kernel's hostname is no name at
// all (unset, or the kernel's "(none)").
func NeedsHostname(current string) bool {
	return current == "" || current == "(none)" || current == "localhost"
}
