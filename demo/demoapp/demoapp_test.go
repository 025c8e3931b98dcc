package demoapp

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

const (
	gatewayIssuer = "https://localhost:8443"
	kid           = "gw-key-1"
)

// gateway is a stand-in for the gateway's signing side: an ES256 key whose
// public half is served as a JWKS over loopback HTTP.
type gateway struct {
	key  *ecdsa.PrivateKey
	jwks *httptest.Server
	app  http.Handler
}

var (
	gwOnce sync.Once
	gw     *gateway
)

func newGateway(t testing.TB) *gateway {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: kid, Algorithm: "ES256", Use: "sig"}}}
	body, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	app, err := New(Options{JWKSURL: srv.URL + "/.telegate/jwks.json", Issuer: gatewayIssuer, Audiences: []string{"home", "clinic", "admin"}, HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	return &gateway{key: key, jwks: srv, app: app}
}

// shared returns one gateway for the whole package (its JWKS server lives
// until the test binary exits).
func shared(t testing.TB) *gateway {
	gwOnce.Do(func() { gw = newGateway(t) })
	return gw
}

func baseClaims() map[string]any {
	now := time.Now()
	return map[string]any{
		"iss":   gatewayIssuer,
		"aud":   "clinic",
		"sub":   "clinician@demo.test",
		"iat":   now.Unix(),
		"exp":   now.Add(time.Minute).Unix(),
		"roles": []string{"clinician"},
		"amr":   []string{"pwd", "otp"},
		"name":  "Dr. Demo Clinician",
	}
}

func signWith(t testing.TB, alg jose.SignatureAlgorithm, key any, keyID string, claims map[string]any) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: key, KeyID: keyID}}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (g *gateway) sign(t testing.TB, claims map[string]any) string {
	return signWith(t, jose.ES256, g.key, kid, claims)
}

func b64(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}

func do(t testing.TB, h http.Handler, path, accept string, assertions ...string) (*http.Response, string) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "http://app.internal"+path, nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	for _, a := range assertions {
		req.Header.Add(DefaultHeader, a)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	resp := rec.Result()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestValidAssertion(t *testing.T) {
	t.Parallel()
	g := shared(t)
	tok := g.sign(t, baseClaims())

	resp, body := do(t, g.app, "/clinic/patients", "application/json", tok)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	var v View
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatal(err)
	}
	want := View{Subject: "clinician@demo.test", Issuer: gatewayIssuer, Name: "Dr. Demo Clinician", Roles: []string{"clinician"}, MFA: true, Route: "clinic", Path: "/clinic/patients", Section: "/clinic/", Authenticated: true}
	if v.Subject != want.Subject || v.Issuer != want.Issuer || !slices.Equal(v.Roles, want.Roles) || v.MFA != want.MFA || v.Route != want.Route || v.Path != want.Path || v.Section != want.Section || !v.Authenticated {
		t.Fatalf("view %+v, want %+v", v, want)
	}

	resp, body = do(t, g.app, "/clinic/", "text/html,application/xhtml+xml,*/*;q=0.8", tok)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("html: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	for _, s := range []string{"clinician@demo.test", "Dr. Demo Clinician", "clinician", gatewayIssuer, `action="/.telegate/logout"`, `method="post"`, `href="/admin/"`, `href="/public/"`, "yes, more than one factor"} {
		if !strings.Contains(body, s) {
			t.Errorf("page lacks %q", s)
		}
	}
	if strings.Contains(body, "<script") || strings.Contains(body, "src=") {
		t.Error("page loads script or external assets")
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("CSP %q", csp)
	}
}

