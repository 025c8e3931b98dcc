package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"sync/atomic"

	"github.com/telegate/telegate/scope"
)

// RequestIDHeader is the response header (and upstream request header)
// carrying telegate's request id. A client's own value is never trusted.
const RequestIDHeader = "X-Request-Id"

// reqState is the gateway's private per-request state, next to the shared
// scope.Scope.
type reqState struct {
	// conn is the connection's state when served by Serve (nil under
	// httptest servers).
	conn *connInfo
	// connIndex is this request's 1-based index on its HTTP/1 connection.
	connIndex int64
	// forwardedFor is the X-Forwarded-For chain honoured from a trusted
	// proxy ("" otherwise).
	forwardedFor string
	// forwardedProto is "https" or "http" as seen by telegate (or a
	// trusted proxy).
	forwardedProto string
	// semicolon reports a ';' in the canonical path.
	semicolon bool
	// normalised reports that the canonical path is the NFKC form of the
	// one the client sent (canonicalPathNFKC): only a route with
	// NormalizeUnicodePaths takes it.
	normalised bool
	// own is set for telegate's own endpoints (under /.telegate/).
	own bool
	// proxied is set once an upstream response is being relayed.
	proxied atomic.Bool
	// body records request-body read errors (client faults).
	body *bodyReader
	// form is a form body scanned for a method override as it streams
	// (refuseMethodOverride).
	form *formStream
	// assertion minted for this request ("" when anonymous).
	assertion string
	// reason is the refusal reason for audit and metrics ("" when the
	// decision stage gave one).
	reason scope.Reason
	// method overrides r.Method in the audit record: the method the client
	// sent in a head the HTTP/1 scanner refused (r is then the stand-in).
	method string
}

type reqStateKey struct{}

func stateFrom(ctx context.Context) *reqState {
	st, _ := ctx.Value(reqStateKey{}).(*reqState)
	return st
}

// newRequestID returns 16 random bytes in hex (32 characters).
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// requestID is the first stage: it creates the request's scope.Scope with
// a fresh request id, the start time and the client address (the TCP peer,
// or X-Forwarded-For's client when the peer is in Server.TrustedProxies),
// and sets the X-Request-Id response header.
func (g *generation) requestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := g
		s := &scope.Scope{RequestID: newRequestID(), Start: g.now(), Draining: g.draining}
		rs := &reqState{forwardedProto: "http"}
		if ci, ok := r.Context().Value(connInfoKey{}).(*connInfo); ok && ci != nil {
			rs.conn = ci
			if ci.h1 {
				rs.connIndex = ci.served.Add(1)
			}
			if r.TLS == nil && ci.tls != nil {
				r.TLS = ci.tls
			}
		}
		if r.TLS != nil {
			rs.forwardedProto = "https"
		}
		s.ClientAddr, rs.forwardedFor, rs.forwardedProto = clientAddr(r, st.trusted, rs.forwardedProto)
		w.Header().Set(RequestIDHeader, s.RequestID)
		ctx := scope.With(r.Context(), s)
		ctx = context.WithValue(ctx, reqStateKey{}, rs)
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}
