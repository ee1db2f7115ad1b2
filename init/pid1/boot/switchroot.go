package boot

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// StageEnv marks the init that runs after LeaveInitramfs re-executed it.
const StageEnv = "RKE2_INIT_ROOT=tmpfs"

// OnTmpfsRoot reports whether LeaveInitramfs has moved the init already.
func OnTmpfsRoot() bool {
	for _, e := range os.Environ() {
		if e == StageEnv {
			return true
		}
	}
	return false
}

// LeaveInitramfs moves the init from the initramfs to a tmpfs root and
// re-executes it there, as switch_root does: runc cannot start a container
// while / is the initramfs (pivot_root refuses the rootfs mount). Files
// are moved one by one, so the initramfs memory is freed as they go.
// It returns only on error, or when the move happened already.
func LeaveInitramfs() error {
	if OnTmpfsRoot() {
		return nil
	}
	const newRoot = "/.root"
	if err := os.MkdirAll(newRoot, 0o755); err != nil {
		return err
	}
	if err := unix.Mount("tmpfs", newRoot, "tmpfs", 0, "mode=0755"); err != nil {
		return fmt.Errorf("mount tmpfs root: %w", err)
	}
	var rootSt unix.Stat_t
	if err := unix.Lstat("/", &rootSt); err != nil {
		return err
	}
	err := filepath.WalkDir("/", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == "/" {
			return nil
		}
		if p == newRoot {
			return fs.SkipDir
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		if st.Dev != rootSt.Dev { // a mount on the initramfs; leave it
			return fs.SkipDir
		}
		return moveEntry(p, filepath.Join(newRoot, p), &st)
	})
	if err != nil {
		return fmt.Errorf("move initramfs to tmpfs: %w", err)
	}
	if err := os.Chdir(newRoot); err != nil {
		return err
	}
	if err := unix.Mount(".", "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("move tmpfs onto /: %w", err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("chroot: %w", err)
	}
	if err := os.Chdir("/"); err != nil {
		return err
	}
	env := append(os.Environ(), StageEnv)
	if err := unix.Exec("/init", os.Args, env); err != nil {
		return fmt.Errorf("exec /init on the tmpfs root: %w", err)
	}
	return nil
}

func moveEntry(src, dst string, st *unix.Stat_t) error {
	mode := os.FileMode(st.Mode & 0o7777)
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		if err := os.Mkdir(dst, mode); err != nil && !os.IsExist(err) {
			return err
		}
		return os.Chmod(dst, mode)
	case unix.S_IFREG:
		if err := copyFile(src, dst, mode); err != nil {
			return err
		}
	case unix.S_IFLNK:
		t, err := os.Readlink(src)
		if err != nil {
			return err
		}
		if err := os.Symlink(t, dst); err != nil {
			return err
		}
	case unix.S_IFCHR, unix.S_IFBLK, unix.S_IFIFO:
		if err := unix.Mknod(dst, st.Mode, int(st.Rdev)); err != nil {
			return err
		}
	default:
		return nil
	}
	// The running init (/init) stays: unlinking it is fine on Linux, but
	// keep the rule simple and free only what is not executing.
	if src != "/init" {
		return os.Remove(src)
	}
	return nil
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Chmod(dst, mode)
}
