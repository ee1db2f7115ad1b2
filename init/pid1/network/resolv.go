package network

import (
	"bytes"
	"fmt"
	"net/netip"
	"strings"
)

// DefaultResolvConf is where Up writes the resolver configuration.
const DefaultResolvConf = "/etc/resolv.conf"

// maxNameservers is glibc's and musl's MAXNS: resolvers past the third are
// never asked, and the kubelet logs "Nameserver limits were exceeded" for
// every pod it syncs if the file lists more.
const maxNameservers = 3

// resolvHeader is resolv.conf's first line.
const resolvHeader = "# Written by rke2-init from the node config (network.dns) and DHCP leases."

// resolver is the content of resolv.conf.
type resolver struct {
	Servers []netip.Addr
	Search  []string
	// Dropped are the servers past maxNameservers, left out of the file.
	Dropped []netip.Addr
}

// mergeDNS merges resolver lists in order (the config's first, then each
// lease's), without duplicates, keeping at most maxNameservers servers.
func mergeDNS(servers [][]netip.Addr, search [][]string) resolver {
	var r resolver
	seen := map[netip.Addr]bool{}
	for _, list := range servers {
		for _, a := range list {
			if !a.IsValid() || seen[a] {
				continue
			}
			seen[a] = true
			if len(r.Servers) == maxNameservers {
				r.Dropped = append(r.Dropped, a)
				continue
			}
			r.Servers = append(r.Servers, a)
		}
	}
	seenDomain := map[string]bool{}
	for _, list := range search {
		for _, d := range list {
			key := strings.ToLower(strings.TrimSuffix(d, "."))
			if key == "" || seenDomain[key] {
				continue
			}
			seenDomain[key] = true
			r.Search = append(r.Search, d)
		}
	}
	return r
}

// empty reports whether there is nothing to write: the image's own
// resolv.conf (if any) is then left alone.
func (r resolver) empty() bool { return len(r.Servers) == 0 && len(r.Search) == 0 }

// render returns the resolv.conf text. It refuses to write a server or
// domain that holds a control character or a blank, whatever its source:
// the leases' names are checked as they arrive and the config's as it is
// parsed, but a newline that slipped past either would add a line to the
// file (a resolver, "options ndots:15"), and a blank would split one name
// into two. Refusing the whole file keeps the last good one.
func (r resolver) render() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(resolvHeader + "\n")
	for _, a := range r.Servers {
		if err := checkResolvWord("nameserver", a.String()); err != nil {
			return nil, err
		}
		fmt.Fprintf(&b, "nameserver %s\n", a)
	}
	for _, d := range r.Search {
		if err := checkResolvWord("search domain", d); err != nil {
			return nil, err
		}
	}
	if len(r.Search) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(r.Search, " "))
	}
	return b.Bytes(), nil
}

// checkResolvWord checks one word of a resolv.conf line: not empty, no
// control character (a newline ends the line), no blank (which ends the
// word).
func checkResolvWord(what, w string) error {
	bad := strings.ContainsFunc(w, func(r rune) bool { return r <= ' ' || r == 0x7f })
	if w == "" || bad {
		return fmt.Errorf("refusing to write resolv.conf: %s %q is empty or holds a control character or blank", what, w)
	}
	return nil
}
