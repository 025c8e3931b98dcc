package gateway

import (
	"context"
	"crypto/x509"
	"net/http"
	"sync"
	"time"

	"github.com/telegate/telegate/scope"
)

// upgrades are the proxied WebSocket connections open through the gateway
// (routes with websocket: true). A connection was admitted once, at its
// upgrade request; it is closed when that admission no longer holds: its
// session ends (EndSession), the bearer token or client certificate that
// admitted it expires (scope.Identity.NotAfter), the break-glass grant that
// admitted it expires (scope.Decision.Until), or a new generation would not route or admit
// it (Swap). Closing cancels the upgrade request's context, which makes
// the reverse proxy close both sides.
type upgrades struct {
	mu   sync.Mutex
	open map[*upgrade]struct{}
}

// upgrade is one open proxied WebSocket and what admitted it.
type upgrade struct {
	host, path, method string
	// normalised: path is the NFKC form of the one the client sent.
	normalised bool
	identity   *scope.Identity
	// peer is the client certificate chain of the connection (leaf
	// first), for a device's identity to be checked again on a swap.
	peer   []*x509.Certificate
	cancel context.CancelFunc
}

// track runs next for the upgrade request r (admitted on the request's
// route) so that closing it later ends the connection.
func (u *upgrades) track(w http.ResponseWriter, r *http.Request, s *scope.Scope, next http.Handler) {
	ctx, cancel := context.WithCancel(r.Context())
	e := &upgrade{host: s.Host, path: s.Path, method: r.Method, identity: s.Identity, cancel: cancel}
	if r.TLS != nil {
		e.peer = r.TLS.PeerCertificates
	}
	if rs := stateFrom(r.Context()); rs != nil {
		e.normalised = rs.normalised
	}
	u.mu.Lock()
	if u.open == nil {
		u.open = map[*upgrade]struct{}{}
	}
	u.open[e] = struct{}{}
	u.mu.Unlock()
	defer func() {
		u.mu.Lock()
		delete(u.open, e)
		u.mu.Unlock()
		cancel()
	}()
	if until := admittedUntil(s); !until.IsZero() {
		// The bearer token or client certificate that admitted it
		// expires, or the break-glass grant: so does the connection.
		t := time.AfterFunc(time.Until(until), cancel)
		defer t.Stop()
	}
	next.ServeHTTP(w, r.WithContext(ctx))
}

// admittedUntil is when the admission of s stops holding: the earlier of
// its credential's expiry (scope.Identity.NotAfter) and its decision's
// (scope.Decision.Until, a break-glass grant's expiry); zero when neither
// ends by itself.
func admittedUntil(s *scope.Scope) time.Time {
	var until time.Time
	if s.Identity != nil {
		until = s.Identity.NotAfter
	}
	if d := s.Decision.Until; !d.IsZero() && (until.IsZero() || d.Before(until)) {
		until = d
	}
	return until
}

// closeWhere closes every open upgrade for which gone reports true.
func (u *upgrades) closeWhere(gone func(*upgrade) bool) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	n := 0
	for e := range u.open {
		if gone(e) {
			e.cancel()
			n++
		}
	}
	return n
}

// EndSession closes the proxied WebSocket connections opened with the
// session id (scope.Identity.SessionID): call it when a session ends
// (sign-out, back-channel logout, timeouts), so that no connection
// outlives the sign-in that admitted it.
func (g *Gateway) EndSession(id string) {
	if id == "" {
		return
	}
	g.upgrades.closeWhere(func(e *upgrade) bool { return e.identity != nil && e.identity.SessionID == id })
}

// readmit closes the open upgrades that generation st would not admit
// again: their path no longer routes to a route that permits WebSockets
// (router.pick: case folding or Unicode normalisation refused included),
// or that route's policy (with break-glass) does not admit their
// identity, or — for a device — st's device CAs no longer map its client
// certificate to the same identity on that route (DeviceChecker: a CA
// removed, or its file replaced by another CA's). An upgrade that would
// still be admitted stays open on the generation it started with,
// whatever else changed (its upstream, the route's id).
func (st *generation) readmit() {
	st.upgrades.closeWhere(func(e *upgrade) bool {
		rt, reason := st.router.pick(e.host, e.path, e.normalised)
		if reason != "" || rt == nil || !rt.WebSocket {
			return true
		}
		if e.identity != nil && e.identity.Kind == "device" {
			dc, ok := st.Auth.(DeviceChecker)
			if !ok {
				return true
			}
			id := dc.DeviceIdentity(e.peer, rt)
			if id == nil || id.Provider != e.identity.Provider || id.Subject != e.identity.Subject {
				return true
			}
		}
		s := &scope.Scope{Host: e.host, Path: e.path, RouteID: rt.ID, Route: rt, Identity: e.identity}
		d := st.o.BreakGlass.Reconsider(context.Background(), s, authoriseRoute(rt, e.identity, e.method))
		return !d.Allow
	})
}
