package timesync

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestStepTimex(t *testing.T) {
	for d, want := range map[time.Duration]unix.Timeval{
		3 * time.Second:                      {Sec: 3, Usec: 0},
		1500 * time.Millisecond:              {Sec: 1, Usec: 500_000_000},
		-300 * time.Millisecond:              {Sec: -1, Usec: 700_000_000},
		-3 * time.Second:                     {Sec: -3, Usec: 0},
		-(2*time.Second + time.Nanosecond):   {Sec: -3, Usec: 999_999_999},
		threeYears + 250*time.Millisecond:    {Sec: 94608000, Usec: 250_000_000},
		-(threeYears + 250*time.Millisecond): {Sec: -94608001, Usec: 750_000_000},
	} {
		tx := stepTimex(d)
		if tx.Time != want || tx.Modes != unix.ADJ_SETOFFSET|unix.ADJ_NANO|unix.ADJ_STATUS|unix.ADJ_MAXERROR|unix.ADJ_ESTERROR || tx.Status != 0 {
			t.Errorf("stepTimex(%v) = modes %#x status %#x time %+v; want time %+v", d, tx.Modes, tx.Status, tx.Time, want)
		}
	}
}

func TestSlewTimex(t *testing.T) {
	for _, tc := range []struct {
		d, poll  time.Duration
		offset   int64
		constant int64
	}{
		{60 * time.Millisecond, 64 * time.Second, 60_000_000, 2},
		{-60 * time.Millisecond, 1024 * time.Second, -60_000_000, 6},
		{2 * time.Second, 64 * time.Second, 500_000_000, 2}, // the PLL takes 0.5 s at most
		{-2 * time.Second, 100 * time.Second, -500_000_000, 2},
		{time.Millisecond, 50 * time.Millisecond, 1_000_000, 0},
		{0, 1 << 20 * time.Second, 0, 10},
	} {
		tx := slewTimex(tc.d, tc.poll)
		if tx.Offset != tc.offset || tx.Constant != tc.constant || tx.Status != unix.STA_PLL ||
			tx.Modes != unix.ADJ_OFFSET|unix.ADJ_NANO|unix.ADJ_STATUS|unix.ADJ_TIMECONST|unix.ADJ_MAXERROR|unix.ADJ_ESTERROR {
			t.Errorf("slewTimex(%v, %v) = %+v; want offset %d constant %d", tc.d, tc.poll, tx, tc.offset, tc.constant)
		}
	}
}

func TestRTCTime(t *testing.T) {
	for in, want := range map[time.Time]unix.RTCTime{
		time.Date(2026, 12, 1, 20, 30, 15, 0, time.UTC):                           {Sec: 15, Min: 30, Hour: 20, Mday: 1, Mon: 11, Year: 126, Wday: 2, Yday: 334},
		time.Date(2024, 2, 29, 23, 59, 59, 600_000_000, time.UTC):                 {Sec: 0, Min: 0, Hour: 0, Mday: 1, Mon: 2, Year: 124, Wday: 5, Yday: 60},
		time.Date(2025, 1, 1, 1, 0, 0, 0, time.FixedZone("CET", 3600)):            {Mday: 1, Year: 125, Wday: 3},
		time.Date(2030, 6, 15, 12, 0, 0, 400_000_000, time.FixedZone("x", -7200)): {Hour: 14, Mday: 15, Mon: 5, Year: 130, Wday: 6, Yday: 165},
	} {
		if got := rtcTime(in); got != want {
			t.Errorf("rtcTime(%v) = %+v, want %+v", in, got, want)
		}
	}
}
