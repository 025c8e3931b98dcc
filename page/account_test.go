package page

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/telegate/telegate/scope"
)

// TestRegression_PageNamesWrongAccount: an own page names the signed-in
// account — its display name, else its email, else its username — and
// offers sign-out and switch account (both forms POSTing to the sign-out
// endpoint, the second with switch=1, coming back to the page's path),
// only for a sign-in session; anonymous callers, bearer tokens and devices
// are named by nobody. No id, session id, subject or other claim is
// written, in either language.
func TestRegression_PageNamesWrongAccount(t *testing.T) {
	const secret = "eyJhbGciOiJSUzI1NiJ9.secret-token"
	claims := func(kv ...string) map[string]any {
		m := map[string]any{"id_token": secret, "sid": "provider-sid-42", "groups": []any{"oncology"}}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	for _, tc := range []struct {
		name string
		id   *scope.Identity
		want string // "" names nobody
	}{
		{"display name", &scope.Identity{Kind: "session", Subject: "sub-7", SessionID: "sess-7", Claims: claims("name", "Ana García", "email", "ana@clinic.example")}, "Ana García"},
		{"email only", &scope.Identity{Kind: "session", Subject: "sub-8", SessionID: "sess-8", Claims: claims("email", "bo@clinic.example")}, "bo@clinic.example"},
		{"username only", &scope.Identity{Kind: "session", Subject: "sub-9", SessionID: "sess-9", Claims: claims("preferred_username", "cy")}, "cy"},
		{"no name claim", &scope.Identity{Kind: "session", Subject: "sub-10", SessionID: "sess-10", Claims: claims()}, "your account"},
		{"hostile name", &scope.Identity{Kind: "session", Subject: "sub-11", SessionID: "sess-11", Claims: claims("name", `<img src=x onerror=alert(1)>`)}, "&lt;img src=x onerror=alert(1)&gt;"},
		{"anonymous", nil, ""},
		{"bearer", &scope.Identity{Kind: "bearer", Subject: "svc", Claims: claims("name", "Scheduler")}, ""},
		{"device", &scope.Identity{Kind: "device", Subject: "cart-3", Claims: claims("name", "Cart 3")}, ""},
	} {
		for _, status := range []int{http.StatusForbidden, http.StatusNotFound} {
			for _, lang := range []string{"en", "es"} {
				r := httptest.NewRequest("GET", "/clinic/chart?id=1", nil)
				r.Header.Set("Accept", "text/html")
				r.Header.Set("Accept-Language", lang)
				r = r.WithContext(scope.With(r.Context(), &scope.Scope{RequestID: "rid-1", Path: "/clinic/chart", Identity: tc.id}))
				w := httptest.NewRecorder()
				Error(w, r, status, "", "")
				body := w.Body.String()
				named := strings.Contains(body, `data-testid="signed-in-as"`)
				if tc.want == "" {
					if named || strings.Contains(body, "/.telegate/logout") {
						t.Errorf("%s %d %s: names someone: %s", tc.name, status, lang, body)
					}
				} else {
					who := T(lang, "Signed in as %s", tc.want)
					if tc.want == "your account" {
						who = T(lang, "Signed in as %s", T(lang, "your account"))
					}
					if !named || !strings.Contains(body, who) {
						t.Errorf("%s %d %s: does not say %q: %s", tc.name, status, lang, who, body)
					}
					if strings.Count(body, `action="/.telegate/logout"`) != 2 || !strings.Contains(body, `name="switch" value="1"`) ||
						!strings.Contains(body, `name="rd" value="/clinic/chart"`) || !strings.Contains(body, T(lang, "Switch account")) {
						t.Errorf("%s %d %s: no sign-out and switch account: %s", tc.name, status, lang, body)
					}
				}
				for _, leak := range []string{secret, "provider-sid-42", "sess-", "sub-", "oncology", "onerror=alert(1)>"} {
					if strings.Contains(body, leak) {
						t.Errorf("%s %d %s: page shows %q", tc.name, status, lang, leak)
					}
				}
				if !strings.Contains(body, "<code>rid-1</code>") || !strings.Contains(body, `<html lang="`+lang+`">`) {
					t.Errorf("%s %d %s: no request id or language: %s", tc.name, status, lang, body)
				}
			}
		}
	}
}

// TestRegression_ErrorPageSaysWhatToDo: every error status telegate
// answers says, in each language, what happened and what to do, in
// plain words (never the bare status text), with the request id; a text
// the catalogue lacks is marked lang="en" on a Spanish page.
func TestRegression_ErrorPageSaysWhatToDo(t *testing.T) {
	for _, status := range []int{400, 401, 403, 404, 405, 413, 429, 500, 502, 503, 504} {
		for _, lang := range Languages {
			r := httptest.NewRequest("GET", "/x", nil)
			r.Header.Set("Accept-Language", lang)
			w := httptest.NewRecorder()
			Error(w, r, status, "", "")
			body := w.Body.String()
			if !strings.Contains(body, "<h1>"+T(lang, title(status))+"</h1>") || !strings.Contains(body, T(lang, nextFor(status))) ||
				!strings.Contains(body, T(lang, "Request id:")) || strings.Contains(body, "<h1>"+http.StatusText(status)+"</h1>") {
				t.Errorf("%d %s: %s", status, lang, body)
			}
		}
	}
	r := httptest.NewRequest("GET", "/x", nil)
	r.Header.Set("Accept-Language", "es")
	w := httptest.NewRecorder()
	Error(w, r, 400, "A sentence not in the catalogue.", "")
	if !strings.Contains(w.Body.String(), `<p class="message" lang="en">A sentence not in the catalogue.</p>`) {
		t.Errorf("untranslated text not marked: %s", w.Body.String())
	}
}
