package policies

import (
	"encoding/json"
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
