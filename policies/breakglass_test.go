package policies

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/telegate/telegate/audit"
	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/scope"
)

func TestBreakGlass(t *testing.T) {
	t.Parallel()
	clk := newClock()
	path := filepath.Join(t.TempDir(), "audit.log")
	al, err := audit.Open(path, bytes.Repeat([]byte{5}, 32))
	if err != nil {
		t.Fatal(err)
	}
	bg := NewBreakGlass(0, al, clk.now)
	oncology := &config.Policy{Methods: []string{"GET"}, Allow: []config.Rule{{Groups: []string{"oncology"}}}}
	rule := &BreakGlassRule{Allow: []config.Rule{{Roles: []string{"clinician"}}}, Duration: 30 * time.Minute}
	onc := func(rule *BreakGlassRule) *config.Route {
		p := *oncology
		p.BreakGlass = rule
		return &config.Route{ID: "onc", Policy: &p}
	}
	ctx := context.Background()

	doc := clinician() // cardiology, MFA
	if d := bg.Decide("onc", oncology, doc, "GET"); d.Allow || d.Reason != "group" {
		t.Fatalf("before grant: %+v", d)
	}
	// Refusals.
	noMFA := clinician()
	noMFA.AMR = []string{"pwd"}
	for _, tc := range []struct {
		id     *scope.Identity
		rule   *BreakGlassRule
		reason string
		want   error
	}{
		{nil, rule, "emergency-care", ErrBreakGlassUnauthenticated},
		{noMFA, rule, "emergency-care", ErrBreakGlassMFA},
		{patient(), rule, "emergency-care", ErrBreakGlassMFA},
		{doc, nil, "emergency-care", ErrBreakGlassNotEligible},
		{doc, &BreakGlassRule{Allow: []config.Rule{{Roles: []string{"admin"}}}}, "emergency-care", ErrBreakGlassNotEligible},
		{doc, rule, "Patient Jane Doe collapsed", ErrBreakGlassReason},
	} {
		if _, err := bg.Grant(ctx, onc(tc.rule), tc.id, tc.reason); !errors.Is(err, tc.want) {
			t.Errorf("Grant(%v) err = %v, want %v", tc.reason, err, tc.want)
		}
	}
	exp, err := bg.Grant(ctx, onc(rule), doc, "emergency-care")
	if err != nil || !exp.Equal(clk.now().Add(30*time.Minute)) {
		t.Fatalf("Grant = %v, %v", exp, err)
	}
	tests := []struct {
		name   string
		route  string
		p      *config.Policy
		id     *scope.Identity
		method string
		allow  bool
		reason scope.Reason
	}{
		{"granted", "onc", oncology, doc, "GET", true, "break-glass"},
		{"method still applies", "onc", oncology, doc, "DELETE", false, "method"},
		{"other route", "cardio-admin", oncology, doc, "GET", false, "group"},
		{"no policy stays shut", "onc", nil, doc, "GET", false, "no-policy"},
		{"empty policy stays shut", "onc", &config.Policy{}, doc, "GET", false, "no-rules"},
		{"anonymous", "onc", oncology, nil, "GET", false, "unauthenticated"},
		{"same subject other issuer", "onc", oncology, &scope.Identity{Kind: "session", Issuer: "https://evil.test", Subject: doc.Subject, AMR: []string{"mfa"}}, "GET", false, "group"},
	}
	for _, tt := range tests {
		if d := bg.Decide(tt.route, tt.p, tt.id, tt.method); d.Allow != tt.allow || d.Reason != tt.reason {
			t.Errorf("%s: %+v, want allow=%v reason=%q", tt.name, d, tt.allow, tt.reason)
		}
	}
	clk.add(30 * time.Minute)
	if d := bg.Decide("onc", oncology, doc, "GET"); d.Allow {
		t.Fatalf("grant outlived its expiry: %+v", d)
	}
	bg.Grant(ctx, onc(rule), doc, "covering-clinician")
	bg.Revoke(ctx, "onc", doc)
	if bg.Active("onc", doc) {
		t.Fatal("revoked grant still active")
	}
	al.Close()
	b, _ := os.ReadFile(path)
	var types []string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var e audit.Event
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatal(err)
		}
		types = append(types, e.Type+":"+e.Reason)
	}
	want := "break-glass.refused:not-eligible break-glass.refused:not-eligible break-glass.grant:emergency-care break-glass.grant:covering-clinician break-glass.revoke:"
	if strings.Join(types, " ") != want {
		t.Fatalf("audit %q, want %q", strings.Join(types, " "), want)
	}
	if strings.Contains(string(b), "Jane") {
		t.Fatal("free-text reason reached the audit trail")
	}
}

func TestBreakGlassDurationCapped(t *testing.T) {
	t.Parallel()
	clk := newClock()
	bg := NewBreakGlass(1, nil, clk.now)
	exp, err := bg.Grant(context.Background(), bgRoute("r", &BreakGlassRule{Allow: []config.Rule{{Authenticated: true}}, Duration: 1000 * time.Hour}), clinician(), "emergency-care")
	if err != nil || !exp.Equal(clk.now().Add(MaxBreakGlassDuration)) {
		t.Fatalf("Grant = %v, %v; want now+%v", exp, err, MaxBreakGlassDuration)
	}
	other := clinician()
	other.Subject = "c-2"
	bg.Grant(context.Background(), bgRoute("r", &BreakGlassRule{Allow: []config.Rule{{Authenticated: true}}, Duration: config.DefaultBreakGlassDuration}), other, "emergency-care")
	if bg.Active("r", clinician()) || !bg.Active("r", other) {
		t.Fatal("table not bounded to 1 grant")
	}
}

// bgRoute is a route id with a policy whose break_glass section is rule.
func bgRoute(id string, rule *BreakGlassRule) *config.Route {
	return &config.Route{ID: id, Policy: &config.Policy{Allow: []config.Rule{{Roles: []string{"nobody"}}}, BreakGlass: rule}}
}
