package gateway

import (
	"net/http"
	"net/textproto"
	"strings"

	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/scope"
)

// headerSet matches header field names by their folded form
// (FoldHeaderName): whole names, and prefixes (an entry ending in "*").
// Matching a name allocates nothing for names up to 64 bytes.
type headerSet struct {
	exact    map[string]bool
	prefixes []string
}

// newHeaderSet is the set of patterns (config.CheckHeaderPattern's form).
func newHeaderSet(patterns ...string) headerSet {
	s := headerSet{exact: map[string]bool{}}
	for _, p := range patterns {
		if pre, ok := strings.CutSuffix(p, "*"); ok {
			s.prefixes = append(s.prefixes, FoldHeaderName(pre))
		} else {
			s.exact[FoldHeaderName(p)] = true
		}
	}
	return s
}

// has reports whether name folds to a name of the set.
func (s headerSet) has(name string) bool {
	if len(s.exact) == 0 && len(s.prefixes) == 0 {
		return false
	}
	var buf [64]byte
	f := foldHeaderName(buf[:0], name)
	if s.exact[string(f)] {
		return true
	}
	for _, p := range s.prefixes {
		if len(f) >= len(p) && string(f[:len(p)]) == p {
			return true
		}
	}
	return false
}

// strip removes from h every field of the set. Every name is scanned:
// net/http canonicalises "x-forwarded-for" but keeps "X_forwarded_for"
// and "X-Forwarded.for" as distinct keys.
func (s headerSet) strip(h http.Header) {
	for k := range h {
		if s.has(k) {
			delete(h, k)
		}
	}
}

// reserved is config.ReservedRequestHeaders, the one list.
var reserved = newHeaderSet(config.ReservedRequestHeaders...)

// readHeaders is config.ReadRequestHeaders.
var readHeaders = newHeaderSet(config.ReadRequestHeaders...)

// stripLookalikes removes from h every field spelled with "_" or "."
// whose name folds to one telegate reads (config.ReadRequestHeaders):
// "Content_Length", "Transfer.Encoding".
func stripLookalikes(h http.Header) {
	for k := range h {
		if strings.ContainsAny(k, "_.") && readHeaders.has(k) {
			delete(h, k)
		}
	}
}

// clientHeaderSet is what stripClientHeaders removes toward one route's
// upstream: config.ReservedRequestHeaders, the assertion header and the
// route's strip_request_headers patterns, in one set built once per
// generation.
func clientHeaderSet(assertionHeader string, routePatterns []string) headerSet {
	all := append(append(append([]string(nil), config.ReservedRequestHeaders...), assertionHeader), routePatterns...)
	return newHeaderSet(all...)
}

// FoldHeaderName folds a header field name the way upstream frameworks may
// read it: ASCII lower case, with "_" and "." mapped to "-" (CGI and many
// frameworks turn X_Forwarded_For and X-Forwarded-For into the same
// variable). Field names are case-insensitive (RFC 9110 §5.1).
func FoldHeaderName(name string) string {
	return string(foldHeaderName(make([]byte, 0, len(name)), name))
}

// foldHeaderName appends FoldHeaderName(name) to dst.
func foldHeaderName(dst []byte, name string) []byte {
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		case c == '_' || c == '.':
			c = '-'
		}
		dst = append(dst, c)
	}
	return dst
}

// IsReservedHeader reports whether a client-supplied header named name
// folds to a name only telegate may set: one of
// config.ReservedRequestHeaders, or the assertion header
// (assertionHeader).
func IsReservedHeader(name, assertionHeader string) bool {
	if reserved.has(name) {
		return true
	}
	var a, b [64]byte
	return string(foldHeaderName(a[:0], name)) == string(foldHeaderName(b[:0], assertionHeader))
}

// StripReservedHeaders removes from h every field whose name folds to a
// reserved one (IsReservedHeader).
func StripReservedHeaders(h http.Header, assertionHeader string) {
	for k := range h {
		if IsReservedHeader(k, assertionHeader) {
			delete(h, k)
		}
	}
}

// stripClientHeaders removes from a request to route's upstream every
// field the client may not send it: look-alikes of the fields telegate
// reads (stripLookalikes), the reserved ones (StripReservedHeaders) and
// the route's strip_request_headers, by the
// route's clientHeaderSet (the reserved ones alone for a request of no
// route).
func (g *generation) stripClientHeaders(h http.Header, route string) {
	stripLookalikes(h)
	if set, ok := g.strip[route]; ok {
		set.strip(h)
		return
	}
	StripReservedHeaders(h, g.assertionHeader)
}

// hopByHop are the connection options a client may nominate in
// Connection (RFC 9110 §7.6.1); every other nomination is ignored so that
// a client cannot make telegate drop end-to-end or reserved fields.
var hopByHop = map[string]bool{
	"close": true, "keep-alive": true, "upgrade": true, "te": true, "trailer": true,
	"proxy-connection": true, "proxy-authorization": true, "proxy-authenticate": true,
	"transfer-encoding": true,
}

// SanitizeConnection rewrites h's Connection field so that it nominates
// only hop-by-hop fields. httputil.ReverseProxy removes every field the
// Connection field names before Rewrite runs; without this, a client could
// name Authorization, Cookie or X-Request-Id to have them dropped on the
// way (the Caddy hop-headers advisory). telegate's own headers are added
// after that removal and can never be nominated away.
func SanitizeConnection(h http.Header) {
	vals := h.Values("Connection")
	if len(vals) == 0 {
		return
	}
	var keep []string
	for _, v := range vals {
		for _, tok := range strings.Split(v, ",") {
			tok = textproto.TrimString(tok)
			if hopByHop[strings.ToLower(tok)] {
				keep = append(keep, tok)
			}
		}
	}
	if len(keep) == 0 {
		h.Del("Connection")
		return
	}
	h["Connection"] = []string{strings.Join(keep, ", ")}
}

// forwardHeaders is the header stage before the proxy: it removes every
// reserved client header and every Connection nomination that is not
// hop-by-hop, and mints the assertion for an identified request (an error
// minting is a 500: no request goes upstream without its assertion). The
// proxy's Rewrite then adds the assertion and the X-Forwarded-* fields.
func (g *generation) forwardHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := g
		s := scope.From(r.Context())
		st.stripClientHeaders(r.Header, s.RouteID)
		SanitizeConnection(r.Header)
		r.Trailer = nil
		if s.Identity != nil {
			tok, err := g.signer.mint(s.Identity, assertionInput{
				issuer: st.issuer, audience: s.RouteID, ttl: st.ttl, claims: s.Route.AssertionClaims, gen: st.ID,
			}, g.now())
			if err != nil {
				g.log.Error("assertion minting failed", "request_id", s.RequestID, "err", err)
				refuse(w, r, http.StatusInternalServerError, scope.ReasonAssertionError)
				return
			}
			stateFrom(r.Context()).assertion = tok
		}
		next.ServeHTTP(w, r)
	})
}
