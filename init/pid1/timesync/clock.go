package timesync

import "time"

// Clock is the clock Sync and Discipline set. SystemClock is the node's;
// tests give a fake one, so that they do not change the host's clock.
type Clock interface {
	// Now reads the clock.
	Now() time.Time
	// Step moves the clock by d at once (d < 0: back).
	Step(d time.Duration) error
	// Slew has the clock absorb d gradually, by running slightly fast or
	// slow; poll is the interval until the next correction, which sets
	// how fast.
	Slew(d, poll time.Duration) error
	// SetHardware writes t to the hardware clock, which keeps the time
	// while the node is off and starts the next boot's clock.
	SetHardware(t time.Time) error
}
