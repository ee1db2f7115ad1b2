// Package snapshotctl is a server's etcd snapshots as RKE2 keeps them:
// taken on the etcd-snapshot-schedule-cron schedule and on demand (the
// supervisor's /db/snapshot), pruned to etcd-snapshot-retention per name,
// and recorded as k3s.cattle.io ETCDSnapshotFile objects, one per file,
// so that kubectl get etcdsnapshotfiles lists every server's. The files
// themselves are etcdsnap's; this package adds the schedule, the
// operations and the records.
package snapshotctl

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/rke2os/rke2os/init/rke2node/etcdsnap"
	"github.com/rke2os/rke2os/init/rke2node/etcdsnap/s3store"
	"github.com/rke2os/rke2os/init/rke2node/supervisorapi"
	"github.com/rke2os/rke2os/init/shared/config"
	"github.com/rke2os/rke2os/init/shared/console"
	"github.com/rke2os/rke2os/internal/backoff"
)

// Service is one server's etcd snapshots.
type Service struct {
	Settings config.EtcdSnapshots
	// Dir is where the snapshots are (Settings.Dir, or RKE2's default
	// under the data directory).
	Dir  string
	Node string
	Etcd etcdsnap.Source
	// Records keeps the ETCDSnapshotFile objects; nil keeps none.
	Records *Records
	// S3 is where each snapshot is copied too (etcd-s3); nil: nowhere.
	S3 S3
	// Now is the clock (time.Now if nil).
	Now func() time.Time

	// mu makes one snapshot operation at a time: a scheduled snapshot
	// and an asked one never prune each other's work half way.
	mu sync.Mutex
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// S3 is a bucket of snapshots (s3store.Store), shared by the servers.
type S3 interface {
	// Upload uploads a snapshot file, its node in its metadata.
	Upload(ctx context.Context, path, node string) (s3store.Object, error)
	List(ctx context.Context, prefix string) ([]s3store.Object, error)
	Delete(ctx context.Context, name string) error
	// Owner is the node an object's metadata names, "" for none.
	Owner(ctx context.Context, name string) (string, error)
}

// Run takes the scheduled snapshots until ctx ends, and keeps the records
// of the node's snapshots current (every few minutes, and after each
// operation). With etcd-disable-snapshots it takes none, but records the
// ones asked for.
func (s *Service) Run(ctx context.Context) error {
	var sched cron.Schedule
	if !s.Settings.Disabled {
		var err error
		if sched, err = config.ParseCron(s.Settings.Cron); err != nil {
			return fmt.Errorf("etcd snapshots: rke2.etcd-snapshot-schedule-cron: %w", err)
		}
		slog.Info("etcd snapshots scheduled", "cron", s.Settings.Cron, "retention", s.Settings.Retention, "dir", s.Dir, "name", s.Settings.Name, "compress", s.Settings.Compress)
	} else {
		slog.Info("etcd snapshots: none scheduled (etcd-disable-snapshots)", "dir", s.Dir)
	}
	s.reconcile(ctx)
	const recordEvery = 5 * time.Minute
	for {
		now := s.now()
		wait := recordEvery
		var next time.Time
		if sched != nil {
			next = sched.Next(now)
			wait = min(wait, next.Sub(now))
		}
		if !backoff.Sleep(ctx, wait) {
			return nil
		}
		if sched != nil && !s.now().Before(next) {
			// The scheduled name, with the time it was due: two runs
			// of one minute's schedule never collide.
			s.save(ctx, s.Settings.Name, s.Settings.Compress, next)
			continue
		}
		s.reconcile(ctx)
	}
}

// Save takes a snapshot now, named name (on-demand if ""), compressed if
// compress says so (the setting if nil), then prunes the name's older
// snapshots beyond the retention.
func (s *Service) Save(ctx context.Context, name string, compress *bool) (supervisorapi.SnapshotInfo, error) {
	if name == "" {
		name = etcdsnap.OnDemandName
	}
	z := s.Settings.Compress
	if compress != nil {
		z = *compress
	}
	f, err := s.save(ctx, name, z, s.now())
	if err != nil {
		return supervisorapi.SnapshotInfo{}, err
	}
	return s.info(f), nil
}

func (s *Service) save(ctx context.Context, name string, compress bool, at time.Time) (etcdsnap.File, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	start := time.Now()
	f, st, err := etcdsnap.Save(ctx, s.Etcd, etcdsnap.Options{Dir: s.Dir, Name: name, Node: s.Node, Compress: compress, Now: at})
	if err != nil {
		slog.Error("etcd snapshot failed", "name", name, "err", err)
		console.Event(console.EventEtcdSnapshot, "outcome", "failed", "name", etcdsnap.FileName(name, s.Node, at, compress), "err", err.Error())
		s.Records.failed(ctx, s.Node, s.Node, etcdsnap.FileName(name, s.Node, at, compress), s.location(etcdsnap.FileName(name, s.Node, at, compress)), at, err)
		return etcdsnap.File{}, err
	}
	slog.Info("etcd snapshot saved", "file", f.Path, "bytes", f.Size, "revision", st.Revision, "keys", st.TotalKeys, "seconds", time.Since(start).Seconds())
	console.Event(console.EventEtcdSnapshot, "outcome", "saved", "name", f.Name, "bytes", f.Size, "revision", st.Revision,
		"seconds", fmt.Sprintf("%.1f", time.Since(start).Seconds()))
	gone, err := etcdsnap.Prune(s.Dir, name, s.Node, s.Settings.Retention, f.Name)
	for _, g := range gone {
		slog.Info("etcd snapshot pruned", "file", g.Name, "retention", s.Settings.Retention)
		console.Event(console.EventEtcdSnapshot, "outcome", "pruned", "name", g.Name)
	}
	if err != nil {
		// The snapshot is saved: a failed prune is said, not returned.
		slog.Warn("etcd snapshots: prune", "err", err)
	}
	s.upload(ctx, f, name, at)
	s.reconcileLocked(ctx)
	return f, nil
}

// upload copies a snapshot saved to S3 and prunes the name's copies there
// beyond the retention. A failure is said (log, event, a failed record)
// and the local copy stays: the save succeeded.
func (s *Service) upload(ctx context.Context, f etcdsnap.File, name string, at time.Time) {
	if s.S3 == nil {
		return
	}
	o, err := s.S3.Upload(ctx, f.Path, s.Node)
	if err != nil {
		slog.Error("etcd snapshot: upload to S3 failed; the local copy stays", "file", f.Name, "err", err)
		console.Event(console.EventEtcdSnapshot, "outcome", "upload-failed", "name", f.Name, "err", err.Error())
		s.Records.failed(ctx, s.Node, StorageS3, f.Name, "", at, fmt.Errorf("upload to S3: %w", err))
		return
	}
	slog.Info("etcd snapshot uploaded", "file", f.Name, "location", o.Location)
	console.Event(console.EventEtcdSnapshot, "outcome", "uploaded", "name", f.Name, "location", o.Location)
	if _, err := s.s3Prune(ctx, name, f.Name); err != nil {
		slog.Warn("etcd snapshots: prune in S3", "err", err)
	}
}

// s3Own are this node's snapshots in S3 of the name (any name if ""),
// oldest first: names that parse as the node's with exactly that name,
// whose metadata names this node or none (RKE2's own uploads). The
// bucket is shared: no other server's snapshot is ever taken for this
// one's, and an object whose owner cannot be read is an error.
func (s *Service) s3Own(ctx context.Context, name string) ([]s3store.Object, error) {
	objs, err := s.S3.List(ctx, "")
	if err != nil {
		return nil, err
	}
	var out []s3store.Object
	for _, o := range objs {
		f, ok := etcdsnap.Parse(o.Name, s.Node)
		if !ok || (name != "" && f.Prefix != name) {
			continue
		}
		owner, err := s.S3.Owner(ctx, o.Name)
		if err != nil {
			return nil, err
		}
		if owner == "" || owner == s.Node {
			out = append(out, o)
		}
	}
	return out, nil
}

// s3Prune deletes this node's copies of the name in S3 beyond the
// retention, never saved (the one just uploaded, which counts as kept).
func (s *Service) s3Prune(ctx context.Context, name, saved string) ([]string, error) {
	keep := s.Settings.Retention
	if keep < 1 {
		return nil, nil
	}
	own, err := s.s3Own(ctx, name)
	if err != nil {
		return nil, err
	}
	var others []s3store.Object
	for _, o := range own {
		if o.Name == saved {
			keep--
			continue
		}
		others = append(others, o)
	}
	var gone []string
	for len(others) > max(keep, 0) {
		o := others[0]
		others = others[1:]
		if err := s.S3.Delete(ctx, o.Name); err != nil {
			return gone, err
		}
		slog.Info("etcd snapshot pruned in S3", "location", o.Location, "retention", s.Settings.Retention)
		console.Event(console.EventEtcdSnapshot, "outcome", "pruned", "name", o.Name, "location", o.Location)
		gone = append(gone, o.Location)
	}
	return gone, nil
}

// s3Mine are the node's snapshots in S3; nil, nil without S3.
func (s *Service) s3Mine(ctx context.Context) ([]supervisorapi.SnapshotInfo, error) {
	if s.S3 == nil {
		return nil, nil
	}
	objs, err := s.s3Own(ctx, "")
	if err != nil {
		return nil, err
	}
	var out []supervisorapi.SnapshotInfo
	for _, o := range objs {
		f, _ := etcdsnap.Parse(o.Name, s.Node)
		out = append(out, supervisorapi.SnapshotInfo{Name: o.Name, Node: s.Node, Location: o.Location, Size: o.Size, Created: f.Created, Compressed: f.Compressed})
	}
	return out, nil
}

// List lists the node's snapshots, oldest first.
func (s *Service) List(ctx context.Context) ([]supervisorapi.SnapshotInfo, error) {
	// Not while a snapshot is saved and its name's old ones pruned.
	s.mu.Lock()
	defer s.mu.Unlock()
	files, err := etcdsnap.List(s.Dir, s.Node)
	if err != nil {
		return nil, err
	}
	out := make([]supervisorapi.SnapshotInfo, 0, len(files))
	for _, f := range files {
		out = append(out, s.info(f))
	}
	remote, err := s.s3Mine(ctx)
	if err != nil {
		// The disk's snapshots are listed all the same.
		slog.Warn("etcd snapshots: S3 not listed", "err", err)
	}
	return append(out, remote...), nil
}

// Delete deletes the named snapshots of this node. A name that is none of
// them is ErrNoSnapshot, and nothing after it is deleted.
func (s *Service) Delete(ctx context.Context, names []string) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.reconcileLocked(ctx)
	var deleted []string
	for _, n := range names {
		f, err := s.find(n)
		local := err == nil
		if err != nil && (s.S3 == nil || !errors.Is(err, supervisorapi.ErrNoSnapshot)) {
			return deleted, err
		}
		remote := false
		if s.S3 != nil {
			if _, ok := etcdsnap.Parse(n, s.Node); ok && n == filepath.Base(n) {
				own, err := s.s3Own(ctx, "")
				if err != nil {
					return deleted, fmt.Errorf("delete snapshot %s: list S3: %w", n, err)
				}
				remote = slices.ContainsFunc(own, func(o s3store.Object) bool { return o.Name == n })
			}
			if !local && !remote {
				return deleted, fmt.Errorf("snapshot %q: %w, nor in S3", n, supervisorapi.ErrNoSnapshot)
			}
		}
		if local {
			if err := os.Remove(f.Path); err != nil {
				return deleted, fmt.Errorf("delete snapshot %s: %w", n, err)
			}
		}
		if remote {
			if err := s.S3.Delete(ctx, n); err != nil {
				return deleted, fmt.Errorf("delete snapshot %s in S3: %w", n, err)
			}
		}
		slog.Info("etcd snapshot deleted", "file", n, "local", local, "s3", remote)
		console.Event(console.EventEtcdSnapshot, "outcome", "deleted", "name", n)
		deleted = append(deleted, n)
	}
	return deleted, nil
}

