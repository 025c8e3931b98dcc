package auth

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/page"
	"github.com/telegate/telegate/scope"
)

func TestSignInSucceeds(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.op.set(func(op *testOP) { op.groups = []string{"clinicians", "nurses"} })
	resp := h.signIn("/app/chart?id=7")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, bodyOf(resp))
	}
	if got := resp.Request.URL.RequestURI(); got != "/app/chart?id=7" {
		t.Errorf("landed on %q, want the return path", got)
	}
	if resp.Header.Get("X-Subject") != "alice" || resp.Header.Get("X-Kind") != "session" {
		t.Errorf("identity %q/%q", resp.Header.Get("X-Kind"), resp.Header.Get("X-Subject"))
	}
	if got := resp.Header.Get("X-Roles"); got != "clinician,staff" {
		t.Errorf("roles %q, want clinician,staff", got)
	}
	if h.sessionCookie() == "" {
		t.Fatal("no session cookie")
	}
	// The authorization request carried PKCE S256 and the token request the
	// verifier (the test OP refuses a wrong one).
	h.op.mu.Lock()
	az, verifier := h.op.lastAuthorize, h.op.lastVerifier
	h.op.mu.Unlock()
	if az.Get("code_challenge_method") != "S256" || az.Get("code_challenge") == "" || len(verifier) < 43 {
		t.Errorf("PKCE missing: method=%q verifier=%d chars", az.Get("code_challenge_method"), len(verifier))
	}
	if az.Get("redirect_uri") != h.url+"/.telegate/callback/staff" {
		t.Errorf("redirect_uri %q", az.Get("redirect_uri"))
	}
	// Cookie attributes.
	var sc string
	h.scMu.Lock()
	for _, c := range h.setCookies {
		if strings.HasPrefix(c, "__Host-telegate=") && !strings.HasPrefix(c, "__Host-telegate=;") {
			sc = c
		}
	}
	h.scMu.Unlock()
	for _, attr := range []string{"Path=/", "HttpOnly", "Secure", "SameSite=Lax"} {
		if !strings.Contains(sc, attr) {
			t.Errorf("session cookie %q lacks %s", sc, attr)
		}
	}
	if strings.Contains(sc, "Domain=") {
		t.Errorf("session cookie has a Domain: %q", sc)
	}
	if !h.audit.find("signin", "allow", "ok") {
		t.Error("no signin allow audit event")
	}
}

