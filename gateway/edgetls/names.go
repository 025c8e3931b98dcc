package edgetls

import (
	"net/netip"
	"strings"
)

// normalizeName lower-cases a host name, removes one trailing dot and
// writes IP literals in their canonical form (RFC 5952 for IPv6). It
// reports false for anything that is neither an IP address nor a DNS name
// of letters, digits and hyphens (RFC 1123 §2.1; IDNs must be given in
// their A-label form, RFC 5891 §4.4), optionally with one leading "*."
// wildcard label (RFC 6125 §6.4.3) when wildcard is true.
func normalizeName(s string, wildcard bool) (string, bool) {
	if ip, err := netip.ParseAddr(s); err == nil {
		if ip.Zone() != "" {
			return "", false
		}
		return ip.Unmap().String(), true
	}
	s = strings.TrimSuffix(strings.ToLower(s), ".")
	if s == "" || len(s) > 253 {
		return "", false
	}
	rest := s
	if wildcard && strings.HasPrefix(s, "*.") {
		rest = s[2:]
		// "*.tld" would cover a whole top-level domain.
		if !strings.Contains(rest, ".") {
			return "", false
		}
	}
	for label := range strings.SplitSeq(rest, ".") {
		if !validLabel(label) {
			return "", false
		}
	}
	return s, true
}

// validLabel reports whether l is an LDH label (RFC 1123 §2.1).
func validLabel(l string) bool {
	if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// lookupName finds the entry for a requested server name (SNI or Host):
// an exact match first, then a wildcard one level up (RFC 6125 §6.4.3:
// "*" matches exactly one label). The name is normalized first; a name
// that is not a valid host name matches nothing.
func lookupName[T any](table map[string]T, name string) (string, T, bool) {
	var zero T
	n, ok := normalizeName(name, false)
	if !ok {
		return "", zero, false
	}
	if v, ok := table[n]; ok {
		return n, v, true
	}
	if _, err := netip.ParseAddr(n); err == nil {
		return "", zero, false
	}
	if i := strings.IndexByte(n, '.'); i > 0 {
		if v, ok := table["*"+n[i:]]; ok {
			return n, v, true
		}
	}
	return "", zero, false
}

// localSuffixes are the DNS names a local CA may certify, and the name
// constraints (RFC 5280 §4.2.1.10) written into its root: names that are
// never delegated in the public DNS (".test" and "localhost", RFC 6761
// §6.2-6.3; ".local", RFC 6762; "home.arpa", RFC 8375; ".internal",
// reserved by ICANN in 2024).
var localSuffixes = []string{"localhost", "local", "internal", "home.arpa", "test"}

// localPrefixes are the IP ranges a local CA may certify (RFC 1918,
// RFC 4193, loopback).
var localPrefixes = []netip.Prefix{
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("::1/128"),
	netip.MustParsePrefix("fc00::/7"),
}

// localNameAllowed reports whether a normalized name may be certified by
// the local CA.
func localNameAllowed(n string) bool {
	if ip, err := netip.ParseAddr(n); err == nil {
		for _, p := range localPrefixes {
			if p.Contains(ip) {
				return true
			}
		}
		return false
	}
	n = strings.TrimPrefix(n, "*.")
	for _, s := range localSuffixes {
		if n == s || strings.HasSuffix(n, "."+s) {
			return true
		}
	}
	return false
}
