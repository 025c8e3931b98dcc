// Package scope carries the request-scoped facts of one request through the
// gateway chain: set once at the front (request id, client address,
// canonical host and path, route), then filled by later stages (identity,
// decision) and read by everything after them.
package scope

import (
	"context"
	"net/netip"
	"slices"
	"time"

	"github.com/telegate/telegate/config"
)

// Identity is who is calling. It is keyed by (Issuer, Subject).
type Identity struct {
	// Kind is "session" (OIDC sign-in), "bearer" (JWT access token) or
	// "device" (client certificate).
	Kind string
	// Provider is the provider, bearer or client CA id that vouched.
	Provider string
	// Issuer and Subject identify the user (OIDC Core §2: iss + sub). For a
	// device, Issuer is "device:<ca id>" and Subject the certificate's
	// subject CN or first SAN.
	Issuer  string
	Subject string
	// Roles are telegate roles mapped from claims (e.g. clinician, patient,
	// admin, device).
	Roles  []string
	Groups []string
	// AMR and ACR as sent by the OpenID Provider (OIDC Core §2).
	AMR []string
	ACR string
	// Claims are the retained ID token / UserInfo claims (name, email, …),
	// used for policy and the assertion allow-list. Never logged.
	Claims map[string]any
	// SessionID is the server-side session id (not the cookie handle) for
	// Kind "session"; "" otherwise.
	SessionID string
	// AuthTime is when the user authenticated.
	AuthTime time.Time
}

// HasRole reports whether the identity holds role.
func (id *Identity) HasRole(role string) bool {
	return id != nil && slices.Contains(id.Roles, role)
}

// HasMFA reports whether the sign-in used more than one factor: amr
// (RFC 8176) contains "mfa", or a second factor such as "otp", "hwk",
// "swk", "sms", "fpt" next to another method.
func (id *Identity) HasMFA() bool {
	if id == nil {
		return false
	}
	if id.Kind == "device" {
		return false
	}
	n := 0
	for _, m := range id.AMR {
		switch m {
		case "mfa":
			return true
		case "otp", "hwk", "swk", "sms", "fpt", "face", "iris", "retina", "vbm", "sc", "pin", "pwd", "kba", "tel", "user", "geo", "wia", "rba":
			n++
		}
	}
	return n >= 2
}

// Decision is the outcome of authorisation for the request.
type Decision struct {
	Allow bool
	// Reason says why (see Reason for every value).
	Reason Reason
}

// Scope is the one request-scoped value. Stages set their own fields once.
type Scope struct {
	RequestID string
	Start     time.Time
	// ClientAddr is the client's address: the TCP peer, or the address from
	// X-Forwarded-For when the peer is a trusted proxy.
	ClientAddr netip.Addr
	// Host is the canonical host (lower case, no trailing dot, no port).
	Host string
	// Path is the canonical path: what policy saw is what is forwarded.
	Path     string
	RawQuery string
	// Route chosen by the router; nil for telegate's own endpoints.
	RouteID string
	Route   *config.Route
	// Identity is set by authentication; nil when anonymous.
	Identity *Identity
	Decision Decision
	// Status is the response status, recorded for audit and metrics.
	Status int
	// Draining is closed once the node begins to shut down. A long-lived
	// handler (a signaling WebSocket) ends its connection then, telling
	// its client why, instead of waiting for the drain deadline. nil
	// outside the gateway chain.
	Draining <-chan struct{}
}

type key struct{}

// With returns ctx carrying s.
func With(ctx context.Context, s *Scope) context.Context {
	return context.WithValue(ctx, key{}, s)
}

// From returns the request's scope, or nil outside the gateway chain.
func From(ctx context.Context) *Scope {
	s, _ := ctx.Value(key{}).(*Scope)
	return s
}
