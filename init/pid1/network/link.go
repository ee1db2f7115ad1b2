package network

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/rke2os/rke2os/internal/backoff"
)

// pollInterval is how often the link list is read while waiting for drivers
// to probe and cables to report carrier.
const pollInterval = 100 * time.Millisecond

// carrierSettle is how long Up keeps waiting for the other physical links
// once one has carrier, when the config has no interfaces: NICs probe at
// about the same time, and one that is slower by a few hundred milliseconds
// should not be left without an address.
const carrierSettle = 2 * time.Second

// listLinks reads the links present. sysfs is where sysfs is mounted
// (/sys), read to tell physical links from virtual ones.
func listLinks(sysfs string) ([]linkInfo, error) {
	var ls []netlink.Link
	var err error
	// A dump interrupted by a concurrent change (a driver probing, a
	// rename) is retried: its result may miss links.
	for range 5 {
		ls, err = netlink.LinkList()
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	out := make([]linkInfo, 0, len(ls))
	for _, l := range ls {
		a := l.Attrs()
		out = append(out, linkInfo{
			Index:    a.Index,
			Name:     a.Name,
			MAC:      a.HardwareAddr,
			Physical: isPhysical(sysfs, a),
			Carrier:  a.RawFlags&unix.IFF_LOWER_UP != 0,
			Up:       a.Flags&net.FlagUp != 0,
		})
	}
	return out, nil
}

// isPhysical reports whether a link is an Ethernet NIC with a driver behind
// it. Virtual links (lo, veth, bridges like cni0, vxlan like flannel.1) have
// no device directory in sysfs; wireless links need a supplicant the init
// does not have.
func isPhysical(sysfs string, a *netlink.LinkAttrs) bool {
	if a.EncapType != "ether" {
		return false
	}
	dir := filepath.Join(sysfs, "class/net", a.Name)
	if _, err := os.Stat(filepath.Join(dir, "device")); err != nil {
		return false
	}
	for _, w := range []string{"wireless", "phy80211"} {
		if _, err := os.Stat(filepath.Join(dir, w)); err == nil {
			return false
		}
	}
	return true
}

// waitLinks polls the links, handing each list to plan, until plan reports
// done, the timeout passes (0: never) or ctx ends. Drivers probe asynchronously, so the
// links a config names may appear a moment after the init is ready for
// them.
func waitLinks(ctx context.Context, sysfs string, timeout time.Duration, plan func(links []linkInfo) (done bool)) error {
	deadline := time.Now().Add(timeout)
	for {
		links, err := listLinks(sysfs)
		if err != nil {
			return err
		}
		if plan(links) || timeout > 0 && !time.Now().Before(deadline) {
			return nil
		}
		if !backoff.Sleep(ctx, pollInterval) {
			return ctx.Err()
		}
	}
}

// loUp brings up the loopback link, which every local connection (the
// kubelet to containerd, the apiserver to etcd) goes through.
func loUp() error {
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("lo: %w", err)
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		return fmt.Errorf("lo: set up: %w", err)
	}
	return nil
}

// renameLinks gives the planned links their configured names. A link must
// be down to be renamed. When a new name is held by a link that is itself
// renamed (two NICs swapping names), every renamed link first takes a
// temporary name, as cloud-init does. A link that cannot be renamed is
// dropped from the returned plans and its error returned.
func renameLinks(plans []linkPlan) ([]linkPlan, error) {
	taken := false
	for _, p := range plans {
		if p.From == "" {
			continue
		}
		if _, err := netlink.LinkByName(p.Name); err == nil {
			taken = true
		}
	}
	var errs []error
	failed := map[int]bool{}
	if taken {
		for _, p := range plans {
			if p.From == "" {
				continue
			}
			if err := setName(p.Index, fmt.Sprintf("rke2tmp%d", p.Index)); err != nil {
				errs = append(errs, fmt.Errorf("%s: rename %s to a temporary name: %w", p.What, p.From, err))
				failed[p.Index] = true
			}
		}
	}
	for _, p := range plans {
		if p.From == "" || failed[p.Index] {
			continue
		}
		if err := setName(p.Index, p.Name); err != nil {
			errs = append(errs, fmt.Errorf("%s: rename %s to %s: %w", p.What, p.From, p.Name, err))
			failed[p.Index] = true
		}
	}
	kept := plans[:0:0]
	for _, p := range plans {
		if !failed[p.Index] {
			kept = append(kept, p)
		}
	}
	return kept, errors.Join(errs...)
}

// setName sets a link down and renames it.
func setName(index int, name string) error {
	l, err := netlink.LinkByIndex(index)
	if err != nil {
		return err
	}
	if l.Attrs().Name == name {
		return nil
	}
	if err := netlink.LinkSetDown(l); err != nil {
		return fmt.Errorf("set down: %w", err)
	}
	return netlink.LinkSetName(l, name)
}

// setUpLink sets a link's MTU (when the config gives one) and sets it up.
func setUpLink(p linkPlan) (netlink.Link, error) {
	l, err := netlink.LinkByIndex(p.Index)
	if err != nil {
		return nil, fmt.Errorf("%s: link %s: %w", p.What, p.Name, err)
	}
	if p.MTU > 0 && l.Attrs().MTU != p.MTU {
		if err := netlink.LinkSetMTU(l, p.MTU); err != nil {
			return nil, fmt.Errorf("%s: set mtu %d on %s: %w", p.What, p.MTU, p.Name, err)
		}
	}
	if err := netlink.LinkSetUp(l); err != nil {
		return nil, fmt.Errorf("%s: set %s up: %w", p.What, p.Name, err)
	}
	return l, nil
}
