// Package ntptest serves the time over SNTP for tests: a server of the
// test's own, on a UDP address the test chooses, whose time is the host's
// shifted by an offset, and whose answers can be made unfit (not
// synchronised, a kiss-of-death) or withheld.
//
// The unit tests of package timesync listen on 127.0.0.1. A QEMU test can
// serve a guest from the host: QEMU's user network sends the guest's
// packets for 10.0.2.2:PORT to the host's 127.0.0.1:PORT, so the server
// listens there and the guest is told 10.0.2.2:PORT (by its config, or by
// DHCP when PORT is 123).
package ntptest

import (
	"encoding/binary"
	"errors"
	"net"
	"sync"
	"time"
)

// Server answers SNTP client requests (mode 3) with server replies
// (mode 4). It is safe for concurrent use.
type Server struct {
	conn *net.UDPConn
	done chan struct{}

	mu      sync.Mutex
	offset  time.Duration
	stratum uint8
	kiss    string
	unsync  bool
	silent  bool
	queries int
}

// Listen serves the time on the UDP address addr (like "127.0.0.1:0" for
// any free port, or "127.0.0.1:123"), offset from the host's clock: +3
// years serves a time three years ahead. It answers as a stratum 2 server
// until told otherwise. Close stops it.
func Listen(addr string, offset time.Duration) (*Server, error) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, err
	}
	conn, err := net.ListenUDP("udp", ua)
	if err != nil {
		return nil, err
	}
	s := &Server{conn: conn, done: make(chan struct{}), offset: offset, stratum: 2}
	go s.serve()
	return s, nil
}

// Addr is the address the server listens on, like "127.0.0.1:41234".
func (s *Server) Addr() string { return s.conn.LocalAddr().String() }

// Port is the UDP port the server listens on.
func (s *Server) Port() int { return s.conn.LocalAddr().(*net.UDPAddr).Port }

// SetOffset changes how far the served time is from the host's.
func (s *Server) SetOffset(d time.Duration) { s.set(func() { s.offset = d }) }

// SetStratum changes the stratum of the answers: 1 for a reference clock,
// 16 for a server that is not synchronised.
func (s *Server) SetStratum(n uint8) { s.set(func() { s.stratum = n }) }

// SetKiss answers with a kiss-of-death carrying code (like "RATE", "DENY"
// or "RSTR"): stratum 0 and the code as reference ID. "" answers with the
// time again.
func (s *Server) SetKiss(code string) { s.set(func() { s.kiss = code }) }

// SetUnsynchronised sets the leap indicator of the answers to "alarm" (3),
// which says the server's own clock is not synchronised.
func (s *Server) SetUnsynchronised(on bool) { s.set(func() { s.unsync = on }) }

// SetSilent drops the requests instead of answering them, as a server that
// is down or filtered.
func (s *Server) SetSilent(on bool) { s.set(func() { s.silent = on }) }

// Queries counts the requests received, answered or not.
func (s *Server) Queries() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queries
}

// Close stops the server and waits for it to finish.
func (s *Server) Close() error {
	err := s.conn.Close()
	<-s.done
	return err
}

func (s *Server) set(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f()
}

func (s *Server) serve() {
	defer close(s.done)
	buf := make([]byte, 1024)
	for {
		n, from, err := s.conn.ReadFromUDP(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		recv := time.Now()
		if n < 48 || buf[0]&7 != 3 {
			continue // not a client request
		}
		s.mu.Lock()
		s.queries++
		silent := s.silent
		reply := s.reply(buf[:48], recv)
		s.mu.Unlock()
		if !silent {
			s.conn.WriteToUDP(reply, from)
		}
	}
}

// reply builds the answer to req, received at recv. The caller holds s.mu.
func (s *Server) reply(req []byte, recv time.Time) []byte {
	b := make([]byte, 48)
	version := req[0] >> 3 & 7
	if version < 3 || version > 4 {
		version = 4
	}
	leap := byte(0)
	if s.unsync {
		leap = 3
	}
	b[0] = leap<<6 | version<<3 | 4
	b[1] = s.stratum
	b[2] = req[2]                      // poll: as the client asked
	b[3] = 0xec                        // precision: 2^-20 s
	b[11] = 0x10                       // root dispersion: 16/65536 s
	copy(b[12:16], "\x7f\x00\x00\x01") // reference ID: an upstream at 127.0.0.1
	if s.stratum == 1 {
		copy(b[12:16], "LOCL")
	}
	if s.kiss != "" {
		b[1] = 0
		copy(b[12:16], append([]byte(s.kiss), 0, 0, 0, 0)[:4])
	}
	binary.BigEndian.PutUint64(b[16:], timestamp(recv.Add(s.offset-16*time.Second))) // last heard from upstream
	copy(b[24:32], req[40:48])                                                       // origin: the client's transmit time
	binary.BigEndian.PutUint64(b[32:], timestamp(recv.Add(s.offset)))
	binary.BigEndian.PutUint64(b[40:], timestamp(time.Now().Add(s.offset)))
	return b
}

// ntpEpoch is the start of NTP's era 0.
var ntpEpoch = time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)

// timestamp is t as an NTP timestamp: seconds since 1900 (modulo 2^32, the
// era) and a binary fraction.
func timestamp(t time.Time) uint64 {
	d := t.Sub(ntpEpoch)
	sec := uint64(d / time.Second)
	frac := uint64(d%time.Second) << 32 / uint64(time.Second)
	return sec<<32 | frac
}
