package upgrader

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/rke2os/rke2os/init/rke2node/upgradeapi"
	"github.com/rke2os/rke2os/init/shared/slots"
	"github.com/rke2os/rke2os/internal/artifact"
	"github.com/rke2os/rke2os/internal/backoff"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ISOMessage is the answer of a node that booted from the ISO or PXE to
// any request: it has no slots to write.
const ISOMessage = "the node runs from the ISO or PXE, with no system slots: install it to a disk first (the config's install:)"

// copyBuffer is the size of the slot's writes and reads.
const copyBuffer = 4 << 20

// carryOut carries out req: downloading, writing, rebooting, each said on
// the Node. Whatever fails before the new slot is armed is said as failed
// with its reason, the download is removed and the slots' state is left
// as it was: the node stays on its slot.
func (u *upgrader) carryOut(ctx context.Context, req upgradeapi.Request) {
	slog.Info("upgrade requested", "plan", req.Plan, "generation", req.Generation, "url", redact(req.URL), "sha256", req.SHA256)
	cur, ok, err := u.System.Current()
	if err != nil {
		u.fail(ctx, req, fmt.Sprintf("which slot the node booted: %v", err))
		return
	}
	if !ok {
		u.fail(ctx, req, ISOMessage)
		return
	}
	pub, err := u.publicKey()
	if err != nil {
		u.fail(ctx, req, err.Error())
		return
	}
	slot, dev, size, err := u.target(cur)
	if err != nil {
		u.fail(ctx, req, err.Error())
		return
	}

	u.report(ctx, req, upgradeapi.PhaseDownloading, "from "+redact(req.URL), "")
	path, err := u.download(ctx, req)
	if err != nil {
		u.fail(ctx, req, err.Error())
		return
	}
	defer os.Remove(path)
	m, err := artifact.VerifyFile(path, pub)
	if err != nil {
		u.fail(ctx, req, strings.TrimPrefix(err.Error(), path+": "))
		return
	}
	if m.Role != u.Role {
		u.fail(ctx, req, fmt.Sprintf("the artifact is for %s nodes (build %s, RKE2 %s); this node is a %s: give the plan the artifact built with --role %s for this role", m.Role, m.Build, m.Version, u.Role, u.Role))
		return
	}
	built, ok, err := u.builtAt()
	if err != nil {
		u.fail(ctx, req, err.Error())
		return
	}
	if ok && m.Created.Before(built) {
		u.fail(ctx, req, fmt.Sprintf("the artifact (build %s, RKE2 %s) was built %s, before the system this node runs (built %s): a node installs no older build, so that nobody can put an old image back on it (rollback protection); to go back to an older version, build it again with a later SOURCE_DATE_EPOCH",
			m.Build, m.Version, m.Created.UTC().Format(time.RFC3339), built.UTC().Format(time.RFC3339)))
		return
	}
	if m.SlotSize > size {
		u.fail(ctx, req, fmt.Sprintf("the artifact's slot image is %d bytes (%d MiB); slot %s (%s) holds %d bytes (%d MiB): it does not fit, nothing was written", m.SlotSize, m.SlotSize>>20, slot, dev, size, size>>20))
		return
	}

	u.report(ctx, req, upgradeapi.PhaseWriting, fmt.Sprintf("build %s, RKE2 %s into slot %s", m.Build, m.Version, slot), slot)
	if err := u.writeSlot(ctx, cur, path, pub, *m, slot, dev); err != nil {
		u.fail(ctx, req, err.Error())
		return
	}
	os.Remove(path) // the state partition's space: the slot holds it now

	if err := u.stillAsked(ctx, req); err != nil {
		u.fail(ctx, req, err.Error())
		return
	}
	p := Pending{Request: req, Slot: slot, Build: m.Build, Version: m.Version, At: time.Now().UTC()}
	if err := u.writePending(p); err != nil {
		u.fail(ctx, req, fmt.Sprintf("recording the upgrade before the reboot: %v", err))
		return
	}
	if _, err := u.System.UpdateSlots(cur, func(s slots.State) (slots.State, error) {
		if s.Good != cur.Slot {
			return s, fmt.Errorf("the good slot is %s now, not the booted %s", s.Good, cur.Slot)
		}
		return s.Arm(slot)
	}); err != nil {
		u.removeFile(u.Pending)
		u.fail(ctx, req, fmt.Sprintf("asking GRUB to try slot %s: %v", slot, err))
		return
	}
	u.pending, u.rebooting = &p, true
	u.report(ctx, req, upgradeapi.PhaseRebooting, fmt.Sprintf("slot %s holds build %s, RKE2 %s; GRUB tries it at the next boots (%d), then goes back to slot %s if it never reaches node-ready", slot, m.Build, m.Version, slots.DefaultTries, cur.Slot), slot)
	slog.Info("upgrade: rebooting into the new slot", "slot", slot, "build", m.Build, "version", m.Version)
	if err := u.System.Reboot(); err != nil {
		slog.Error("upgrader: asking PID 1 to reboot; the new slot is tried at the next boot", "err", err)
	}
}

