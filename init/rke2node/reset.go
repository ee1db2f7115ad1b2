package rke2node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/rke2os/rke2os/init/rke2node/etcdsnap"
	"github.com/rke2os/rke2os/init/rke2node/etcdsnap/s3store"
	"github.com/rke2os/rke2os/init/shared/config"
	"github.com/rke2os/rke2os/init/shared/console"
	"github.com/rke2os/rke2os/internal/durable"
)

// resetFlag is the file RKE2 writes after a cluster-reset: while it is
// there, the keys left in the config reset nothing again.
func (e Env) resetFlag() string { return e.Paths.Server("db", "reset-flag") }

// clusterReset does RKE2's cluster-reset before etcd starts: with
// cluster-reset-restore-path, etcd's data becomes the snapshot's, one
// member, the data replaced moved to db/etcd-old-<time>; with
// cluster-reset alone, etcd starts once with --force-new-cluster on its
// own data (force), which keeps every write it holds, its WAL's too, and
// drops the other members. reset-flag is written and the console says
// the keys can go. reset says the etcd pod starts a one-member cluster,
// joining no other server.
func (e Env) clusterReset(ctx context.Context, rc config.RKE2Config, nodeName, peerURL string) (reset, force bool, err error) {
	on, _ := strconv.ParseBool(rc.String("cluster-reset"))
	path := rc.String("cluster-reset-restore-path")
	flag := e.resetFlag()
	_, ferr := os.Stat(flag)
	if ferr != nil && !errors.Is(ferr, os.ErrNotExist) {
		return false, false, fmt.Errorf("cluster-reset: %w", ferr)
	}
	flagged := ferr == nil
	if !on {
		if path != "" {
			return false, false, fmt.Errorf("cluster-reset: rke2.cluster-reset-restore-path is %q but rke2.cluster-reset is not true: set cluster-reset: true to restore that snapshot, or remove cluster-reset-restore-path", path)
		}
		if flagged {
			// A normal start after a reset, as RKE2 does it.
			if err := os.Remove(flag); err != nil {
				return false, false, fmt.Errorf("cluster-reset: %w", err)
			}
			slog.Info("cluster-reset: the keys are gone from the config; reset-flag removed", "file", flag)
		}
		return false, false, nil
	}
	if flagged {
		// A reset without a snapshot whose etcd has not answered yet
		// (the step run again, a reboot before etcd started): its pod
		// still forces a new cluster, and keeps doing so until
		// endForceNewCluster sees etcd answer.
		if forcing, err := e.podForcesNewCluster(); err != nil {
			return false, false, fmt.Errorf("cluster-reset: %w", err)
		} else if forcing {
			slog.Info("cluster-reset: etcd has not answered since the reset; it still starts with --force-new-cluster")
			return true, true, nil
		}
		fi, _ := os.Stat(flag)
		why := fmt.Sprintf("this server was reset at %s (%s): remove cluster-reset and cluster-reset-restore-path from its config", fi.ModTime().UTC().Format(time.RFC3339), flag)
		slog.Warn("cluster-reset: not done again", "reason", why)
		console.Event(console.EventClusterReset, "outcome", "skipped", "reason", why)
		return false, false, nil
	}
	start := time.Now()
	data := e.Paths.Server("db", "etcd")
	var snapshot, moved string
	if path != "" {
		snapshot, moved, err = e.restoreSnapshot(ctx, rc, path, data, nodeName, peerURL)
		if err != nil && moved == "" {
			// Nothing was moved: the server starts on the data it has,
			// and says why it did not restore (each boot, until the
			// keys change).
			why := err.Error() + "; etcd starts on this server's data as it is: give a good snapshot, or remove cluster-reset and cluster-reset-restore-path"
			slog.Error("cluster-reset: restore refused", "err", why)
			console.Event(console.EventClusterReset, "outcome", "refused", "snapshot", snapshot, "reason", why)
			return false, false, nil
		}
		if err != nil {
			return false, false, err
		}
	} else if _, err := os.Stat(filepath.Join(data, "member", "wal")); err != nil {
		// Nothing to keep: a reset of no data would start an empty
		// cluster under the name of a reset one.
		return false, false, fmt.Errorf("cluster-reset: this server has no etcd data to reset (%v): to restore a snapshot, set cluster-reset-restore-path too; otherwise remove cluster-reset", err)
	}
	if snapshot != "" {
		// The restored cluster will say which it replaces (markCluster),
		// for the other servers to know it for theirs.
		if err := e.markRestore(); err != nil {
			return false, false, fmt.Errorf("cluster-reset: %w", err)
		}
	}
	// This server no longer joins anyone: its record of joining goes
	// aside with the old data.
	if j := e.etcdJoinPath(); fileExists(j) {
		if err := os.Rename(j, j+".old-"+strconv.FormatInt(start.Unix(), 10)); err != nil {
			return false, false, fmt.Errorf("cluster-reset: %w", err)
		}
	}
	if err := durable.WriteFile(flag, nil, 0o600); err != nil {
		return false, false, fmt.Errorf("cluster-reset: %w", err)
	}
	outcome := "reset"
	if snapshot != "" {
		outcome = "restored"
	}
	next := "remove cluster-reset and cluster-reset-restore-path from the config; until then they are ignored (" + flag + ")"
	force = snapshot == ""
	slog.Warn("cluster-reset: etcd is a one-member cluster now", "outcome", outcome, "snapshot", snapshot, "old_data", moved, "force_new_cluster", force, "next", next)
	console.Event(console.EventClusterReset, "outcome", outcome, "snapshot", snapshot, "moved_to", moved, "force_new_cluster", force,
		"seconds", fmt.Sprintf("%.1f", time.Since(start).Seconds()), "next", next)
	return true, force, nil
}

