package gateway

import (
	"net/http"

	"github.com/telegate/telegate/scope"
)

// ownRouteID is the rate-limit and metrics route id of telegate's own
// endpoints under /.telegate/.
const ownRouteID = ".telegate"

// limitClient is the per-client-address rate limit under the route's
// limit in the request's generation: 429 with Retry-After (RFC 6585 §4)
// past the bucket.
func (g *generation) limitClient(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := g
		s := scope.From(r.Context())
		id := s.RouteID
		if id == "" {
			id = ownRouteID
		}
		if !g.limiter.AllowClient(id, s.ClientAddr, st.limits.Client(id)) {
			w.Header().Set("Retry-After", "1")
			refuse(w, r, http.StatusTooManyRequests, scope.ReasonRateClient)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// subjectKey is unique per (issuer, subject) (OIDC Core §2).
func subjectKey(id *scope.Identity) string {
	return id.Issuer + "\x00" + id.Subject
}

// limitSubject is the per-identity rate limit (after authorisation) under
// the route's limit in the request's generation.
func (g *generation) limitSubject(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := g
		s := scope.From(r.Context())
		if s.Identity != nil && !g.limiter.AllowSubject(s.RouteID, subjectKey(s.Identity), st.limits.Subject(s.RouteID)) {
			w.Header().Set("Retry-After", "1")
			refuse(w, r, http.StatusTooManyRequests, scope.ReasonRateSubject)
			return
		}
		next.ServeHTTP(w, r)
	})
}
