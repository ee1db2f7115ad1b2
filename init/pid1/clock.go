package pid1

import (
	"context"
	"encoding/pem"
	"log/slog"
	"net/netip"
	"os"
	"sync/atomic"
	"time"

	"github.com/rke2os/rke2os/init/pid1/network"
	"github.com/rke2os/rke2os/init/pid1/timesync"
	"github.com/rke2os/rke2os/init/shared/config"
	"github.com/rke2os/rke2os/init/shared/console"
	"github.com/rke2os/rke2os/init/shared/goroutine"
	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"
)

// clockWait bounds the boot's wait for an NTP answer: a node whose servers
// are all unreachable still comes up, on its hardware clock, and keeps
// asking in the background.
const clockWait = 15 * time.Second

// oldestCert is a certificate the node made; a step of the clock back past
// its NotBefore is worth a warning (it would not be valid yet).
const oldestCert = "/var/lib/rancher/rke2/server/tls/etcd/server-ca.crt"

// reissue checks the node's certificates again (re-issuing those whose
// validity no longer covers now) after the clock is stepped; set once the
// node has made them.
var reissue atomic.Pointer[func()]

// syncClock sets the clock from NTP (the config's servers, else DHCP's)
// before any certificate, key or etcd data is made, then keeps it
// disciplined for as long as the node runs. It never fails the boot.
func syncClock(ctx context.Context, cfg *config.Config, net *network.State) {
	var dhcp []netip.Addr
	for _, ifc := range net.Interfaces() {
		if ifc.Lease != nil {
			dhcp = append(dhcp, ifc.Lease.NTP...)
		}
	}
	servers := timesync.Servers(cfg.NTP, dhcp)
	if len(servers) == 0 {
		if cfg.NTP.IsEnabled() {
			slog.Warn("no NTP server in the config (ntp.servers, ntp.pools) or from DHCP: the node runs on its hardware clock", "now", time.Now().UTC().Format(time.RFC3339))
			console.Event(console.EventTimeUnsynced, "reason", "no-server")
		} else {
			slog.Info("ntp.enabled is false: the node runs on its hardware clock", "now", time.Now().UTC().Format(time.RFC3339))
			console.Event(console.EventTimeUnsynced, "reason", "disabled")
		}
		return
	}
	opts := []timesync.Option{
		timesync.WithLogger(slog.Default()),
		timesync.WithNotBefore(func() time.Time { return certNotBefore(oldestCert) }),
		timesync.OnStep(onClockStep),
	}
	sctx, cancel := context.WithTimeout(ctx, clockWait)
	r, err := timesync.Sync(sctx, servers, opts...)
	cancel()
	if err != nil {
		slog.Warn("no NTP server answered within "+clockWait.String()+": the node runs on its hardware clock for now and keeps asking in the background",
			"servers", servers, "err", err, "now", time.Now().UTC().Format(time.RFC3339))
		console.Event(console.EventTimeUnsynced, "reason", "no-answer")
	} else {
		// Sync logged the offset and the servers.
		console.Milestone("time-synced")
		console.Event(console.EventTimeSynced, "offset", r.Offset, "stepped", r.Stepped, "servers", r.Servers())
		slog.Debug("clock", "stepped", r.Stepped, "now", time.Now().UTC().Format(time.RFC3339))
	}
	// Certificates made later check their validity against the clock as
	// it is then: the etcd step re-issues any leaf that does not cover now.
	keepDisciplined(ctx, servers, opts)
}

// keepDisciplined keeps the clock on the servers' time until ctx ends; a
// panic in the discipline is logged and it starts again, after a growing
// wait, so that the clock is still kept.
func keepDisciplined(ctx context.Context, servers []string, opts []timesync.Option) {
	goroutine.Keep(ctx, "clock discipline", func(ctx context.Context) {
		timesync.Discipline(ctx, servers, opts...)
	})
}

// onClockStep runs after every step of the clock: certificates made on
// the old time may not cover the new. It runs inside the discipline: a
// panic in the re-issue is logged and the discipline goes on (the next
// step tries the re-issue again).
func onClockStep(old, now time.Time) {
	if f := reissue.Load(); f != nil {
		goroutine.Call("certificate re-issue after a clock step", *f)
	}
}

// certNotBefore is when a certificate starts to be valid; zero when it
// cannot be read (none made yet). It reads only the DER path to the
// validity (crypto/x509 would bring its whole parser, and the key
// algorithms, into PID 1 for one date).
func certNotBefore(path string) time.Time {
	b, err := os.ReadFile(path)
	if err != nil {
		return time.Time{}
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return time.Time{}
	}
	return derNotBefore(blk.Bytes)
}

// derNotBefore walks Certificate -> TBSCertificate -> Validity (RFC 5280
// 4.1) to notBefore; zero on anything malformed.
func derNotBefore(der []byte) time.Time {
	in := cryptobyte.String(der)
	var cert, tbs, validity cryptobyte.String
	if !in.ReadASN1(&cert, asn1.SEQUENCE) || !cert.ReadASN1(&tbs, asn1.SEQUENCE) ||
		!tbs.SkipOptionalASN1(asn1.Tag(0).Constructed().ContextSpecific()) || // version
		!tbs.SkipASN1(asn1.INTEGER) || // serialNumber
		!tbs.SkipASN1(asn1.SEQUENCE) || // signature
		!tbs.SkipASN1(asn1.SEQUENCE) || // issuer
		!tbs.ReadASN1(&validity, asn1.SEQUENCE) {
		return time.Time{}
	}
	var t time.Time
	switch {
	case validity.PeekASN1Tag(asn1.UTCTime):
		if !validity.ReadASN1UTCTime(&t) {
			return time.Time{}
		}
	case validity.PeekASN1Tag(asn1.GeneralizedTime):
		if !validity.ReadASN1GeneralizedTime(&t) {
			return time.Time{}
		}
	}
	return t
}
