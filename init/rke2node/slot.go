package rke2node

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/rke2os/rke2os/init/shared/console"
	"github.com/rke2os/rke2os/init/shared/slots"
)

// A confirmation that fails is tried again (the ESP's mount, say, failing
// once) before it is reported.
const (
	confirmTries = 3
	confirmPause = 5 * time.Second
)

// confirmSlot makes the slot being tried the good one, now that the node
// is Ready on it: from here on GRUB boots it, and the old slot is what an
// upgrade writes next. A failure is reported and left to the trial's
// deadline, which reboots into the next try or back to the good slot.
func confirmSlot() {
	cur, ok, err := slots.ReadCurrent()
	if err != nil {
		console.Error(err)
		return
	}
	if !ok || !cur.Trial {
		return
	}
	var confirmed bool
	for try := 1; ; try++ {
		if confirmed, err = slots.ConfirmTrial(cur); err == nil {
			break
		}
		if try == confirmTries {
			console.Error(fmt.Errorf("confirm slot %s: %w", cur.Slot, err))
			return
		}
		slog.Warn("confirming the system slot failed; trying again", "slot", cur.Slot, "try", try, "err", err)
		time.Sleep(confirmPause)
	}
	if confirmed {
		slog.Info("system slot confirmed: the node is Ready on it, GRUB boots it from now on", "slot", cur.Slot)
		console.Event(console.EventSlotConfirmed, "slot", string(cur.Slot))
	}
}
