package policies

import (
	"fmt"
	"slices"
	"strings"

	"github.com/telegate/telegate/config"
)

// ValidationError is one problem in a route policy. Field is the YAML path
// below the policy key (e.g. "allow[1].claims.email", "methods[0]") so the
// configuration loader can point at the line.
type ValidationError struct {
	Field   string
	Message string
}

// Error implements error: "policy.<field>: <message>".
func (e *ValidationError) Error() string {
	if e.Field == "" {
		return "policy: " + e.Message
	}
	return "policy." + e.Field + ": " + e.Message
}

// knownMethods are the request methods telegate forwards: RFC 9110 §9.3 and
// PATCH (RFC 5789). CONNECT and TRACE are never forwarded.
var knownMethods = []string{"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"}

// Validate checks a route policy for contradictions and mistakes and returns
// every problem found (nil when p is sound). A nil policy is valid: the route
// admits nobody (docs/architecture.md principle 2). Each error is a *ValidationError.
//
// Problems reported: public together with allow rules or require_mfa (a
// public route admits anonymous requests, so both would be ignored); a
// non-public policy with no allow rules (admits nobody: remove the policy or
// add a rule); unknown, lower-case or duplicate methods; an allow rule that
// sets no criterion; empty strings in a list; a claim listed with no values.
// The rules of break_glass.allow are checked like those of allow. It is the
// one place these rules live: config checks only the ids the rules name.
func Validate(p *config.Policy) []error {
	if p == nil {
		return nil
	}
	var errs []error
	add := func(field, format string, args ...any) {
		errs = append(errs, &ValidationError{Field: field, Message: fmt.Sprintf(format, args...)})
	}
	if p.Public && len(p.Allow) > 0 {
		add("public", "a public route admits everyone; remove public or the allow rules")
	}
	if p.Public && p.RequireMFA {
		add("require_mfa", "a public route admits anonymous requests; require_mfa needs public: false")
	}
	if !p.Public && len(p.Allow) == 0 {
		add("allow", "the policy admits nobody; add an allow rule (e.g. authenticated: true) or set public: true")
	}
	for i, m := range p.Methods {
		field := fmt.Sprintf("methods[%d]", i)
		switch {
		case slices.Contains(knownMethods, m):
			if slices.Index(p.Methods, m) != i {
				add(field, "duplicate method %q", m)
			}
		case slices.Contains(knownMethods, strings.ToUpper(m)):
			add(field, "methods are case-sensitive (RFC 9110 §9.1); write %q", strings.ToUpper(m))
		default:
			add(field, "unknown method %q; use one of %s", m, strings.Join(knownMethods, ", "))
		}
	}
	validateRules(add, "allow", p.Allow)
	if p.BreakGlass != nil {
		validateRules(add, "break_glass.allow", p.BreakGlass.Allow)
	}
	slices.SortStableFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	return errs
}

// validateRules checks each rule of a list (policy.allow,
// policy.break_glass.allow) under field.
func validateRules(add func(field, format string, args ...any), field string, rules []config.Rule) {
	for i := range rules {
		r := &rules[i]
		base := fmt.Sprintf("%s[%d]", field, i)
		used := false
		for _, c := range criteria {
			if c.set(r) {
				used = true
			}
		}
		if !used {
			add(base, "the rule sets no criterion and matches nobody; set roles, groups, claims, issuers, subjects, devices, providers or authenticated")
		}
		for name, list := range map[string][]string{
			"roles": r.Roles, "groups": r.Groups, "issuers": r.Issuers, "subjects": r.Subjects,
			"devices": r.Devices, "providers": r.Providers,
		} {
			for j, v := range list {
				if strings.TrimSpace(v) == "" {
					add(fmt.Sprintf("%s.%s[%d]", base, name, j), "empty value")
				}
			}
		}
		for name, vals := range r.Claims {
			field := base + ".claims." + name
			if strings.TrimSpace(name) == "" {
				add(base+".claims", "empty claim name")
			}
			if len(vals) == 0 {
				add(field, "no values listed; the claim would match nobody")
			}
		}
	}
}
