// Package scope carries the request-scoped facts of one request through the
// gateway chain: set once at the front (request id, client address,
// canonical host and path, route), then filled by later stages (identity,
// decision) and read by everything after them.
package scope

import (
	"context"
	"net/netip"
	"slices"
	"sync/atomic"
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
	// MFA is what counts as multi-factor for the provider that vouched
	// (HasMFA); the zero rule is the default.
	MFA MFARule
	// Claims are the retained ID token / UserInfo claims (name, email, …),
	// used for policy and the assertion allow-list. Never logged.
	Claims map[string]any
	// SessionID is the server-side session id (not the cookie handle) for
	// Kind "session"; "" otherwise.
	SessionID string
	// AuthTime is when the user authenticated.
	AuthTime time.Time
	// NotAfter is when the credential presented with the request stops
	// vouching for the identity: a bearer token's exp (RFC 7519 §4.1.4),
	// a client certificate's notAfter (RFC 5280 §4.1.2.5). Zero for Kind
	// "session", whose end the sign-in service reports instead. A
	// connection admitted once (a proxied WebSocket) is closed then.
	NotAfter time.Time
}

// HasRole reports whether the identity holds role.
func (id *Identity) HasRole(role string) bool {
	return id != nil && slices.Contains(id.Roles, role)
}

// HasMFA reports whether the sign-in counts as multi-factor by the rule of
// the provider that vouched (id.MFA, MFARule.Satisfied): by default
// TwoKindsOfFactor of its amr; a provider's configured amr/acr values
// replace that. A device's certificate is never MFA.
func (id *Identity) HasMFA() bool {
	if id == nil || id.Kind == "device" {
		return false
	}
	return id.MFA.Satisfied(id.AMR, id.ACR)
}

// MFARule says which sign-ins of one provider count as multi-factor
// (providers[].mfa_amr, providers[].mfa_acr). The zero rule is the
// default, TwoKindsOfFactor.
type MFARule struct {
	// AMR are amr values (RFC 8176 §2), any one of which makes a sign-in
	// multi-factor.
	AMR []string
	// ACR are acr values (OIDC Core §2), any one of which makes a sign-in
	// multi-factor.
	ACR []string
}

// Satisfied reports whether a sign-in with amr and acr is multi-factor
// under r: when r lists values, amr holds one of r.AMR or acr is one of
// r.ACR (exact comparison), and nothing else counts; when r lists none,
// TwoKindsOfFactor(amr).
func (r MFARule) Satisfied(amr []string, acr string) bool {
	if len(r.AMR) == 0 && len(r.ACR) == 0 {
		return TwoKindsOfFactor(amr)
	}
	for _, m := range amr {
		if slices.Contains(r.AMR, m) {
			return true
		}
	}
	return acr != "" && slices.Contains(r.ACR, acr)
}

// TwoKindsOfFactor is the default MFA rule: amr (RFC 8176 §2) contains
// "mfa", or values of two kinds of factor (knowledge, possession,
// inherence; NIST SP 800-63B §4) — "pwd" with "otp", say. Two values of one
// kind ("pwd" and "kba", "otp" and "sms") are one factor, and methods that
// are not a factor of the person ("geo", "rba", "wia", "user", "mca")
// count for nothing.
func TwoKindsOfFactor(amr []string) bool {
	var kinds [3]bool
	for _, m := range amr {
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
	// Until, when set, is when an allow stops holding: the expiry of the
	// break-glass grant that lifted a deny (ReasonBreakGlass). A
	// connection admitted once (a proxied WebSocket) is closed then.
	Until time.Time
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
	// unrecorded is set once a record the request made could not be
	// queued (MarkUnrecorded); any goroutine of the request may set it.
	unrecorded atomic.Bool
}

// MarkUnrecorded notes that one of the request's audit records was lost
// (dropped: the trail's queue stayed full, or the trail was closed). The
// request's own record then fails to commit, so a request is never
// answered as served while a record it made is missing (45 CFR
// 164.312(b)); see audit.ErrEarlierRecordLost. Safe on a nil Scope and
// from any goroutine.
func (s *Scope) MarkUnrecorded() {
	if s != nil {
		s.unrecorded.Store(true)
	}
}

// Unrecorded reports whether MarkUnrecorded was called; false on a nil
// Scope.
func (s *Scope) Unrecorded() bool { return s != nil && s.unrecorded.Load() }

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
