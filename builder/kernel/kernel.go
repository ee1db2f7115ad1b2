// Package kernel opens a Linux kernel for the builder: the bzImage and its
// modules, from an unpacked directory or straight from a Debian .deb, and
// resolves which module files an initramfs needs, dependencies first.
package kernel

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Kernel is a kernel image with its module tree.
type Kernel struct {
	// Version is the release string, the name of lib/modules/<version>.
	Version string
	// Image is the path of the bootable kernel image (vmlinuz).
	Image string
	// ModulesDir is lib/modules/<version>.
	ModulesDir string
	// Source is what the user named (a directory or a .deb).
	Source string
	// SourceDigest is the sha256 of the .deb, or of the kernel image for a directory.
	SourceDigest string

	cleanup func() error
}

// Close removes what Open unpacked, if anything.
func (k *Kernel) Close() error {
	if k.cleanup != nil {
		return k.cleanup()
	}
	return nil
}

// Open reads a kernel from path: a directory holding vmlinuz (or
// boot/vmlinuz-<version>) and lib/modules/<version>, or a Debian
// linux-image .deb, which is unpacked into scratch (a directory the caller owns).
func Open(path, scratch string) (*Kernel, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("kernel %s: %w (give --kernel a directory with vmlinuz and lib/modules, or a linux-image .deb)", path, err)
	}
	if !fi.IsDir() {
		if !strings.HasSuffix(path, ".deb") {
			return nil, fmt.Errorf("kernel %s: not a directory nor a .deb file", path)
		}
		dir, err := os.MkdirTemp(scratch, "kernel-")
		if err != nil {
			return nil, fmt.Errorf("kernel %s: %w", path, err)
		}
		if err := unpackDeb(path, dir); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("kernel %s: %w", path, err)
		}
		k, err := openDir(dir)
		if err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("kernel %s: %w", path, err)
		}
		k.Source = path
		if k.SourceDigest, err = fileDigest(path); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		k.cleanup = func() error { return os.RemoveAll(dir) }
		return k, nil
	}
	k, err := openDir(path)
	if err != nil {
		return nil, fmt.Errorf("kernel %s: %w", path, err)
	}
	k.Source = path
	if k.SourceDigest, err = fileDigest(k.Image); err != nil {
		return nil, err
	}
	return k, nil
}

func openDir(dir string) (*Kernel, error) {
	mods, err := filepath.Glob(filepath.Join(dir, "lib", "modules", "*"))
	if err != nil {
		return nil, err
	}
	var versions []string
	for _, m := range mods {
		if fi, err := os.Stat(filepath.Join(m, "kernel")); err == nil && fi.IsDir() {
			versions = append(versions, filepath.Base(m))
		}
	}
	switch len(versions) {
	case 0:
		return nil, errors.New("no modules: lib/modules/<version>/kernel is missing; the initramfs needs the kernel's modules")
	case 1:
	default:
		return nil, fmt.Errorf("more than one module tree in lib/modules (%s); keep only one", strings.Join(versions, ", "))
	}
	v := versions[0]
	k := &Kernel{Version: v, ModulesDir: filepath.Join(dir, "lib", "modules", v)}
	for _, c := range []string{"vmlinuz", filepath.Join("boot", "vmlinuz-"+v), filepath.Join("boot", "vmlinuz")} {
		p := filepath.Join(dir, c)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			k.Image = p
			break
		}
	}
	if k.Image == "" {
		return nil, fmt.Errorf("no kernel image: expected vmlinuz or boot/vmlinuz-%s", v)
	}
	f, err := os.Open(k.Image)
	if err != nil {
		return nil, fmt.Errorf("kernel image: %w", err)
	}
	defer f.Close()
	// A bzImage carries "HdrS" at 0x202; anything else would not boot.
	hdr := make([]byte, 0x206)
	if _, err := io.ReadFull(f, hdr); err != nil || string(hdr[0x202:0x206]) != "HdrS" {
		return nil, fmt.Errorf("%s is not an x86 bzImage kernel", k.Image)
	}
	return k, nil
}

func fileDigest(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// sortedKeys returns the keys of m in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
