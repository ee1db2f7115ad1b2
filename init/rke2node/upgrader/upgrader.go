// Package upgrader is a node's side of an upgrade (see upgradeapi for the
// whole flow): it watches its own Node for the controller's request
// (upgradeapi.RequestKey), downloads and verifies the artifact, writes its
// slot image into the inactive system slot, reads it back, asks GRUB to
// try that slot and reboots, saying each phase on its Node
// (upgradeapi.StatusKey). After the reboot it says how the boot went: done
// on the new slot, or rolled back to the old one.
//
// It needs no more than a kubelet's identity (system:node:<name>, which
// the Node authorizer and NodeRestriction hold to its own Node): it gets
// and watches its own Node by name, patches its own Node's annotations,
// and creates Events about it.
package upgrader

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/rke2os/rke2os/init/rke2node/upgradeapi"
	"github.com/rke2os/rke2os/init/shared/console"
	"github.com/rke2os/rke2os/init/shared/layout"
	"github.com/rke2os/rke2os/init/shared/slots"
	"github.com/rke2os/rke2os/internal/artifact"
	"github.com/rke2os/rke2os/internal/backoff"
	"github.com/rke2os/rke2os/internal/durable"
	"k8s.io/client-go/kubernetes"
)

// Files is where the upgrader keeps its records and downloads, and finds
// the image's upgrade key.
type Files struct {
	Dir       string // layout.UpgradeDir: the download, on the state partition
	Pending   string // layout.PendingFile
	Rollback  string // layout.RollbackFile, written by PID 1
	PublicKey string // layout.UpgradePublicKey, in the image
	// OSRelease is the running image's os-release (layout.OSRelease),
	// whose build date no artifact may be older than; "" skips the check.
	OSRelease string
	// CAFiles are trusted for https beside the system's roots when they
	// exist (the cluster's server CA).
	CAFiles []string
}

// DefaultFiles are the node's own.
var DefaultFiles = Files{Dir: layout.UpgradeDir, Pending: layout.PendingFile, Rollback: layout.RollbackFile,
	PublicKey: layout.UpgradePublicKey, OSRelease: layout.OSRelease}

// Config is what the upgrader works with.
type Config struct {
	Files
	// NodeName is the node's own Node; Role is server or agent, what
	// an artifact's manifest must name.
	NodeName, Role string
	// Client is the node's own: it needs only its own Node (get, watch,
	// patch) and Events.
	Client kubernetes.Interface
	// System is the machine (nil: NodeSystem).
	System System
	// HTTP downloads the artifact (nil: a client trusting the system's
	// roots and CAFiles).
	HTTP *http.Client

	// Timings; zero is the default.
	DownloadTimeout time.Duration // the whole download (1 h)
	StallTimeout    time.Duration // a download that brings no byte for that long fails (2 min)
	Resync          time.Duration // the Node is read again at least this often (5 min)
	Progress        time.Duration // a progress line at least this often (10 s)
	Retry           time.Duration // the first wait before a retry (1 s)
}

func (c *Config) defaults() {
	if c.System == nil {
		c.System = NodeSystem{}
	}
	if c.DownloadTimeout <= 0 {
		c.DownloadTimeout = time.Hour
	}
	if c.StallTimeout <= 0 {
		c.StallTimeout = 2 * time.Minute
	}
	if c.Resync <= 0 {
		c.Resync = 5 * time.Minute
	}
	if c.Progress <= 0 {
		c.Progress = 10 * time.Second
	}
	if c.Retry <= 0 {
		c.Retry = time.Second
	}
}

// Pending is the upgrade the node rebooted for (Files.Pending), kept
// until the node has said how the boot went.
type Pending struct {
	Request upgradeapi.Request `json:"request"`
	Slot    slots.Slot         `json:"slot"`    // the slot written and armed
	Build   string             `json:"build"`   // the artifact's OS build
	Version string             `json:"version"` // its RKE2 version
	At      time.Time          `json:"at"`
}

// upgrader is one run: the config and what this boot has settled.
type upgrader struct {
	Config
	pending   *Pending // a trial under way: its request is not carried out again
	rebooting bool     // the reboot is asked for: nothing more to do
	badReq    string   // the last unreadable request, said once
}

// Run settles what the last boot did, then carries out the requests on
// the node's Node until ctx ends. It is started once the node is Ready
// and the booted slot is confirmed.
func Run(ctx context.Context, c Config) {
	c.defaults()
	u := &upgrader{Config: c}
	u.cleanDownloads()
	u.settle(ctx)
	u.watch(ctx)
}

