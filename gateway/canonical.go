package gateway

import (
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/telegate/telegate/internal/pathtext"
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
	// ErrEncodedDelimiter: "%3B", "%3F" or "%23" (an encoded ';', '?'
	// or '#'), which servers that decode before parsing read as the
	// delimiter.
	ErrEncodedDelimiter = errors.New("encoded ';', '?' or '#' in path")
	// ErrDoubleEncoding: "%25", an encoded '%', which a server that
	// decodes twice reads as the start of another escape.
	ErrDoubleEncoding = errors.New("encoded '%' (double encoding) in path")
	// ErrWhitespace: a space, raw or encoded ("%20"); servers trim it
	// from segments or split on it.
	ErrWhitespace = errors.New("whitespace in path")
	// ErrTrailingDot: a segment ending in '.' ("/admin./", "/a.../"),
	// which Windows file systems and some servers trim.
	ErrTrailingDot = errors.New("path segment ending in '.'")
	// ErrStreamName: ':' followed by '$', raw or encoded ("::$DATA",
	// ":$I30:$INDEX_ALLOCATION"), which Windows file systems read as a
	// stream of the file or directory before it: "/admin::$INDEX_ALLOCATION/x"
	// is "/admin/x" to IIS.
	ErrStreamName = errors.New("NTFS stream name (':$') in path")
	// ErrInvalidUTF8, ErrInvisible and ErrNotNormalised are the Unicode
	// rules of the path's decoded text (internal/pathtext).
	ErrInvalidUTF8   = pathtext.ErrInvalidUTF8
	ErrInvisible     = pathtext.ErrInvisible
	ErrNotNormalised = pathtext.ErrNotNormalised
)

const upperhex = "0123456789ABCDEF"

// pathFlags are facts about a canonical path that later stages use.
type pathFlags uint8

const (
	pathSemicolon pathFlags = 1 << iota // a ';' (refused unless the route allows it)
	pathNonASCII                        // percent-encoded bytes 0x80 and above
)

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
// Refused: a path not starting with "/" or holding a '?' (ErrNotOriginForm); NUL and
// control characters raw or encoded (ErrControlChar); a space raw or
// encoded (ErrWhitespace); "\" (ErrBackslash); "#" (ErrFragment); "%2e",
// "%2f", "%5c" (ErrEncodedSeparator), "%3b", "%3f", "%23"
// (ErrEncodedDelimiter) and "%25" (ErrDoubleEncoding) in any case;
// malformed "%" (ErrBadPercent); "." or ".." segments (ErrDotSegment,
// RFC 3986 §3.3); any other segment ending in "." (ErrTrailingDot); "//"
// and every other empty segment but a trailing one (ErrEmptySegment).
// A segment with parameters (";", RFC 3986 §3.3) is held to these rules
// before its first ';' too, as servers that drop parameters read it
// ("/..;/", "/.;x/", "/admin.;x/", "/;x/" but in the last segment); ':'
// then '$', raw or encoded, is refused (ErrStreamName).
// Decoded text that is not valid UTF-8 (ErrInvalidUTF8), that has a
// non-ASCII control, format, private-use or space character
// (ErrInvisible), or that NFKC would change (ErrNotNormalised) is refused
// too (internal/pathtext Check). Case is kept: paths are case-sensitive
// (the router refuses what case folding would route elsewhere). hasSemi
// reports a ';' (refused later unless the route allows it).
//
// CanonicalPath is idempotent: CanonicalPath(CanonicalPath(p)) == the same.
// A path that is already canonical is returned as it is, without
// allocating.
func CanonicalPath(p string) (canonical string, hasSemi bool, err error) {
	c, f, err := canonicalPath(p)
	return c, f&pathSemicolon != 0, err
}

// canonicalPath is CanonicalPath with all of its flags.
func canonicalPath(p string) (string, pathFlags, error) {
	out, flags, err := canonicalSyntax(p)
	if err != nil {
		return "", 0, err
	}
	if flags&pathNonASCII != 0 {
		if err := pathtext.Check(decodePath(out)); err != nil {
			return "", 0, err
		}
	}
	return out, flags, nil
}

