// Package durable writes files so that a reader never sees half of one and
// a power cut leaves the old file or the new one, never an empty one: on
// the state partition a node whose CA or token is empty cannot start
// again. It is the one home of the write-temp, sync, rename, sync-the-
// directory sequence for PID 1, rke2-node and the builder, so it imports
// nothing but the standard library.
package durable

import (
	"fmt"
	"os"
	"path/filepath"
)

// WriteFile replaces p with data, written with mode through a temporary
// file beside p; missing parent directories are made 0755.
func WriteFile(p string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(p)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	return WriteFileStaged(p, dir, data, mode)
}

// WriteFileStaged is WriteFile with the temporary file in stage, a
// directory on the same filesystem as p, for a directory whose readers
// must not see even the temporary file (the kubelet's static pods). The
// parents of p must exist.
func WriteFileStaged(p, stage string, data []byte, mode os.FileMode) error {
	if err := write(p, stage, data, mode); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	return nil
}

func write(p, stage string, data []byte, mode os.FileMode) error {
	tmp, err := staged(stage, p, data, mode)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if err := os.Rename(tmp, p); err != nil {
		return err
	}
	return SyncDir(filepath.Dir(p))
}

// CreateFile writes p, which must not exist, whole or not at all: through
// a temporary file linked to p, which fails (fs.ErrExist) if p is there,
// even if it came in the meantime.
func CreateFile(p string, data []byte, mode os.FileMode) error {
	tmp, err := staged(filepath.Dir(p), p, data, mode)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, p); err != nil {
		return err
	}
	return SyncDir(filepath.Dir(p))
}

// staged writes data to a new temporary file in dir, named after p, with
// mode, synced; the caller moves it into place and removes it.
func staged(dir, p string, data []byte, mode os.FileMode) (string, error) {
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(p)+".")
	if err != nil {
		return "", err
	}
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Chmod(mode)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp.Name())
		return "", err
	}
	return tmp.Name(), nil
}

// SyncDir makes a rename (or a new link) in dir durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Symlink makes link point at target, replacing whatever file or link is
// there by a rename, so that the link is never missing.
func Symlink(target, link string) error {
	if cur, err := os.Readlink(link); err == nil && cur == target {
		return nil
	}
	tmp := filepath.Join(filepath.Dir(link), fmt.Sprintf(".%s.tmp-%d", filepath.Base(link), os.Getpid()))
	os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		return fmt.Errorf("link %s: %w", link, err)
	}
	if err := os.Rename(tmp, link); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("link %s: %w", link, err)
	}
	return SyncDir(filepath.Dir(link))
}
