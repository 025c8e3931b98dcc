package policies

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"time"

	"github.com/telegate/telegate/audit"
	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/grants"
	"github.com/telegate/telegate/scope"
)

// Break-glass (emergency access) lets an eligible, MFA-signed-in clinician
// open a route their rules would deny, for a short time, with a stated
// reason, and leaves a loud audit record. It never opens a route without a
// policy, never waives MFA, a method restriction or sign-in.

// MaxBreakGlassDuration caps a grant; the duration itself defaults in
// config (config.DefaultBreakGlassDuration).
const MaxBreakGlassDuration = 12 * time.Hour

// BreakGlassReasons are the justifications a grant may give: a fixed list
// so that the audit trail holds no free text (docs/security-model.md,
// "Audit and logs", says what it does hold).
var BreakGlassReasons = []string{"emergency-care", "covering-clinician", "continuity-of-care", "patient-request"}

// BreakGlassOutcomes are the outcomes a review may record.
var BreakGlassOutcomes = []string{"justified", "unjustified", "needs-follow-up"}

// MaxReviewNoteBytes caps a review's note (UTF-8, no control characters
// but newlines and tabs).
const MaxReviewNoteBytes = 2000

// Errors from BreakGlass.Grant and BreakGlass.Review.
var (
	ErrBreakGlassUnauthenticated = errors.New("break-glass: sign in first")
	ErrBreakGlassMFA             = errors.New("break-glass: sign in with a second factor first")
	ErrBreakGlassNotEligible     = errors.New("break-glass: not permitted on this route")
	ErrBreakGlassReason          = errors.New("break-glass: choose one of the listed reasons")
	// ErrBreakGlassLimit: the person holds break_glass.max_grants_per_subject
	// unexpired grants.
	ErrBreakGlassLimit = errors.New("break-glass: too many active grants; wait for one to end")
	// ErrBreakGlassUnavailable: the grant store is full of unreviewed
	// grants or cannot be reached; nothing is granted (fail closed).
	ErrBreakGlassUnavailable = errors.New("break-glass: grants cannot be recorded now")
	// ErrBreakGlassNotReviewer: the identity holds none of
	// break_glass.reviewer_roles, or reviews their own grant.
	ErrBreakGlassNotReviewer = errors.New("break-glass: not permitted to review this use")
	ErrBreakGlassOutcome     = errors.New("break-glass: choose one of the listed outcomes")
	ErrBreakGlassNote        = errors.New("break-glass: the note is too long or holds control characters")
	// ErrBreakGlassUnknown and ErrBreakGlassReviewed: Review of a grant
	// that does not exist, or that has its review already.
	ErrBreakGlassUnknown  = errors.New("break-glass: no such use")
	ErrBreakGlassReviewed = errors.New("break-glass: this use has been reviewed already")
)

// BreakGlassRule says who may break the glass on one route and for how
// long: the route policy's break_glass section.
type BreakGlassRule = config.BreakGlass

