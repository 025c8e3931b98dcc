package gateway

import (
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/telegate/telegate/page"
	"github.com/telegate/telegate/scope"
)

// Errors returned by CanonicalPath and CanonicalHost. Each names the rule
// that refused the input; the gateway answers 400 for every one.
var (
	ErrNotOriginForm    = errors.New("request target is not an absolute path")
	ErrControlChar      = errors.New("control character in path")
	ErrBackslash        = errors.New("backslash in path")
	ErrFragment         = errors.New("fragment (#) in request target")
	ErrEncodedSeparator = errors.New("encoded '.', '/' or '\\' in path")
	ErrBadPercent       = errors.New("malformed percent-encoding in path")
	ErrDotSegment       = errors.New("dot segment in path")
	ErrEmptySegment     = errors.New("empty path segment (//)")
	ErrBadHost          = errors.New("malformed host")
)

const upperhex = "0123456789ABCDEF"

// CanonicalPath returns the one canonical form of an origin-form path
// (RFC 9112 §3.2.1, without the query), or an error when the path cannot be
// normalised unambiguously (docs/architecture.md principle 1).
//
// The result is what the router and policy match and, byte for byte, what
// is forwarded upstream:
//   - percent-encoded unreserved characters (RFC 3986 §2.3) are decoded
//     ("%61dmin" → "admin", RFC 3986 §6.2.2.2);
//   - every other percent-encoding is kept with upper-case hex (§6.2.2.1);
//   - bytes outside pchar (§3.3), including non-ASCII, are percent-encoded.
//
// Refused: a path not starting with "/"; NUL and control characters raw or
// encoded (ErrControlChar); "\" (ErrBackslash); "#" (ErrFragment); "%2e",
// "%2f", "%5c" in any case (ErrEncodedSeparator); malformed "%"
// (ErrBadPercent); "." or ".." segments (ErrDotSegment, RFC 3986 §3.3);
// "//" (ErrEmptySegment). Case is kept: paths are case-sensitive. hasSemi
// reports a ';' (refused later unless the route allows it).
//
// CanonicalPath is idempotent: CanonicalPath(CanonicalPath(p)) == the same.
func CanonicalPath(p string) (canonical string, hasSemi bool, err error) {
	if p == "" || p[0] != '/' {
		return "", false, ErrNotOriginForm
	}
	var b strings.Builder
	b.Grow(len(p))
	segStart := 0 // index in b of the current segment's first byte
	endSegment := func(last bool) error {
		seg := b.String()[segStart:]
		switch seg {
		case ".", "..":
			return ErrDotSegment
		case "":
			if !last {
				return ErrEmptySegment
			}
		}
		return nil
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '/':
			if i > 0 {
				if err := endSegment(false); err != nil {
					return "", false, err
				}
			}
			b.WriteByte('/')
			segStart = b.Len()
		case c < 0x20 || c == 0x7f:
			return "", false, ErrControlChar
		case c == '\\':
			return "", false, ErrBackslash
		case c == '#':
			return "", false, ErrFragment
		case c == '%':
			if i+2 >= len(p) || !ishex(p[i+1]) || !ishex(p[i+2]) {
				return "", false, ErrBadPercent
			}
			v := unhex(p[i+1])<<4 | unhex(p[i+2])
			i += 2
			switch {
			case v == '.' || v == '/' || v == '\\':
				return "", false, ErrEncodedSeparator
			case v < 0x20 || v == 0x7f:
				return "", false, ErrControlChar
			case isUnreserved(v):
				b.WriteByte(v)
			default:
				b.WriteByte('%')
				b.WriteByte(upperhex[v>>4])
				b.WriteByte(upperhex[v&15])
			}
		case c == ';':
			hasSemi = true
			b.WriteByte(c)
		case isPchar(c):
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(upperhex[c>>4])
			b.WriteByte(upperhex[c&15])
		}
	}
	if err := endSegment(true); err != nil {
		return "", false, err
	}
	return b.String(), hasSemi, nil
}

func ishex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

// isUnreserved: ALPHA / DIGIT / "-" / "." / "_" / "~" (RFC 3986 §2.3).
func isUnreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

