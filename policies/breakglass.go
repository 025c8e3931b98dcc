package policies

import (
	"context"
	"errors"
	"slices"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/telegate/telegate/audit"
	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/scope"
)

// Break-glass (emergency access) lets an eligible, MFA-signed-in clinician
// open a route their rules would deny, for a short time, with a stated
// reason, and leaves a loud audit record. It never opens a route without a
// policy, never waives MFA, a method restriction or sign-in.

// Break-glass defaults and bounds.
const (
	// MaxBreakGlassDuration caps a grant; the duration itself defaults in
	// config (config.DefaultBreakGlassDuration).
	MaxBreakGlassDuration = 12 * time.Hour
	DefaultMaxBreakGlass  = 10000
)

// BreakGlassReasons are the justifications a grant may give: a fixed list
// so that the audit trail holds no free text (docs/security-model.md,
// "Audit and logs", says what it does hold).
var BreakGlassReasons = []string{"emergency-care", "covering-clinician", "continuity-of-care", "patient-request"}

// Errors from BreakGlass.Grant.
var (
	ErrBreakGlassUnauthenticated = errors.New("break-glass: sign in first")
	ErrBreakGlassMFA             = errors.New("break-glass: sign in with a second factor first")
	ErrBreakGlassNotEligible     = errors.New("break-glass: not permitted on this route")
	ErrBreakGlassReason          = errors.New("break-glass: choose one of the listed reasons")
)

// BreakGlassRule says who may break the glass on one route and for how
// long: the route policy's break_glass section.
type BreakGlassRule = config.BreakGlass

type grantKey struct{ route, issuer, subject string }

// BreakGlass holds the active grants in memory, bounded (LRU, at most
// maxGrants; an evicted grant simply ends). Safe for concurrent use.
type BreakGlass struct {
	grants *lru.Cache[grantKey, time.Time]
	sink   audit.Sink
	now    func() time.Time
}

// NewBreakGlass returns an empty grant table of at most maxGrants entries
// (DefaultMaxBreakGlass when <= 0). sink receives "break-glass.grant" and
// "break-glass.revoke" events (nil: audit.Discard); now is the clock (nil:
// time.Now).
func NewBreakGlass(maxGrants int, sink audit.Sink, now func() time.Time) *BreakGlass {
	if maxGrants <= 0 {
		maxGrants = DefaultMaxBreakGlass
	}
	if sink == nil {
		sink = audit.Discard{}
	}
	if now == nil {
		now = time.Now
	}
	c, err := lru.New[grantKey, time.Time](maxGrants)
	if err != nil {
		panic(err)
	}
	return &BreakGlass{grants: c, sink: sink, now: now}
}

// Grant opens route rt to id until the returned expiry. The identity must
// be signed in with MFA (scope.Identity.HasMFA; devices never qualify), be
// eligible (bound to rt, Bound, and matching one of its
// policy.break_glass.allow rules), and give a reason from
// BreakGlassReasons. A grant is recorded in the audit trail (type
// "break-glass.grant", reason, expiry). Granting again extends the grant.
// Errors: the ErrBreakGlass* values.
func (b *BreakGlass) Grant(ctx context.Context, rt *config.Route, id *scope.Identity, reason string) (time.Time, error) {
	var routeID string
	if rt != nil {
		routeID = rt.ID
	}
	switch {
	case id == nil || id.Issuer == "" || id.Subject == "":
		return time.Time{}, ErrBreakGlassUnauthenticated
	case !id.HasMFA():
		return time.Time{}, ErrBreakGlassMFA
	case !eligible(rt, id):
		b.sink.Record(ctx, audit.Event{Type: "break-glass.refused", RouteID: routeID, Issuer: id.Issuer, Subject: id.Subject, Decision: "deny", Reason: "not-eligible"})
		return time.Time{}, ErrBreakGlassNotEligible
	case !slices.Contains(BreakGlassReasons, reason):
		return time.Time{}, ErrBreakGlassReason
	}
	d := min(rt.Policy.BreakGlass.Duration, MaxBreakGlassDuration)
	now := b.now()
	exp := now.Add(d)
	b.grants.Add(grantKey{routeID, id.Issuer, id.Subject}, exp)
	b.sink.Record(ctx, audit.Event{Time: now, Type: "break-glass.grant", RouteID: routeID, Issuer: id.Issuer, Subject: id.Subject,
		Decision: "allow", Reason: reason, Attrs: map[string]string{"expires": exp.UTC().Format(time.RFC3339)}})
	return exp, nil
}

// eligible reports whether id may break the glass on rt: rt has a
// break_glass section, is bound to id (Bound) and one of the section's
// allow rules matches id.
func eligible(rt *config.Route, id *scope.Identity) bool {
	return rt != nil && rt.Policy != nil && rt.Policy.BreakGlass != nil && Bound(rt, id) && anyRuleMatches(rt.Policy.BreakGlass.Allow, id)
}

// Revoke ends id's grant on routeID (if any) and records it.
func (b *BreakGlass) Revoke(ctx context.Context, routeID string, id *scope.Identity) {
	if id == nil {
		return
	}
	if b.grants.Remove(grantKey{routeID, id.Issuer, id.Subject}) {
		b.sink.Record(ctx, audit.Event{Type: "break-glass.revoke", RouteID: routeID, Issuer: id.Issuer, Subject: id.Subject})
	}
}

// Active reports whether id holds an unexpired grant on routeID.
func (b *BreakGlass) Active(routeID string, id *scope.Identity) bool {
	if id == nil {
		return false
	}
	k := grantKey{routeID, id.Issuer, id.Subject}
	exp, ok := b.grants.Get(k)
	if !ok {
		return false
	}
	if !b.now().Before(exp) {
		b.grants.Remove(k)
		return false
	}
	return true
}

// Decide is Evaluate with break-glass: a request the policy's allow rules
// deny ("role", "group", …, "no-match", "empty-rule") passes with reason
// "break-glass" while id holds an active grant on routeID. Every other
// outcome (no policy, no rules, unauthenticated, provider:route, method,
// mfa-required) is Evaluate's. The gateway should audit every request
// allowed this way.
func (b *BreakGlass) Decide(routeID string, p *config.Policy, id *scope.Identity, method string) scope.Decision {
	return b.decide(routeID, p, id, Evaluate(p, id, method))
}

// decide turns d, a decision of p for id on routeID, into an allow when
// the deny is one a grant may lift and id holds an active grant.
func (b *BreakGlass) decide(routeID string, p *config.Policy, id *scope.Identity, d scope.Decision) scope.Decision {
	if d.Allow {
		return d
	}
	switch d.Reason {
	case scope.ReasonNoPolicy, scope.ReasonNoRules, scope.ReasonUnauthenticated, scope.ReasonRouteProvider, scope.ReasonMethod, scope.ReasonMFARequired:
		return d
	}
	if p == nil || p.Public || !id.HasMFA() || !b.Active(routeID, id) {
		return d
	}
	return scope.Decision{Allow: true, Reason: scope.ReasonBreakGlass}
}

func anyRuleMatches(rules []config.Rule, id *scope.Identity) bool {
	for i := range rules {
		if matchRule(&rules[i], id) == "" {
			return true
		}
	}
	return false
}
