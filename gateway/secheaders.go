package gateway

import (
	"net/http"
	"strconv"
	"time"

	"github.com/telegate/telegate/scope"
)

// ownPageCSP is the Content-Security-Policy of telegate's own pages when
// the handler sets none: nothing loads but same-origin styles, scripts and
// images, and no one may frame the page (CSP 3 frame-ancestors).
const ownPageCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

// securityHeaders sets response headers when the response starts:
//   - every response: Strict-Transport-Security (RFC 6797 §6.1, max-age
//     from Server.HSTSMaxAge, default 365 days) on TLS requests, and
//     X-Content-Type-Options: nosniff;
//   - proxied responses: then Route.ResponseHeaders (e.g. the app's CSP);
//   - telegate's own pages and error pages: Referrer-Policy: no-referrer,
//     a strict CSP with frame-ancestors 'none' (unless the handler set
//     one), X-Frame-Options: DENY, and Cache-Control: no-store under
//     /.telegate/ and on errors (unless the handler set one).
func (g *generation) securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &secWriter{ResponseWriter: w, r: r, g: g}
		next.ServeHTTP(sw, r)
	})
}

type secWriter struct {
	http.ResponseWriter
	r    *http.Request
	g    *generation
	done bool
}

func (sw *secWriter) apply(status int) {
	if sw.done {
		return
	}
	if status >= 100 && status < 200 && status != http.StatusSwitchingProtocols {
		return // informational: headers come with the final response
	}
	sw.done = true
	h := sw.ResponseWriter.Header()
	rs := stateFrom(sw.r.Context())
	s := scope.From(sw.r.Context())
	rid := ""
	if s != nil {
		rid = s.RequestID
	}
	switch {
	case sw.r.TLS != nil && s != nil:
		setHeaders(h, "Strict-Transport-Security", sw.g.hsts,
			"X-Content-Type-Options", "nosniff", RequestIDHeader, rid) // never the upstream's id
	case sw.r.TLS != nil:
		setHeaders(h, "Strict-Transport-Security", sw.g.hsts, "X-Content-Type-Options", "nosniff")
	case s != nil:
		setHeaders(h, "X-Content-Type-Options", "nosniff", RequestIDHeader, rid)
	default:
		h.Set("X-Content-Type-Options", "nosniff")
	}
	if rs != nil && rs.conn != nil && rs.conn.h1 && status != http.StatusSwitchingProtocols {
		// The framing scanner stops after this request (chunked body,
		// refused upgrade): end the connection with this response.
		if idx, why := rs.conn.poisoned(); why == scope.ReasonFramingUnscanned && idx == rs.connIndex+1 {
			h.Set("Connection", "close")
		}
	}
	if rs != nil && rs.proxied.Load() {
		if s != nil && s.Route != nil {
			// What a signed-in route answers may show patient data: no
			// browser or shared cache keeps it, whatever the upstream
			// said, unless the route allows caching.
			if !s.Route.Cacheable && (s.Route.Policy == nil || !s.Route.Policy.Public) {
				h.Set("Cache-Control", "no-store")
				h.Del("Expires")
			}
			for k, v := range s.Route.ResponseHeaders {
				h.Set(k, v)
			}
		}
		return
	}
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	if h.Get("Content-Security-Policy") == "" {
		h.Set("Content-Security-Policy", ownPageCSP)
	}
	if h.Get("Cache-Control") == "" && (rs != nil && rs.own || status >= 400) {
		h.Set("Cache-Control", "no-store")
	}
}

// hstsValue is the Strict-Transport-Security field value (RFC 6797 §6.1)
// for Server.HSTSMaxAge, made once per generation (generation.hsts).
func hstsValue(age time.Duration) string {
	return "max-age=" + strconv.FormatInt(int64(age/time.Second), 10)
}

func (sw *secWriter) WriteHeader(code int) {
	sw.apply(code)
	sw.ResponseWriter.WriteHeader(code)
}

func (sw *secWriter) Write(b []byte) (int, error) {
	sw.apply(http.StatusOK)
	return sw.ResponseWriter.Write(b)
}

// Flush implements http.Flusher for streaming handlers.
func (sw *secWriter) Flush() {
	sw.apply(http.StatusOK)
	_ = http.NewResponseController(sw.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the connection (hijack for
// WebSocket, deadlines).
func (sw *secWriter) Unwrap() http.ResponseWriter { return sw.ResponseWriter }