// canonicalSyntax applies every rule of CanonicalPath but the Unicode
// rules of the decoded text.
func canonicalSyntax(p string) (string, pathFlags, error) {
	if p == "" || p[0] != '/' {
		return "", 0, ErrNotOriginForm
	}
	if flags, err, ok := canonicalPlain(p); ok {
		return p, flags, err
	}
	var (
		flags pathFlags
		// buf is nil while the output is p[:i] (nothing changed yet).
		buf []byte
		// The current segment: its length, whether its last byte is
		// '.', and whether it is only dots.
		segLen   int
		lastDot  bool
		onlyDots = true
		// params: a ';' was seen in the segment, and emptyName: nothing
		// came before it.
		params, emptyName bool
		// prevColon: the last decoded byte was ':'.
		prevColon bool
	)
	// put appends the output bytes s for input p[from:to].
	put := func(from, to int, s string) {
		if buf == nil {
			if p[from:to] == s {
				return
			}
			buf = make([]byte, 0, len(p)+8)
			buf = append(buf, p[:from]...)
		}
		buf = append(buf, s...)
	}
	endSegment := func(last bool) error {
		switch {
		case (segLen == 0 || emptyName) && !last:
			return ErrEmptySegment
		case lastDot && onlyDots && segLen <= 2:
			return ErrDotSegment
		case lastDot:
			return ErrTrailingDot
		}
		return nil
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '/':
			if i > 0 {
				if err := endSegment(false); err != nil {
					return "", 0, err
				}
			}
			put(i, i+1, "/")
			segLen, lastDot, onlyDots, params, emptyName, prevColon = 0, false, true, false, false, false
			continue
		case c < 0x20 || c == 0x7f:
			return "", 0, ErrControlChar
		case c == ' ':
			return "", 0, ErrWhitespace
		case c == '\\':
			return "", 0, ErrBackslash
		case c == '#':
			return "", 0, ErrFragment
		case c == '?':
			// The query is cut off before; a '?' here is not a path's.
			return "", 0, ErrNotOriginForm
		case c == '%':
			if i+2 >= len(p) || !ishex(p[i+1]) || !ishex(p[i+2]) {
				return "", 0, ErrBadPercent
			}
			v := unhex(p[i+1])<<4 | unhex(p[i+2])
			if prevColon && v == '$' {
				return "", 0, ErrStreamName
			}
			prevColon = v == ':'
			switch {
			case v == '.' || v == '/' || v == '\\':
				return "", 0, ErrEncodedSeparator
			case v == ';' || v == '?' || v == '#':
				return "", 0, ErrEncodedDelimiter
			case v == '%':
				return "", 0, ErrDoubleEncoding
			case v == ' ':
				return "", 0, ErrWhitespace
			case v < 0x20 || v == 0x7f:
				return "", 0, ErrControlChar
			case isUnreserved(v):
				put(i, i+3, unreservedText[v:v+1])
			default:
				if v >= utf8.RuneSelf {
					flags |= pathNonASCII
				}
				put(i, i+3, escapes[v])
			}
			i += 2
		case c == ';':
			flags |= pathSemicolon
			put(i, i+1, ";")
			if !params {
				// The segment as servers that drop parameters read it.
				params, emptyName = true, segLen == 0
				if lastDot {
					if err := endSegment(false); err != nil {
						return "", 0, err
					}
				}
			}
			prevColon = false
		case isPchar(c):
			if prevColon && c == '$' {
				return "", 0, ErrStreamName
			}
			prevColon = c == ':'
			put(i, i+1, unreservedText[c:c+1])
		default:
			prevColon = false
			if c >= utf8.RuneSelf {
				flags |= pathNonASCII
			}
			put(i, i+1, escapes[c])
		}
		segLen++
		lastDot = c == '.'
		onlyDots = onlyDots && lastDot
	}
	if err := endSegment(true); err != nil {
		return "", 0, err
	}
	if buf != nil {
		return string(buf), flags, nil
	}
	return p, flags, nil
}

