package policies

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/scope"
)

// TestLimitStages: the rate-limit stages refuse past the bucket with 429,
// Retry-After and the reason in the scope (for the audit record), take
// telegate's own endpoints' limits under OwnRouteID, and let anonymous
// requests past the per-identity stage.
func TestLimitStages(t *testing.T) {
	t.Parallel()
	cfg := &config.Config{
		RateLimits: config.RateLimits{PerClient: config.RateLimit{Rate: 1, Burst: 2}, PerSubject: config.RateLimit{Rate: 1, Burst: 1}},
		Routes:     []config.Route{{ID: "chart", RateLimit: &config.RateLimit{Rate: 1, Burst: 1}}},
	}
	limits := NewRouteLimits(cfg)
	l := NewLimiter(100, nil)
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	do := func(h http.Handler, s *scope.Scope) (*httptest.ResponseRecorder, *scope.Scope) {
		r := httptest.NewRequest(http.MethodGet, "/x", nil)
		r = r.WithContext(scope.With(r.Context(), s))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w, s
	}
	client := LimitClient(l, limits)(ok)
	addr := netip.MustParseAddr("192.0.2.7")
	// The route's own burst (1), then refused.
	if w, _ := do(client, &scope.Scope{RouteID: "chart", ClientAddr: addr}); w.Code != http.StatusNoContent {
		t.Fatalf("first: %d", w.Code)
	}
	w, s := do(client, &scope.Scope{RouteID: "chart", ClientAddr: addr})
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") != "1" || s.Decision.Reason != scope.ReasonRateClient || s.Decision.Allow {
		t.Fatalf("past the burst: %d %q %+v", w.Code, w.Header().Get("Retry-After"), s.Decision)
	}
	// Own endpoints: rate_limits (burst 2), a bucket of their own.
	for i := range 2 {
		if w, _ := do(client, &scope.Scope{ClientAddr: addr}); w.Code != http.StatusNoContent {
			t.Fatalf("own endpoints %d: %d", i, w.Code)
		}
	}
	if w, _ := do(client, &scope.Scope{ClientAddr: addr}); w.Code != http.StatusTooManyRequests {
		t.Fatalf("own endpoints past the burst: %d", w.Code)
	}
	// Back-channel logout: a bucket of its own under
	// rate_limits.backchannel_logout (here the default, burst 50), even
	// though the other own endpoints are used up.
	bc := &scope.Scope{ClientAddr: addr, Path: config.BackchannelLogoutPrefix + "staff"}
	for i := range config.DefaultBackchannelLogoutBurst {
		if w, _ := do(client, bc); w.Code != http.StatusNoContent {
			t.Fatalf("back-channel logout %d: %d", i, w.Code)
		}
	}
	if w, _ := do(client, bc); w.Code != http.StatusTooManyRequests {
		t.Fatalf("back-channel logout past the burst: %d", w.Code)
	}
	if w, _ := do(client, &scope.Scope{ClientAddr: netip.MustParseAddr("192.0.2.8"), Path: bc.Path}); w.Code != http.StatusNoContent {
		t.Fatalf("back-channel logout from another source: %d", w.Code)
	}
	subject := LimitSubject(l, limits)(ok)
	id := &scope.Identity{Issuer: "https://idp.test", Subject: "nurse-1"}
	if w, _ := do(subject, &scope.Scope{RouteID: "chart", Identity: id}); w.Code != http.StatusNoContent {
		t.Fatalf("subject first: %d", w.Code)
	}
	if w, s := do(subject, &scope.Scope{RouteID: "chart", Identity: id}); w.Code != http.StatusTooManyRequests || s.Decision.Reason != scope.ReasonRateSubject {
		t.Fatalf("subject past the burst: %d %+v", w.Code, s.Decision)
	}
	for range 3 {
		if w, _ := do(subject, &scope.Scope{RouteID: "chart"}); w.Code != http.StatusNoContent {
			t.Fatalf("anonymous: %d", w.Code)
		}
	}
}
