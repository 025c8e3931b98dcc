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
	"github.com/telegate/telegate/auth"
	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/grants"
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
	bg := newTestBreakGlass(t, al, clk.now, grants.Limits{})
	oncology := &config.Policy{Methods: []string{"GET"}, Allow: []config.Rule{{Groups: []string{"oncology"}}}}
	rule := &BreakGlassRule{Allow: []config.Rule{{Roles: []string{"clinician"}}}, Duration: 30 * time.Minute}
	onc := func(rule *BreakGlassRule) *config.Route {
		p := *oncology
		p.BreakGlass = rule
		return &config.Route{ID: "onc", Policy: &p}
	}
	ctx := context.Background()

	doc := clinician() // cardiology, MFA
	if d := bg.Decide(ctx, "onc", oncology, doc, "GET"); d.Allow || d.Reason != "group" {
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
	g, err := bg.Grant(ctx, onc(rule), doc, "emergency-care")
	if err != nil || !g.Expires.Equal(clk.now().Add(30*time.Minute)) {
		t.Fatalf("Grant = %+v, %v", g, err)
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
		if d := bg.Decide(ctx, tt.route, tt.p, tt.id, tt.method); d.Allow != tt.allow || d.Reason != tt.reason {
			t.Errorf("%s: %+v, want allow=%v reason=%q", tt.name, d, tt.allow, tt.reason)
		}
	}
	clk.add(30 * time.Minute)
	if d := bg.Decide(ctx, "onc", oncology, doc, "GET"); d.Allow {
		t.Fatalf("grant outlived its expiry: %+v", d)
	}
	if _, err := bg.Grant(ctx, onc(rule), doc, "covering-clinician"); err != nil || !bg.Active(ctx, "onc", doc) {
		t.Fatalf("a new grant after expiry: %v", err)
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
		if e.Purpose != audit.PurposeBTG {
			t.Errorf("%s record with purpose %q, want %q", e.Type, e.Purpose, audit.PurposeBTG)
		}
	}
	want := "break-glass.refused:not-eligible break-glass.refused:not-eligible break-glass.grant:emergency-care break-glass.grant:covering-clinician"
	if strings.Join(types, " ") != want {
		t.Fatalf("audit %q, want %q", strings.Join(types, " "), want)
	}
	// The whole phrase: a random grant id may hold any four letters.
	if strings.Contains(string(b), "Jane Doe") || strings.Contains(string(b), "collapsed") {
		t.Fatal("free-text reason reached the audit trail")
	}
}

func TestBreakGlassDurationCapped(t *testing.T) {
	t.Parallel()
	clk := newClock()
	ctx := context.Background()
	bg := newTestBreakGlass(t, nil, clk.now, grants.Limits{Max: 1, PerSubject: 1})
	g, err := bg.Grant(ctx, bgRoute("r", &BreakGlassRule{Allow: []config.Rule{{Authenticated: true}}, Duration: 1000 * time.Hour}), clinician(), "emergency-care")
	if err != nil || !g.Expires.Equal(clk.now().Add(MaxBreakGlassDuration)) {
		t.Fatalf("Grant = %+v, %v; want now+%v", g, err, MaxBreakGlassDuration)
	}
	// Bounded: one subject's second unexpired grant, and any grant past
	// the store's cap while nothing is reviewed, are refused.
	rule := &BreakGlassRule{Allow: []config.Rule{{Authenticated: true}}, Duration: config.DefaultBreakGlassDuration}
	if _, err := bg.Grant(ctx, bgRoute("r2", rule), clinician(), "emergency-care"); !errors.Is(err, ErrBreakGlassLimit) {
		t.Errorf("second grant of one subject: %v, want ErrBreakGlassLimit", err)
	}
	other := clinician()
	other.Subject = "c-2"
	if _, err := bg.Grant(ctx, bgRoute("r", rule), other, "emergency-care"); !errors.Is(err, ErrBreakGlassUnavailable) {
		t.Errorf("past the store's cap: %v, want ErrBreakGlassUnavailable", err)
	}
	if !bg.Active(ctx, "r", clinician()) || bg.Active(ctx, "r", other) {
		t.Fatal("the first grant must stand and no other be made")
	}
}

// newTestBreakGlass is a BreakGlass on a bbolt grant store in the test's
// directory.
func newTestBreakGlass(t *testing.T, sink audit.Sink, now func() time.Time, l grants.Limits) *BreakGlass {
	t.Helper()
	st, err := auth.OpenBoltStore(filepath.Join(t.TempDir(), "sessions.db"), bytes.Repeat([]byte{7}, 32), 10)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	b, err := NewBreakGlass(BreakGlassOptions{Store: st.Grants(l), Audit: sink, Now: now, ReviewerRoles: []string{"privacy-officer"}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// bgRoute is a route id with a policy whose break_glass section is rule.
func bgRoute(id string, rule *BreakGlassRule) *config.Route {
	return &config.Route{ID: id, Policy: &config.Policy{Allow: []config.Rule{{Roles: []string{"nobody"}}}, BreakGlass: rule}}
}