// plainByte marks the bytes that stand for themselves in a canonical path:
// pchar (RFC 3986 §3.3) without '%', ';' and '$', which need more.
var plainByte = func() (t [256]bool) {
	for c := 0; c < 256; c++ {
		t[c] = c != ';' && c != '$' && isPchar(byte(c))
	}
	return t
}()

// canonicalPlain is the fast path of canonicalSyntax for a path that is
// already canonical and has no percent-encoding: ok reports that p was
// such a path (p is then its own canonical form, or err says why it is
// refused); a path that needs more takes the general loop.
func canonicalPlain(p string) (flags pathFlags, err error, ok bool) {
	seg := 1 // start of the current segment
	for i := 1; i <= len(p); i++ {
		if i < len(p) {
			c := p[i]
			if plainByte[c] {
				continue
			}
			if c == '$' {
				if p[i-1] == ':' {
					return 0, ErrStreamName, true
				}
				continue
			}
			if c != '/' {
				// ';' (a segment's parameters) and '%' take the general loop.
				return 0, nil, false
			}
		}
		// p[seg:i] is a segment.
		switch n := i - seg; {
		case n == 0 && i < len(p):
			return 0, ErrEmptySegment, true
		case n > 0 && p[i-1] == '.':
			if n <= 2 && strings.Trim(p[seg:i], ".") == "" {
				return 0, ErrDotSegment, true
			}
			return 0, ErrTrailingDot, true
		}
		seg = i + 1
	}
	return flags, nil, true
}

// canonicalPathNFKC is canonicalPath for a route that normalises Unicode
// paths (Route.NormalizeUnicodePaths): a path refused only because NFKC
// would change its text is normalised to NFKC and canonicalised again.
// Normalisation that would add a delimiter ("／", "．", "：") is refused
// (ErrNotNormalised), as is everything canonicalPath refuses.
func canonicalPathNFKC(p string) (string, pathFlags, error) {
	c, f, err := canonicalPath(p)
	if err != ErrNotNormalised {
		return c, f, err
	}
	// p passed every rule but NFKC. Decode only its non-ASCII bytes, so
	// that ASCII escapes ("%22") stay escapes.
	c, _, _ = canonicalSyntax(p)
	text, ok := pathtext.NFKC(decodeNonASCII(c))
	if !ok {
		return "", 0, ErrNotNormalised
	}
	return canonicalPath(encodeNonASCII(text))
}

// escapes holds "%XX" (upper-case hex) for every byte.
var escapes = func() (e [256]string) {
	for i := range e {
		e[i] = "%" + string(upperhex[i>>4]) + string(upperhex[i&15])
	}
	return e
}()

// unreservedText holds every byte as a one-byte string, so that slicing
// it does not allocate.
const unreservedText = "\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f" +
	"\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f" +
	" !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~\x7f"

// decodePath undoes every percent-encoding of a canonical path.
func decodePath(c string) string {
	var b strings.Builder
	b.Grow(len(c))
	for i := 0; i < len(c); i++ {
		if c[i] == '%' && i+2 < len(c) {
			b.WriteByte(unhex(c[i+1])<<4 | unhex(c[i+2]))
			i += 2
			continue
		}
		b.WriteByte(c[i])
	}
	return b.String()
}

// decodeNonASCII undoes the percent-encoding of the bytes 0x80 and above
// of a canonical path, and keeps every other escape.
func decodeNonASCII(c string) string {
	var b strings.Builder
	b.Grow(len(c))
	for i := 0; i < len(c); i++ {
		if c[i] == '%' && i+2 < len(c) {
			if v := unhex(c[i+1])<<4 | unhex(c[i+2]); v >= utf8.RuneSelf {
				b.WriteByte(v)
				i += 2
				continue
			}
		}
		b.WriteByte(c[i])
	}
	return b.String()
}

// encodeNonASCII percent-encodes the bytes 0x80 and above of s.
func encodeNonASCII(s string) string {
	var b strings.Builder
	b.Grow(len(s) * 2)
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			b.WriteString(escapes[s[i]])
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
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
	refuseWith(w, r, status, reason, "")
}