// TestIDTokenConformance drives the OpenID RP conformance cases through the
// whole flow: each token is accepted or refused as OIDC Core §3.1.3.7
// requires, and a refusal sets no session cookie.
func TestIDTokenConformance(t *testing.T) {
	t.Parallel()
	otherRSA := cachedRSA(t, "k1", true) // same kid, different key
	cases := []struct {
		name     string
		edit     func(op *testOP)
		userinfo bool
		accept   bool
		reason   string
	}{
		{name: "valid", accept: true},
		{name: "invalid iss", edit: claims(func(c map[string]any) { c["iss"] = "https://evil.example" }), reason: "id_token_invalid"},
		{name: "missing sub", edit: claims(func(c map[string]any) { delete(c, "sub") }), reason: "sub_missing"},
		{name: "empty sub", edit: claims(func(c map[string]any) { c["sub"] = "" }), reason: "sub_missing"},
		{name: "invalid aud", edit: claims(func(c map[string]any) { c["aud"] = "someone-else" }), reason: "id_token_invalid"},
		{name: "missing iat", edit: claims(func(c map[string]any) { delete(c, "iat") }), reason: "iat_missing"},
		{name: "iat in the future", edit: claims(func(c map[string]any) { c["iat"] = time.Now().Add(10 * time.Minute).Unix() }), reason: "iat_future"},
		{name: "iat within skew", edit: claims(func(c map[string]any) { c["iat"] = time.Now().Add(time.Minute).Unix() }), accept: true},
		{name: "expired", edit: claims(func(c map[string]any) { c["exp"] = time.Now().Add(-time.Minute).Unix() }), reason: "id_token_invalid"},
		{name: "missing exp", edit: claims(func(c map[string]any) { delete(c, "exp") }), reason: "id_token_invalid"},
		{name: "wrong nonce", edit: claims(func(c map[string]any) { c["nonce"] = "attacker-nonce" }), reason: "nonce_mismatch"},
		{name: "missing nonce", edit: claims(func(c map[string]any) { delete(c, "nonce") }), reason: "nonce_mismatch"},
		{name: "alg none", edit: func(op *testOP) { op.signOverride = unsignedJWT }, reason: "id_token_invalid"},
		{name: "alg HS256 keyed with client secret", edit: func(op *testOP) {
			op.signOverride = func(p []byte) string { return hmacJWT(t, op.clientSecret, "k1", p) }
		}, reason: "id_token_invalid"},
		{name: "bad signature RS256", edit: func(op *testOP) {
			op.signOverride = func(p []byte) string { return signJWT(t, otherRSA, p, nil) }
		}, reason: "id_token_invalid"},
		{name: "bad signature ES256", edit: func(op *testOP) {
			good := newECKey(t, "e1")
			op.keys = []*opKey{good}
			bad := newECKey(t, "e1")
			op.signOverride = func(p []byte) string { return signJWT(t, bad, p, nil) }
		}, reason: "id_token_invalid"},
		{name: "valid ES256", edit: func(op *testOP) {
			k := newECKey(t, "e1")
			op.keys, op.sign = []*opKey{k}, k
		}, accept: true},
		{name: "absent kid with one key", edit: func(op *testOP) {
			op.sign = &opKey{kid: "", alg: op.sign.alg, priv: op.sign.priv}
		}, accept: true},
		{name: "several audiences without azp", edit: claims(func(c map[string]any) { c["aud"] = []string{"telegate-client", "other-app"} }), reason: "azp_missing"},
		{name: "several audiences with azp", edit: claims(func(c map[string]any) {
			c["aud"] = []string{"telegate-client", "other-app"}
			c["azp"] = "telegate-client"
		}), accept: true},
		{name: "azp of another client", edit: claims(func(c map[string]any) { c["azp"] = "other-app" }), reason: "azp_mismatch"},
		{name: "userinfo sub mismatch", userinfo: true, edit: func(op *testOP) { op.userinfoSub = "mallory" }, reason: "userinfo_sub_mismatch"},
		{name: "userinfo sub matches", userinfo: true, accept: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, func(h *harness) { h.cfg.Providers[0].UserInfo = tc.userinfo })
			if tc.edit != nil {
				h.op.set(tc.edit)
			}
			resp := h.signIn("/app/")
			if tc.accept {
				if resp.StatusCode != 200 || h.sessionCookie() == "" {
					t.Fatalf("refused: status %d", resp.StatusCode)
				}
				return
			}
			if resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("status %d, want 401/400", resp.StatusCode)
			}
			if h.sessionCookie() != "" {
				t.Fatal("a refused sign-in set a session cookie")
			}
			if !strings.Contains(bodyOf(resp), "req-") {
				t.Error("error page lacks the request id")
			}
			if !h.audit.find("signin", "deny", tc.reason) {
				t.Errorf("no signin deny audit event with reason %q", tc.reason)
			}
			if got := counterValue(h.svc.metrics.signins.WithLabelValues("staff", "deny", tc.reason)); got != 1 {
				t.Errorf("telegate_control_signins_total{reason=%q} = %v, want 1", tc.reason, got)
			}
			if tc.userinfo && h.op.userinfoHits.Load() == 0 {
				t.Error("UserInfo was not called")
			}
		})
	}
}

func claims(f func(map[string]any)) func(op *testOP) {
	return func(op *testOP) { op.idClaims = f }
}