func TestMFAAndRoles(t *testing.T) {
	t.Parallel()
	g := shared(t)
	cases := []struct {
		name  string
		edit  func(map[string]any)
		mfa   bool
		roles []string
	}{
		{"pwd only", func(c map[string]any) { c["amr"] = []string{"pwd"}; c["roles"] = []string{"patient"} }, false, []string{"patient"}},
		{"amr mfa", func(c map[string]any) { c["amr"] = []string{"mfa"} }, true, []string{"clinician"}},
		{"explicit mfa claim wins", func(c map[string]any) { c["mfa"] = false }, false, []string{"clinician"}},
		{"no roles", func(c map[string]any) { delete(c, "roles"); delete(c, "amr") }, false, []string{}},
		{"several roles", func(c map[string]any) { c["roles"] = []string{"admin", "clinician"} }, true, []string{"admin", "clinician"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := baseClaims()
			tc.edit(c)
			resp, body := do(t, g.app, "/", "application/json", g.sign(t, c))
			var v View
			if err := json.Unmarshal([]byte(body), &v); err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("%d %s", resp.StatusCode, body)
			}
			if v.MFA != tc.mfa || !slices.Equal(v.Roles, tc.roles) {
				t.Errorf("mfa %v roles %v, want %v %v", v.MFA, v.Roles, tc.mfa, tc.roles)
			}
		})
	}
}

func TestNoAssertion(t *testing.T) {
	t.Parallel()
	g := shared(t)
	resp, body := do(t, g.app, "/public/info", "application/json")
	var v View
	if err := json.Unmarshal([]byte(body), &v); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	if v.Authenticated || v.Subject != "" || v.Section != "/public/" || v.Roles == nil || len(v.Roles) != 0 {
		t.Errorf("view %+v", v)
	}
	resp, body = do(t, g.app, "/public/", "")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "No identity assertion") || strings.Contains(body, "Sign out") {
		t.Errorf("public page: %d %s", resp.StatusCode, body)
	}
}

// TestAssertionRefused covers the upstream's own defence: every assertion
// that is not a fresh ES256 token from the gateway's key, for this app's
// routes, is a 401.
func TestAssertionRefused(t *testing.T) {
	t.Parallel()
	g := shared(t)
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&g.key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	with := func(edit func(map[string]any)) map[string]any {
		c := baseClaims()
		edit(c)
		return c
	}
	valid := g.sign(t, baseClaims())
	parts := strings.Split(valid, ".")
	forged := with(func(c map[string]any) { c["sub"] = "admin@demo.test"; c["roles"] = []string{"admin"} })

	cases := []struct {
		name       string
		assertions []string
	}{
		{"expired", []string{g.sign(t, with(func(c map[string]any) { c["exp"] = time.Now().Add(-time.Second).Unix() }))}},
		{"no exp", []string{g.sign(t, with(func(c map[string]any) { delete(c, "exp") }))}},
		{"wrong audience", []string{g.sign(t, with(func(c map[string]any) { c["aud"] = "billing" }))}},
		{"no audience", []string{g.sign(t, with(func(c map[string]any) { delete(c, "aud") }))}},
		{"wrong issuer", []string{g.sign(t, with(func(c map[string]any) { c["iss"] = "https://evil.example" }))}},
		{"no subject", []string{g.sign(t, with(func(c map[string]any) { delete(c, "sub") }))}},
		{"HS256 with the public key as secret", []string{signWith(t, jose.HS256, pubDER, kid, forged)}},
		{"HS256 with a guessed secret", []string{signWith(t, jose.HS256, []byte("0123456789abcdef0123456789abcdef"), kid, forged)}},
		{"alg none", []string{b64(map[string]string{"alg": "none", "typ": "JWT"}) + "." + b64(forged) + "."}},
		{"tampered payload", []string{parts[0] + "." + b64(forged) + "." + parts[2]}},
		{"stripped signature", []string{parts[0] + "." + parts[1] + "."}},
		{"other key same kid", []string{signWith(t, jose.ES256, other, kid, forged)}},
		{"other key unknown kid", []string{signWith(t, jose.ES256, other, "attacker", forged)}},
		{"ES384 header on ES256 key", []string{b64(map[string]string{"alg": "ES384", "kid": kid}) + "." + parts[1] + "." + parts[2]}},
		{"two assertions", []string{valid, valid}},
		{"garbage", []string{"not-a-jwt"}},
		{"empty", []string{""}},
		{"oversized", []string{strings.Repeat("a", maxAssertionBytes+1)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			resp, body := do(t, g.app, "/clinic/", "", tc.assertions...)
			if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "the gateway's assertion did not verify") {
				t.Fatalf("status %d, want 401 with the refusal page: %s", resp.StatusCode, body)
			}
			if strings.Contains(body, "admin@demo.test") || strings.Contains(body, "clinician@demo.test") {
				t.Fatal("refusal page shows identity facts")
			}
			resp, body = do(t, g.app, "/clinic/", "application/json", tc.assertions...)
			if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, `"error"`) || strings.Contains(body, "subject") {
				t.Fatalf("json: %d %s", resp.StatusCode, body)
			}
		})
	}
}

