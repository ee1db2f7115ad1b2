package rke2node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/rke2os/rke2os/init/rke2node/etcdsnap"
	"github.com/rke2os/rke2os/init/shared/config"
	"github.com/rke2os/rke2os/init/shared/console"
	"github.com/rke2os/rke2os/internal/durable"
)

// resetFlag is the file RKE2 writes after a cluster-reset: while it is
// there, the keys left in the config reset nothing again.
func (e Env) resetFlag() string { return e.Paths.Server("db", "reset-flag") }

// clusterReset does RKE2's cluster-reset before etcd starts: with
// cluster-reset-restore-path, etcd's data becomes the snapshot's, one
// member; with cluster-reset alone, the member's own data, one member.
// The data replaced is moved to db/etcd-old-<time>, reset-flag written,
// and the console says the keys can go. It says whether it reset: the
// etcd pod then starts a new cluster, joining no other server.
func (e Env) clusterReset(ctx context.Context, rc config.RKE2Config, nodeName, peerURL string) (bool, error) {
	on, _ := strconv.ParseBool(rc.String("cluster-reset"))
	path := rc.String("cluster-reset-restore-path")
	flag := e.resetFlag()
	_, ferr := os.Stat(flag)
	if ferr != nil && !errors.Is(ferr, os.ErrNotExist) {
		return false, fmt.Errorf("cluster-reset: %w", ferr)
	}
	flagged := ferr == nil
	if !on {
		if path != "" {
			return false, fmt.Errorf("cluster-reset: rke2.cluster-reset-restore-path is %q but rke2.cluster-reset is not true: set cluster-reset: true to restore that snapshot, or remove cluster-reset-restore-path", path)
		}
		if flagged {
			// A normal start after a reset, as RKE2 does it.
			if err := os.Remove(flag); err != nil {
				return false, fmt.Errorf("cluster-reset: %w", err)
			}
			slog.Info("cluster-reset: the keys are gone from the config; reset-flag removed", "file", flag)
		}
		return false, nil
	}
	if flagged {
		fi, _ := os.Stat(flag)
		why := fmt.Sprintf("this server was reset at %s (%s): remove cluster-reset and cluster-reset-restore-path from its config", fi.ModTime().UTC().Format(time.RFC3339), flag)
		slog.Warn("cluster-reset: not done again", "reason", why)
		console.Event(console.EventClusterReset, "outcome", "skipped", "reason", why)
		return false, nil
	}
	snapshot := path
	if path != "" && !filepath.IsAbs(path) {
		dir := rc.EtcdSnapshots().Dir
		if dir == "" {
			dir = e.Paths.Server("db", "snapshots")
		}
		snapshot = filepath.Join(dir, path)
		if _, err := os.Stat(snapshot); errors.Is(err, os.ErrNotExist) {
			return false, fmt.Errorf("cluster-reset: rke2.cluster-reset-restore-path %q: no such snapshot in %s (give a snapshot's name as etcd-snapshot ls lists it, or an absolute path; restoring from S3 is not supported by this OS yet)", path, dir)
		}
	}
	start := time.Now()
	moved, err := etcdsnap.Restore(ctx, etcdsnap.RestoreOptions{Etcdutl: filepath.Join(e.Paths.Bin(), "etcdutl"), Snapshot: snapshot,
		DataDir: e.Paths.Server("db", "etcd"), Name: nodeName, PeerURL: peerURL})
	if err != nil {
		return false, fmt.Errorf("cluster-reset: %w", err)
	}
	// This server no longer joins anyone: its record of joining goes
	// aside with the old data.
	if j := e.etcdJoinPath(); fileExists(j) {
		if err := os.Rename(j, j+".old-"+strconv.FormatInt(start.Unix(), 10)); err != nil {
			return false, fmt.Errorf("cluster-reset: %w", err)
		}
	}
	if err := durable.WriteFile(flag, nil, 0o600); err != nil {
		return false, fmt.Errorf("cluster-reset: %w", err)
	}
	outcome := "reset"
	if snapshot != "" {
		outcome = "restored"
	}
	next := "remove cluster-reset and cluster-reset-restore-path from the config; until then they are ignored (" + flag + ")"
	slog.Warn("cluster-reset: etcd is a one-member cluster now", "outcome", outcome, "snapshot", snapshot, "old_data", moved, "next", next)
	console.Event(console.EventClusterReset, "outcome", outcome, "snapshot", snapshot, "moved_to", moved,
		"seconds", fmt.Sprintf("%.1f", time.Since(start).Seconds()), "next", next)
	return true, nil
}

func fileExists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}