// settle reports what the boot means for the upgrade the node rebooted
// for, and what PID 1 recorded of a rollback: a done or rolled-back
// upgrade is said on the Node, then its records go.
func (u *upgrader) settle(ctx context.Context) {
	cur, ok, err := u.System.Current()
	if err != nil {
		slog.Error("upgrader: the booted slot", "err", err)
		return
	}
	if !ok {
		return // the ISO or PXE: no slots, no records
	}
	p, err := u.readPending()
	if err != nil {
		slog.Error("upgrader: dropping an unreadable pending upgrade", "file", u.Pending, "err", err)
		u.removeFile(u.Pending)
	}
	rb, err := u.readRollback()
	if err != nil {
		slog.Error("upgrader: dropping an unreadable rollback record", "file", u.Rollback, "err", err)
		u.removeFile(u.Rollback)
	}
	switch {
	case rb != nil:
		reason := fmt.Sprintf("slot %s did not reach node-ready in %s; the node booted slot %s again, on its previous version", rb.Tried, boots(rb.Tries), rb.Good)
		if p != nil {
			reason = fmt.Sprintf("slot %s (build %s, RKE2 %s) did not reach node-ready in %s; the node booted slot %s again, on its previous version", rb.Tried, p.Build, p.Version, boots(rb.Tries), rb.Good)
		}
		console.Error(fmt.Errorf("upgrade rolled back: %s", reason))
		u.event(ctx, "Warning", "UpgradeRolledBack", reason)
		if p != nil {
			if !u.report(ctx, p.Request, upgradeapi.PhaseRolledBack, reason, rb.Tried) {
				return // ctx ended: said at the next start
			}
		}
		u.removeFile(u.Pending)
		u.removeFile(u.Rollback)
	case p == nil:
	case cur.Slot == p.Slot:
		st, err := u.System.Slots(cur)
		if err != nil {
			slog.Error("upgrader: the slots' state", "err", err)
			u.pending = p
			return
		}
		if st.Good != cur.Slot {
			// Not confirmed (confirmSlot failed): the trial's deadline
			// reboots into the next try or back to the good slot.
			slog.Warn("upgrader: booted the new slot, but it is not confirmed yet; the trial goes on", "slot", cur.Slot, "state", st)
			u.pending = p
			return
		}
		reason := fmt.Sprintf("booted slot %s: build %s, RKE2 %s", cur.Slot, p.Build, p.Version)
		slog.Info("upgrade done", "slot", cur.Slot, "build", p.Build, "version", p.Version)
		if !u.report(ctx, p.Request, upgradeapi.PhaseDone, reason, cur.Slot) {
			return
		}
		u.removeFile(u.Pending)
	default:
		// The slot was written but the node did not boot it: a power
		// cut before the slot was armed or before the reboot. The
		// request, still on the Node, is carried out again; until then
		// no boot tries the slot.
		slog.Warn("upgrader: the node did not reboot into the slot it wrote; the request is carried out again", "written", p.Slot, "booted", cur.Slot, "plan", p.Request.Plan)
		if _, err := u.System.UpdateSlots(cur, func(s slots.State) (slots.State, error) {
			if s.Try == p.Slot && s.Good == cur.Slot {
				return s.Forget(), nil
			}
			return s, nil
		}); err != nil {
			slog.Error("upgrader: disarming the written slot", "slot", p.Slot, "err", err)
		}
		u.removeFile(u.Pending)
	}
}

func (u *upgrader) readPending() (*Pending, error) {
	b, err := os.ReadFile(u.Pending)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var p Pending
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, err
	}
	if _, err := slots.ParseSlot(string(p.Slot)); err != nil {
		return nil, err
	}
	return &p, nil
}

func (u *upgrader) writePending(p Pending) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return durable.WriteFile(u.Pending, b, 0o600)
}

func (u *upgrader) readRollback() (*slots.Rollback, error) {
	b, err := os.ReadFile(u.Rollback)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var rb slots.Rollback
	if err := json.Unmarshal(b, &rb); err != nil {
		return nil, err
	}
	return &rb, nil
}

// removeFile removes a record durably; a failure is logged: the record
// is then read again at the next start, and said again.
func (u *upgrader) removeFile(p string) {
	if err := os.Remove(p); err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			slog.Error("upgrader: remove", "file", p, "err", err)
		}
		return
	}
	if err := durable.SyncDir(filepath.Dir(p)); err != nil {
		slog.Warn("upgrader: sync", "dir", filepath.Dir(p), "err", err)
	}
}

// cleanDownloads removes what a download cut short left.
func (u *upgrader) cleanDownloads() {
	old, _ := filepath.Glob(filepath.Join(u.Dir, downloadPrefix+"*"))
	for _, p := range old {
		slog.Info("upgrader: removing a download cut short", "file", p)
		os.Remove(p)
	}
}

// publicKey is the image's upgrade key.
func (u *upgrader) publicKey() (ed25519.PublicKey, error) {
	b, err := os.ReadFile(u.PublicKey)
	if errors.Is(err, os.ErrNotExist) {
		return nil, errors.New("this image carries no upgrade key (built without --secrets): it takes no upgrade; build its images with rke2-build image --secrets")
	}
	if err != nil {
		return nil, fmt.Errorf("the image's upgrade key: %w", err)
	}
	pub, err := artifact.ParsePublicKey(b)
	if err != nil {
		return nil, fmt.Errorf("the image's upgrade key %s: %w", u.PublicKey, err)
	}
	return pub, nil
}

// sleep waits before a retry; false when ctx ended.
func sleep(ctx context.Context, b *backoff.Backoff) bool {
	return backoff.Sleep(ctx, b.Next(0))
}

// builtAt is the running image's build date, from its os-release; false
// when Files.OSRelease is "" or the file names no date (an image built
// before the field). A file or a date that cannot be read is an error:
// the check fails closed.
func (u *upgrader) builtAt() (time.Time, bool, error) {
	if u.OSRelease == "" {
		return time.Time{}, false, nil
	}
	b, err := os.ReadFile(u.OSRelease)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("the running image's os-release: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		v, ok := strings.CutPrefix(line, layout.OSReleaseBuildDate+"=")
		if !ok {
			continue
		}
		if uq, err := strconv.Unquote(v); err == nil {
			v = uq
		}
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return time.Time{}, false, fmt.Errorf("the running image's os-release %s: %s: %w", u.OSRelease, layout.OSReleaseBuildDate, err)
		}
		return t, true, nil
	}
	return time.Time{}, false, nil
}

// boots is "1 boot" or "n boots".
func boots(n int) string {
	if n == 1 {
		return "1 boot"
	}
	return fmt.Sprintf("%d boots", n)
}
