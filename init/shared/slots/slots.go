package slots

import (
	"fmt"
	"strconv"
)

// Slot is a system slot: A or B.
type Slot string

// The two slots. Their partitions are named RKE2_A and RKE2_B.
const (
	A Slot = "A"
	B Slot = "B"
)

// ParseSlot reads "A" or "B".
func ParseSlot(s string) (Slot, error) {
	switch Slot(s) {
	case A, B:
		return Slot(s), nil
	}
	return "", fmt.Errorf("slot %q: want A or B", s)
}

// Other is the slot that is not s.
func (s Slot) Other() Slot {
	if s == A {
		return B
	}
	return A
}

// PartName is the slot's GPT partition name.
func (s Slot) PartName() string { return "RKE2_" + string(s) }

// DefaultTries is how many boots a new slot gets to reach node-ready
// before GRUB goes back to the good slot: two, so that one power cut in
// the middle of a trial does not throw a good upgrade away.
const DefaultTries = 2

// State is what the environment block says of the slots.
type State struct {
	Good  Slot // boots when nothing is tried
	Try   Slot // being tried, or ""
	Tries int  // boots left for Try
}

// StateOf reads the slots' state from the environment block as grub.cfg
// does: anything but B is A for the good slot, an unknown slot or count
// means nothing is tried.
func StateOf(env Env) State {
	s := State{Good: A}
	if env[VarGood] == string(B) {
		s.Good = B
	}
	if t, err := ParseSlot(env[VarTry]); err == nil && t != s.Good {
		s.Try = t
		s.Tries, _ = strconv.Atoi(env[VarTries])
		if s.Tries < 0 || s.Tries > DefaultTries {
			s.Tries = 0
		}
	}
	return s
}

// Apply writes the state into env, leaving other variables alone.
func (s State) Apply(env Env) {
	env[VarGood] = string(s.Good)
	if s.Try == "" {
		delete(env, VarTry)
		delete(env, VarTries)
		return
	}
	env[VarTry] = string(s.Try)
	env[VarTries] = strconv.Itoa(s.Tries)
}

// Boot is how this boot came to be, as GRUB put it on the kernel command
// line: rke2.slot=<A|B> and rke2.trial=<0|1>.
type Boot struct {
	Slot  Slot
	Trial bool // the slot is being tried: it is not yet the good one
}

// BootOf reads the boot's slot from the command line's values; ok is false
// for a boot that is not from a slot (the ISO, PXE).
func BootOf(slot, trial string) (b Boot, ok bool, err error) {
	if slot == "" {
		return Boot{}, false, nil
	}
	s, err := ParseSlot(slot)
	if err != nil {
		return Boot{}, false, fmt.Errorf("rke2.slot=%s on the kernel command line: want A or B", slot)
	}
	return Boot{Slot: s, Trial: trial == "1"}, true, nil
}

// Outcome is what a boot means for an upgrade.
type Outcome int

const (
	// Steady: the good slot booted, nothing was being tried.
	Steady Outcome = iota
	// Trying: the slot being tried booted; it becomes good at node-ready.
	Trying
	// RolledBack: a slot was tried until no tries were left, and GRUB
	// booted the good one again; or GRUB booted the good one while a
	// trial was armed (it could not load the slot tried and fell back,
	// or the good slot was chosen in the menu): the trial is over too,
	// or each boot would end the same way.
	RolledBack
)

func (o Outcome) String() string {
	return [...]string{"steady", "trying", "rolled-back"}[o]
}

// Outcome tells what this boot means given the environment block as GRUB
// left it.
func (s State) Outcome(b Boot) Outcome {
	switch {
	case s.Try != "" && b.Slot == s.Try && b.Trial:
		return Trying
	case s.Try != "" && b.Slot != s.Try:
		return RolledBack
	}
	return Steady
}

// Confirm makes the booted slot the good one: the trial succeeded.
func (s State) Confirm(booted Slot) State {
	return State{Good: booted}
}

// Forget drops a failed trial once it has been reported.
func (s State) Forget() State {
	return State{Good: s.Good}
}

// Arm asks GRUB to try slot at the next boots, DefaultTries times. Only
// the slot that is not good can be tried: the good one is what the node
// falls back to.
func (s State) Arm(slot Slot) (State, error) {
	if slot == s.Good {
		return s, fmt.Errorf("slot %s is the good slot; only the other one (%s) can be tried", slot, s.Good.Other())
	}
	return State{Good: s.Good, Try: slot, Tries: DefaultTries}, nil
}
