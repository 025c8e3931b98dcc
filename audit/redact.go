package audit

import (
	"net/netip"
	"regexp"
	"strings"
)

// addrToken matches anything that might be an IPv4 or IPv6 address, with
// or without a port or brackets.
var addrToken = regexp.MustCompile(`[\[]?[0-9A-Fa-f:.]*[:.][0-9A-Fa-f:.]*[\]]?(?::[0-9]+)?(?:%[0-9A-Za-z_.-]+)?`)

// RedactAddrs replaces every IP address in msg — IPv4, IPv6 with or
// without brackets and zone, with or without a port — by hash(addr)
// (Pseudonym with the node's key), and anything else that looks like an
// address but does not parse by "[addr]": the filter for log lines that
// third-party code writes (pion, net/http), so that ordinary logs name
// clients only by pseudonym (docs/architecture.md principle 6).
func RedactAddrs(msg string, hash func(netip.Addr) string) string {
	return addrToken.ReplaceAllStringFunc(msg, func(tok string) string {
		if ap, err := netip.ParseAddrPort(tok); err == nil {
			return hash(ap.Addr())
		}
		t := strings.TrimSuffix(strings.TrimPrefix(tok, "["), "]")
		if a, err := netip.ParseAddr(t); err == nil {
			return hash(a)
		}
		// A trailing ":" or "." from prose ("from 1.2.3.4:") is not part
		// of the address.
		if u := strings.TrimRight(tok, ":."); u != tok {
			if ap, err := netip.ParseAddrPort(u); err == nil {
				return hash(ap.Addr()) + tok[len(u):]
			}
		}
		if u := strings.TrimRight(t, ":."); u != t {
			if a, err := netip.ParseAddr(u); err == nil {
				return hash(a) + t[len(u):]
			}
		}
		if strings.ContainsAny(t, ".:") && strings.ContainsAny(t, "0123456789") && len(t) >= 3 && looksNumeric(t) {
			return "[addr]"
		}
		return tok
	})
}

// looksNumeric: only hex digits and separators, at least two separators.
func looksNumeric(t string) bool {
	seps := strings.Count(t, ".") + strings.Count(t, ":")
	return seps >= 2
}
