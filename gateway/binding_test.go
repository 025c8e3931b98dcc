package gateway

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/policies"
	"github.com/telegate/telegate/scope"
)

// bindingIdentity is one caller of the binding matrix: a session, bearer
// token or device from provider (issuer iss) that every rule of the matrix
// would admit on its own.
func bindingIdentity(kind, provider, iss string) *scope.Identity {
	return &scope.Identity{Kind: kind, Provider: provider, Issuer: iss, Subject: "u-1",
		Roles: []string{"clinician"}, Groups: []string{"cardiology"}, AMR: []string{"pwd", "otp"},
		Claims: map[string]any{"email": "u-1@hospital.example"}, SessionID: "sess-" + provider}
}

func init() {
	testIdentities["bind-staff"] = bindingIdentity("session", "staff", "https://staff.idp.test")
	testIdentities["bind-partner"] = bindingIdentity("session", "partners", "https://partners.idp.test")
	testIdentities["bind-bearer-corp"] = bindingIdentity("bearer", "corp-api", "https://corp.idp.test")
	testIdentities["bind-bearer-other"] = bindingIdentity("bearer", "other-api", "https://other.idp.test")
	testIdentities["bind-device-carts"] = &scope.Identity{Kind: "device", Provider: "carts", Issuer: "device:carts", Subject: "cart-7", Roles: []string{"device"}}
	testIdentities["bind-device-other"] = &scope.Identity{Kind: "device", Provider: "other-ca", Issuer: "device:other-ca", Subject: "cart-7", Roles: []string{"device"}}
}

