package node

import (
	"context"

	"github.com/telegate/telegate/audit"
	"github.com/telegate/telegate/auth"
	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/gateway"
	"github.com/telegate/telegate/media/relay"
)

// readyParts are the parts of a node whose health /readyz reports. Each
// may be nil (or of a type without the method), and is then left out.
type readyParts struct {
	Config *config.Config
	// Auth is the sign-in service: its session store's Redis is checked
	// (PingSessionStore) when sessions.store is "redis".
	Auth any
	// Limiter is the rate limiter: its Redis is checked (Ping) when it is
	// the Redis limiter.
	Limiter any
	// Relay is the TURN relay (Healthy); nil when it is off.
	Relay *relay.Server
	// Audit is the audit trail (Healthy).
	Audit *audit.Log
}

// healthChecker is a part that knows whether it still works, without a
// deadline (a local check).
type healthChecker interface{ Healthy() error }

// pinger is a client of a server (Redis) that it can ask whether it
// answers.
type pinger interface {
	Ping(ctx context.Context) error
}

// sessionStorePinger is the sign-in service's check of its session store.
type sessionStorePinger interface {
	PingSessionStore(ctx context.Context) error
}

// dependencies returns the readiness checks (gateway.Options.Dependencies)
// for the node's parts: "redis:sessions" (the session store's Redis, PING),
// "redis:rate-limits" (the rate limiter's Redis, PING), "relay" (its
// sockets are open and have not failed) and "audit" (the trail is being
// written to its file). Each generation adds its providers
// (providerDependencies).
func dependencies(p readyParts) []gateway.Dependency {
	var deps []gateway.Dependency
	if p.Config != nil && p.Config.Sessions.Store == "redis" {
		if s, ok := p.Auth.(sessionStorePinger); ok {
			deps = append(deps, gateway.Dependency{Name: "redis:sessions", Check: s.PingSessionStore})
		}
	}
	if l, ok := p.Limiter.(pinger); ok {
		deps = append(deps, gateway.Dependency{Name: "redis:rate-limits", Check: l.Ping})
	}
	if p.Relay != nil {
		deps = append(deps, healthDependency("relay", p.Relay))
	}
	if p.Audit != nil {
		deps = append(deps, healthDependency("audit", p.Audit))
	}
	return deps
}

// providerDependencies are the readiness checks of a generation's
// identity providers, "provider:<id>": ready once its discovery has
// succeeded (auth.View.ProviderReady).
func providerDependencies(v *auth.View) []gateway.Dependency {
	if v == nil {
		return nil
	}
	var deps []gateway.Dependency
	for _, id := range v.ProviderIDs() {
		deps = append(deps, gateway.Dependency{Name: "provider:" + id, Check: func(context.Context) error { return v.ProviderReady(id) }})
	}
	return deps
}

// healthDependency turns a local health check into a Dependency.
func healthDependency(name string, h healthChecker) gateway.Dependency {
	return gateway.Dependency{Name: name, Check: func(context.Context) error { return h.Healthy() }}
}
