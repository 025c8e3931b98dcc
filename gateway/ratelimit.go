package gateway

import (
	"net/http"
	"net/netip"
	"sync"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/time/rate"

	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/scope"
)

// ownRouteID is the rate-limit and metrics route id of telegate's own
// endpoints under /.telegate/.
const ownRouteID = ".telegate"

// memLimiter is the built-in Limiter: token buckets (golang.org/x/time/rate)
// in two LRU tables capped at RateLimits.MaxClients entries each (default
// 100000); the least recently used bucket is evicted. A rate of 0 means no
// limit.
type memLimiter struct {
	mu      sync.Mutex
	cfg     config.RateLimits
	routes  map[string]*config.RateLimit
	clients *lru.Cache[string, *rate.Limiter]
	subject *lru.Cache[string, *rate.Limiter]
}

func newMemLimiter(cfg *config.Config) *memLimiter {
	n := cfg.RateLimits.MaxClients
	if n <= 0 {
		n = 100000
	}
	c, _ := lru.New[string, *rate.Limiter](n)
	s, _ := lru.New[string, *rate.Limiter](n)
	m := &memLimiter{clients: c, subject: s}
	m.configure(cfg)
	return m
}

// configure takes new limits (on Reload); existing buckets are dropped.
func (m *memLimiter) configure(cfg *config.Config) {
	routes := map[string]*config.RateLimit{}
	for i := range cfg.Routes {
		if cfg.Routes[i].RateLimit != nil {
			routes[cfg.Routes[i].ID] = cfg.Routes[i].RateLimit
		}
	}
	m.mu.Lock()
	m.cfg, m.routes = cfg.RateLimits, routes
	m.mu.Unlock()
	m.clients.Purge()
	m.subject.Purge()
}

func (m *memLimiter) allow(table *lru.Cache[string, *rate.Limiter], key, routeID string, def func(config.RateLimits) config.RateLimit) bool {
	m.mu.Lock()
	rl := def(m.cfg)
	if o := m.routes[routeID]; o != nil {
		rl = *o
	}
	m.mu.Unlock()
	if rl.Rate <= 0 {
		return true
	}
	lim, ok := table.Get(key)
	if !ok {
		burst := rl.Burst
		if burst <= 0 {
			burst = max(1, int(rl.Rate))
		}
		lim = rate.NewLimiter(rate.Limit(rl.Rate), burst)
		if prev, found, _ := table.PeekOrAdd(key, lim); found {
			lim = prev
		}
	}
	return lim.Allow()
}

// AllowClient implements Limiter.
func (m *memLimiter) AllowClient(routeID string, addr netip.Addr) bool {
	return m.allow(m.clients, routeID+"\x00"+addr.String(), routeID, func(c config.RateLimits) config.RateLimit { return c.PerClient })
}

// AllowSubject implements Limiter.
func (m *memLimiter) AllowSubject(routeID, subjectKey string) bool {
	return m.allow(m.subject, routeID+"\x00"+subjectKey, routeID, func(c config.RateLimits) config.RateLimit { return c.PerSubject })
}

// limitClient is the per-client-address rate limit: 429 with Retry-After
// (RFC 6585 §4) past the bucket.
func (g *Gateway) limitClient(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := scope.From(r.Context())
		id := s.RouteID
		if id == "" {
			id = ownRouteID
		}
		if !g.limiter.AllowClient(id, s.ClientAddr) {
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

// limitSubject is the per-identity rate limit (after authorisation).
func (g *Gateway) limitSubject(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := scope.From(r.Context())
		if s.Identity != nil && !g.limiter.AllowSubject(s.RouteID, subjectKey(s.Identity)) {
			w.Header().Set("Retry-After", "1")
			refuse(w, r, http.StatusTooManyRequests, scope.ReasonRateSubject)
			return
		}
		next.ServeHTTP(w, r)
	})
}