// BreakGlassOptions configure NewBreakGlass.
type BreakGlassOptions struct {
	// Store keeps the grants (auth.Service.Grants: the session store).
	// Required.
	Store grants.Store
	// Audit receives "break-glass.grant", "break-glass.refused",
	// "break-glass.notify" and "break-glass.review" events (nil:
	// audit.Discard).
	Audit audit.Sink
	// Webhook, when set, is told of every grant (NewWebhook).
	Webhook *Webhook
	// ReviewerRoles are break_glass.reviewer_roles.
	ReviewerRoles []string
	// Node names this node in the grants it makes.
	Node string
	// Logger receives store and delivery failures (never the grant's
	// person); nil: slog.Default().
	Logger *slog.Logger
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// BreakGlass grants emergency access and keeps the grants in a GrantStore,
// so that every node sharing the store honours them and they outlive a
// restart; each grant is a use that stays unreviewed until a reviewer
// records an outcome (Review). Safe for concurrent use.
type BreakGlass struct {
	store     grants.Store
	sink      audit.Sink
	hook      *Webhook
	reviewers []string
	node      string
	log       *slog.Logger
	now       func() time.Time
}

// NewBreakGlass returns the break-glass stage on o.Store.
func NewBreakGlass(o BreakGlassOptions) (*BreakGlass, error) {
	if o.Store == nil {
		return nil, errors.New("break-glass: no grant store")
	}
	b := &BreakGlass{store: o.Store, sink: o.Audit, hook: o.Webhook, reviewers: slices.Clone(o.ReviewerRoles), node: o.Node, log: o.Logger, now: o.Now}
	if b.sink == nil {
		b.sink = audit.Discard{}
	}
	if b.log == nil {
		b.log = slog.Default()
	}
	if b.now == nil {
		b.now = time.Now
	}
	if b.hook != nil {
		b.hook.start(b.sink, b.log)
	}
	return b, nil
}

// Close stops the webhook's deliveries, waiting for the attempts under
// way (each bounded by the webhook's timeout); those still pending stay
// in its outbox for the next start.
func (b *BreakGlass) Close() error {
	if b != nil && b.hook != nil {
		b.hook.close()
	}
	return nil
}

// Grant opens route rt to id and returns the grant. The identity must
// be signed in with MFA (scope.Identity.HasMFA; devices never qualify), be
// eligible (bound to rt, Bound, and matching one of its
// policy.break_glass.allow rules), and give a reason from
// BreakGlassReasons. The grant is stored (every node sharing the store
// honours it until it expires), recorded in the audit trail (type
// "break-glass.grant", purpose BTG, the grant id, reason, expiry) and sent
// to the webhook. Granting again makes another grant (another use to
// review). Errors: the ErrBreakGlass* values.
func (b *BreakGlass) Grant(ctx context.Context, rt *config.Route, id *scope.Identity, reason string) (*grants.Grant, error) {
	var routeID string
	if rt != nil {
		routeID = rt.ID
	}
	switch {
	case id == nil || id.Issuer == "" || id.Subject == "":
		return nil, ErrBreakGlassUnauthenticated
	case !id.HasMFA():
		return nil, ErrBreakGlassMFA
	case !eligible(rt, id):
		b.record(ctx, audit.Event{Type: "break-glass.refused", RouteID: routeID, Issuer: id.Issuer, Subject: id.Subject, Decision: "deny", Reason: "not-eligible", Purpose: audit.PurposeBTG})
		return nil, ErrBreakGlassNotEligible
	case !slices.Contains(BreakGlassReasons, reason):
		return nil, ErrBreakGlassReason
	}
	now := b.now()
	g := &grants.Grant{
		ID: grants.NewID(), Route: routeID, Provider: id.Provider, Issuer: id.Issuer, Subject: id.Subject,
		Reason: reason, Node: b.node, Created: now, Expires: now.Add(breakGlassGrantTTL(rt.Policy.BreakGlass)),
	}
	if err := b.store.Create(ctx, g, now); err != nil {
		refusal, out := "store-failed", ErrBreakGlassUnavailable
		switch {
		case errors.Is(err, grants.ErrSubjectLimit):
			refusal, out = "subject-limit", ErrBreakGlassLimit
		case errors.Is(err, grants.ErrStoreFull):
			refusal = "store-full"
			b.log.Error("break-glass grant refused: the grant store is full of unreviewed grants; review them (telegate breakglass list)", "route", routeID)
		default:
			b.log.Error("break-glass grant refused: the grant store failed", "route", routeID, "error", err)
		}
		b.record(ctx, audit.Event{Time: now, Type: "break-glass.refused", RouteID: routeID, Issuer: id.Issuer, Subject: id.Subject, Decision: "deny", Reason: refusal, Purpose: audit.PurposeBTG})
		return nil, out
	}
	b.record(ctx, audit.Event{Time: now, Type: "break-glass.grant", RouteID: routeID, Issuer: id.Issuer, Subject: id.Subject,
		Decision: "allow", Reason: reason, Purpose: audit.PurposeBTG,
		Attrs: map[string]string{"grant_id": g.ID, "expires": g.Expires.UTC().Format(time.RFC3339)}})
	if b.hook != nil {
		b.hook.notify(g, b.sink, b.log)
	}
	return g, nil
}

// record writes e to the audit trail with the request id of ctx's scope
// (the grant or review request), so a record of break-glass names the
// request that made it.
func (b *BreakGlass) record(ctx context.Context, e audit.Event) {
	if s := scope.From(ctx); s != nil && e.RequestID == "" {
		e.RequestID = s.RequestID
	}
	b.sink.Record(ctx, e)
}

// eligible reports whether id may break the glass on rt: rt has a
// break_glass section, is bound to id (Bound) and one of the section's
// allow rules matches id.
func eligible(rt *config.Route, id *scope.Identity) bool {
	return rt != nil && rt.Policy != nil && rt.Policy.BreakGlass != nil && Bound(rt, id) && anyRuleMatches(rt.Policy.BreakGlass.Allow, id)
}

// Active reports whether id holds an unexpired grant on routeID.
func (b *BreakGlass) Active(ctx context.Context, routeID string, id *scope.Identity) bool {
	return b.active(ctx, routeID, id) != nil
}

// active is id's unexpired grant on routeID, or nil. A store that fails
// answers nil (fail closed), and the failure is logged.
func (b *BreakGlass) active(ctx context.Context, routeID string, id *scope.Identity) *grants.Grant {
	if id == nil {
		return nil
	}
	g, err := b.store.Active(ctx, routeID, id.Issuer, id.Subject, b.now())
	if err != nil {
		if !errors.Is(err, grants.ErrNotFound) {
			b.log.Error("break-glass grant lookup failed; access denied", "route", routeID, "error", err)
		}
		return nil
	}
	return g
}

// Decide is Evaluate with break-glass: a request the policy's allow rules
// deny ("role", "group", …, "no-match", "empty-rule") passes with reason
// "break-glass" while id holds an active grant on routeID. Every other
// outcome (no policy, no rules, unauthenticated, provider:route, method,
// mfa-required) is Evaluate's. The gateway should audit every request
// allowed this way.
func (b *BreakGlass) Decide(ctx context.Context, routeID string, p *config.Policy, id *scope.Identity, method string) scope.Decision {
	return b.decide(ctx, routeID, p, id, Evaluate(p, id, method))
}

// decide turns d, a decision of p for id on routeID, into an allow when
// the deny is one a grant may lift and id holds an active grant.
func (b *BreakGlass) decide(ctx context.Context, routeID string, p *config.Policy, id *scope.Identity, d scope.Decision) scope.Decision {
	if d.Allow {
		return d
	}
	switch d.Reason {
	case scope.ReasonNoPolicy, scope.ReasonNoRules, scope.ReasonUnauthenticated, scope.ReasonRouteProvider, scope.ReasonMethod, scope.ReasonMFARequired:
		return d
	}
	if p == nil || p.Public || !id.HasMFA() {
		return d
	}
	g := b.active(ctx, routeID, id)
	if g == nil {
		return d
	}
	return scope.Decision{Allow: true, Reason: scope.ReasonBreakGlass, Until: g.Expires}
}

func anyRuleMatches(rules []config.Rule, id *scope.Identity) bool {
	for i := range rules {
		if matchRule(&rules[i], id) == "" {
			return true
		}
	}
	return false
}