// TestRegression_RouteProvidersBindEveryCriterion: a route's providers
// (and its bearer and client_cert lists) bind every criterion of its
// policy. A session from a provider the route does not name used to pass
// its authenticated, roles, groups and claims rules; now every criterion
// kind denies it with 403 "provider:route" and the upstream never sees the
// request, while the same identity from a listed provider passes.
// Break-glass does not lift the refusal.
func TestRegression_RouteProvidersBindEveryCriterion(t *testing.T) {
	t.Parallel()
	both := []string{"https://staff.idp.test", "https://partners.idp.test"}
	kinds := []struct {
		name   string
		policy config.Policy
	}{
		{"authenticated", config.Policy{Allow: []config.Rule{{Authenticated: true}}}},
		{"roles", config.Policy{Allow: []config.Rule{{Roles: []string{"clinician"}}}}},
		{"groups", config.Policy{Allow: []config.Rule{{Groups: []string{"cardiology"}}}}},
		{"claims", config.Policy{Allow: []config.Rule{{Claims: map[string][]string{"email": {"u-1@hospital.example"}}}}}},
		{"issuers", config.Policy{Allow: []config.Rule{{Issuers: both}}}},
		{"subjects", config.Policy{Allow: []config.Rule{{Subjects: []string{"u-1"}}}}},
		{"rule-providers", config.Policy{Allow: []config.Rule{{Providers: []string{"staff", "partners"}}}}},
		{"require-mfa", config.Policy{RequireMFA: true, Allow: []config.Rule{{Authenticated: true}}}},
		{"methods", config.Policy{Methods: []string{"GET"}, Allow: []config.Rule{{Roles: []string{"clinician"}}}}},
		{"break-glass", config.Policy{Allow: []config.Rule{{Roles: []string{"admin"}}},
			BreakGlass: &config.BreakGlass{Allow: []config.Rule{{Authenticated: true}}, Duration: time.Hour}}},
	}
	var bg *policies.BreakGlass
	tg := newTestGateway(t, func(c *config.Config, o *Options) {
		up := c.Routes[0].Upstream
		for _, k := range kinds {
			p := k.policy
			c.Routes = append(c.Routes, config.Route{ID: "bind-" + k.name, Hosts: []string{appHost}, Path: "/bind-" + k.name + "/",
				Upstream: up, Providers: []string{"staff"}, Policy: &p})
		}
		c.Routes = append(c.Routes,
			config.Route{ID: "bind-bearer", Hosts: []string{appHost}, Path: "/bind-bearer/", Upstream: up, API: true,
				Providers: []string{"staff"}, Bearer: []string{"corp-api"}, Policy: &config.Policy{Allow: []config.Rule{{Roles: []string{"clinician"}}}}},
			config.Route{ID: "bind-device", Hosts: []string{appHost}, Path: "/bind-device/", Upstream: up,
				ClientCert: []string{"carts"}, Policy: &config.Policy{Allow: []config.Rule{{Devices: []string{"cart-7"}}}}},
			config.Route{ID: "bind-device-session", Hosts: []string{appHost}, Path: "/bind-device-session/", Upstream: up,
				ClientCert: []string{"carts"}, Policy: &config.Policy{Allow: []config.Rule{{Authenticated: true}}}},
		)
		bg = newBreakGlass(t, bgNode{store: boltGrants(t, filepath.Join(t.TempDir(), "sessions.db"))}, o.Audit)
		o.BreakGlass = bg
	})
	// The outsider holds a break-glass grant on the break-glass route: it
	// is still refused there.
	rt := tg.g.current().routeByID("bind-break-glass")
	if _, err := bg.Grant(t.Context(), rt, testIdentities["bind-partner"], "emergency-care"); err == nil {
		t.Fatal("break-glass granted to an identity from a provider the route does not name")
	}

	type call struct {
		path, user string
		allow      bool
	}
	var calls []call
	for _, k := range kinds {
		p := "/bind-" + k.name + "/x"
		calls = append(calls, call{p, "bind-partner", false})
		if k.name != "break-glass" {
			calls = append(calls, call{p, "bind-staff", true})
		}
	}
	calls = append(calls,
		call{"/bind-bearer/x", "bind-bearer-other", false}, call{"/bind-bearer/x", "bind-partner", false}, call{"/bind-bearer/x", "bind-bearer-corp", true}, call{"/bind-bearer/x", "bind-staff", true},
		call{"/bind-device/x", "bind-device-other", false}, call{"/bind-device/x", "bind-device-carts", true},
		call{"/bind-device-session/x", "bind-staff", false},
	)
	for _, c := range calls {
		before := len(tg.rec.all())
		resp, body := get(t, tg, c.path, map[string]string{"Cookie": "tg-test=" + c.user, "Accept": "text/html"})
		reached := len(tg.rec.all()) > before
		ev, _ := tg.audit.find(resp.Header.Get(RequestIDHeader))
		if c.allow {
			if resp.StatusCode != http.StatusOK || !reached {
				t.Errorf("%s as %s: %d (upstream reached %v), want 200", c.path, c.user, resp.StatusCode, reached)
			}
			continue
		}
		if c.path == "/bind-break-glass/x" {
			// A denied route's break-glass offer is not made to an outsider either.
			if strings.Contains(body, "Break the glass") {
				t.Errorf("%s as %s: offered break-glass", c.path, c.user)
			}
		}
		if resp.StatusCode != http.StatusForbidden || reached || ev.Reason != string(scope.ReasonRouteProvider) ||
			!strings.Contains(body, "does not accept the account you signed in with") || !strings.Contains(body, resp.Header.Get(RequestIDHeader)) {
			t.Errorf("%s as %s: %d, audit reason %q, upstream reached %v, want 403 provider:route and the page with the request id:\n%.300s",
				c.path, c.user, resp.StatusCode, ev.Reason, reached, body)
		}
	}
	// The insider is refused by the rules there, and offered break-glass.
	if resp, body := get(t, tg, "/bind-break-glass/x", map[string]string{"Cookie": "tg-test=bind-staff", "Accept": "text/html"}); resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "Break the glass") {
		t.Errorf("break-glass route as bind-staff: %d, offered %v; want 403 with the offer", resp.StatusCode, strings.Contains(body, "Break the glass"))
	}
	// API clients get the reason in the JSON shape.
	resp, body := get(t, tg, "/bind-roles/x", map[string]string{"Cookie": "tg-test=bind-partner", "Accept": "application/json"})
	var pb struct{ Reason string }
	if err := json.Unmarshal([]byte(body), &pb); err != nil || resp.StatusCode != http.StatusForbidden || pb.Reason != "provider:route" {
		t.Errorf("JSON refusal: %d %q", resp.StatusCode, body)
	}
}