// target is the slot an upgrade writes, the one not booted, and its
// partition. The booted slot must be the good one: a trial that is not
// confirmed falls back to the other slot, which must stay as it is.
func (u *upgrader) target(cur slots.Current) (slots.Slot, string, int64, error) {
	st, err := u.System.Slots(cur)
	if err != nil {
		return "", "", 0, fmt.Errorf("the slots' state on the ESP: %v", err)
	}
	slot := cur.Slot.Other()
	if st.Good != cur.Slot {
		if st.Try == cur.Slot {
			return "", "", 0, fmt.Errorf("the booted slot %s is being tried and not confirmed yet: not writing slot %s, the one the node falls back to", cur.Slot, slot)
		}
		return "", "", 0, fmt.Errorf("the booted slot %s is not the good one (%s): not writing the good slot; boot slot %s first", cur.Slot, st.Good, st.Good)
	}
	dev, size, err := u.System.Partition(cur, slot)
	if err != nil {
		return "", "", 0, fmt.Errorf("slot %s's partition: %v", slot, err)
	}
	return slot, dev, size, nil
}

// writeSlot writes the artifact's slot image into slot's device and reads
// it back. No boot tries the slot while it is written: a stale trial of
// it is dropped first. A slot image that turns out not to be the signed
// one at its end, or that the device does not give back, fails it.
func (u *upgrader) writeSlot(ctx context.Context, cur slots.Current, path string, pub ed25519.PublicKey, m artifact.Manifest, slot slots.Slot, dev string) error {
	if _, err := u.System.UpdateSlots(cur, func(s slots.State) (slots.State, error) {
		if s.Good == slot {
			return s, fmt.Errorf("slot %s is the good slot, the one the node falls back to: it is never written", slot)
		}
		if s.Try == slot {
			return s.Forget(), nil
		}
		return s, nil
	}); err != nil {
		return fmt.Errorf("dropping a trial of slot %s before writing it: %v", slot, err)
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	a, err := artifact.Open(f, pub)
	if err != nil {
		return err
	}
	if got := a.Manifest(); got.SlotSHA256 != m.SlotSHA256 || got.SlotSize != m.SlotSize {
		return errors.New("the downloaded artifact changed after it was verified")
	}
	d, err := u.System.Open(dev, true)
	if err != nil {
		return fmt.Errorf("slot %s: %v", slot, err)
	}
	buf := make([]byte, copyBuffer)
	progress := u.progress("writing slot "+string(slot), m.SlotSize)
	var n int64
	src := a.Slot()
	for {
		if ctx.Err() != nil {
			d.Close()
			return fmt.Errorf("stopped after %d of %d bytes: the node is shutting down", n, m.SlotSize)
		}
		k, rerr := src.Read(buf)
		if k > 0 {
			if _, err := d.Write(buf[:k]); err != nil {
				d.Close()
				return fmt.Errorf("writing slot %s (%s) after %d bytes: %v", slot, dev, n, err)
			}
			n += int64(k)
			progress(n)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			d.Close()
			return fmt.Errorf("%v; slot %s is not booted", rerr, slot)
		}
	}
	if err := d.Sync(); err != nil {
		d.Close()
		return fmt.Errorf("syncing slot %s (%s): %v", slot, dev, err)
	}
	if err := d.Close(); err != nil {
		return fmt.Errorf("slot %s (%s): %v", slot, dev, err)
	}
	slog.Info("upgrade: slot written, reading it back", "slot", slot, "bytes", n)

	r, err := u.System.Open(dev, false)
	if err != nil {
		return fmt.Errorf("reading slot %s back: %v", slot, err)
	}
	defer r.Close()
	h := sha256.New()
	progress = u.progress("reading slot "+string(slot)+" back", m.SlotSize)
	var back int64
	lr := io.LimitReader(r, m.SlotSize)
	for {
		if ctx.Err() != nil {
			return fmt.Errorf("stopped reading slot %s back: the node is shutting down", slot)
		}
		k, err := lr.Read(buf)
		h.Write(buf[:k])
		back += int64(k)
		progress(back)
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("reading slot %s (%s) back after %d bytes: %v", slot, dev, back, err)
		}
	}
	if back != m.SlotSize {
		return fmt.Errorf("reading slot %s (%s) back: it ends after %d of the %d bytes written", slot, dev, back, m.SlotSize)
	}
	if sum := hex.EncodeToString(h.Sum(nil)); sum != m.SlotSHA256 {
		return fmt.Errorf("slot %s (%s) read back has sha256 %s, the signed manifest says %s: the device did not keep what was written; slot %s is not booted", slot, dev, sum, m.SlotSHA256, slot)
	}
	slog.Info("upgrade: slot read back, it matches the signed manifest", "slot", slot, "sha256", m.SlotSHA256)
	return nil
}

// progress is a progress line for what, at most every Progress.
func (u *upgrader) progress(what string, total int64) func(n int64) {
	last := time.Now()
	return func(n int64) {
		if time.Since(last) < u.Progress {
			return
		}
		last = time.Now()
		slog.Info("upgrade: "+what, "mib", n>>20, "of_mib", total>>20)
	}
}

// stillAsked checks, before the point of no return, that the Node still
// asks for req: a plan deleted or changed while the slot was written
// does not reboot the node.
func (u *upgrader) stillAsked(ctx context.Context, req upgradeapi.Request) error {
	var last error
	b := &backoff.Backoff{Initial: u.Retry, Max: 30 * u.Retry}
	for deadline := time.Now().Add(2 * time.Minute); ; {
		n, err := u.Client.CoreV1().Nodes().Get(ctx, u.NodeName, metav1.GetOptions{})
		if err == nil {
			got, err := ParseRequest(n.Annotations[upgradeapi.RequestKey])
			if err != nil || got != req {
				return errors.New("the Node no longer asks for this upgrade (its plan changed or went): slot written, not booted")
			}
			return nil
		}
		last = err
		if time.Now().After(deadline) || !sleep(ctx, b) {
			return fmt.Errorf("could not read the Node to check that it still asks for this upgrade: %v; slot written, not booted", last)
		}
	}
}
