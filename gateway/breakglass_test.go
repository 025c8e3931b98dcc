package gateway

import (
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/telegate/telegate/scope"
)

func init() {
	// A clinician signed in with a password only.
	testIdentities["bob"] = &scope.Identity{Kind: "session", Provider: "staff", Issuer: "https://idp.example.test", Subject: "bob",
		Roles: []string{"clinician"}, AMR: []string{"pwd"}, SessionID: "sess-bob"}
}

// newBreakGlassGateway adds route "records" (admins; clinicians may break
// the glass for 30 minutes), with grants in a bbolt store of its own.
func newBreakGlassGateway(t *testing.T) *testGateway {
	t.Helper()
	tg, _ := newBreakGlassNode(t, bgNode{store: boltGrants(t, filepath.Join(t.TempDir(), "sessions.db"))})
	return tg
}

func breakGlassPost(t *testing.T, tg *testGateway, user, origin string, form url.Values) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "https://"+appHost+BreakGlassPath, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", origin)
	req.AddCookie(&http.Cookie{Name: "tg-test", Value: user})
	resp, err := tg.client(tg.ts.Listener.Addr().String()).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// TestBreakGlass: an eligible clinician signed in with MFA is offered
// emergency access on a denied route, grants it with a listed reason, and
// then passes; every step is audited. Nobody else gets through.
func TestBreakGlass(t *testing.T) {
	t.Parallel()
	tg := newBreakGlassGateway(t)
	own := "https://" + appHost
	html := map[string]string{"Accept": "text/html", "Cookie": "tg-test=alice"}

	resp, body := get(t, tg, "/records/chart", html)
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "Break the glass") || !strings.Contains(body, `value="records"`) {
		t.Fatalf("denied eligible clinician: %d, want 403 with a break-glass form:\n%s", resp.StatusCode, body)
	}
	if resp, body := get(t, tg, "/records/chart", map[string]string{"Accept": "text/html", "Cookie": "tg-test=bob"}); resp.StatusCode != 403 || strings.Contains(body, "Break the glass") {
		t.Errorf("clinician without MFA: %d, offered break-glass: %v", resp.StatusCode, strings.Contains(body, "Break the glass"))
	}

	refusals := []struct {
		name, user, origin string
		form               url.Values
		status             int
	}{
		{"cross-site", "alice", "https://evil.example", url.Values{"route": {"records"}, "reason": {"emergency-care"}}, http.StatusForbidden},
		{"free-text reason", "alice", own, url.Values{"route": {"records"}, "reason": {"patient Jane Doe collapsed"}}, http.StatusBadRequest},
		{"no MFA", "bob", own, url.Values{"route": {"records"}, "reason": {"emergency-care"}}, http.StatusForbidden},
		{"route without break-glass", "alice", own, url.Values{"route": {"admin"}, "reason": {"emergency-care"}}, http.StatusForbidden},
		{"unknown route", "alice", own, url.Values{"route": {"nope"}, "reason": {"emergency-care"}}, http.StatusForbidden},
		{"anonymous", "", own, url.Values{"route": {"records"}, "reason": {"emergency-care"}}, http.StatusUnauthorized},
	}
	for _, tc := range refusals {
		if resp := breakGlassPost(t, tg, tc.user, tc.origin, tc.form); resp.StatusCode != tc.status {
			t.Errorf("%s: %d, want %d", tc.name, resp.StatusCode, tc.status)
		}
	}
	if resp, _ := get(t, tg, "/records/chart", html); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("before any grant: %d, want 403", resp.StatusCode)
	}

	resp = breakGlassPost(t, tg, "alice", own, url.Values{"route": {"records"}, "reason": {"emergency-care"}, "rd": {"//evil.example/records/"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/records/" {
		t.Fatalf("grant: %d Location %q, want 303 to /records/ (never elsewhere)", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, _ = get(t, tg, "/records/chart", html)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("after the grant: %d, want 200", resp.StatusCode)
	}
	if seen, ok := tg.rec.last(); !ok || seen.RequestURI != "/records/chart" {
		t.Errorf("upstream saw %+v", seen)
	}
	ev, ok := tg.audit.find(resp.Header.Get(RequestIDHeader))
	if !ok || ev.Decision != "allow" || ev.Reason != string(scope.ReasonBreakGlass) {
		t.Errorf("audit record of the request: %+v, want allow by break-glass", ev)
	}
	granted := false
	tg.audit.mu.Lock()
	for _, e := range tg.audit.ev {
		granted = granted || (e.Type == "break-glass.grant" && e.Subject == "alice" && e.Reason == "emergency-care")
	}
	tg.audit.mu.Unlock()
	if !granted {
		t.Error("no break-glass.grant audit record for alice")
	}
	if resp, _ := get(t, tg, "/records/chart", map[string]string{"Cookie": "tg-test=bob"}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("another clinician after alice's grant: %d, want 403", resp.StatusCode)
	}
}
