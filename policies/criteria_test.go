package policies

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/scope"
)

func TestCriteria(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		c    criterion
		rule config.Rule
		id   *scope.Identity
		want bool
	}{
		{"roles any-of", rolesCriterion, config.Rule{Roles: []string{"admin", "clinician"}}, clinician(), true},
		{"roles none", rolesCriterion, config.Rule{Roles: []string{"admin"}}, clinician(), false},
		{"roles case-sensitive", rolesCriterion, config.Rule{Roles: []string{"Clinician"}}, clinician(), false},
		{"groups any-of", groupsCriterion, config.Rule{Groups: []string{"x", "cardiology"}}, clinician(), true},
		{"groups none", groupsCriterion, config.Rule{Groups: []string{"x"}}, patient(), false},
		{"issuer", issuersCriterion, config.Rule{Issuers: []string{"https://idp.hospital.test"}}, clinician(), true},
		{"issuer trailing slash differs", issuersCriterion, config.Rule{Issuers: []string{"https://idp.hospital.test/"}}, clinician(), false},
		{"subject", subjectsCriterion, config.Rule{Subjects: []string{"p-1"}}, patient(), true},
		{"subject other", subjectsCriterion, config.Rule{Subjects: []string{"p-2"}}, patient(), false},
		{"device", devicesCriterion, config.Rule{Devices: []string{"cart-7"}}, device(), true},
		{"device needs kind", devicesCriterion, config.Rule{Devices: []string{"p-1"}}, patient(), false},
		{"provider", providersCriterion, config.Rule{Providers: []string{"patients"}}, patient(), true},
		{"provider other", providersCriterion, config.Rule{Providers: []string{"staff"}}, patient(), false},
		{"authenticated", authenticatedCriterion, config.Rule{Authenticated: true}, patient(), true},
		{"authenticated empty identity", authenticatedCriterion, config.Rule{Authenticated: true}, &scope.Identity{}, false},
		{"claim string", claimsCriterion, config.Rule{Claims: map[string][]string{"department": {"cardiology"}}}, clinician(), true},
		{"claim bool", claimsCriterion, config.Rule{Claims: map[string][]string{"email_verified": {"true"}}}, clinician(), true},
		{"claim missing", claimsCriterion, config.Rule{Claims: map[string][]string{"ward": {"a"}}}, clinician(), false},
		{"claim all keys must match", claimsCriterion, config.Rule{Claims: map[string][]string{"department": {"cardiology"}, "email_verified": {"false"}}}, clinician(), false},
		{"claim []string", claimsCriterion, config.Rule{Claims: map[string][]string{"wards": {"b"}}}, withClaim("wards", []string{"a", "b"}), true},
		{"claim []any", claimsCriterion, config.Rule{Claims: map[string][]string{"wards": {"b"}}}, withClaim("wards", []any{"a", "b"}), true},
		{"claim []any none", claimsCriterion, config.Rule{Claims: map[string][]string{"wards": {"c"}}}, withClaim("wards", []any{"a", map[string]any{"c": 1}}), false},
		{"claim number", claimsCriterion, config.Rule{Claims: map[string][]string{"level": {"3"}}}, withClaim("level", float64(3)), true},
		{"claim json.Number", claimsCriterion, config.Rule{Claims: map[string][]string{"level": {"3"}}}, withClaim("level", json.Number("3")), true},
		{"claim object never", claimsCriterion, config.Rule{Claims: map[string][]string{"addr": {"x"}}}, withClaim("addr", map[string]any{"x": "x"}), false},
		{"claim nil never", claimsCriterion, config.Rule{Claims: map[string][]string{"addr": {""}}}, withClaim("addr", nil), false},
		{"claim no values never", claimsCriterion, config.Rule{Claims: map[string][]string{"department": {}}}, clinician(), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if !tt.c.set(&tt.rule) {
				t.Fatalf("criterion %s not set by %+v", tt.c.name, tt.rule)
			}
			if got := tt.c.match(&tt.rule, tt.id); got != tt.want {
				t.Fatalf("%s match = %v, want %v", tt.c.name, got, tt.want)
			}
		})
	}
}

func withClaim(name string, v any) *scope.Identity {
	id := patient()
	id.Claims = map[string]any{name: v}
	return id
}

// FuzzEvaluateClaims feeds claim sets as an OpenID Provider could send them
// (any JSON) to a claims rule: Evaluate must not panic, and must allow only
// when the claim holds the wanted value as a string, boolean, number or an
// array element.
func FuzzEvaluateClaims(f *testing.F) {
	f.Add(`{"ward":"icu"}`, "icu")
	f.Add(`{"ward":["a","icu"]}`, "icu")
	f.Add(`{"ward":{"icu":true}}`, "icu")
	f.Add(`{"ward":true}`, "true")
	f.Add(`{"ward":1e3}`, "1000")
	f.Add(`{"ward":null}`, "")
	f.Add(`{"ward":[["icu"]]}`, "icu")
	f.Fuzz(func(t *testing.T, claims, want string) {
		var m map[string]any
		if json.Unmarshal([]byte(claims), &m) != nil {
			return
		}
		p := &config.Policy{Allow: []config.Rule{{Claims: map[string][]string{"ward": {want}}}}}
		id := &scope.Identity{Kind: "session", Issuer: "i", Subject: "s", Claims: m}
		d := Evaluate(p, id, "GET")
		if !d.Allow {
			return
		}
		ok := false
		var elems []any
		switch v := m["ward"].(type) {
		case []any:
			elems = v
		default:
			elems = []any{v}
		}
		for _, e := range elems {
			b, _ := json.Marshal(e)
			var s string
			if json.Unmarshal(b, &s) == nil && s == want {
				ok = true
			}
			if _, isStr := e.(string); !isStr && e != nil && string(b) == want {
				ok = true
			}
			if f, isNum := e.(float64); isNum && want != "" && strings.TrimSpace(want) == want {
				var w float64
				if json.Unmarshal([]byte(want), &w) == nil && w == f {
					ok = true
				}
			}
		}
		if !ok {
			t.Fatalf("claims %s allowed for %q", claims, want)
		}
	})
}
