package page

import (
	"net/url"
	"strings"
)

// maxReturnLen bounds a return URL; longer ones are replaced by "/".
const maxReturnLen = 2048

// SafeReturnPath returns rd when it is a same-origin absolute path (RFC 3986
// §4.2 path-absolute, optionally with a query and fragment) that no browser
// can read as another origin, and "/" otherwise. It refuses open redirects
// (OWASP Unvalidated Redirects and Forwards): a scheme ("https:",
// "javascript:"), an authority ("//evil", "/\evil"), userinfo, a backslash,
// raw spaces, control characters or non-ASCII bytes, and any of those
// revealed by percent-decoding up to three times (e.g. "/%09/evil",
// "/%2F%2Fevil", "/%5Cevil", "/%252F%252Fevil").
func SafeReturnPath(rd string) string {
	if rd == "" || len(rd) > maxReturnLen || rd[0] != '/' {
		return "/"
	}
	for i := 0; i < len(rd); i++ {
		if c := rd[i]; c <= 0x20 || c >= 0x7f || c == '\\' {
			return "/"
		}
	}
	if len(rd) > 1 && rd[1] == '/' {
		return "/"
	}
	// Decoding must not reveal anything the raw form would be refused for.
	s, stable := rd, false
	for i := 0; i < 4; i++ {
		d, err := url.PathUnescape(s)
		if err != nil {
			return "/"
		}
		if d == s {
			stable = true
			break
		}
		if !cleanDecoded(d) {
			return "/"
		}
		s = d
	}
	if !stable {
		return "/"
	}
	u, err := url.Parse(rd)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" || !strings.HasPrefix(u.Path, "/") || strings.HasPrefix(u.Path, "//") {
		return "/"
	}
	return rd
}

// cleanDecoded checks a percent-decoded form of a return path.
func cleanDecoded(s string) bool {
	if s == "" || s[0] != '/' {
		return false
	}
	if len(s) > 1 && (s[1] == '/' || s[1] == '\\') {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f || c == '\\' {
			return false
		}
	}
	return true
}
