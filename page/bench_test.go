package page

import (
	"net/http/httptest"
	"testing"

	"github.com/telegate/telegate/scope"
)

// BenchmarkErrorPage writes a 404 page, the answer of every unknown path,
// to a signed-in browser preferring Spanish.
func BenchmarkErrorPage(b *testing.B) {
	r := httptest.NewRequest("GET", "/no-such-page", nil)
	r.Header.Set("Accept", "text/html")
	r.Header.Set("Accept-Language", "es-MX,es;q=0.9,en;q=0.5")
	r = r.WithContext(scope.With(r.Context(), &scope.Scope{RequestID: "0123456789abcdef0123456789abcdef", Path: "/no-such-page",
		Identity: &scope.Identity{Kind: "session", Subject: "s", Claims: map[string]any{"name": "Ana García"}}}))
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		Error(w, r, 404, "Not found.", "")
	}
}
