package policies

import (
	"net/http"
	"net/netip"
	"strings"

	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/page"
	"github.com/telegate/telegate/scope"
)

// OwnRouteID is the rate-limit, metrics and audit route id of telegate's
// own endpoints under /.telegate/.
const OwnRouteID = ".telegate"

// BackchannelRouteID is the rate-limit route id of the back-channel logout
// endpoints (config.BackchannelLogoutPrefix): their per-client buckets are
// their own, under rate_limits.backchannel_logout, apart from the other
// endpoints' (OwnRouteID).
const BackchannelRouteID = ".telegate/backchannel-logout"

// limitID is the rate-limit route id of a request: its route's, else
// BackchannelRouteID or OwnRouteID by its canonical path.
func limitID(s *scope.Scope) string {
	switch {
	case s.RouteID != "":
		return s.RouteID
	case strings.HasPrefix(s.Path, config.BackchannelLogoutPrefix):
		return BackchannelRouteID
	}
	return OwnRouteID
}

// Buckets are the rate-limit buckets the stages take tokens from: the
// in-memory Limiter or the RedisLimiter.
type Buckets interface {
	// AllowClient takes one token from the per-client bucket (IPv4
	// address, IPv6 /64) of routeID under lim.
	AllowClient(routeID string, addr netip.Addr, lim config.RateLimit) bool
	// AllowSubject takes one token from the per-identity bucket of
	// routeID under lim.
	AllowSubject(routeID, subjectKey string, lim config.RateLimit) bool
}

// LimitClient is the per-client-address rate-limit stage: a request whose
// route (OwnRouteID for telegate's own endpoints, BackchannelRouteID for
// back-channel logout) has no token left in the bucket of its client
// address under limits gets 429 with Retry-After: 1
// (RFC 6585 §4) and the reason scope.ReasonRateClient. limits is the
// generation's (NewRouteLimits), so a reload changes the limit for the
// next request.
func LimitClient(b Buckets, limits *RouteLimits) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s := scope.From(r.Context())
			id := limitID(s)
			if !b.AllowClient(id, s.ClientAddr, limits.Client(id)) {
				w.Header().Set("Retry-After", "1")
				page.Refuse(w, r, http.StatusTooManyRequests, scope.ReasonRateClient)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// LimitSubject is the per-identity rate-limit stage, after authorisation:
// a signed-in request whose identity (issuer, subject; OIDC Core §2) has no
// token left on its route gets 429 with Retry-After: 1 and the reason
// scope.ReasonRateSubject. Anonymous requests pass.
func LimitSubject(b Buckets, limits *RouteLimits) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s := scope.From(r.Context())
			if id := s.Identity; id != nil && !b.AllowSubject(s.RouteID, id.Issuer+"\x00"+id.Subject, limits.Subject(s.RouteID)) {
				w.Header().Set("Retry-After", "1")
				page.Refuse(w, r, http.StatusTooManyRequests, scope.ReasonRateSubject)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}
