package slots

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/rke2os/rke2os/init/shared/blockdev"
	"github.com/rke2os/rke2os/init/shared/layout"
)

// Current is the booted slot as PID 1 found it, for rke2-node: written
// once per boot to layout.SlotFile.
type Current struct {
	Slot  Slot   `json:"slot"`
	Trial bool   `json:"trial"`
	Disk  string `json:"disk"` // /dev/vda
	ESP   string `json:"esp"`  // /dev/vda2
}

// Partition is the device of slot s on the booted disk.
func (c Current) Partition(s Slot) (string, error) {
	return blockdev.Partition(filepath.Base(c.Disk), s.PartName())
}

// WriteCurrent records the booted slot.
func WriteCurrent(c Current) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(layout.SlotFile), 0o755); err != nil {
		return err
	}
	return os.WriteFile(layout.SlotFile, b, 0o644)
}

// ReadCurrent reads the booted slot; ok is false when the node did not
// boot from a slot (the ISO, PXE).
func ReadCurrent() (c Current, ok bool, err error) {
	b, err := os.ReadFile(layout.SlotFile)
	if errors.Is(err, os.ErrNotExist) {
		return Current{}, false, nil
	}
	if err != nil {
		return Current{}, false, err
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return Current{}, false, fmt.Errorf("%s: %w", layout.SlotFile, err)
	}
	return c, true, nil
}

// Rollback is what the node keeps of a rolled-back upgrade until it has
// reported it (layout.RollbackFile, on the state partition).
type Rollback struct {
	Tried Slot      `json:"tried"` // the slot that did not reach node-ready
	Good  Slot      `json:"good"`  // the slot booted again
	Tries int       `json:"tries"`
	At    time.Time `json:"at"`
}

// ConfirmTrial makes the booted slot the good one if it is being tried:
// the node reached node-ready on it. It reports whether it did.
func ConfirmTrial(c Current) (bool, error) {
	if !c.Trial {
		return false, nil
	}
	confirmed := false
	_, err := ESP{Device: c.ESP}.Update(func(s State) (State, error) {
		if s.Try != c.Slot {
			return s, nil // chosen by hand, or already confirmed
		}
		confirmed = true
		return s.Confirm(c.Slot), nil
	})
	return confirmed, err
}
