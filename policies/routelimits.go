package policies

import "github.com/telegate/telegate/config"

// RouteLimits are the effective rate limits of every route of one
// configuration generation: a route's own limit (routes[].rate_limit,
// which replaces both rate_limits.per_client and rate_limits.per_subject
// for it), else rate_limits. It is built once per configuration and never
// changes, so it is safe for concurrent use; a reload builds a new one,
// and a limiter given its limits applies them from the next request
// (Limiter, RedisLimiter). A nil *RouteLimits answers the built-in
// defaults (config.DefaultRateLimits).
type RouteLimits struct {
	client, subject config.RateLimit
	backchannel     config.RateLimit            // BackchannelRouteID's per-client limit
	routes          map[string]config.RateLimit // route id → its own limit
}

// NewRouteLimits resolves the limits of cfg (defaults applied, see
// (*config.Config).ApplyDefaults). A per_client or per_subject still left at zero
// (a configuration built in code without defaults) takes its default from
// config.DefaultRateLimits. Route ids not in cfg, among them telegate's own
// endpoints (".telegate"), get rate_limits. The limits are copied: later
// changes to cfg do not show.
func NewRouteLimits(cfg *config.Config) *RouteLimits {
	d := config.DefaultRateLimits()
	l := &RouteLimits{client: d.PerClient, subject: d.PerSubject, backchannel: d.BackchannelLogout, routes: map[string]config.RateLimit{}}
	if cfg == nil {
		return l
	}
	if cfg.RateLimits.PerClient != (config.RateLimit{}) {
		l.client = cfg.RateLimits.PerClient
	}
	if cfg.RateLimits.PerSubject != (config.RateLimit{}) {
		l.subject = cfg.RateLimits.PerSubject
	}
	if cfg.RateLimits.BackchannelLogout != (config.RateLimit{}) {
		l.backchannel = cfg.RateLimits.BackchannelLogout
	}
	for i := range cfg.Routes {
		if rl := cfg.Routes[i].RateLimit; rl != nil {
			l.routes[cfg.Routes[i].ID] = *rl
		}
	}
	return l
}

// Client returns the per-client limit of routeID (requests per second and
// burst, per client network): rate_limits.backchannel_logout for
// BackchannelRouteID.
func (l *RouteLimits) Client(routeID string) config.RateLimit {
	if l == nil {
		if routeID == BackchannelRouteID {
			return config.DefaultRateLimits().BackchannelLogout
		}
		return config.DefaultRateLimits().PerClient
	}
	if routeID == BackchannelRouteID {
		return l.backchannel
	}
	if rl, ok := l.routes[routeID]; ok {
		return rl
	}
	return l.client
}

// Subject returns the per-subject limit of routeID (requests per second
// and burst, per signed-in identity).
func (l *RouteLimits) Subject(routeID string) config.RateLimit {
	if l == nil {
		return config.DefaultRateLimits().PerSubject
	}
	if rl, ok := l.routes[routeID]; ok {
		return rl
	}
	return l.subject
}