// Prune deletes the name's (the scheduled name's, if "") older snapshots
// beyond the retention.
func (s *Service) Prune(ctx context.Context, name string) ([]string, error) {
	if name == "" {
		name = s.Settings.Name
	}
	if name != filepath.Base(name) || strings.HasPrefix(name, ".") {
		return nil, fmt.Errorf("snapshot name %q: not a snapshot name (the part before -<node>-<time>, like %s)", name, s.Settings.Name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.reconcileLocked(ctx)
	gone, err := etcdsnap.Prune(s.Dir, name, s.Node, s.Settings.Retention, "")
	var out []string
	for _, g := range gone {
		slog.Info("etcd snapshot pruned", "file", g.Name, "retention", s.Settings.Retention)
		console.Event(console.EventEtcdSnapshot, "outcome", "pruned", "name", g.Name)
		out = append(out, g.Name)
	}
	if err != nil || s.S3 == nil {
		return out, err
	}
	remote, err := s.s3Prune(ctx, name, "")
	return append(out, remote...), err
}

// Open opens one of the node's snapshot files.
func (s *Service) Open(name string) (*os.File, error) {
	f, err := s.find(name)
	if err != nil {
		return nil, err
	}
	return os.Open(f.Path)
}

// find is the node's snapshot file of that name: a plain file name that
// parses as the node's, in Dir, a regular file.
func (s *Service) find(name string) (etcdsnap.File, error) {
	if name == "" || name != filepath.Base(name) || name == "." || name == ".." {
		return etcdsnap.File{}, fmt.Errorf("snapshot %q: %w (a snapshot's file name, as ls lists it)", name, supervisorapi.ErrNoSnapshot)
	}
	f, ok := etcdsnap.Parse(name, s.Node)
	if !ok {
		return etcdsnap.File{}, fmt.Errorf("snapshot %q: %w (this server's snapshots are named <name>-%s-<unix time>)", name, supervisorapi.ErrNoSnapshot, s.Node)
	}
	f.Path = filepath.Join(s.Dir, name)
	fi, err := os.Lstat(f.Path)
	if errors.Is(err, os.ErrNotExist) {
		return etcdsnap.File{}, fmt.Errorf("snapshot %q: %w", name, supervisorapi.ErrNoSnapshot)
	}
	if err != nil {
		return etcdsnap.File{}, fmt.Errorf("snapshot %q: %w", name, err)
	}
	if !fi.Mode().IsRegular() {
		return etcdsnap.File{}, fmt.Errorf("snapshot %q: %w (not a regular file)", name, supervisorapi.ErrNoSnapshot)
	}
	f.Size = fi.Size()
	return f, nil
}

func (s *Service) location(name string) string { return "file://" + filepath.Join(s.Dir, name) }

func (s *Service) info(f etcdsnap.File) supervisorapi.SnapshotInfo {
	return supervisorapi.SnapshotInfo{Name: f.Name, Node: s.Node, Location: s.location(f.Name), Size: f.Size, Created: f.Created, Compressed: f.Compressed}
}

func (s *Service) reconcile(ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reconcileLocked(ctx)
}

// reconcileLocked makes the records match the files. The files are the
// truth: a listing that fails changes no record.
func (s *Service) reconcileLocked(ctx context.Context) {
	if s.Records == nil {
		return
	}
	files, err := etcdsnap.List(s.Dir, s.Node)
	if err != nil {
		slog.Warn("etcd snapshots: records not updated", "err", err)
		return
	}
	infos := make([]supervisorapi.SnapshotInfo, 0, len(files))
	for _, f := range files {
		infos = append(infos, s.info(f))
	}
	if err := s.Records.Sync(ctx, s.Node, s.Node, infos, s.now()); err != nil {
		slog.Warn("etcd snapshots: records", "err", err)
	}
	if s.S3 == nil {
		return
	}
	// A listing that fails changes no record.
	remote, err := s.s3Mine(ctx)
	if err != nil {
		slog.Warn("etcd snapshots: S3 records not updated", "err", err)
		return
	}
	if err := s.Records.Sync(ctx, s.Node, StorageS3, remote, s.now()); err != nil {
		slog.Warn("etcd snapshots: S3 records", "err", err)
	}
}