func fileExists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// forceNewClusterArg is etcd's flag that makes a member a one-member
// cluster of its data at its start.
const forceNewClusterArg = "--force-new-cluster"

// podForcesNewCluster says whether etcd's static pod, as written, starts
// it with --force-new-cluster; no pod written yet is no.
func (e Env) podForcesNewCluster() (bool, error) {
	pod, err := e.etcdPodWritten()
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	for _, c := range pod.Spec.Containers {
		if slices.Contains(c.Args, forceNewClusterArg) {
			return true, nil
		}
	}
	return false, nil
}

// etcdPodWritten is etcd's static pod as the kubelet reads it.
func (e Env) etcdPodWritten() (*corev1.Pod, error) {
	b, err := os.ReadFile(e.Paths.EtcdManifest())
	if err != nil {
		return nil, fmt.Errorf("etcd manifest: %w", err)
	}
	var pod corev1.Pod
	if err := yaml.UnmarshalStrict(b, &pod); err != nil {
		return nil, fmt.Errorf("etcd manifest %s: %w", e.Paths.EtcdManifest(), err)
	}
	return &pod, nil
}

// endForceNewCluster takes --force-new-cluster out of etcd's static pod
// once etcd answers after a cluster-reset: at any later start it would
// drop the members that joined since. It says whether it did (the kubelet
// then restarts etcd).
func (e Env) endForceNewCluster(rc config.RKE2Config) (bool, error) {
	pod, err := e.etcdPodWritten()
	if err != nil {
		return false, err
	}
	found := false
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		n := len(c.Args)
		c.Args = slices.DeleteFunc(c.Args, func(a string) bool { return a == forceNewClusterArg })
		found = found || len(c.Args) != n
	}
	if !found {
		return false, nil
	}
	if _, err := e.staticPod(rc, pod); err != nil {
		return false, err
	}
	slog.Info("cluster-reset: etcd answers as a one-member cluster; its pod no longer forces a new cluster")
	return true, nil
}

// downloadSnapshot fetches the snapshot name from S3 to dest.
func (e Env) downloadSnapshot(ctx context.Context, c config.EtcdS3, name, dest string) error {
	if c.ConfigSecret != "" && c.FromKeysOnly() {
		return fmt.Errorf("S3 is configured only by etcd-s3-config-secret, a Secret etcd must be running to read: give the etcd-s3-* keys (endpoint, bucket, credentials) in the config to restore from S3")
	}
	cfg := s3Config(c)
	if err := cfg.Validate(); err != nil {
		return err
	}
	st, err := s3store.New(ctx, cfg)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dest), 0o700); err != nil {
		return err
	}
	if err := st.Download(ctx, name, dest); err != nil {
		return err
	}
	slog.Info("cluster-reset: snapshot downloaded from S3", "name", name, "file", dest)
	return nil
}

// restoreSnapshot restores the snapshot path names (an absolute path, or
// a name in the snapshot directory, fetched from S3 when it is not there
// and etcd-s3 is set) into data. It returns the snapshot's file and where
// the old data went; an error with nothing moved left the data as it was.
func (e Env) restoreSnapshot(ctx context.Context, rc config.RKE2Config, path, data, nodeName, peerURL string) (snapshot, moved string, err error) {
	snapshot = path
	if !filepath.IsAbs(path) {
		dir := rc.EtcdSnapshots().Dir
		if dir == "" {
			dir = e.Paths.Server("db", "snapshots")
		}
		snapshot = filepath.Join(dir, path)
		_, err := os.Stat(snapshot)
		switch s3 := rc.EtcdS3(); {
		case errors.Is(err, os.ErrNotExist) && s3.Enabled:
			// As RKE2: a name not on the disk is fetched from S3.
			if err := e.downloadSnapshot(ctx, s3, path, snapshot); err != nil {
				return snapshot, "", fmt.Errorf("cluster-reset: rke2.cluster-reset-restore-path %q: not in %s, and from S3: %w", path, dir, err)
			}
		case errors.Is(err, os.ErrNotExist):
			return snapshot, "", fmt.Errorf("cluster-reset: rke2.cluster-reset-restore-path %q: no such snapshot in %s (give a snapshot's name as etcd-snapshot ls lists it, or an absolute path; or set etcd-s3 and its keys to restore one from S3)", path, dir)
		}
	}
	moved, err = etcdsnap.Restore(ctx, etcdsnap.RestoreOptions{Etcdutl: filepath.Join(e.Paths.Bin(), "etcdutl"), Snapshot: snapshot,
		DataDir: data, Name: nodeName, PeerURL: peerURL})
	if err != nil {
		return snapshot, moved, fmt.Errorf("cluster-reset: %w", err)
	}
	return snapshot, moved, nil
}
