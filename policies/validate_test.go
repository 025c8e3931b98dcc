package policies

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/telegate/telegate/config"
)

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		p    *config.Policy
		want []string // substrings of the errors, in order
	}{
		{"nil ok", nil, nil},
		{"public ok", &config.Policy{Public: true, Methods: []string{"GET"}}, nil},
		{"rules ok", &config.Policy{RequireMFA: true, Allow: []config.Rule{{Roles: []string{"clinician"}}}}, nil},
		{"public with rules", &config.Policy{Public: true, Allow: []config.Rule{{Roles: []string{"a"}}}}, []string{"policy.public:"}},
		{"public with mfa", &config.Policy{Public: true, RequireMFA: true}, []string{"policy.require_mfa:"}},
		{"admits nobody", &config.Policy{}, []string{"policy.allow: the policy admits nobody"}},
		{"unknown method", &config.Policy{Public: true, Methods: []string{"BREW"}}, []string{`policy.methods[0]: unknown method "BREW"`}},
		{"lower-case method", &config.Policy{Public: true, Methods: []string{"get"}}, []string{`write "GET"`}},
		{"trace refused", &config.Policy{Public: true, Methods: []string{"TRACE"}}, []string{"unknown method"}},
		{"duplicate method", &config.Policy{Public: true, Methods: []string{"GET", "GET"}}, []string{"policy.methods[1]: duplicate"}},
		{"empty rule", &config.Policy{Allow: []config.Rule{{}}}, []string{"policy.allow[0]: the rule sets no criterion"}},
		{"empty value", &config.Policy{Allow: []config.Rule{{Roles: []string{" "}}}}, []string{"policy.allow[0].roles[0]: empty value"}},
		{"claim without values", &config.Policy{Allow: []config.Rule{{Claims: map[string][]string{"ward": nil}}}}, []string{"policy.allow[0].claims.ward: no values"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			errs := Validate(tt.p)
			if len(errs) != len(tt.want) {
				t.Fatalf("Validate = %v, want %d errors %q", errs, len(tt.want), tt.want)
			}
			for i, err := range errs {
				var ve *ValidationError
				if !errors.As(err, &ve) {
					t.Errorf("error %d is %T, want *ValidationError", i, err)
				}
				if !strings.Contains(err.Error(), tt.want[i]) {
					t.Errorf("error %d = %q, want it to contain %q", i, err, tt.want[i])
				}
			}
		})
	}
}

// TestRegressionEmptyAllowRuleRefused: a rule with no criteria must be an
// error, not an open door, in allow and in break_glass.allow alike (the
// rule lives here; config checks only the ids rules name).
func TestRegressionEmptyAllowRuleRefused(t *testing.T) {
	t.Parallel()
	p := &config.Policy{
		Allow:      []config.Rule{{}},
		BreakGlass: &config.BreakGlass{Allow: []config.Rule{{}}, Duration: config.DefaultBreakGlassDuration},
	}
	var fields []string
	for _, err := range Validate(p) {
		fields = append(fields, err.(*ValidationError).Field)
	}
	if !slices.Contains(fields, "allow[0]") || !slices.Contains(fields, "break_glass.allow[0]") {
		t.Fatalf("Validate = %v, want allow[0] and break_glass.allow[0] refused", fields)
	}
}
