package policies

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/telegate/telegate/audit"
	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/grants"
	"github.com/telegate/telegate/scope"
)

// TestBreakGlassStage: the break-glass stage's parts taken on their own —
// a denied decision stays denied until a grant, the grant form answers
// only same-origin POSTs of a signed-in identity for a route of the
// generation, and the redirect goes where returnTo says; a nil BreakGlass
// offers and grants nothing.
func TestBreakGlassStage(t *testing.T) {
	t.Parallel()
	rt := &config.Route{ID: "chart", Path: "/chart/", Policy: &config.Policy{
		Allow:      []config.Rule{{Roles: []string{"clinician"}}},
		BreakGlass: &config.BreakGlass{Allow: []config.Rule{{Roles: []string{"nurse"}}}, Duration: time.Hour},
	}}
	nurse := &scope.Identity{Kind: "session", Provider: "staff", Issuer: "https://idp.test", Subject: "n1", Roles: []string{"nurse"}, AMR: []string{"mfa"}}
	b := newTestBreakGlass(t, audit.Discard{}, nil, grants.Limits{})
	s := &scope.Scope{RouteID: rt.ID, Route: rt, Identity: nurse, Path: "/chart/7"}
	denied := scope.Decision{Allow: false, Reason: scope.ReasonRole}
	if d := b.Reconsider(context.Background(), s, denied); d.Allow {
		t.Fatalf("allowed before any grant: %+v", d)
	}
	var nilB *BreakGlass
	if d := nilB.Reconsider(context.Background(), s, denied); d != denied {
		t.Fatalf("nil BreakGlass changed the decision: %+v", d)
	}
	post := func(h http.Handler, id *scope.Identity, form url.Values, hdr map[string]string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodPost, BreakGlassPath, strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for k, v := range hdr {
			r.Header.Set(k, v)
		}
		r = r.WithContext(scope.With(r.Context(), &scope.Scope{RequestID: "rid", Identity: id}))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	routes := func(id string) *config.Route {
		if id == rt.ID {
			return rt
		}
		return nil
	}
	var asked string
	h := b.Handler(routes, func(_ string, _ *config.Route, rd string) string { asked = rd; return "/chart/" })
	form := url.Values{"route": {"chart"}, "reason": {"emergency-care"}, "rd": {"/chart/7"}}
	for _, tc := range []struct {
		name string
		id   *scope.Identity
		form url.Values
		hdr  map[string]string
		want int
	}{
		{"anonymous", nil, form, nil, http.StatusUnauthorized},
		{"cross-site", nurse, form, map[string]string{"Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
		{"unknown route", nurse, url.Values{"route": {"other"}, "reason": {"emergency-care"}}, nil, http.StatusForbidden},
		{"unlisted reason", nurse, url.Values{"route": {"chart"}, "reason": {"curiosity"}}, nil, http.StatusBadRequest},
		{"granted", nurse, form, nil, http.StatusSeeOther},
	} {
		w := post(h, tc.id, tc.form, tc.hdr)
		if w.Code != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, w.Code, tc.want)
		}
	}
	if asked != "/chart/7" {
		t.Errorf("returnTo asked for %q", asked)
	}
	if d := b.Reconsider(context.Background(), s, denied); !d.Allow {
		t.Errorf("denied after the grant: %+v", d)
	}
	if w := post(nilB.Handler(routes, func(string, *config.Route, string) string { return "/" }), nurse, form, nil); w.Code != http.StatusForbidden {
		t.Errorf("nil BreakGlass granted: %d", w.Code)
	}
	r := httptest.NewRequest(http.MethodGet, "/chart/7", nil)
	r.Header.Set("Accept", "text/html")
	if nilB.Offer(httptest.NewRecorder(), r, s) {
		t.Error("nil BreakGlass offered")
	}
}
