package policies

import (
	"testing"

	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/scope"
)

// TestAuthoriseBindsTheRoute: the route's providers, bearer and client_cert
// lists come before the method and every rule; a public route still
// admits everyone.
func TestAuthoriseBindsTheRoute(t *testing.T) {
	t.Parallel()
	anyone := &config.Policy{Allow: []config.Rule{{Authenticated: true}}}
	staffOnly := &config.Route{ID: "chart", Providers: []string{"staff"}, Policy: anyone}
	api := &config.Route{ID: "api", API: true, Bearer: []string{"corp"}, Policy: anyone}
	carts := &config.Route{ID: "carts", ClientCert: []string{"devices"}, Policy: &config.Policy{Allow: []config.Rule{{Devices: []string{"cart-7"}}}}}
	bearer := &scope.Identity{Kind: "bearer", Provider: "corp", Issuer: "https://corp.test", Subject: "svc"}
	forged := device()
	forged.Issuer = "device:other"
	for _, tc := range []struct {
		name   string
		rt     *config.Route
		id     *scope.Identity
		method string
		reason scope.Reason
	}{
		{"listed provider", staffOnly, clinician(), "GET", "rule:0"},
		{"unlisted provider", staffOnly, patient(), "GET", "provider:route"},
		{"unlisted provider before the method", &config.Route{Providers: []string{"staff"}, Policy: &config.Policy{Methods: []string{"GET"}, Allow: anyone.Allow}}, patient(), "POST", "provider:route"},
		{"no provider", staffOnly, &scope.Identity{Kind: "session", Issuer: "https://idp.hospital.test", Subject: "c-1"}, "GET", "provider:route"},
		{"any provider when none listed", &config.Route{Policy: anyone}, patient(), "GET", "rule:0"},
		{"listed bearer issuer", api, bearer, "GET", "rule:0"},
		{"bearer on a route without bearer", staffOnly, &scope.Identity{Kind: "bearer", Provider: "staff", Issuer: "https://idp.hospital.test", Subject: "svc"}, "GET", "provider:route"},
		{"listed CA", carts, device(), "GET", "rule:0"},
		{"device issuer not its CA", carts, forged, "GET", "provider:route"},
		{"session on a device route", carts, clinician(), "GET", "provider:route"},
		{"device on a session route", staffOnly, device(), "GET", "provider:route"},
		{"unknown kind", staffOnly, &scope.Identity{Kind: "other", Provider: "staff", Issuer: "x", Subject: "y"}, "GET", "provider:route"},
		{"public admits an outsider", &config.Route{Providers: []string{"staff"}, Policy: &config.Policy{Public: true}}, patient(), "GET", "public"},
		{"anonymous is challenged", staffOnly, nil, "GET", "unauthenticated"},
		{"nil route", nil, clinician(), "GET", "no-policy"},
	} {
		if d := Authorise(tc.rt, tc.id, tc.method); d.Reason != tc.reason || d.Allow != (tc.reason == "public" || tc.reason == "rule:0") {
			t.Errorf("%s: %+v, want %q", tc.name, d, tc.reason)
		}
	}
}
