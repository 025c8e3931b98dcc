package policies

import (
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/telegate/telegate/config"
)

// RouteLimiter is a Limiter bound to the routes' own limits
// (config.Route.RateLimit, which replaces both rate_limits.per_client and
// rate_limits.per_subject for its route). It has the two-argument methods
// of the gateway's Limiter contract (gateway.Limiter). Safe for concurrent
// use; SetRoutes swaps the route limits atomically on reload.
type RouteLimiter struct {
	l      *Limiter
	routes atomic.Pointer[map[string]*config.RateLimit]
}

// NewRouteLimiter returns a RouteLimiter over NewLimiter(cfg, now) with the
// limits of routes.
func NewRouteLimiter(cfg config.RateLimits, routes []config.Route, now func() time.Time) *RouteLimiter {
	r := &RouteLimiter{l: NewLimiter(cfg, now)}
	r.SetRoutes(routes)
	return r
}

// SetRoutes replaces the per-route limits. Existing buckets keep their
// tokens and take the new rate and burst on their next use.
func (r *RouteLimiter) SetRoutes(routes []config.Route) {
	m := make(map[string]*config.RateLimit, len(routes))
	for i := range routes {
		if rl := routes[i].RateLimit; rl != nil {
			c := *rl
			m[routes[i].ID] = &c
		}
	}
	r.routes.Store(&m)
}

// Limiter returns the underlying Limiter (for its counters and metrics).
func (r *RouteLimiter) Limiter() *Limiter { return r.l }

// AllowClient is Limiter.AllowClient with the route's own limit.
func (r *RouteLimiter) AllowClient(routeID string, addr netip.Addr) bool {
	return r.l.AllowClient(routeID, addr, (*r.routes.Load())[routeID])
}

// AllowSubject is Limiter.AllowSubject with the route's own limit.
func (r *RouteLimiter) AllowSubject(routeID, subjectKey string) bool {
	return r.l.AllowSubject(routeID, subjectKey, (*r.routes.Load())[routeID])
}
