package e2e

import (
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const sessionCookie = "__Host-telegate"

// TestDemoSignInPerUser signs each demo user in through the real binary and
// the development OpenID Provider, then walks the demo routes: each is
// allowed or denied by the route's policy, and the upstream sees exactly
// the identity the gateway asserted.
func TestDemoSignInPerUser(t *testing.T) {
	d := startDemo(t, filepath.Join(t.TempDir(), "data"), freePort(t), freePort(t))

	type want struct {
		status int
		route  string
	}
	cases := []struct {
		user  string
		roles []string
		mfa   bool
		paths map[string]want
	}{
		{"clinician@demo.test", []string{"clinician"}, true, map[string]want{
			"/": {200, "home"}, "/clinic/": {200, "clinic"}, "/admin/": {403, ""}, "/public/": {200, "public"},
		}},
		{"patient@demo.test", []string{"patient"}, false, map[string]want{
			"/": {200, "home"}, "/clinic/": {403, ""}, "/admin/": {403, ""}, "/public/": {200, "public"},
		}},
		{"admin@demo.test", []string{"admin"}, true, map[string]want{
			"/": {200, "home"}, "/clinic/": {403, ""}, "/admin/": {200, "admin"}, "/public/": {200, "public"},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.user, func(t *testing.T) {
			b := newBrowser(t, d)
			resp, body := b.signIn(d.Base(), "/", tc.user, "demo")
			if resp.StatusCode != 200 {
				t.Fatalf("after sign-in: %d %s\n%.500s", resp.StatusCode, resp.Request.URL, body)
			}
			if got := resp.Request.URL.String(); got != d.Base()+"/" {
				t.Errorf("after sign-in the browser is at %s, want %s/", got, d.Base())
			}
			v := decodeView(t, body)
			if v.Subject != tc.user || !v.Authenticated {
				t.Errorf("upstream saw subject %q (authenticated %v), want %q", v.Subject, v.Authenticated, tc.user)
			}
			for _, r := range tc.roles {
				if !slices.Contains(v.Roles, r) {
					t.Errorf("upstream saw roles %v, want %q among them", v.Roles, r)
				}
			}
			if v.MFA != tc.mfa {
				t.Errorf("upstream saw mfa=%v, want %v", v.MFA, tc.mfa)
			}
			c := b.cookie(d.Base(), sessionCookie)
			if c == nil {
				t.Fatalf("no %s cookie after sign-in", sessionCookie)
			}
			if len(c.Value) > 200 {
				t.Errorf("session cookie is %d bytes: it should hold only a handle", len(c.Value))
			}
			for path, w := range tc.paths {
				resp, body := b.get(d.Base() + path)
				if resp.StatusCode != w.status {
					t.Errorf("GET %s: %d, want %d\n%.300s", path, resp.StatusCode, w.status, body)
					continue
				}
				if w.status == 200 {
					if v := decodeView(t, body); v.Route != w.route {
						t.Errorf("GET %s: upstream route %q, want %q", path, v.Route, w.route)
					}
				} else if rid := resp.Header.Get("X-Request-Id"); rid == "" || !strings.Contains(string(body), rid) {
					t.Errorf("GET %s: denial page does not carry the request id %q:\n%.300s", path, rid, body)
				}
			}
		})
	}
}

// TestDemoAnonymous: without a session the browser is sent to sign in,
// the public route passes without an assertion, and the admin endpoints
// are only on the admin listener.
func TestDemoAnonymous(t *testing.T) {
	d := startDemo(t, filepath.Join(t.TempDir(), "data"), freePort(t), freePort(t))
	b := newBrowser(t, d)
	b.accept = "text/html"

	resp, _ := b.do(b.noRedirect(), mustRequest(t, "GET", d.Base()+"/clinic/", "text/html"))
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("anonymous GET /clinic/: %d, want 302 to sign in", resp.StatusCode)
	}
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if loc.Path != "/.telegate/login" || loc.Query().Get("rd") != "/clinic/" {
		t.Errorf("anonymous GET /clinic/ redirected to %s", loc)
	}

	b.accept = "application/json"
	resp, body := b.get(d.Base() + "/public/")
	if resp.StatusCode != 200 {
		t.Fatalf("GET /public/: %d", resp.StatusCode)
	}
	if v := decodeView(t, body); v.Authenticated || v.Subject != "" {
		t.Errorf("public route: upstream saw an identity %+v", v)
	}

	for _, p := range []string{"/metrics", "/healthz", "/readyz"} {
		// On the public listener these paths belong to the "/" route: an
		// anonymous caller is sent to sign in, never served admin content.
		resp, body := b.do(b.noRedirect(), mustRequest(t, "GET", d.Base()+p, "text/plain"))
		if resp.StatusCode == 200 || strings.Contains(string(body), "# HELP") {
			t.Errorf("public listener serves %s: %d %.200s", p, resp.StatusCode, body)
		}
		r, err := http.Get(d.AdminURL() + p)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		if r.StatusCode != 200 {
			t.Errorf("admin listener %s: %d", p, r.StatusCode)
		}
	}
	resp, body = b.get(d.Base() + "/.telegate/jwks.json")
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"ES256"`) {
		t.Errorf("JWKS: %d %.200s", resp.StatusCode, body)
	}
}

// TestDemoSignOutRefusesOldCookie: after sign-out the server-side session
// is gone, so replaying the old cookie gets no further than the sign-in
// redirect.
func TestDemoSignOutRefusesOldCookie(t *testing.T) {
	d := startDemo(t, filepath.Join(t.TempDir(), "data"), freePort(t), freePort(t))
	b := newBrowser(t, d)
	if resp, body := b.signIn(d.Base(), "/", "clinician@demo.test", "demo"); resp.StatusCode != 200 {
		t.Fatalf("sign-in: %d %.300s", resp.StatusCode, body)
	}
	old := b.cookie(d.Base(), sessionCookie)
	if old == nil {
		t.Fatal("no session cookie")
	}
	// The admin listener counts the sign-in, the requests by route and
	// status, and their latency.
	mresp, err := http.Get(d.AdminURL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(mresp.Body)
	mresp.Body.Close()
	for _, want := range []string{
		`telegate_control_signins_total{provider="demo",reason="ok",result="allow"} 1`,
		`telegate_edge_requests_total{code="200",route="home"}`,
		`telegate_edge_request_duration_seconds_bucket{route="home"`,
	} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("admin /metrics lacks %s", want)
		}
	}

	resp, body := b.post(d.Base()+"/.telegate/logout", url.Values{}, http.Header{"Origin": {d.Base()}})
	if resp.StatusCode != 200 {
		t.Fatalf("sign-out: %d at %s\n%.300s", resp.StatusCode, resp.Request.URL, body)
	}
	if resp.Request.URL.Path != "/.telegate/signed-out" {
		t.Errorf("after sign-out the browser is at %s", resp.Request.URL)
	}
	if b.cookie(d.Base(), sessionCookie) != nil {
		t.Error("the session cookie was not cleared")
	}

	req := mustRequest(t, "GET", d.Base()+"/", "application/json")
	req.AddCookie(&http.Cookie{Name: sessionCookie, Value: old.Value})
	resp, _ = b.do(b.noRedirect(), req)
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), "/.telegate/login") {
		t.Errorf("old cookie after sign-out: %d Location %q, want 302 to sign in", resp.StatusCode, resp.Header.Get("Location"))
	}
}

// TestDemoRestartKeepsSessions: sessions live in the encrypted store in
// the data directory, so a restart keeps the user signed in.
func TestDemoRestartKeepsSessions(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	port, admin := freePort(t), freePort(t)
	d := startDemo(t, dir, port, admin)
	b := newBrowser(t, d)
	if resp, body := b.signIn(d.Base(), "/", "patient@demo.test", "demo"); resp.StatusCode != 200 {
		t.Fatalf("sign-in: %d %.300s", resp.StatusCode, body)
	}
	d.Stop()

	d = startDemo(t, dir, port, admin)
	resp, body := b.do(b.noRedirect(), mustRequest(t, "GET", d.Base()+"/", "application/json"))
	if resp.StatusCode != 200 {
		t.Fatalf("after restart: %d Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if v := decodeView(t, body); v.Subject != "patient@demo.test" {
		t.Errorf("after restart the upstream saw %q", v.Subject)
	}
}

// TestDemoRefusesNonLoopback: demo mode never listens beyond loopback.
func TestDemoRefusesNonLoopback(t *testing.T) {
	for _, args := range [][]string{
		{"demo", "--listen", "0.0.0.0:8443"},
		{"demo", "--listen", ":8443"},
		{"demo", "--admin", "0.0.0.0:9090"},
	} {
		out, err := runBinary(t, args...)
		if err == nil {
			t.Errorf("%v: exited 0", args)
		}
		if !strings.Contains(out, "loopback only") {
			t.Errorf("%v: output does not say why:\n%s", args, out)
		}
	}
}

func mustRequest(t testing.TB, method, u, accept string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", accept)
	return req
}

// TestDemoInspection: the demo inspects requests with the OWASP Core Rule
// Set, so a classic SQL injection never reaches the upstream.
func TestDemoInspection(t *testing.T) {
	d := startDemo(t, filepath.Join(t.TempDir(), "data"), freePort(t), freePort(t))
	b := newBrowser(t, d)
	resp, body := b.get(d.Base() + "/public/?id=" + url.QueryEscape("1' OR '1'='1"))
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("SQL injection on /public/: %d, want 403\n%.300s", resp.StatusCode, body)
	}
	if rid := resp.Header.Get("X-Request-Id"); rid == "" || !strings.Contains(string(body), rid) {
		t.Errorf("refusal does not carry the request id %q: %.300s", rid, body)
	}
	resp, _ = b.get(d.Base() + "/public/?q=blood+pressure")
	if resp.StatusCode != 200 {
		t.Errorf("ordinary query on /public/: %d", resp.StatusCode)
	}
}

// TestDemoClinicianFindsVisitLobby: a clinician's home page leads to the
// video visit lobby, which opens for them; a patient's does not offer it.
func TestDemoClinicianFindsVisitLobby(t *testing.T) {
	d := startDemo(t, filepath.Join(t.TempDir(), "data"), freePort(t), freePort(t))
	for _, tc := range []struct {
		user string
		link bool
	}{{"clinician@demo.test", true}, {"patient@demo.test", false}} {
		b := newBrowser(t, d)
		b.accept = "text/html"
		resp, body := b.signIn(d.Base(), "/", tc.user, "demo")
		if resp.StatusCode != 200 {
			t.Fatalf("%s: sign-in %d", tc.user, resp.StatusCode)
		}
		if got := strings.Contains(string(body), `href="/.telegate/visits/lobby"`); got != tc.link {
			t.Errorf("%s: home page links to the lobby: %v, want %v", tc.user, got, tc.link)
		}
		if tc.link {
			resp, body := b.get(d.Base() + "/.telegate/visits/lobby")
			if resp.StatusCode != 200 || !strings.Contains(string(body), "invite") {
				t.Errorf("lobby for %s: %d %.200s", tc.user, resp.StatusCode, body)
			}
		}
	}
}
