package network

import "strings"

// DHCP servers are not to be trusted with text: their names go into
// resolv.conf, which a newline in a name would extend by lines of the
// server's choosing ("nameserver 6.6.6.6", "options ndots:15"), and into
// the console log. Only names that are DNS names are taken.

// Limits on a name: a domain name is at most 253 characters written out
// (RFC 1035's 255 octets on the wire), a host name at most 64, what Linux
// keeps of one (the config's hostname has the same limit).
const (
	maxDomainName = 253
	maxHostName   = 64
)

// isDNSName reports whether s is a DNS name of at most max characters:
// dot-separated labels of 1 to 63 letters, digits and hyphens, none at
// either end of a label (RFC 1123, as the config checks its own names), with
// an optional final dot. Underscores and anything else a label could carry
// on the wire are refused: a resolver or a host name has no use for them,
// and a blank or control character would break the file it goes into.
func isDNSName(s string, max int) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > max {
		return false
	}
	for l := range strings.SplitSeq(s, ".") {
		if len(l) == 0 || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}
