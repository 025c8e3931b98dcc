package gateway

import (
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/grants"
	"github.com/telegate/telegate/policies"
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

// TestRegression_BreakGlassCanonicalPath: after a break-glass grant the
// browser is sent back only to a path that the request chain itself
// gives to the granted route — the router's canonical reading, with
// letter case, dot segments, encoded separators, trailing dots, Unicode
// look-alikes, ';' and telegate's own endpoints as for a request — and
// otherwise to the route's own canonical prefix. The grant opens that
// route only: a look-alike of it is still refused.
func TestRegression_BreakGlassCanonicalPath(t *testing.T) {
	t.Parallel()
	tg := newTestGateway(t, func(c *config.Config, o *Options) {
		up := c.Routes[0].Upstream
		bg := func() *config.Policy {
			return &config.Policy{
				Allow:      []config.Rule{{Roles: []string{"admin"}}},
				BreakGlass: &config.BreakGlass{Allow: []config.Rule{{Roles: []string{"clinician"}}}, Duration: 30 * time.Minute},
			}
		}
		app := []string{appHost}
		c.Routes = append(c.Routes,
			config.Route{ID: "records", Hosts: app, Path: "/records/", Upstream: up, Policy: bg()},
			// Another route under the granted one's prefix.
			config.Route{ID: "records-audit", Hosts: app, Path: "/records/audit/", Upstream: up, Policy: &config.Policy{Allow: []config.Rule{{Roles: []string{"admin"}}}}},
			config.Route{ID: "scans", Hosts: app, Path: "/scans/", Upstream: up, Policy: bg(), UpstreamCaseInsensitive: true},
			config.Route{ID: "befunde", Hosts: app, Path: "/befunde/ärzte/", Upstream: up, Policy: bg()},
			config.Route{ID: "root", Hosts: app, Path: "/", Upstream: up, Policy: bg()},
		)
		glass, err := policies.NewBreakGlass(policies.BreakGlassOptions{Audit: o.Audit,
			// One clinician is granted once for every row.
			Store: boltGrantsLimited(t, filepath.Join(t.TempDir(), "sessions.db"), grants.Limits{Max: 1000, PerSubject: 1000})})
		if err != nil {
			t.Fatal(err)
		}
		o.BreakGlass = glass
	})
	own := "https://" + appHost
	for _, tc := range []struct{ route, rd, want string }{
		{"records", "/records/chart", "/records/chart"},
		{"records", "/records/chart?tab=1", "/records/chart"},
		{"records", "/records", "/records"},
		{"records", "/records/caf%C3%A9", "/records/caf%C3%A9"},
		// Another route under the prefix, in any spelling.
		{"records", "/records/audit/log", "/records/"},
		{"records", "/records/audit", "/records/"},
		{"records", "/records/AUDIT/log", "/records/"},
		// Letter case.
		{"records", "/RECORDS/chart", "/records/"},
		{"records", "/Records/chart", "/records/"},
		// Dot segments, encoded separators, non-canonical escapes.
		{"records", "/records/./chart", "/records/"},
		{"records", "/records/../admin/", "/records/"},
		{"records", "/records/%2e%2e/admin/", "/records/"},
		{"records", "/records%2Faudit/log", "/records/"},
		{"records", "/records/%2Faudit", "/records/"},
		{"records", "/records/%61udit/log", "/records/"},
		{"records", `/records\audit\log`, "/records/"},
		{"records", "//evil.example/records/", "/records/"},
		{"records", "https://evil.example/records/", "/records/"},
		// Trailing dots and whitespace.
		{"records", "/records./chart", "/records/"},
		{"records", "/records/audit./log", "/records/"},
		{"records", "/records/audit%20/log", "/records/"},
		// Unicode look-alikes.
		{"records", "/%EF%BD%92ecords/chart", "/records/"},
		{"records", "/records/%EF%BD%81udit/log", "/records/"},
		{"records", "/records/audit%E2%80%8B/log", "/records/"},
		{"records", "/records/audi%C5%A3/log", "/records/audi%C5%A3/log"},
		{"records", "/records/chart;jsessionid=1", "/records/"},
		// telegate's own endpoints are no route's.
		{"root", "/.telegate/logout", "/"},
		{"root", "/.Telegate/logout", "/"},
		{"root", "/records/chart", "/"},
		{"root", "/notes", "/notes"},
		// A case-insensitive upstream takes its prefix in any case.
		{"scans", "/SCANS/x.png", "/SCANS/x.png"},
		{"scans", "/scans/x.png", "/scans/x.png"},
		{"scans", "/SCANS./x.png", "/scans/"},
		// A non-ASCII prefix in its canonical form.
		{"befunde", "/befunde/%C3%A4rzte/1", "/befunde/%C3%A4rzte/1"},
		{"befunde", "/befunde/a%CC%88rzte/1", "/befunde/%C3%A4rzte/"},
		{"befunde", "/befunde/%C3%84RZTE/1", "/befunde/%C3%A4rzte/"},
	} {
		resp := breakGlassPost(t, tg, "alice", own, url.Values{"route": {tc.route}, "reason": {"emergency-care"}, "rd": {tc.rd}})
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != tc.want {
			t.Errorf("grant on %s, rd %q: %d Location %q, want 303 to %q", tc.route, tc.rd, resp.StatusCode, resp.Header.Get("Location"), tc.want)
		}
	}

	html := map[string]string{"Accept": "text/html", "Cookie": "tg-test=alice"}
	for _, tc := range []struct {
		path   string
		status int
	}{
		{"/records/chart", http.StatusOK},
		{"/records/audit/log", http.StatusForbidden}, // another route: no grant there
		{"/RECORDS/chart", http.StatusBadRequest},
		{"/records/%2e%2e/audit/log", http.StatusBadRequest},
		{"/records./chart", http.StatusBadRequest},
		{"/records/%EF%BD%81udit/log", http.StatusBadRequest},
		{"/SCANS/x.png", http.StatusOK},
	} {
		if resp, _ := get(t, tg, tc.path, html); resp.StatusCode != tc.status {
			t.Errorf("GET %s after the grants: %d, want %d", tc.path, resp.StatusCode, tc.status)
		}
	}
}
