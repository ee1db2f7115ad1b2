package timesync

import (
	"fmt"
	"math/bits"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// RTCPath is the hardware clock SystemClock writes.
const RTCPath = "/dev/rtc0"

// SystemClock is the node's clock, set through adjtimex(2), with its
// hardware clock at RTCPath. Setting it needs CAP_SYS_TIME.
func SystemClock() Clock { return systemClock{} }

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// Step adds d to the clock in the kernel (ADJ_SETOFFSET), so that no time
// passes between reading the clock and setting it, as chrony and
// systemd-timesyncd do. It also marks the clock synchronised: the kernel
// then writes the hardware clock itself every 11 minutes.
func (systemClock) Step(d time.Duration) error {
	tx := stepTimex(d)
	if _, err := unix.Adjtimex(&tx); err != nil {
		return fmt.Errorf("adjtimex: %w", err)
	}
	return nil
}

// Slew hands d to the kernel's phase-locked loop (STA_PLL), which runs the
// clock fast or slow until d is absorbed, and learns the clock's drift from
// successive offsets.
func (systemClock) Slew(d, poll time.Duration) error {
	tx := slewTimex(d, poll)
	if _, err := unix.Adjtimex(&tx); err != nil {
		return fmt.Errorf("adjtimex: %w", err)
	}
	return nil
}

// SetHardware writes t, in UTC, to the RTC. The RTC counts whole seconds,
// so t is rounded to the nearest one.
func (systemClock) SetHardware(t time.Time) error {
	f, err := os.Open(RTCPath)
	if err != nil {
		return err
	}
	defer f.Close()
	rt := rtcTime(t)
	if err := unix.IoctlSetRTCTime(int(f.Fd()), &rt); err != nil {
		return fmt.Errorf("%s: RTC_SET_TIME: %w", RTCPath, err)
	}
	return nil
}

// maxPhase is the largest offset the kernel's PLL takes (MAXPHASE); it
// clamps larger ones.
const maxPhase = 500 * time.Millisecond

// stepTimex is the adjtimex request that steps the clock by d. With
// ADJ_NANO the kernel reads the microseconds field as nanoseconds, which
// must be in [0, 1e9): -0.3 s is {-1 s, 0.7e9 ns}. The status is cleared:
// the clock is synchronised (STA_UNSYNC off) and the PLL is off until the
// next slew.
func stepTimex(d time.Duration) unix.Timex {
	sec, nsec := int64(d/time.Second), int64(d%time.Second)
	if nsec < 0 {
		sec--
		nsec += int64(time.Second)
	}
	return unix.Timex{
		Modes:  unix.ADJ_SETOFFSET | unix.ADJ_NANO | unix.ADJ_STATUS | unix.ADJ_MAXERROR | unix.ADJ_ESTERROR,
		Time:   unix.Timeval{Sec: sec, Usec: nsec},
		Status: 0,
	}
}

// slewTimex is the adjtimex request that slews the clock by d through the
// PLL, with the time constant systemd-timesyncd uses for poll: log2 of the
// poll interval in seconds, minus 4 (2 for 64 s, 6 for 1024 s). The zero
// maximum and estimated errors say the clock is on time now; the kernel
// marks it unsynchronised by itself if no correction comes for hours.
func slewTimex(d, poll time.Duration) unix.Timex {
	d = min(max(d, -maxPhase), maxPhase)
	constant := int64(0)
	if s := uint64(poll / time.Second); s > 0 {
		constant = min(max(int64(bits.Len64(s)-1)-4, 0), 10)
	}
	return unix.Timex{
		Modes:    unix.ADJ_OFFSET | unix.ADJ_NANO | unix.ADJ_STATUS | unix.ADJ_TIMECONST | unix.ADJ_MAXERROR | unix.ADJ_ESTERROR,
		Offset:   int64(d),
		Status:   unix.STA_PLL,
		Constant: constant,
	}
}

// rtcTime is t, rounded to the second, as the RTC's struct rtc_time in UTC.
func rtcTime(t time.Time) unix.RTCTime {
	u := t.UTC().Round(time.Second)
	return unix.RTCTime{
		Sec:  int32(u.Second()),
		Min:  int32(u.Minute()),
		Hour: int32(u.Hour()),
		Mday: int32(u.Day()),
		Mon:  int32(u.Month()) - 1,
		Year: int32(u.Year()) - 1900,
		Wday: int32(u.Weekday()),
		Yday: int32(u.YearDay()) - 1,
	}
}