// isPchar: unreserved / sub-delims / ":" / "@" (RFC 3986 §3.3), without
// "%" (handled apart).
func isPchar(c byte) bool {
	if isUnreserved(c) {
		return true
	}
	switch c {
	case '!', '$', '&', '\'', '(', ')', '*', '+', ',', ';', '=', ':', '@':
		return true
	}
	return false
}

// CanonicalHost returns host (a Host header, :authority or SNI value) in
// lower case, with the port and a trailing dot removed and IPv6 brackets
// kept off ("::1"). It returns ErrBadHost for an empty or malformed name
// (RFC 9110 §7.2, RFC 3986 §3.2.2).
func CanonicalHost(host string) (string, error) {
	h := host
	if strings.HasPrefix(h, "[") {
		end := strings.IndexByte(h, ']')
		if end < 0 {
			return "", ErrBadHost
		}
		rest := h[end+1:]
		if rest != "" && (rest[0] != ':' || !isPort(rest[1:])) {
			return "", ErrBadHost
		}
		ip := net.ParseIP(h[1:end])
		if ip == nil || ip.To4() != nil && !strings.Contains(h[1:end], ":") {
			return "", ErrBadHost
		}
		return strings.ToLower(h[1:end]), nil
	}
	if i := strings.LastIndexByte(h, ':'); i >= 0 {
		if !isPort(h[i+1:]) {
			return "", ErrBadHost
		}
		h = h[:i]
	}
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > 253 {
		return "", ErrBadHost
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_') {
			return "", ErrBadHost
		}
	}
	if strings.Contains(h, "..") || h[0] == '.' {
		return "", ErrBadHost
	}
	return strings.ToLower(h), nil
}