// refuseWith is refuse with the message the page shows ("" for the
// generic "The request was refused.").
func refuseWith(w http.ResponseWriter, r *http.Request, status int, reason scope.Reason, message string) {
	if st := stateFrom(r.Context()); st != nil {
		st.reason = reason
	}
	if status == http.StatusBadRequest && r.ProtoMajor == 1 {
		w.Header().Set("Connection", "close")
	}
	if message == "" {
		page.Refuse(w, r, status, reason)
		return
	}
	if s := scope.From(r.Context()); s != nil {
		s.Decision = scope.Decision{Allow: false, Reason: reason}
	}
	page.Write(w, r, page.Problem{Status: status, Message: message})
}

// canonicalise is the second stage: it parses the request once and puts
// the canonical host, path and query into the scope; r.URL.Path and
// r.URL.RawPath are set from the canonical form so that every later stage
// and the proxy see exactly it. Anything ambiguous is answered 400
// (docs/architecture.md principle 1): framing faults found on the connection
// (Content-Length with Transfer-Encoding, obs-fold, …; see h1scan.go), a
// method with lower-case letters ("post", which servers that fold case
// run as POST), a
// Transfer-Encoding other than "chunked" (RFC 9112 §6.1), a target that is
// not origin-form or whose authority differs from Host (RFC 9112 §3.2.2),
// the faults of CanonicalPath and CanonicalHost, more query parameters than
// Server.MaxQueryParams, an unparsable query, an access_token query
// parameter (RFC 6750 §2.3 is not accepted: tokens in URLs leak to logs),
// and a method override query parameter (MethodOverrideParam, in every
// spelling isMethodOverrideName folds). A path refused only for not being
// in NFKC is normalised instead when a route normalises Unicode paths
// (canonicalPathNFKC); the route stage then requires that route.
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
				switch reason {
				case scope.ReasonFramingHeaderTooLarge:
					refuse(w, r, http.StatusRequestHeaderFieldsTooLarge, reason)
				case scope.ReasonPlainHTTP:
					refuseWith(w, r, http.StatusBadRequest, reason, "This port speaks HTTPS only: open the https:// address.")
				default:
					refuse(w, r, http.StatusBadRequest, reason)
				}
				return
			}
		}
		if hasLower(r.Method) {
			// Methods are case-sensitive (RFC 9110 §9.1), but servers
			// that fold them would run "post" as the POST that
			// telegate's rules never saw.
			refuse(w, r, http.StatusBadRequest, scope.ReasonMethodCase)
			return
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
		path, flags, err := canonicalPath(rawPath)
		if err == ErrNotNormalised && g.router.normalises {
			path, flags, err = canonicalPathNFKC(rawPath)
			rs.normalised = err == nil
		}
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
				if isMethodOverrideName(k) {
					refuse(w, r, http.StatusBadRequest, scope.ReasonQueryMethodOverride)
					return
				}
			}
		}
		s.Host, s.Path, s.RawQuery = host, path, rawQuery
		rs.semicolon = flags&pathSemicolon != 0
		// One canonical request: later stages and the proxy read these.
		r.URL.Path, r.URL.RawPath = unescapedPath(path), path
		r.URL.RawQuery = rawQuery
		r.URL.Fragment, r.URL.RawFragment = "", ""
		next.ServeHTTP(w, r)
	})
}

// hasLower reports whether s has an ASCII lower-case letter.
func hasLower(s string) bool {
	for i := 0; i < len(s); i++ {
		if 'a' <= s[i] && s[i] <= 'z' {
			return true
		}
	}
	return false
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
	case ErrEncodedDelimiter:
		return scope.ReasonPathEncodedDelimiter
	case ErrDoubleEncoding:
		return scope.ReasonPathDoubleEncoding
	case ErrWhitespace:
		return scope.ReasonPathWhitespace
	case ErrTrailingDot:
		return scope.ReasonPathTrailingDot
	case ErrStreamName:
		return scope.ReasonPathStream
	case ErrInvalidUTF8:
		return scope.ReasonPathUTF8
	case ErrInvisible:
		return scope.ReasonPathInvisible
	case ErrNotNormalised:
		return scope.ReasonPathUnicodeForm
	}
	return scope.ReasonPathMalformed
}
