package policies

import (
	"testing"

	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/scope"
)

func clinician() *scope.Identity {
	return &scope.Identity{
		Kind: "session", Provider: "staff", Issuer: "https://idp.hospital.test", Subject: "c-1",
		Roles: []string{"clinician"}, Groups: []string{"cardiology"}, AMR: []string{"pwd", "otp"},
		Claims: map[string]any{"email_verified": true, "department": "cardiology"},
	}
}

func patient() *scope.Identity {
	return &scope.Identity{
		Kind: "session", Provider: "patients", Issuer: "https://patients.test", Subject: "p-1",
		Roles: []string{"patient"}, AMR: []string{"pwd"},
	}
}

func device() *scope.Identity {
	return &scope.Identity{Kind: "device", Provider: "devices", Issuer: "device:devices", Subject: "cart-7", Roles: []string{"device"}}
}

// evaluateCase is one case of the evaluator's table; reason is the wire
// string the audit trail records.
type evaluateCase struct {
	name   string
	p      *config.Policy
	id     *scope.Identity
	method string
	allow  bool
	reason scope.Reason
}

func evaluateCases() []evaluateCase {
	clinicians := &config.Policy{Allow: []config.Rule{{Roles: []string{"clinician"}}}}
	return []evaluateCase{
		{"nil policy denies", nil, clinician(), "GET", false, "no-policy"},
		{"nil policy denies anonymous", nil, nil, "GET", false, "no-policy"},
		{"empty policy denies", &config.Policy{}, clinician(), "GET", false, "no-rules"},
		{"public allows anonymous", &config.Policy{Public: true}, nil, "GET", true, "public"},
		{"public methods apply", &config.Policy{Public: true, Methods: []string{"GET"}}, nil, "POST", false, "method"},
		{"public HEAD where GET", &config.Policy{Public: true, Methods: []string{"GET"}}, nil, "HEAD", true, "public"},
		{"anonymous unauthenticated", clinicians, nil, "GET", false, "unauthenticated"},
		{"role allows", clinicians, clinician(), "GET", true, "rule:0"},
		{"role denies patient", clinicians, patient(), "GET", false, "role"},
		{"method denied", &config.Policy{Methods: []string{"GET"}, Allow: clinicians.Allow}, clinician(), "DELETE", false, "method"},
		{"HEAD where GET", &config.Policy{Methods: []string{"GET"}, Allow: clinicians.Allow}, clinician(), "HEAD", true, "rule:0"},
		{"HEAD not where only POST", &config.Policy{Methods: []string{"POST"}, Allow: clinicians.Allow}, clinician(), "HEAD", false, "method"},
		{"method case-sensitive", &config.Policy{Methods: []string{"GET"}, Allow: clinicians.Allow}, clinician(), "get", false, "method"},
		{"mfa satisfied", &config.Policy{RequireMFA: true, Allow: []config.Rule{{Authenticated: true}}}, clinician(), "GET", true, "rule:0"},
		{"mfa missing", &config.Policy{RequireMFA: true, Allow: []config.Rule{{Authenticated: true}}}, patient(), "GET", false, "mfa-required"},
		{"missing role named before missing mfa", &config.Policy{RequireMFA: true, Allow: clinicians.Allow}, patient(), "GET", false, "role"},
		{"mfa device never", &config.Policy{RequireMFA: true, Allow: []config.Rule{{Devices: []string{"cart-7"}}}}, device(), "GET", false, "mfa-required"},
		{"second rule", &config.Policy{Allow: []config.Rule{{Roles: []string{"admin"}}, {Roles: []string{"patient"}}}}, patient(), "GET", true, "rule:1"},
		{"empty rule matches nobody", &config.Policy{Allow: []config.Rule{{}}}, clinician(), "GET", false, "empty-rule"},
		{"all rules fail on role", &config.Policy{Allow: []config.Rule{{Roles: []string{"admin"}}, {Roles: []string{"nurse"}}}}, patient(), "GET", false, "role"},
		{"rules fail differently", &config.Policy{Allow: []config.Rule{{Roles: []string{"admin"}}, {Groups: []string{"x"}}}}, patient(), "GET", false, "no-match"},
		{"every field must match", &config.Policy{Allow: []config.Rule{{Roles: []string{"clinician"}, Groups: []string{"oncology"}}}}, clinician(), "GET", false, "group"},
		{"all fields match", &config.Policy{Allow: []config.Rule{{Roles: []string{"clinician"}, Groups: []string{"cardiology"}, Providers: []string{"staff"}}}}, clinician(), "GET", true, "rule:0"},
		{"authenticated any", &config.Policy{Allow: []config.Rule{{Authenticated: true}}}, patient(), "POST", true, "rule:0"},
		{"authenticated without subject", &config.Policy{Allow: []config.Rule{{Authenticated: true}}}, &scope.Identity{Kind: "session"}, "GET", false, "authenticated"},
		{"device allowed", &config.Policy{Allow: []config.Rule{{Devices: []string{"cart-7"}}}}, device(), "GET", true, "rule:0"},
		{"user with device subject is not a device", &config.Policy{Allow: []config.Rule{{Devices: []string{"c-1"}}}}, clinician(), "GET", false, "device"},
		{"issuer denies", &config.Policy{Allow: []config.Rule{{Issuers: []string{"https://other.test"}}}}, clinician(), "GET", false, "issuer"},
		{"subject denies", &config.Policy{Allow: []config.Rule{{Subjects: []string{"c-2"}}}}, clinician(), "GET", false, "subject"},
		{"provider denies", &config.Policy{Allow: []config.Rule{{Providers: []string{"patients"}}}}, clinician(), "GET", false, "provider"},
		{"claim denies", &config.Policy{Allow: []config.Rule{{Claims: map[string][]string{"department": {"oncology"}}}}}, clinician(), "GET", false, "claim"},
		{"rule past the cached indexes", &config.Policy{Allow: append(make([]config.Rule, 70, 71), config.Rule{Authenticated: true})}, patient(), "GET", true, "rule:70"},
	}
}

