package slots

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/rke2os/rke2os/init/shared/layout"
	"golang.org/x/sys/unix"
)

// ReadEnvFile reads an environment block file.
func ReadEnvFile(path string) (Env, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	env, err := ParseEnv(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return env, nil
}

// WriteEnvFile rewrites an environment block file in place: the file must
// exist with the block's size, so that its blocks, which GRUB writes
// through a block list, stay where they are.
func WriteEnvFile(path string, env Env) error {
	b, err := env.Bytes()
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.Size() != EnvSize {
		return fmt.Errorf("%s is %d bytes, not GRUB's %d: not rewriting it", path, fi.Size(), EnvSize)
	}
	if _, err := f.WriteAt(b, 0); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", path, err)
	}
	return f.Close()
}

// ESP is the EFI system partition of the boot disk, which holds the
// environment block.
type ESP struct {
	Device string // /dev/vda2
	Dir    string // where it is mounted while in use (layout.ESPDir)
}

var espMu sync.Mutex

// Read returns the slots' state and the whole block.
func (e ESP) Read() (State, Env, error) {
	var env Env
	err := e.with(unix.MS_RDONLY, func(dir string) error {
		var err error
		env, err = ReadEnvFile(filepath.Join(dir, layout.GRUBEnv))
		return err
	})
	if err != nil {
		return State{}, nil, err
	}
	return StateOf(env), env, nil
}

// ReadFile reads a file of the ESP (a path below its root, like
// layout.ESPConfig), mounting it read-only for that; a missing file is
// os.ErrNotExist. PID 1 reads the config an install carried over with it.
func (e ESP) ReadFile(name string) ([]byte, error) {
	var b []byte
	err := e.with(unix.MS_RDONLY, func(dir string) error {
		var err error
		b, err = os.ReadFile(filepath.Join(dir, filepath.FromSlash(name)))
		return err
	})
	return b, err
}

// Update changes the slots' state: it mounts the ESP read-write, reads the
// block, lets change decide the new state from the current one, writes
// the block in place, syncs and unmounts. The ESP stays mounted only for
// that, so a power cut finds it clean.
func (e ESP) Update(change func(State) (State, error)) (State, error) {
	var next State
	err := e.with(0, func(dir string) error {
		p := filepath.Join(dir, layout.GRUBEnv)
		env, err := ReadEnvFile(p)
		if err != nil {
			return err
		}
		next, err = change(StateOf(env))
		if err != nil {
			return err
		}
		next.Apply(env)
		return WriteEnvFile(p, env)
	})
	return next, err
}

// with mounts the ESP on e.Dir for fn. A lock file in /run keeps PID 1
// and rke2-node from mounting it at once. FAT keeps no owners or modes:
// the mount makes every file root's and private (umask 077), since the
// config an install carried over may hold tokens.
func (e ESP) with(flags uintptr, fn func(dir string) error) error {
	espMu.Lock()
	defer espMu.Unlock()
	dir := e.Dir
	if dir == "" {
		dir = layout.ESPDir
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	lock, err := os.OpenFile(dir+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return fmt.Errorf("lock %s: %w", lock.Name(), err)
	}
	if err := unix.Mount(e.Device, dir, "vfat", flags|unix.MS_NODEV|unix.MS_NOSUID|unix.MS_NOEXEC, "uid=0,gid=0,umask=077"); err != nil {
		return fmt.Errorf("mount the ESP %s on %s: %w", e.Device, dir, err)
	}
	ferr := fn(dir)
	if err := unix.Unmount(dir, 0); err != nil && ferr == nil {
		ferr = fmt.Errorf("unmount the ESP %s: %w", e.Device, err)
	}
	return ferr
}
