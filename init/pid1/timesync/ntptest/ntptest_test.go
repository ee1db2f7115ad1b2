package ntptest

import (
	"errors"
	"testing"
	"time"

	"github.com/beevik/ntp"
)

func TestServer(t *testing.T) {
	s, err := Listen("127.0.0.1:0", -time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	query := func() (*ntp.Response, error) {
		return ntp.QueryWithOptions(s.Addr(), ntp.QueryOptions{Timeout: 2 * time.Second})
	}
	r, err := query()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Validate(); err != nil || r.Stratum != 2 || r.ClockOffset > -time.Hour+50*time.Millisecond || r.ClockOffset < -time.Hour-50*time.Millisecond {
		t.Errorf("answer: offset %v stratum %d, Validate %v; want a valid -1h", r.ClockOffset, r.Stratum, err)
	}
	for _, tc := range []struct {
		name string
		set  func()
		want error
	}{
		{"kiss", func() { s.SetKiss("RATE") }, ntp.ErrKissOfDeath},
		{"stratum 16", func() { s.SetKiss(""); s.SetStratum(16) }, ntp.ErrInvalidStratum},
		{"unsynchronised", func() { s.SetStratum(1); s.SetUnsynchronised(true) }, ntp.ErrInvalidLeapSecond},
	} {
		tc.set()
		r, err := query()
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if err := r.Validate(); !errors.Is(err, tc.want) {
			t.Errorf("%s: Validate = %v, want %v", tc.name, err, tc.want)
		}
		if tc.name == "kiss" && r.KissCode != "RATE" {
			t.Errorf("kiss code %q, want RATE", r.KissCode)
		}
	}
	s.SetUnsynchronised(false)
	s.SetSilent(true)
	if _, err := ntp.QueryWithOptions(s.Addr(), ntp.QueryOptions{Timeout: 200 * time.Millisecond}); err == nil {
		t.Error("a silent server answered")
	}
	if q := s.Queries(); q != 5 {
		t.Errorf("Queries = %d, want 5", q)
	}
}
