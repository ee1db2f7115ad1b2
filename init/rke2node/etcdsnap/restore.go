package etcdsnap

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/rke2os/rke2os/internal/durable"
)

// RestoreOptions say what to restore, where, and as which member.
type RestoreOptions struct {
	// Etcdutl is the etcdutl binary (of the etcd version that will run on
	// the restored data).
	Etcdutl string
	// Snapshot is a snapshot file, plain or zipped.
	Snapshot string
	// DataDir is etcd's data directory (server/db/etcd).
	DataDir string
	// Name and PeerURL are the member's (--name, https://ip:2380).
	Name, PeerURL string
	Now           time.Time
}

// Restore makes DataDir a one-member etcd data directory from the
// snapshot, as RKE2's cluster-reset-restore-path does. The snapshot is
// checked before anything is moved; the data directory it replaces is moved aside to
// etcd-old-<unix time> beside it, never deleted, and moved back if the
// restore cannot be put in place. It returns where the old data went
// ("" if there was none).
func Restore(ctx context.Context, o RestoreOptions) (movedTo string, err error) {
	db := filepath.Dir(o.DataDir)
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	if o.Snapshot == "" {
		return "", errors.New("restore: no snapshot given")
	}
	plain, cleanup, err := plainSnapshot(o.Snapshot, db)
	if err != nil {
		return "", fmt.Errorf("snapshot %s: %w", o.Snapshot, err)
	}
	defer cleanup()
	if _, err := Check(plain); err != nil {
		return "", fmt.Errorf("snapshot %s: %w", o.Snapshot, err)
	}
	src := plain
	// etcdutl writes a new directory (it refuses a non-empty one): ours,
	// beside the data, so the rename below stays on one filesystem.
	tmp := o.DataDir + ".restore"
	if err := os.RemoveAll(tmp); err != nil {
		return "", fmt.Errorf("cluster-reset: %w", err)
	}
	// A token of its own makes the restored cluster's ID and its member's
	// new (etcd derives both from the peer URLs and the token): with
	// etcd's default token they were the old cluster's, so the other
	// servers' members of the old cluster could not tell the restored one
	// from theirs, and would not see that they are out of it.
	args := []string{"snapshot", "restore", src, "--name", o.Name, "--initial-cluster", o.Name + "=" + o.PeerURL,
		"--initial-advertise-peer-urls", o.PeerURL, "--initial-cluster-token", restoreToken(), "--data-dir", tmp}
	cmd := exec.CommandContext(ctx, o.Etcdutl, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		os.RemoveAll(tmp)
		return "", fmt.Errorf("etcdutl snapshot restore %s: %w: %s", src, err, lastLines(out.String(), 5))
	}
	if _, err := os.Stat(o.DataDir); err == nil {
		movedTo = filepath.Join(db, "etcd-old-"+strconv.FormatInt(o.Now.Unix(), 10))
		if err := os.Rename(o.DataDir, movedTo); err != nil {
			os.RemoveAll(tmp)
			return "", fmt.Errorf("cluster-reset: move the old data aside: %w", err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		os.RemoveAll(tmp)
		return "", fmt.Errorf("cluster-reset: %w", err)
	}
	if err := os.Rename(tmp, o.DataDir); err != nil {
		if movedTo != "" {
			if berr := os.Rename(movedTo, o.DataDir); berr != nil {
				return movedTo, fmt.Errorf("cluster-reset: %w; and the old data stays in %s: %v", err, movedTo, berr)
			}
		}
		return "", fmt.Errorf("cluster-reset: %w", err)
	}
	if err := os.Chmod(o.DataDir, 0o700); err != nil {
		return movedTo, err
	}
	return movedTo, durable.SyncDir(db)
}

// restoreToken is a restored cluster's --initial-cluster-token: random,
// so that each restore makes a cluster of its own (two in the same second
// of a clock not yet set included).
func restoreToken() string {
	return "rke2os-restore-" + rand.Text()
}

// plainSnapshot is the snapshot's database as a plain file: the file
// itself, or a zip's one entry unpacked into dir (removed by cleanup).
func plainSnapshot(path, dir string) (string, func(), error) {
	nop := func() {}
	f, err := os.Open(path)
	if err != nil {
		return "", nop, err
	}
	magic := make([]byte, 4)
	_, err = io.ReadFull(f, magic)
	f.Close()
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return "", nop, err
	}
	if !bytes.Equal(magic, []byte("PK\x03\x04")) {
		return path, nop, nil
	}
	fi, err := os.Stat(path)
	if err != nil {
		return "", nop, err
	}
	rc, err := Open(File{Name: filepath.Base(path), Path: path, Compressed: true, Size: fi.Size()})
	if err != nil {
		return "", nop, err
	}
	defer rc.Close()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", nop, err
	}
	tmp, err := os.CreateTemp(dir, ".restore-*.db")
	if err != nil {
		return "", nop, err
	}
	cleanup := func() { os.Remove(tmp.Name()) }
	_, err = io.Copy(tmp, rc)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		cleanup()
		return "", nop, fmt.Errorf("unzip: %w", err)
	}
	return tmp.Name(), cleanup, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// CheckAny checks a snapshot file, plain or zipped (a zip's one entry is
// unpacked beside it for the check, then removed).
func CheckAny(path string) (Status, error) {
	plain, cleanup, err := plainSnapshot(path, filepath.Dir(path))
	if err != nil {
		return Status{}, err
	}
	defer cleanup()
	return Check(plain)
}
