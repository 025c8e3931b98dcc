package policies

import (
	"slices"

	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/scope"
)

// Evaluate decides whether id may pass a route with policy p (docs/architecture.md
// principle 2: deny by default). id is nil for an anonymous request; method
// is the request method exactly as received (methods are case-sensitive,
// RFC 9110 §9.1).
//
// The order of checks is fixed:
//  1. nil policy: deny "no-policy".
//  2. Public: allow "public" when the method is permitted, else deny "method".
//  3. anonymous: deny "unauthenticated" (the gateway then challenges).
//     With Authorise, an identity the route is not bound to (Bound):
//     deny "provider:route".
//  4. method not in Methods (when set; HEAD passes where GET does,
//     RFC 9110 §9.3.2): deny "method".
//  5. RequireMFA and no second factor (RFC 8176 amr, scope.Identity.HasMFA):
//     deny "mfa-required".
//  6. allow "rule:N" for the first rule of Allow that matches: every
//     criterion the rule sets must match, and a rule that sets none matches
//     nobody.
//
// Every reason is one of scope's Reason constants or scope.RuleReason(N).
// A denied identity reports the criterion every rule failed on
// (scope.ReasonRole, scope.ReasonGroup, …) when they all failed on the
// same one, and scope.ReasonNoMatch otherwise.
//
// Evaluate never panics on partial identities and never returns Allow with
// an empty Reason.
func Evaluate(p *config.Policy, id *scope.Identity, method string) scope.Decision {
	return evaluate(p, nil, id, method)
}

// evaluate is Evaluate, and with rt set Authorise: the route's binding
// (Bound) is checked right after the anonymous check.
func evaluate(p *config.Policy, rt *config.Route, id *scope.Identity, method string) scope.Decision {
	if p == nil {
		return deny(scope.ReasonNoPolicy)
	}
	if p.Public {
		if !methodAllowed(p.Methods, method) {
			return deny(scope.ReasonMethod)
		}
		return scope.Decision{Allow: true, Reason: scope.ReasonPublic}
	}
	if id == nil {
		return deny(scope.ReasonUnauthenticated)
	}
	if rt != nil && !Bound(rt, id) {
		return deny(scope.ReasonRouteProvider)
	}
	if !methodAllowed(p.Methods, method) {
		return deny(scope.ReasonMethod)
	}
	if len(p.Allow) == 0 {
		return deny(scope.ReasonNoRules)
	}
	var reason scope.Reason
	for i := range p.Allow {
		failed := matchRule(&p.Allow[i], id)
		if failed == "" {
			// MFA is checked once a rule admits the identity, so that a
			// refusal names what is really missing (the role, or else the
			// second factor).
			if p.RequireMFA && !id.HasMFA() {
				return deny(scope.ReasonMFARequired)
			}
			return scope.Decision{Allow: true, Reason: scope.RuleReason(i)}
		}
		switch reason {
		case "":
			reason = failed
		case failed:
		default:
			reason = scope.ReasonNoMatch
		}
	}
	return deny(reason)
}

func deny(reason scope.Reason) scope.Decision {
	return scope.Decision{Allow: false, Reason: reason}
}

// methodAllowed reports whether method passes the Methods list: an empty
// list admits every method; HEAD is admitted wherever GET is.
func methodAllowed(methods []string, method string) bool {
	if len(methods) == 0 {
		return true
	}
	if slices.Contains(methods, method) {
		return true
	}
	return method == "HEAD" && slices.Contains(methods, "GET")
}

// criterion is one condition of an allow rule. set reports whether the rule
// uses it; match whether the identity satisfies it. Each criterion lives in
// its own criterion_*.go file.
type criterion struct {
	name  scope.Reason
	set   func(r *config.Rule) bool
	match func(r *config.Rule, id *scope.Identity) bool
}

// criteria in evaluation order (cheapest first).
var criteria = []criterion{
	authenticatedCriterion,
	providersCriterion,
	issuersCriterion,
	subjectsCriterion,
	devicesCriterion,
	rolesCriterion,
	groupsCriterion,
	claimsCriterion,
}

// matchRule returns "" when the rule admits id, else the name of the first
// criterion that failed (scope.ReasonEmptyRule for a rule that sets none).
func matchRule(r *config.Rule, id *scope.Identity) scope.Reason {
	if id == nil {
		return scope.ReasonUnauthenticated
	}
	used := false
	for _, c := range criteria {
		if !c.set(r) {
			continue
		}
		used = true
		if !c.match(r, id) {
			return c.name
		}
	}
	if !used {
		return scope.ReasonEmptyRule
	}
	return ""
}

// anyOf reports whether have and want share a value (exact, case-sensitive
// comparison).
func anyOf(have, want []string) bool {
	for _, w := range want {
		if slices.Contains(have, w) {
			return true
		}
	}
	return false
}