// TestPageEscapes: claim values are HTML-escaped.
func TestPageEscapes(t *testing.T) {
	t.Parallel()
	g := shared(t)
	c := baseClaims()
	c["name"] = `<script>alert("x")</script>`
	c["roles"] = []string{`<img src=x onerror=alert(1)>`}
	resp, body := do(t, g.app, "/", "", g.sign(t, c))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%d", resp.StatusCode)
	}
	if strings.Contains(body, "<script>") || strings.Contains(body, "<img") {
		t.Fatalf("unescaped claim in page: %s", body)
	}
	if !strings.Contains(body, "&lt;script&gt;") {
		t.Fatal("escaped name missing")
	}
}

func TestNewRequiresOptions(t *testing.T) {
	t.Parallel()
	for _, o := range []Options{
		{Issuer: gatewayIssuer, Audiences: []string{"a"}},
		{JWKSURL: "ftp://x/jwks", Issuer: gatewayIssuer, Audiences: []string{"a"}},
		{JWKSURL: "https://localhost/jwks", Audiences: []string{"a"}},
		{JWKSURL: "https://localhost/jwks", Issuer: gatewayIssuer},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) accepted", o)
		}
	}
}

func TestSection(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"/": "/", "/clinic/": "/clinic/", "/clinic": "/clinic/", "/clinic/x": "/clinic/", "/admin/": "/admin/", "/public/a/b": "/public/", "/clinical": "/", "/other": "/"} {
		if got := section(in); got != want {
			t.Errorf("section(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzAssertionHeader: whatever arrives in the assertion header, the app
// answers 200 only for an assertion that verifies, and shows no subject
// otherwise.
func FuzzAssertionHeader(f *testing.F) {
	g := shared(f)
	valid := g.sign(f, baseClaims())
	parts := strings.Split(valid, ".")
	f.Add(valid)
	f.Add(parts[0] + "." + parts[1] + ".")
	f.Add(b64(map[string]string{"alg": "none"}) + "." + parts[1] + ".")
	f.Add("a.b.c")
	f.Add("....")
	f.Add(parts[0] + "." + parts[1] + "." + parts[2] + "x")
	f.Fuzz(func(t *testing.T, a string) {
		resp, body := do(t, g.app, "/admin/", "application/json", a)
		switch resp.StatusCode {
		case http.StatusOK:
			if strings.TrimSpace(a) != valid {
				t.Fatalf("a different assertion was accepted: %q", a)
			}
		case http.StatusUnauthorized:
			if strings.Contains(body, "subject") {
				t.Fatalf("401 carries identity: %s", body)
			}
		default:
			t.Fatalf("status %d", resp.StatusCode)
		}
	})
}

func TestSlowPathAnswersAfterItsDelay(t *testing.T) {
	t.Parallel()
	g := shared(t)
	for _, tc := range []struct {
		query    string
		min, max time.Duration
	}{
		{"", 300 * time.Millisecond, 3 * time.Second},
		{"?ms=50", 50 * time.Millisecond, 2 * time.Second},
		{"?ms=bogus", 300 * time.Millisecond, 3 * time.Second},
	} {
		start := time.Now()
		resp, body := do(t, g.app, SlowPath+tc.query, "application/json")
		took := time.Since(start)
		var v View
		if err := json.Unmarshal([]byte(body), &v); err != nil || resp.StatusCode != http.StatusOK || v.Path != SlowPath {
			t.Fatalf("%s: %d %s", tc.query, resp.StatusCode, body)
		}
		if took < tc.min || took > tc.max {
			t.Errorf("%s: answered after %v, want at least %v", tc.query, took, tc.min)
		}
	}
	if d := slowDelay(httptest.NewRequest(http.MethodGet, SlowPath+"?ms=999999", nil)); d != maxSlow {
		t.Errorf("delay capped at %v, want %v", d, maxSlow)
	}
}