// TestRegression_ProviderDiscoveryFailureIsRetried: a provider whose
// discovery fails (an issuer that does not match, a provider that is down)
// does not keep the service from starting; its sign-in answers 503 with
// the request id until discovery works, and the reason names the issuer.
func TestRegression_ProviderDiscoveryFailureIsRetried(t *testing.T) {
	t.Parallel()
	op := newTestOP(t)
	op.set(func(op *testOP) { op.discoveryIssuer = "https://evil.example" })
	down := httptest.NewTLSServer(http.NotFoundHandler())
	downURL := down.URL
	down.Close()
	svc, err := New(context.Background(), Options{
		Config: defaulted(&config.Config{
			DataDir: t.TempDir(),
			Server:  config.Server{PublicURL: "https://gw.test"},
			Providers: []config.Provider{
				{ID: "staff", Issuer: op.issuer, ClientID: "c", ClientSecret: "s"},
				{ID: "gone", Issuer: downURL, ClientID: "c", ClientSecret: "s"},
			},
		}),
		HTTPClient: op.srv.Client(),
	})
	if err != nil {
		t.Fatalf("New: %v (a provider that cannot be discovered must not stop the service)", err)
	}
	t.Cleanup(func() { _ = svc.Close() })
	for _, id := range []string{"staff", "gone"} {
		err := svc.View().ProviderReady(id)
		if err == nil {
			t.Fatalf("%s: ready, want a discovery error", id)
		}
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/.telegate/login?provider="+id+"&rd=/", nil)
		req = req.WithContext(scope.With(req.Context(), &scope.Scope{RequestID: "rid-" + id}))
		svc.View().Handler().ServeHTTP(rec, req)
		if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "rid-"+id) {
			t.Errorf("%s: login %d %q, want 503 with the request id", id, rec.Code, rec.Body.String())
		}
	}
	if err := svc.View().ProviderReady("staff"); !strings.Contains(err.Error(), "evil.example") {
		t.Errorf("staff: %v, want the issuer mismatch named", err)
	}
	// Once the provider answers correctly, the retry makes it ready.
	op.set(func(op *testOP) { op.discoveryIssuer = "" })
	deadline := time.Now().Add(10 * time.Second)
	for svc.View().ProviderReady("staff") != nil {
		if time.Now().After(deadline) {
			t.Fatalf("staff never became ready: %v", svc.View().ProviderReady("staff"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestRefusesInsecureSigningAlgsInConfig(t *testing.T) {
	t.Parallel()
	for _, alg := range []string{"none", "HS256", "HS512", "rs256"} {
		if _, err := pinAlgs([]string{alg}); err == nil {
			t.Errorf("pinAlgs(%q) accepted", alg)
		}
	}
	// The default list is config's, applied before auth sees the provider.
	if _, err := pinAlgs(nil); err == nil {
		t.Error("pinAlgs(nil) accepted: the default comes from config")
	}
	if got, err := pinAlgs(config.DefaultSigningAlgs); err != nil || strings.Join(got, ",") != "RS256,ES256" {
		t.Errorf("default algs %v, %v", got, err)
	}
}

func TestSigningKeyRotation(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	if r := h.signIn("/app/"); r.StatusCode != 200 {
		t.Fatalf("first sign-in: %d", r.StatusCode)
	}
	before := h.op.jwksHits.Load()
	h.op.set(func(op *testOP) {
		k := newECKey(t, "k2")
		op.keys = append(op.keys, k)
		op.sign = k
	})
	h.jar.SetCookies(mustURL(h.url), []*http.Cookie{{Name: h.svc.View().cookieName, Value: "", MaxAge: -1}})
	if r := h.signIn("/app/"); r.StatusCode != 200 {
		t.Fatalf("sign-in after rotation: %d", r.StatusCode)
	}
	if got := h.op.jwksHits.Load() - before; got != 1 {
		t.Errorf("key set fetched %d times after rotation, want 1", got)
	}
}

// TestJWKSRefetchIsRateLimited: a flood of tokens with unknown kids does not
// hammer the provider's key set endpoint.
func TestJWKSRefetchIsRateLimited(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	rp := h.svc.View().providers["staff"]
	for i := 0; i < 50; i++ {
		k := &opKey{kid: randomToken(6), alg: jose.RS256, priv: cachedRSA(t, "", true).priv}
		c := h.op.idTokenClaims("n")
		p, _ := json.Marshal(c)
		l, err := rp.ready()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.verifier.Verify(context.Background(), signJWT(t, k, p, nil)); err == nil {
			t.Fatal("token with unknown kid accepted")
		}
	}
	if got := h.op.jwksHits.Load(); got > jwksRefetchBurst {
		t.Errorf("key set fetched %d times for 50 unknown kids, want ≤ %d", got, jwksRefetchBurst)
	}
}

func TestStateReplayRefused(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	c := h.noRedirectClient()
	r1 := h.do(c, "GET", "/.telegate/login?rd=/app/", nil) // → OP
	authz, _ := url.Parse(r1.Header.Get("Location"))
	r2b, err := c.Get(authz.String())
	if err != nil {
		t.Fatal(err)
	}
	r2b.Body.Close()
	callback := r2b.Header.Get("Location")
	// Keep the pre-auth cookie to replay it together with the state.
	pre := ""
	for _, ck := range h.jar.Cookies(mustURL(h.url)) {
		if ck.Name == h.svc.View().preCookie {
			pre = ck.Value
		}
	}
	r3, err := c.Get(callback)
	if err != nil {
		t.Fatal(err)
	}
	r3.Body.Close()
	if r3.StatusCode != http.StatusFound || h.sessionCookie() == "" {
		t.Fatalf("first callback: %d", r3.StatusCode)
	}
	h.jar.SetCookies(mustURL(h.url), []*http.Cookie{{Name: h.svc.View().cookieName, Value: "", MaxAge: -1}})
	h.jar.SetCookies(mustURL(h.url), []*http.Cookie{{Name: h.svc.View().preCookie, Value: pre, Path: "/"}})
	r4, err := c.Get(callback)
	if err != nil {
		t.Fatal(err)
	}
	r4.Body.Close()
	if r4.StatusCode != http.StatusBadRequest || h.sessionCookie() != "" {
		t.Fatalf("replayed callback: %d, cookie %q", r4.StatusCode, h.sessionCookie())
	}
	if !h.audit.find("signin", "deny", "no_preauth") {
		t.Error("no audit event for the replay")
	}
}

func TestCallbackWithoutPreAuthCookieRefused(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	c := h.noRedirectClient()
	r1 := h.do(c, "GET", "/.telegate/login?rd=/app/", nil)
	r2, err := c.Get(r1.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	r2.Body.Close()
	// A different browser (empty jar) presents the callback.
	other := h.tlsClientWithCert(nil)
	r3, err := other.Get(r2.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	r3.Body.Close()
	if r3.StatusCode != http.StatusBadRequest {
		t.Fatalf("status %d, want 400", r3.StatusCode)
	}
	for _, sc := range r3.Header.Values("Set-Cookie") {
		if strings.HasPrefix(sc, h.svc.View().cookieName+"=") {
			t.Fatalf("refusal set a session cookie: %q", sc)
		}
	}
	// The state did not burn the honest browser's pre-auth record? It
	// did not: the record is keyed by the cookie, which the other browser
	// lacked; the honest callback still works.
	r4, err := c.Get(r2.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	r4.Body.Close()
	if r4.StatusCode != http.StatusFound || h.sessionCookie() == "" {
		t.Fatalf("honest callback: %d", r4.StatusCode)
	}
}

func TestStateMismatchRefused(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	c := h.noRedirectClient()
	r1 := h.do(c, "GET", "/.telegate/login?rd=/app/", nil)
	r2, err := c.Get(r1.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	r2.Body.Close()
	cb, _ := url.Parse(r2.Header.Get("Location"))
	q := cb.Query()
	q.Set("state", "forged")
	cb.RawQuery = q.Encode()
	r3, err := c.Get(cb.String())
	if err != nil {
		t.Fatal(err)
	}
	r3.Body.Close()
	if r3.StatusCode != http.StatusBadRequest || h.sessionCookie() != "" {
		t.Fatalf("status %d", r3.StatusCode)
	}
}

func TestLoginReturnPathIsSanitised(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	resp := h.signIn("//evil.example/app/")
	if resp.Request.URL.Host != mustURL(h.url).Host || resp.Request.URL.Path != "/" {
		t.Fatalf("landed on %s", resp.Request.URL)
	}
}

func TestChooserPageEscapesAndLists(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(h *harness) {
		p := h.cfg.Providers[0]
		p.ID, p.DisplayName = "patients", `<script>alert(1)</script>`
		h.cfg.Providers = append(h.cfg.Providers, p)
		h.cfg.Routes = append(h.cfg.Routes, config.Route{ID: "portal", Path: "/portal/", Providers: []string{"patients"}})
	})
	resp := h.get("/.telegate/login?rd=/app/")
	body := bodyOf(resp)
	if resp.StatusCode != 200 || !strings.Contains(body, "provider=staff") || !strings.Contains(body, "provider=patients") {
		t.Fatalf("chooser: %d\n%s", resp.StatusCode, body)
	}
	if strings.Contains(body, "<script>") || !strings.Contains(body, "&lt;script&gt;") {
		t.Error("display name not escaped")
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("CSP %q", csp)
	}
	// A route naming one provider goes straight to it.
	c := h.noRedirectClient()
	r := h.do(c, "GET", "/portal/x", nil)
	loc := r.Header.Get("Location")
	if !strings.Contains(loc, "route=portal") {
		t.Fatalf("challenge location %q", loc)
	}
	r = h.do(c, "GET", loc, nil)
	if r.StatusCode != http.StatusFound || !strings.HasPrefix(r.Header.Get("Location"), h.op.issuer+"/authorize") {
		t.Fatalf("route login: %d %q", r.StatusCode, r.Header.Get("Location"))
	}
	// A provider the route does not accept is refused.
	r = h.do(c, "GET", "/.telegate/login?route=portal&provider=staff", nil)
	if r.StatusCode != http.StatusBadRequest {
		t.Fatalf("foreign provider: %d", r.StatusCode)
	}
}

func TestOwnCookiesNeverReachUpstream(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.signIn("/app/")
	h.jar.SetCookies(mustURL(h.url), []*http.Cookie{{Name: "theme", Value: "dark", Path: "/"}})
	resp := h.get("/app/")
	up := resp.Header.Get("X-Upstream-Cookie")
	if resp.StatusCode != 200 || up != "theme=dark" {
		t.Fatalf("upstream saw cookie %q (status %d)", up, resp.StatusCode)
	}
}

func TestSignOutEndsSessionAndOldCookieIsRefused(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.signIn("/app/")
	old := h.sessionCookie()
	sessID := sessionIDFor(old)
	// GET shows a confirmation form, changes nothing.
	if r := h.get("/.telegate/logout?rd=/app/"); r.StatusCode != 200 || !strings.Contains(bodyOf(r), `method="post"`) {
		t.Fatalf("confirm page: %d", r.StatusCode)
	}
	if h.get("/app/").StatusCode != 200 {
		t.Fatal("GET /.telegate/logout signed out")
	}
	req, _ := http.NewRequest("POST", h.url+"/.telegate/logout", strings.NewReader("rd=%2Fapp%2Fbye"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", h.url)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	resp, err := h.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp = continueSignOut(t, h.client, resp)
	body := bodyOf(resp)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Request.URL.Path != "/.telegate/signed-out" || !strings.Contains(body, `href="/app/bye"`) {
		t.Fatalf("after sign-out: %d at %s\n%s", resp.StatusCode, resp.Request.URL, body)
	}
	h.op.mu.Lock()
	es := h.op.lastEndSession
	h.op.mu.Unlock()
	if es.Get("id_token_hint") == "" || es.Get("state") == "" || es.Get("post_logout_redirect_uri") != h.url+"/.telegate/signed-out" {
		t.Errorf("end_session params %v", es)
	}
	if h.sessionCookie() != "" {
		t.Error("session cookie not cleared")
	}
	// The old cookie value, replayed, is refused.
	h.jar.SetCookies(mustURL(h.url), []*http.Cookie{{Name: h.svc.View().cookieName, Value: old, Path: "/"}})
	c := h.noRedirectClient()
	if r := h.do(c, "GET", "/app/", nil); r.StatusCode != http.StatusFound {
		t.Fatalf("old cookie accepted: %d", r.StatusCode)
	}
	h.endedMu.Lock()
	found := len(h.ended) == 1 && h.ended[0] == sessID
	h.endedMu.Unlock()
	if !found {
		t.Errorf("OnSessionEnd not called once for the session: %v", h.ended)
	}
	if !h.audit.find("signout", "allow", "user") {
		t.Error("no signout audit event")
	}
}

func TestSignOutWithoutEndSessionEndpoint(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.op.set(func(op *testOP) { op.noEndSession = true })
	h.restart() // rediscover
	h.signIn("/app/")
	req, _ := http.NewRequest("POST", h.url+"/.telegate/logout", strings.NewReader("rd=https://evil.example/"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	resp, err := h.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body := bodyOf(resp)
	if resp.Request.URL.Path != "/.telegate/signed-out" || !strings.Contains(body, `href="/"`) {
		t.Fatalf("at %s\n%s", resp.Request.URL, body)
	}
}

func TestSignOutRefusesCrossSitePost(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.signIn("/app/")
	for _, hdr := range []http.Header{
		{"Sec-Fetch-Site": {"cross-site"}},
		{"Origin": {"https://evil.example"}},
	} {
		resp := h.do(h.client, "POST", "/.telegate/logout", hdr)
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("%v: status %d, want 403", hdr, resp.StatusCode)
		}
	}
	if h.get("/app/").StatusCode != 200 || h.endedCount() != 0 {
		t.Fatal("cross-site POST ended the session")
	}
}

func TestBackchannelLogout(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.op.set(func(op *testOP) { op.sid = "idp-session-1" })
	h.signIn("/app/")
	logout := func(c map[string]any) *http.Response {
		form := url.Values{"logout_token": {h.op.signClaims(c)}}
		req, _ := http.NewRequest("POST", h.url+"/.telegate/backchannel-logout/staff", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := h.gw.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	base := func() map[string]any {
		return map[string]any{
			"iss": h.op.issuer, "aud": h.op.clientID, "iat": time.Now().Unix(), "exp": time.Now().Add(2 * time.Minute).Unix(),
			"jti": randomToken(8), "sid": "idp-session-1",
			"events": map[string]any{backchannelEvent: map[string]any{}},
		}
	}
	bad := []struct {
		name string
		edit func(c map[string]any)
	}{
		{"nonce present", func(c map[string]any) { c["nonce"] = "x" }},
		{"no events", func(c map[string]any) { delete(c, "events") }},
		{"wrong event", func(c map[string]any) { c["events"] = map[string]any{"http://other": map[string]any{}} }},
		{"no sub or sid", func(c map[string]any) { delete(c, "sid") }},
		{"no iat", func(c map[string]any) { delete(c, "iat") }},
		{"no jti", func(c map[string]any) { delete(c, "jti") }},
		{"wrong aud", func(c map[string]any) { c["aud"] = "other" }},
		{"wrong iss", func(c map[string]any) { c["iss"] = "https://evil.example" }},
	}
	for _, b := range bad {
		c := base()
		b.edit(c)
		if r := logout(c); r.StatusCode != http.StatusBadRequest || r.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("%s: status %d cache %q, want 400 no-store", b.name, r.StatusCode, r.Header.Get("Cache-Control"))
		}
	}
	if h.get("/app/").StatusCode != 200 {
		t.Fatal("an invalid logout token ended the session")
	}
	good := base()
	if r := logout(good); r.StatusCode != 200 || r.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("logout: %d", r.StatusCode)
	}
	c := h.noRedirectClient()
	if r := h.do(c, "GET", "/app/", nil); r.StatusCode != http.StatusFound {
		t.Fatalf("session survived back-channel logout: %d", r.StatusCode)
	}
	if h.endedCount() != 1 {
		t.Errorf("OnSessionEnd called %d times", h.endedCount())
	}
	if r := logout(good); r.StatusCode != http.StatusBadRequest {
		t.Fatalf("replayed jti: %d, want 400", r.StatusCode)
	}
}

func TestBackchannelLogoutBySubject(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.signIn("/app/")
	form := url.Values{"logout_token": {h.op.signClaims(map[string]any{
		"iss": h.op.issuer, "aud": h.op.clientID, "iat": time.Now().Unix(), "exp": time.Now().Add(time.Minute).Unix(),
		"jti": randomToken(8), "sub": "alice", "events": map[string]any{backchannelEvent: map[string]any{}},
	})}}
	resp, err := h.gw.Client().PostForm(h.url+"/.telegate/backchannel-logout/staff", form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if r := h.do(h.noRedirectClient(), "GET", "/app/", nil); r.StatusCode != http.StatusFound {
		t.Fatalf("session survived: %d", r.StatusCode)
	}
}

func TestSessionsSurviveRestart(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.signIn("/app/")
	h.restart()
	if r := h.get("/app/"); r.StatusCode != 200 || r.Header.Get("X-Subject") != "alice" {
		t.Fatalf("after restart: %d", r.StatusCode)
	}
}

func TestIdleTimeout(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.signIn("/app/")
	h.clock.Advance(14 * time.Minute)
	if r := h.get("/app/"); r.StatusCode != 200 {
		t.Fatalf("within idle timeout: %d", r.StatusCode)
	}
	h.clock.Advance(14 * time.Minute) // 14 min since last use
	if r := h.get("/app/"); r.StatusCode != 200 {
		t.Fatalf("use renewed the idle clock, yet: %d", r.StatusCode)
	}
	h.clock.Advance(16 * time.Minute)
	if r := h.do(h.noRedirectClient(), "GET", "/app/", nil); r.StatusCode != http.StatusFound {
		t.Fatalf("after idle timeout: %d", r.StatusCode)
	}
	if h.endedCount() != 1 || !h.audit.find("session.end", "", "idle") {
		t.Errorf("idle end not reported: hooks %d", h.endedCount())
	}
}

func TestIdleSessionsAreSwept(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.signIn("/app/")
	h.clock.Advance(20 * time.Minute)
	h.svc.sweep(context.Background())
	if h.endedCount() != 1 {
		t.Fatalf("sweep ended %d sessions, want 1", h.endedCount())
	}
}

func TestAbsoluteTimeout(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.signIn("/app/")
	for i := 0; i < 12*6-1; i++ { // active every 10 minutes for 11h50m
		h.clock.Advance(10 * time.Minute)
		if r := h.get("/app/"); r.StatusCode != 200 {
			t.Fatalf("at %v: %d", time.Duration(i+1)*10*time.Minute, r.StatusCode)
		}
	}
	h.clock.Advance(10 * time.Minute)
	if r := h.do(h.noRedirectClient(), "GET", "/app/", nil); r.StatusCode != http.StatusFound {
		t.Fatalf("after 12h: %d", r.StatusCode)
	}
	if !h.audit.find("session.end", "", "absolute") {
		t.Error("absolute end not audited")
	}
}

func TestFreshSessionIDAtEverySignIn(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.signIn("/app/")
	first := h.sessionCookie()
	h.signIn("/app/")
	second := h.sessionCookie()
	if first == "" || first == second {
		t.Fatal("sign-in reused the session handle")
	}
	h.jar.SetCookies(mustURL(h.url), []*http.Cookie{{Name: h.svc.View().cookieName, Value: first, Path: "/"}})
	if r := h.do(h.noRedirectClient(), "GET", "/app/", nil); r.StatusCode != http.StatusFound {
		t.Fatal("the replaced session still works")
	}
}

func TestManyGroupsCookieStaysSmall(t *testing.T) {
	t.Parallel()
	// The ID token (about 30 KiB) is let in: what is tested is the cookie.
	h := newHarness(t, func(h *harness) { h.cfg.Providers[0].MaxIDTokenBytes = 64 << 10 })
	groups := make([]string, 300)
	for i := range groups {
		groups[i] = "hospital-department-group-with-a-long-name-" + strings.Repeat("x", 10) + "-" + string(rune('a'+i%26)) + randomToken(4)
	}
	groups[7] = "clinicians"
	h.op.set(func(op *testOP) { op.groups = groups })
	resp := h.signIn("/app/")
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("X-Roles"), "clinician") {
		t.Fatalf("status %d roles %q", resp.StatusCode, resp.Header.Get("X-Roles"))
	}
	h.scMu.Lock()
	defer h.scMu.Unlock()
	for _, c := range h.setCookies {
		if len(c) >= 4096 {
			t.Errorf("Set-Cookie of %d bytes", len(c))
		}
	}
}

func TestConcurrentRefreshHitsTokenEndpointOnce(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.op.set(func(op *testOP) { op.expiresIn = 60 })
	h.signIn("/app/")
	h.clock.Advance(2 * time.Minute)
	// The access token expired by the wall clock too: refresh decisions use
	// the injected clock, the token's expiry the real one.
	var wg sync.WaitGroup
	codes := make(chan int, 20)
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("GET", h.url+"/app/", nil)
			resp, err := h.client.Do(req)
			if err != nil {
				codes <- 0
				return
			}
			resp.Body.Close()
			codes <- resp.StatusCode
		}()
	}
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != 200 {
			t.Errorf("request status %d", c)
		}
	}
	if got := h.op.refreshHits.Load(); got != 1 {
		t.Errorf("token endpoint refreshed %d times, want 1", got)
	}
}

func TestFailedRefreshEndsSession(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.op.set(func(op *testOP) { op.expiresIn = 60 })
	h.signIn("/app/")
	h.op.set(func(op *testOP) { op.refreshFail = true })
	h.clock.Advance(2 * time.Minute)
	if r := h.do(h.noRedirectClient(), "GET", "/app/", nil); r.StatusCode != http.StatusFound {
		t.Fatalf("session survived a failed refresh: %d", r.StatusCode)
	}
	if h.endedCount() != 1 || !h.audit.find("session.end", "", "refresh_failed") {
		t.Error("failed refresh did not end the session")
	}
}

func TestChallenge(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	c := h.noRedirectClient()
	cases := []struct {
		name, method, path, accept string
		status                     int
		location, ctype, wwwAuth   string
	}{
		{name: "browser GET", method: "GET", path: "/app/x?y=1", status: 302, location: "/.telegate/login?rd=%2Fapp%2Fx%3Fy%3D1"},
		{name: "browser HEAD", method: "HEAD", path: "/app/", status: 302, location: "/.telegate/login?rd=%2Fapp%2F"},
		{name: "browser POST", method: "POST", path: "/app/form", status: 401, ctype: "text/html; charset=utf-8"},
		{name: "API", method: "GET", path: "/api/v1", status: 401, ctype: "application/json; charset=utf-8", wwwAuth: `Bearer realm="telegate"`},
		{name: "API POST", method: "POST", path: "/api/v1", status: 401, ctype: "application/json; charset=utf-8", wwwAuth: `Bearer realm="telegate"`},
		{name: "API from a browser page load", method: "GET", path: "/api/v1", accept: "text/html", status: 302, location: "/.telegate/login?rd=%2Fapi%2Fv1"},
	}
	for _, tc := range cases {
		hdr := http.Header{}
		if tc.accept != "" {
			hdr.Set("Accept", tc.accept)
		}
		r := h.do(c, tc.method, tc.path, hdr)
		if r.StatusCode != tc.status {
			t.Errorf("%s: status %d, want %d", tc.name, r.StatusCode, tc.status)
		}
		if tc.location != "" && r.Header.Get("Location") != tc.location {
			t.Errorf("%s: Location %q, want %q", tc.name, r.Header.Get("Location"), tc.location)
		}
		if tc.ctype != "" && r.Header.Get("Content-Type") != tc.ctype {
			t.Errorf("%s: Content-Type %q", tc.name, r.Header.Get("Content-Type"))
		}
		if tc.wwwAuth != "" && r.Header.Get("WWW-Authenticate") != tc.wwwAuth {
			t.Errorf("%s: WWW-Authenticate %q", tc.name, r.Header.Get("WWW-Authenticate"))
		}
		if tc.ctype == "application/json; charset=utf-8" {
			var b page.Body
			if json.Unmarshal([]byte(bodyOf(r)), &b) != nil || b.Reason != "unauthenticated" || !strings.HasPrefix(b.RequestID, "req-") {
				t.Errorf("%s: body %q", tc.name, bodyOf(r))
			}
		}
	}
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}

// TestReloadOnSharedStore: a configuration reload builds a new Service on the
// caller's open store; closing the old service leaves the store and its
// sessions alone.
func TestReloadOnSharedStore(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.signIn("/app/")
	id := sessionIDFor(h.sessionCookie())
	if err := h.svc.Close(); err != nil {
		t.Fatal(err)
	}
	st, err := OpenStore(h.cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for i := 0; i < 2; i++ {
		svc, err := New(context.Background(), Options{Config: h.cfg, Store: st, HTTPClient: h.op.srv.Client(), Now: h.clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		if err := svc.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.Get(context.Background(), id); err != nil {
		t.Fatalf("session lost across reloads: %v", err)
	}
	h.cfg.Sessions.Store = "redis"
	if _, err := OpenStore(h.cfg); err == nil {
		t.Error("an unsupported store was accepted")
	}
}

// TestNothingSensitiveInLogs: tokens, cookies, claims and query strings
// never reach the log, on success or refusal.
func TestNothingSensitiveInLogs(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.op.set(func(op *testOP) { op.expiresIn = 60 })
	h.signIn("/app/secret-path?patient=4711")
	handle := h.sessionCookie()
	h.clock.Advance(2 * time.Minute)
	h.op.set(func(op *testOP) { op.refreshFail = true })
	h.get("/app/") // failed refresh
	h.op.set(func(op *testOP) { op.idClaims = func(c map[string]any) { c["nonce"] = "x" } })
	h.signIn("/app/?mrn=998877")
	h.op.mu.Lock()
	var rts []string
	for rt := range h.op.refreshTokens {
		rts = append(rts, rt)
	}
	state := h.op.lastAuthorize.Get("state")
	h.op.mu.Unlock()
	logs := h.logs.String()
	if logs == "" {
		t.Fatal("no log output at all: the test would prove nothing")
	}
	for _, secret := range append(rts, handle, state, "alice@hospital.example", "Alice Example", "4711", "998877", h.op.clientSecret) {
		if secret != "" && strings.Contains(logs, secret) {
			t.Errorf("log contains %q:\n%s", secret, logs)
		}
	}
}
