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

// HasMFA reports whether the sign-in used factors of at least two kinds
// (knowledge, possession, inherence; NIST SP 800-63B §4): amr (RFC 8176
// §2) contains "mfa", or values of two kinds — "pwd" with "otp", say. Two
// values of one kind ("pwd" and "kba", "otp" and "sms") are one factor,
// and methods that are not a factor of the person ("geo", "rba", "wia",
// "user", "mca") count for nothing. A device's certificate is never MFA.
func (id *Identity) HasMFA() bool {
	if id == nil || id.Kind == "device" {
		return false
	}
	var kinds [3]bool
	for _, m := range id.AMR {
		if m == "mfa" {
			return true
		}
		if k, ok := factorKind[m]; ok {
			kinds[k] = true
		}
	}
	n := 0
	for _, k := range kinds {
		if k {
			n++
		}
	}
	return n >= 2
}

// factorKind is the kind of authenticator each RFC 8176 §2 method value
// proves: 0 something known, 1 something held, 2 something the person is.
var factorKind = map[string]int{
	"pwd": 0, "pin": 0, "kba": 0,
	"otp": 1, "hwk": 1, "swk": 1, "sms": 1, "tel": 1, "sc": 1,
	"fpt": 2, "face": 2, "iris": 2, "retina": 2, "vbm": 2,
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
