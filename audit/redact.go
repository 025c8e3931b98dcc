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

// quotedString matches a double-quoted string as Go's %q writes it (with
// backslash escapes), the form in which libraries quote what a client
// sent.
var quotedString = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)

// maxLibraryLine is the longest library line kept, in bytes; the rest is
// cut.
const maxLibraryLine = 512

// RedactLibraryLine is the filter for the lines third-party code writes
// (net/http and x/net/http2 through http.Server.ErrorLog, pion through
// its LoggerFactory): every quoted string becomes "[redacted]", since
// that is how those libraries quote bytes a client sent (x/net/http2's
// `bogus greeting "GET / HTTP/1.1…"`), control and non-ASCII bytes become
// "?", the line is cut to 512 bytes, and every IP address is replaced by
// hash(addr) (RedactAddrs).
func RedactLibraryLine(msg string, hash func(netip.Addr) string) string {
	msg = quotedString.ReplaceAllString(msg, `"[redacted]"`)
	b := []byte(msg)
	for i, c := range b {
		if c < 0x20 || c >= 0x7f {
			b[i] = '?'
		}
	}
	if len(b) > maxLibraryLine {
		b = append(b[:maxLibraryLine], "…"...)
	}
	return RedactAddrs(string(b), hash)
}
