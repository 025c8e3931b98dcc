package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// signOutConfig protects the app route behind the in-process development
// provider (see runWithDevOP for %[1]…%[7]); %[8]s is the app.
var signOutConfig = runConfig{
	Providers: devOP,
	Sections:  "inspection:\n  enabled: false\n",
	Routes: `  - id: app
    path: /
    upstream: %[8]s
    policy:
      allow:
        - authenticated: true
`,
}.String()

// strictApp is an app page with a sign-out button, under the strictest
// CSP an app may send: its forms post to its own origin only.
const strictApp = `<!doctype html><html><head><title>App</title></head><body>
<h1 id="app">App</h1><form method="post" action="/.telegate/logout"><button id="signout" type="submit">Sign out</button></form>
</body></html>`

// TestRegression_SignOutReachesProvider: in headless Chromium, signing
// out from telegate's own page (GET /.telegate/logout) and from an app's
// button — whose page, like telegate's, says CSP form-action 'self' —
// ends telegate's session and reaches the provider's end-session
// endpoint, the browser comes back to /.telegate/signed-out, and the next
// visit to the protected route signs in at the provider again.
func TestRegression_SignOutReachesProvider(t *testing.T) {
	open := chromium(t)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", "default-src 'none'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
		_, _ = io.WriteString(w, strictApp)
	}))
	t.Cleanup(app.Close)
	d := runWithDevOP(t, signOutConfig, app.URL)
	issuer := providerIssuer(t, d)
	endSession := discoveredEndSession(t, issuer)

	for _, tc := range []struct {
		name    string
		signOut func(p *page, base string)
	}{
		{"sign-out page", func(p *page, base string) {
			p.do(chromedp.Navigate(base + "/.telegate/logout"))
			p.waitFor("the sign-out page", `document.querySelector('[data-testid=confirm-sign-out]') !== null`, 20*time.Second)
			p.do(chromedp.Click(chromedp.CSS(`[data-testid=confirm-sign-out]`)))
		}},
		{"app's button", func(p *page, base string) {
			p.do(chromedp.Click(chromedp.CSS(`#signout`)))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPage(t, open, tc.name)
			var mu sync.Mutex
			var sent []string
			chromedp.Listen(p.ctx, func(ev any) {
				if e, ok := ev.(*network.EventRequestWillBeSent); ok {
					mu.Lock()
					sent = append(sent, e.Request.URL)
					mu.Unlock()
				}
			})
			p.signIn(d.Base()+"/", "patient@demo.test", "/")
			p.waitFor("the app", `document.querySelector('#app') !== null`, 20*time.Second)

			tc.signOut(p, d.Base())
			p.waitFor("the signed-out page", `location.pathname === '/.telegate/signed-out' && document.readyState === 'complete'`, 20*time.Second)
			mu.Lock()
			hit := false
			for _, u := range sent {
				if strings.HasPrefix(u, endSession+"?") {
					hit = true
				}
			}
			mu.Unlock()
			if !hit {
				t.Errorf("the provider's end-session endpoint %s was not reached; requests: %q", endSession, sent)
			}

			// telegate's session is gone: the route sends to the
			// provider's sign-in form again.
			p.do(chromedp.Navigate(d.Base() + "/"))
			p.waitFor("the provider's sign-in form", `document.querySelector('#username') !== null`, 20*time.Second)
		})
	}
}

// providerIssuer is the issuer of the development provider d runs with,
// read from its configuration file.
func providerIssuer(t *testing.T, d *demo) string {
	t.Helper()
	cfg, err := os.ReadFile(configPath(d))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(cfg), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "issuer: "); ok {
			return v
		}
	}
	t.Fatal("no issuer in the configuration")
	return ""
}

// discoveredEndSession is the end_session_endpoint the provider at issuer
// announces (OpenID Connect Discovery 1.0 §3).
func discoveredEndSession(t *testing.T, issuer string) string {
	t.Helper()
	resp, err := http.Get(issuer + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var meta struct {
		EndSession string `json:"end_session_endpoint"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&meta); err != nil || meta.EndSession == "" {
		t.Fatalf("discovery: %v, end_session_endpoint %q", err, meta.EndSession)
	}
	return meta.EndSession
}
