package gateway

import (
	"net/http"
	"net/textproto"
	"strings"

	"github.com/telegate/telegate/scope"
)

// reservedExact are header names (folded, see FoldHeaderName) that only
// telegate sets toward upstreams; a client's copy is always removed.
var reservedExact = map[string]bool{
	"forwarded":       true, // RFC 7239
	"x-real-ip":       true,
	"x-original-url":  true,
	"x-rewrite-url":   true,
	"x-client-ip":     true,
	"true-client-ip":  true,
	"x-remote-user":   true,
	"remote-user":     true,
	"x-remote-addr":   true,
	"x-request-id":    true,
	"x-original-uri":  true,
	"x-original-host": true,
	// Identities and client addresses that upstreams and their
	// frameworks commonly trust from a proxy in front of them.
	"x-user":              true,
	"client-ip":           true,
	"x-cluster-client-ip": true,
	"cf-connecting-ip":    true,
	"fastly-client-ip":    true,
	// Method overrides: an upstream that honours one would run another
	// method than the one the route's methods rule admitted.
	"x-http-method-override": true,
	"x-http-method":          true,
	"x-method-override":      true,
}

// reservedPrefixes are folded name prefixes reserved the same way.
var reservedPrefixes = []string{"x-telegate-", "x-forwarded-", "x-auth-request-"}

// FoldHeaderName folds a header field name the way upstream frameworks may
// read it: ASCII lower case, with "_" and "." mapped to "-" (CGI and many
// frameworks turn X_Forwarded_For and X-Forwarded-For into the same
// variable). Field names are case-insensitive (RFC 9110 §5.1).
func FoldHeaderName(name string) string {
	b := []byte(name)
	for i, c := range b {
		switch {
		case 'A' <= c && c <= 'Z':
			b[i] = c + 'a' - 'A'
		case c == '_' || c == '.':
			b[i] = '-'
		}
	}
	return string(b)
}

// IsReservedHeader reports whether a client-supplied header named name
// folds to a name only telegate may set: the assertion header
// (assertionHeader), X-Telegate-*, X-Forwarded-*, Forwarded, X-Real-IP,
// X-Original-URL, X-Rewrite-URL, X-Client-IP, True-Client-IP,
// X-Remote-User, Remote-User, X-Auth-Request-* and X-Request-Id.
func IsReservedHeader(name, assertionHeader string) bool {
	f := FoldHeaderName(name)
	if reservedExact[f] || f == FoldHeaderName(assertionHeader) {
		return true
	}
	for _, p := range reservedPrefixes {
		if strings.HasPrefix(f, p) {
			return true
		}
	}
	return false
}

// StripReservedHeaders removes from h every field whose name folds to a
// reserved one (IsReservedHeader). Every name is scanned: net/http
// canonicalises "x-forwarded-for" but keeps "X_forwarded_for" and
// "X-Forwarded.for" as distinct keys.
func StripReservedHeaders(h http.Header, assertionHeader string) {
	for k := range h {
		if IsReservedHeader(k, assertionHeader) {
			delete(h, k)
		}
	}
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
		StripReservedHeaders(r.Header, st.assertionHeader)
		SanitizeConnection(r.Header)
		r.Trailer = nil
		s := scope.From(r.Context())
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
