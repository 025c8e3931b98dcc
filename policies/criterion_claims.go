package policies

import (
	"encoding/json"
	"strconv"

	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/scope"
)

// claimsCriterion (Rule.Claims) admits identities that satisfy every listed
// claim: for each claim name, the identity's claim value contains one of the
// listed values. A claim value may be a string, a boolean ("true"/"false"),
// a JSON number (decimal form) or an array of those (RFC 7519 §4: claim
// values are JSON values). A missing claim, an object value, or a claim
// listed with no values never matches.
var claimsCriterion = criterion{
	name: scope.ReasonClaim,
	set:  func(r *config.Rule) bool { return len(r.Claims) > 0 },
	match: func(r *config.Rule, id *scope.Identity) bool {
		for name, want := range r.Claims {
			if len(want) == 0 || !claimContains(id.Claims[name], want) {
				return false
			}
		}
		return true
	},
}

// claimContains reports whether the claim value v holds one of want.
func claimContains(v any, want []string) bool {
	switch v := v.(type) {
	case []string:
		return anyOf(v, want)
	case []any:
		for _, e := range v {
			if s, ok := claimScalar(e); ok && anyOf([]string{s}, want) {
				return true
			}
		}
		return false
	default:
		s, ok := claimScalar(v)
		return ok && anyOf([]string{s}, want)
	}
}

// claimScalar renders a scalar claim value as text; ok is false for nil,
// objects and arrays.
func claimScalar(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case bool:
		return strconv.FormatBool(v), true
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64), true
	case int:
		return strconv.Itoa(v), true
	case int64:
		return strconv.FormatInt(v, 10), true
	case json.Number:
		return v.String(), true
	default:
		return "", false
	}
}
