package rke2node

import (
	"log/slog"

	"github.com/rke2os/rke2os/init/shared/console"
	"github.com/rke2os/rke2os/init/shared/slots"
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
	confirmed, err := slots.ConfirmTrial(cur)
	if err != nil {
		console.Error(err)
		return
	}
	if confirmed {
		slog.Info("system slot confirmed: the node is Ready on it, GRUB boots it from now on", "slot", cur.Slot)
		console.Event(console.EventSlotConfirmed, "slot", string(cur.Slot))
	}
}
