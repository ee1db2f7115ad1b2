package pid1

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/rke2os/rke2os/init/pid1/boot"
	"github.com/rke2os/rke2os/init/shared/blockdev"
	"github.com/rke2os/rke2os/init/shared/console"
	"github.com/rke2os/rke2os/init/shared/goroutine"
	"github.com/rke2os/rke2os/init/shared/layout"
	"github.com/rke2os/rke2os/init/shared/slots"
	"github.com/rke2os/rke2os/internal/durable"
	"golang.org/x/sys/unix"
)

// trialTimeout bounds a trial boot of a new slot: a slot that has not
// reached node-ready by then reboots, and GRUB takes its next try or goes
// back to the good slot. Generous: a server's first boot on a new version
// migrates etcd and pulls nothing, but a loaded machine is slow.
const trialTimeout = 30 * time.Minute

// trialFailPause is how long a trial boot that failed a step stays in
// maintenance mode, for the console to show why, before it reboots.
const trialFailPause = 30 * time.Second

// checkSlot reads the slots' state on a boot from a disk's system slot
// (GRUB names it: rke2.slot=, rke2.trial=), says which slot booted for
// rke2-node, reports an upgrade that was rolled back, and watches a trial
// boot's deadline. A boot from the ISO or PXE has no slot.
//
// Only a trial boot stops on an error here (and so reboots into its next
// try): a node on its good slot that cannot read or change the slots'
// state says so and boots on, since without a shell it could not be
// mended from maintenance mode. It cannot be upgraded until it can.
func checkSlot(cmdline boot.Cmdline, medium string) error {
	b, ok, err := slots.BootOf(cmdline["rke2.slot"], cmdline["rke2.trial"])
	if err != nil || !ok {
		return err
	}
	if err := readSlot(b, medium); err != nil {
		if b.Trial {
			return err
		}
		console.Error(fmt.Errorf("%w; booting on, without upgrades until this is mended", err))
	}
	return nil
}

func readSlot(b slots.Boot, medium string) error {
	disk := blockdev.ParentDisk(filepath.Base(medium))
	if disk == "" {
		return fmt.Errorf("slot %s: the boot medium %s is not a disk partition", b.Slot, medium)
	}
	espDev, err := blockdev.Partition(disk, layout.ESPPartition)
	if err != nil {
		return fmt.Errorf("slot %s: %w", b.Slot, err)
	}
	esp := slots.ESP{Device: espDev}
	st, _, err := esp.Read()
	if err != nil {
		return fmt.Errorf("slot %s: the slots' state on the ESP: %w", b.Slot, err)
	}
	if err := slots.WriteCurrent(slots.Current{Slot: b.Slot, Trial: b.Trial, Disk: "/dev/" + disk, ESP: espDev}); err != nil {
		return err
	}
	outcome := st.Outcome(b)
	console.Event(console.EventSlot, "slot", string(b.Slot), "good", string(st.Good), "outcome", outcome.String())
	switch outcome {
	case slots.Trying:
		slog.Info("trying a new system slot: it becomes the good one at node-ready", "slot", b.Slot, "good", st.Good, "tries_left", st.Tries, "deadline", trialTimeout)
		goroutine.Go("trial deadline", func() { watchTrial(esp, b.Slot, trialTimeout) })
	case slots.RolledBack:
		used := slots.DefaultTries - st.Tries
		if st.Tries == 0 {
			console.Error(fmt.Errorf("upgrade rolled back: slot %s did not reach node-ready in %d boots; booted slot %s again", st.Try, slots.DefaultTries, b.Slot))
		} else {
			console.Error(fmt.Errorf("upgrade rolled back: GRUB booted slot %s while slot %s was being tried with %d tries left (it could not load slot %s, or slot %s was chosen in the menu); the trial is over", b.Slot, st.Try, st.Tries, st.Try, b.Slot))
		}
		rb := slots.Rollback{Tried: st.Try, Good: b.Slot, Tries: used, At: time.Now().UTC()}
		if err := recordRollback(rb); err != nil {
			return err
		}
		if _, err := esp.Update(func(s slots.State) (slots.State, error) {
			if s.Try != st.Try || s.Tries != st.Tries {
				return s, nil // changed since it was read
			}
			return s.Forget(), nil
		}); err != nil {
			return fmt.Errorf("forget the failed trial of slot %s: %w", st.Try, err)
		}
	default:
		slog.Info("system slot", "slot", b.Slot, "good", st.Good)
	}
	return nil
}

// recordRollback keeps the rollback on the state partition (or in memory
// on a node without one) until rke2-node has reported it.
func recordRollback(rb slots.Rollback) error {
	b, err := json.Marshal(rb)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(layout.RollbackFile), 0o755); err != nil {
		return err
	}
	return durable.WriteFile(layout.RollbackFile, b, 0o644)
}

// watchTrial reboots a trial boot that has not made its slot the good one
// (rke2-node does at node-ready) by the deadline.
func watchTrial(esp slots.ESP, slot slots.Slot, after time.Duration) {
	time.Sleep(after)
	st, _, err := esp.Read()
	if err == nil && st.Good == slot {
		return
	}
	console.Error(fmt.Errorf("trial of slot %s: no node-ready in %s (state %+v, %v); rebooting, GRUB takes the next try or boots slot %s again", slot, after, st, err, st.Good))
	_ = unix.Kill(1, unix.SIGINT) // the reboot request, served in order
}

// failTrial reboots a trial boot that failed a boot step, after a pause
// for the console: GRUB takes the next try or goes back to the good slot.
func failTrial() {
	console.Error(fmt.Errorf("a trial boot of a new system slot failed; rebooting in %s, GRUB takes the next try or boots the good slot again", trialFailPause))
	goroutine.Go("trial failed", func() {
		time.Sleep(trialFailPause)
		_ = unix.Kill(1, unix.SIGINT)
	})
}