func isPort(s string) bool {
	if s == "" || len(s) > 5 {
		return s == ""
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// refuse answers 400 with the request id, closes the connection
// (Connection: close) and records reason for audit and metrics.
func refuse(w http.ResponseWriter, r *http.Request, status int, reason scope.Reason) {
	if st := stateFrom(r.Context()); st != nil {
		st.reason = reason
	}
	if status == http.StatusBadRequest && r.ProtoMajor == 1 {
		w.Header().Set("Connection", "close")
	}
	page.Refuse(w, r, status, reason)
}

// canonicalise is the second stage: it parses the request once and puts
// the canonical host, path and query into the scope; r.URL.Path and
// r.URL.RawPath are set from the canonical form so that every later stage
// and the proxy see exactly it. Anything ambiguous is answered 400
// (docs/architecture.md principle 1): framing faults found on the connection
// (Content-Length with Transfer-Encoding, obs-fold, …; see h1scan.go), a
// Transfer-Encoding other than "chunked" (RFC 9112 §6.1), a target that is
// not origin-form or whose authority differs from Host (RFC 9112 §3.2.2),
// the faults of CanonicalPath and CanonicalHost, more query parameters than
// Server.MaxQueryParams, an unparsable query, and an access_token query
// parameter (RFC 6750 §2.3 is not accepted: tokens in URLs leak to logs).
func (g *generation) canonicalise(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := scope.From(r.Context())
		rs := stateFrom(r.Context())
		cfg := g.cfg
		if rs.conn != nil && rs.conn.h1 {
			if idx, reason := rs.conn.poisoned(); idx > 0 && rs.connIndex >= idx {
				if rs.connIndex == idx {
					// r is the stand-in: record what the client sent.
					rs.method, s.Path = rs.conn.refusedHead()
					if rs.method == "" {
						rs.method = "-" // unreadable
					}
				}
				status := http.StatusBadRequest
				if reason == scope.ReasonFramingHeaderTooLarge {
					status = http.StatusRequestHeaderFieldsTooLarge
				}
				refuse(w, r, status, reason)
				return
			}
		}
		if len(r.TransferEncoding) > 0 {
			if len(r.TransferEncoding) != 1 || !strings.EqualFold(r.TransferEncoding[0], "chunked") {
				refuse(w, r, http.StatusBadRequest, scope.ReasonFramingTE)
				return
			}
			if r.Header.Get("Content-Length") != "" {
				refuse(w, r, http.StatusBadRequest, scope.ReasonFramingCLTE)
				return
			}
			if r.ProtoMajor == 1 {
				// The connection scanner does not follow chunked bodies;
				// the connection ends after this response.
				w.Header().Set("Connection", "close")
			}
		}
		if len(r.Header.Values("Host")) > 1 {
			refuse(w, r, http.StatusBadRequest, scope.ReasonHostDuplicate)
			return
		}
		target := r.RequestURI
		if strings.IndexByte(target, '#') >= 0 {
			refuse(w, r, http.StatusBadRequest, scope.ReasonPathFragment)
			return
		}
		if target != "" && target[0] != '/' {
			u, err := url.ParseRequestURI(target)
			if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
				refuse(w, r, http.StatusBadRequest, scope.ReasonTargetForm)
				return
			}
			a, err1 := CanonicalHost(u.Host)
			b, err2 := CanonicalHost(r.Host)
			if err1 != nil || err2 != nil || a != b {
				refuse(w, r, http.StatusBadRequest, scope.ReasonTargetAuthority)
				return
			}
			target = u.RequestURI()
			if u.RawPath == "" && u.Path == "" {
				target = "/" + strings.TrimPrefix(target, "/")
			}
		}
		rawPath, rawQuery, _ := strings.Cut(target, "?")
		host, err := CanonicalHost(r.Host)
		if err != nil {
			refuse(w, r, http.StatusBadRequest, scope.ReasonHostMalformed)
			return
		}
		// HTTP/2 carries :authority; a Host field that says otherwise is
		// ambiguous (RFC 9113 §8.3.1).
		for _, v := range r.Header.Values("Host") {
			if h2, err := CanonicalHost(v); err != nil || h2 != host {
				refuse(w, r, http.StatusBadRequest, scope.ReasonHostConflict)
				return
			}
		}
		path, semi, err := CanonicalPath(rawPath)
		if err != nil {
			refuse(w, r, http.StatusBadRequest, pathReason(err))
			return
		}
		if rawQuery != "" {
			if strings.Count(rawQuery, "&")+1 > cfg.Server.MaxQueryParams {
				refuse(w, r, http.StatusBadRequest, scope.ReasonQueryTooMany)
				return
			}
			q, err := url.ParseQuery(rawQuery)
			if err != nil {
				refuse(w, r, http.StatusBadRequest, scope.ReasonQueryMalformed)
				return
			}
			for k := range q {
				if strings.EqualFold(k, "access_token") {
					refuse(w, r, http.StatusBadRequest, scope.ReasonQueryAccessToken)
					return
				}
			}
		}
		s.Host, s.Path, s.RawQuery = host, path, rawQuery
		rs.semicolon = semi
		// One canonical request: later stages and the proxy read these.
		r.URL.Path, r.URL.RawPath = unescapedPath(path), path
		r.URL.RawQuery = rawQuery
		r.URL.Fragment, r.URL.RawFragment = "", ""
		next.ServeHTTP(w, r)
	})
}

// unescapedPath decodes a canonical path for url.URL.Path (RawPath keeps
// the canonical encoded form, which url.URL.EscapedPath then returns).
func unescapedPath(p string) string {
	if strings.IndexByte(p, '%') < 0 {
		return p
	}
	u, err := url.PathUnescape(p)
	if err != nil {
		return p
	}
	return u
}

// pathReason is the refusal reason of a CanonicalPath error.
func pathReason(err error) scope.Reason {
	switch err {
	case ErrNotOriginForm:
		return scope.ReasonPathForm
	case ErrControlChar:
		return scope.ReasonPathControl
	case ErrBackslash:
		return scope.ReasonPathBackslash
	case ErrFragment:
		return scope.ReasonPathFragment
	case ErrEncodedSeparator:
		return scope.ReasonPathEncodedSeparator
	case ErrBadPercent:
		return scope.ReasonPathPercent
	case ErrDotSegment:
		return scope.ReasonPathDotSegment
	case ErrEmptySegment:
		return scope.ReasonPathEmptySegment
	}
	return scope.ReasonPathMalformed
}