func TestEvaluate(t *testing.T) {
	t.Parallel()
	for _, tt := range evaluateCases() {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := Evaluate(tt.p, tt.id, tt.method)
			if got.Allow != tt.allow || got.Reason != tt.reason {
				t.Fatalf("Evaluate = %+v, want allow=%v reason=%q", got, tt.allow, tt.reason)
			}
		})
	}
}

// TestEvaluateReasonsDeclared: every reason the evaluator gives, over its
// whole table, is one of scope's declared Reason constants or a
// scope.RuleReason — never a string made up on the spot — and every
// criterion names a declared reason.
func TestEvaluateReasonsDeclared(t *testing.T) {
	t.Parallel()
	for _, tt := range evaluateCases() {
		got := Evaluate(tt.p, tt.id, tt.method).Reason
		if !got.Declared() {
			t.Errorf("%s: reason %q is not a declared scope.Reason", tt.name, got)
		}
		if _, isRule := got.Rule(); isRule != tt.allow && got != scope.ReasonPublic {
			t.Errorf("%s: reason %q with allow=%v", tt.name, got, tt.allow)
		}
	}
	for _, c := range criteria {
		if !c.name.Declared() {
			t.Errorf("criterion %q is not a declared scope.Reason", c.name)
		}
	}
}

// TestEvaluateEmptyIdentityDenied: a zero identity (authenticated but with
// nothing filled in) must not slip through any criterion.
func TestEvaluateEmptyIdentityDenied(t *testing.T) {
	t.Parallel()
	rules := []config.Rule{
		{Roles: []string{""}}, {Groups: []string{""}}, {Issuers: []string{""}}, {Subjects: []string{""}},
		{Devices: []string{""}}, {Providers: []string{""}}, {Claims: map[string][]string{"x": {""}}},
		{Claims: map[string][]string{"x": nil}},
	}
	for i, r := range rules {
		p := &config.Policy{Allow: []config.Rule{r}}
		if d := Evaluate(p, &scope.Identity{}, "GET"); d.Allow {
			t.Errorf("rule %d %+v admitted an empty identity: %+v", i, r, d)
		}
	}
}

func BenchmarkEvaluate(b *testing.B) {
	p := &config.Policy{RequireMFA: true, Methods: []string{"GET", "POST"}, Allow: []config.Rule{
		{Roles: []string{"admin"}},
		{Roles: []string{"clinician"}, Groups: []string{"cardiology"}, Claims: map[string][]string{"department": {"cardiology"}}},
	}}
	id := clinician()
	b.ReportAllocs()
	for b.Loop() {
		if d := Evaluate(p, id, "GET"); !d.Allow {
			b.Fatal(d)
		}
	}
}
