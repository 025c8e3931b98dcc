package devop

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/net/html"
	"golang.org/x/oauth2"
)

const (
	testClientID = "telegate"
	testSecret   = "s3cret-for-tests"
	redirectURI  = "http://127.0.0.1:1/.telegate/callback/demo"
	postLogout   = "http://127.0.0.1:1/.telegate/signed-out"
)

func testClient() Client {
	return Client{ID: testClientID, Secret: testSecret, RedirectURIs: []string{redirectURI}, PostLogoutRedirectURIs: []string{postLogout}}
}

func start(t *testing.T, o Options) *Server {
	t.Helper()
	if o.Clients == nil {
		o.Clients = []Client{testClient()}
	}
	s, err := Start(context.Background(), o)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// browser is an HTTP client with a cookie jar that stops at the relying
// party's redirect URI instead of following it.
func browser(t *testing.T) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{
		Jar:     jar,
		Timeout: 10 * time.Second,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if req.URL.Host == "127.0.0.1:1" || len(via) > 10 {
				return http.ErrUseLastResponse
			}
			return nil
		},
	}
}

type form struct {
	action *url.URL
	method string
	fields url.Values
	names  []string
	labels map[string]bool // label for= targets
	submit bool
}

// parseForm reads the first form of an HTML page the way a browser would.
func parseForm(t *testing.T, base *url.URL, body string) form {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parse HTML: %v", err)
	}
	f := form{fields: url.Values{}, labels: map[string]bool{}}
	found := false
	var walk func(n *html.Node)
	attr := func(n *html.Node, k string) string {
		for _, a := range n.Attr {
			if a.Key == k {
				return a.Val
			}
		}
		return ""
	}
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode {
			switch n.Data {
			case "form":
				if !found {
					found = true
					f.method = strings.ToLower(attr(n, "method"))
					a, err := base.Parse(attr(n, "action"))
					if err != nil {
						t.Fatalf("form action: %v", err)
					}
					f.action = a
				}
			case "input":
				name := attr(n, "name")
				if name != "" {
					f.names = append(f.names, name)
					f.fields.Set(name, attr(n, "value"))
				}
			case "label":
				f.labels[attr(n, "for")] = true
			case "button":
				if attr(n, "type") == "submit" {
					f.submit = true
				}
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	if !found {
		t.Fatalf("no form on page:\n%s", body)
	}
	return f
}

func readBody(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

type flow struct {
	conf     *oauth2.Config
	provider *oidc.Provider
	verifier string
	state    string
	nonce    string
	client   *http.Client
}

func newFlow(t *testing.T, s *Server) *flow {
	t.Helper()
	ctx := context.Background()
	p, err := oidc.NewProvider(ctx, s.Issuer())
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	return &flow{
		conf: &oauth2.Config{
			ClientID: testClientID, ClientSecret: testSecret, RedirectURL: redirectURI,
			Endpoint: p.Endpoint(), Scopes: []string{oidc.ScopeOpenID, "profile", "email", oidc.ScopeOfflineAccess},
		},
		provider: p,
		verifier: oauth2.GenerateVerifier(),
		state:    "state-" + randomID(),
		nonce:    "nonce-" + randomID(),
		client:   browser(t),
	}
}

// loginPage starts the authorization request and returns the sign-in page.
func (f *flow) loginPage(t *testing.T) (*http.Response, string) {
	t.Helper()
	u := f.conf.AuthCodeURL(f.state, oidc.Nonce(f.nonce), oauth2.S256ChallengeOption(f.verifier))
	resp, err := f.client.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	return resp, readBody(t, resp)
}

// signIn fills in the form and returns the final response (the redirect
// toward the relying party on success).
func (f *flow) signIn(t *testing.T, username, password string) (*http.Response, string) {
	t.Helper()
	resp, body := f.loginPage(t)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("login page: %d %s", resp.StatusCode, body)
	}
	return f.submit(t, resp.Request.URL, body, username, password)
}

func (f *flow) submit(t *testing.T, base *url.URL, body, username, password string) (*http.Response, string) {
	t.Helper()
	fm := parseForm(t, base, body)
	if fm.method != "post" {
		t.Fatalf("form method %q, want post", fm.method)
	}
	fm.fields.Set("username", username)
	fm.fields.Set("password", password)
	resp, err := f.client.PostForm(fm.action.String(), fm.fields)
	if err != nil {
		t.Fatal(err)
	}
	return resp, readBody(t, resp)
}

// code signs in and returns the authorization code after checking state.
func (f *flow) code(t *testing.T, username, password string) string {
	t.Helper()
	resp, body := f.signIn(t, username, password)
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("sign-in: %d, want 302: %s", resp.StatusCode, body)
	}
	loc, err := resp.Location()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(loc.String(), redirectURI+"?") {
		t.Fatalf("redirected to %s, want %s", loc, redirectURI)
	}
	if got := loc.Query().Get("state"); got != f.state {
		t.Fatalf("state %q, want %q", got, f.state)
	}
	c := loc.Query().Get("code")
	if c == "" {
		t.Fatalf("no code in %s", loc)
	}
	return c
}

type idClaims struct {
	Nonce             string   `json:"nonce"`
	AMR               []string `json:"amr"`
	Groups            []string `json:"groups"`
	SID               string   `json:"sid"`
	Name              string   `json:"name"`
	Email             string   `json:"email"`
	PreferredUsername string   `json:"preferred_username"`
}

func (f *flow) verify(t *testing.T, tok *oauth2.Token) (*oidc.IDToken, idClaims, string) {
	t.Helper()
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		t.Fatal("no id_token in token response")
	}
	idt, err := f.provider.Verifier(&oidc.Config{ClientID: testClientID}).Verify(context.Background(), raw)
	if err != nil {
		t.Fatalf("go-oidc did not verify the ID token: %v", err)
	}
	var c idClaims
	if err := idt.Claims(&c); err != nil {
		t.Fatal(err)
	}
	return idt, c, raw
}

func TestDiscovery(t *testing.T) {
	t.Parallel()
	s := start(t, Options{})
	if !strings.HasPrefix(s.Issuer(), "http://127.0.0.1:") {
		t.Fatalf("issuer %q", s.Issuer())
	}
	resp, err := http.Get(s.Issuer() + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Issuer        string   `json:"issuer"`
		Authorization string   `json:"authorization_endpoint"`
		Token         string   `json:"token_endpoint"`
		UserInfo      string   `json:"userinfo_endpoint"`
		EndSession    string   `json:"end_session_endpoint"`
		JWKS          string   `json:"jwks_uri"`
		Algs          []string `json:"id_token_signing_alg_values_supported"`
		Methods       []string `json:"code_challenge_methods_supported"`
		Backchannel   bool     `json:"backchannel_logout_supported"`
		BackchSession bool     `json:"backchannel_logout_session_supported"`
	}
	if err := json.Unmarshal([]byte(readBody(t, resp)), &d); err != nil {
		t.Fatal(err)
	}
	if d.Issuer != s.Issuer() {
		t.Errorf("issuer %q, want %q", d.Issuer, s.Issuer())
	}
	for name, v := range map[string]string{"authorization": d.Authorization, "token": d.Token, "userinfo": d.UserInfo, "end_session": d.EndSession, "jwks": d.JWKS} {
		if !strings.HasPrefix(v, s.Issuer()+"/") {
			t.Errorf("%s endpoint %q not under the issuer", name, v)
		}
	}
	if !slices.Equal(d.Algs, []string{"ES256"}) {
		t.Errorf("signing algs %v, want [ES256]", d.Algs)
	}
	if !slices.Contains(d.Methods, "S256") {
		t.Errorf("code challenge methods %v lack S256", d.Methods)
	}
	if !d.Backchannel || !d.BackchSession {
		t.Errorf("back-channel logout not advertised")
	}
	// The keys are served and are ES256 P-256 public keys.
	resp, err = http.Get(d.JWKS)
	if err != nil {
		t.Fatal(err)
	}
	var ks jose.JSONWebKeySet
	if err := json.Unmarshal([]byte(readBody(t, resp)), &ks); err != nil {
		t.Fatal(err)
	}
	if len(ks.Keys) != 1 || ks.Keys[0].Algorithm != "ES256" || !ks.Keys[0].IsPublic() {
		t.Fatalf("jwks %+v", ks.Keys)
	}
}

func TestDemoPagesAreLabelled(t *testing.T) {
	t.Parallel()
	s := start(t, Options{})
	for _, path := range []string{"/", "/logged-out"} {
		resp, err := http.Get(s.Issuer() + path)
		if err != nil {
			t.Fatal(err)
		}
		body := readBody(t, resp)
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, "DEMO IDENTITY PROVIDER") {
			t.Errorf("%s: %d, not labelled DEMO: %s", path, resp.StatusCode, body)
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
			t.Errorf("%s: CSP %q", path, csp)
		}
	}
}

func TestCodeFlowWithPKCE(t *testing.T) {
	t.Parallel()
	cases := []struct {
		user, name, email string
		groups, amr       []string
	}{
		{"clinician@demo.test", "Dr. Demo Clinician", "clinician@demo.test", []string{"clinicians"}, []string{"pwd", "otp", "mfa"}},
		{"patient@demo.test", "Demo Patient", "patient@demo.test", []string{"patients"}, []string{"pwd"}},
		{"admin@demo.test", "Demo Admin", "admin@demo.test", []string{"admins"}, []string{"pwd", "otp", "mfa"}},
	}
	s := start(t, Options{})
	for _, tc := range cases {
		t.Run(tc.user, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			f := newFlow(t, s)
			resp, body := f.loginPage(t)
			fm := parseForm(t, resp.Request.URL, body)
			if !slices.Contains(fm.names, "username") || !slices.Contains(fm.names, "password") || !fm.labels["username"] || !fm.labels["password"] || !fm.submit {
				t.Fatalf("login form lacks labelled username/password or submit: %+v", fm)
			}
			if !strings.Contains(body, "DEMO IDENTITY PROVIDER") {
				t.Fatal("login page is not labelled as a demo")
			}
			code := f.code(t, tc.user, "demo")
			tok, err := f.conf.Exchange(ctx, code, oauth2.VerifierOption(f.verifier))
			if err != nil {
				t.Fatalf("token exchange: %v", err)
			}
			idt, c, _ := f.verify(t, tok)
			if idt.Subject != tc.user || idt.Issuer != s.Issuer() {
				t.Errorf("sub %q iss %q", idt.Subject, idt.Issuer)
			}
			if c.Nonce != f.nonce {
				t.Errorf("nonce %q, want %q", c.Nonce, f.nonce)
			}
			if !slices.Equal(c.AMR, tc.amr) || !slices.Equal(c.Groups, tc.groups) {
				t.Errorf("amr %v groups %v, want %v %v", c.AMR, c.Groups, tc.amr, tc.groups)
			}
			if c.SID == "" || c.Name != tc.name || c.Email != tc.email || c.PreferredUsername != tc.user {
				t.Errorf("claims %+v", c)
			}

			// UserInfo answers with the same profile.
			ui, err := f.provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
			if err != nil {
				t.Fatalf("userinfo: %v", err)
			}
			var uc idClaims
			if err := ui.Claims(&uc); err != nil {
				t.Fatal(err)
			}
			if ui.Subject != tc.user || ui.Email != tc.email || uc.Name != tc.name || uc.PreferredUsername != tc.user || !slices.Equal(uc.Groups, tc.groups) {
				t.Errorf("userinfo %+v %+v", ui, uc)
			}

			// The refresh token gives a new ID token of the same session, and
			// rotates: the old refresh token stops working.
			if tok.RefreshToken == "" {
				t.Fatal("no refresh token for offline_access")
			}
			tok2, err := f.conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
			if err != nil {
				t.Fatalf("refresh: %v", err)
			}
			_, c2, _ := f.verify(t, tok2)
			if c2.SID != c.SID || !slices.Equal(c2.AMR, tc.amr) || !slices.Equal(c2.Groups, tc.groups) {
				t.Errorf("refreshed claims %+v, first %+v", c2, c)
			}
			if _, err := f.conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token(); err == nil {
				t.Error("a rotated refresh token was accepted again")
			}
		})
	}
}

func TestPKCEEnforced(t *testing.T) {
	t.Parallel()
	s := start(t, Options{})
	ctx := context.Background()

	t.Run("wrong verifier refused and code burnt", func(t *testing.T) {
		t.Parallel()
		f := newFlow(t, s)
		code := f.code(t, "clinician@demo.test", "demo")
		_, err := f.conf.Exchange(ctx, code, oauth2.VerifierOption(oauth2.GenerateVerifier()))
		var re *oauth2.RetrieveError
		if !errors.As(err, &re) || re.ErrorCode != "invalid_grant" {
			t.Fatalf("exchange with a wrong verifier: %v, want invalid_grant", err)
		}
		if _, err := f.conf.Exchange(ctx, code, oauth2.VerifierOption(f.verifier)); err == nil {
			t.Fatal("the code was accepted after a failed exchange")
		}
	})
	t.Run("missing verifier refused", func(t *testing.T) {
		t.Parallel()
		f := newFlow(t, s)
		code := f.code(t, "patient@demo.test", "demo")
		if _, err := f.conf.Exchange(ctx, code); err == nil {
			t.Fatal("exchange without code_verifier accepted")
		}
	})
	t.Run("code used once", func(t *testing.T) {
		t.Parallel()
		f := newFlow(t, s)
		code := f.code(t, "patient@demo.test", "demo")
		if _, err := f.conf.Exchange(ctx, code, oauth2.VerifierOption(f.verifier)); err != nil {
			t.Fatal(err)
		}
		if _, err := f.conf.Exchange(ctx, code, oauth2.VerifierOption(f.verifier)); err == nil {
			t.Fatal("code replay accepted")
		}
	})
	for _, tc := range []struct {
		name string
		opts []oauth2.AuthCodeOption
	}{
		{"no challenge", nil},
		{"plain method", []oauth2.AuthCodeOption{oauth2.SetAuthURLParam("code_challenge", "x"+oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("code_challenge_method", "plain")}},
	} {
		t.Run("authorize refused: "+tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFlow(t, s)
			resp, err := f.client.Get(f.conf.AuthCodeURL(f.state, tc.opts...))
			if err != nil {
				t.Fatal(err)
			}
			readBody(t, resp)
			loc, _ := resp.Location()
			if resp.StatusCode != http.StatusFound || loc == nil || loc.Query().Get("error") != "invalid_request" || loc.Query().Get("code") != "" {
				t.Fatalf("got %d %v, want a redirect with error=invalid_request", resp.StatusCode, loc)
			}
		})
	}
}

func TestWrongPasswordRefused(t *testing.T) {
	t.Parallel()
	s := start(t, Options{})
	f := newFlow(t, s)
	resp, body := f.signIn(t, "clinician@demo.test", "not-demo")
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong password: %d, want 401", resp.StatusCode)
	}
	if !strings.Contains(body, "Wrong username or password") {
		t.Fatalf("no error message: %s", body)
	}
	// The form is shown again and still works.
	fm := parseForm(t, resp.Request.URL, body)
	if !slices.Contains(fm.names, "password") {
		t.Fatal("form not shown again")
	}
	// An unknown user gets the very same answer (no user enumeration).
	resp2, body2 := f.submit(t, resp.Request.URL, body, "nobody@demo.test", "demo")
	userValue := regexp.MustCompile(`(name="username"[^>]*value=")[^"]*"`)
	norm := func(b string) string { return userValue.ReplaceAllString(b, `${1}USER"`) }
	if !userValue.MatchString(body) {
		t.Fatal("username not kept in the form")
	}
	if resp2.StatusCode != resp.StatusCode || norm(body2) != norm(body) {
		t.Fatalf("unknown user answered differently: %d\n%s", resp2.StatusCode, body2)
	}
	// The right password still completes the same request.
	resp3, _ := f.submit(t, resp.Request.URL, body, "clinician@demo.test", "demo")
	if resp3.StatusCode != http.StatusFound {
		t.Fatalf("right password after a wrong one: %d", resp3.StatusCode)
	}
}

func TestLoginLockedAfterFailures(t *testing.T) {
	t.Parallel()
	s := start(t, Options{})
	f := newFlow(t, s)
	resp, body := f.loginPage(t)
	base := resp.Request.URL
	for range maxLoginFailures {
		r, _ := f.submit(t, base, body, "patient@demo.test", "guess")
		if r.StatusCode != http.StatusUnauthorized {
			t.Fatalf("failure answered %d", r.StatusCode)
		}
	}
	r, b := f.submit(t, base, body, "patient@demo.test", "demo")
	if r.StatusCode != http.StatusBadRequest || !strings.Contains(b, "expired") {
		t.Fatalf("after %d failures the right password gave %d", maxLoginFailures, r.StatusCode)
	}
}

func TestEndSession(t *testing.T) {
	t.Parallel()
	s := start(t, Options{})
	ctx := context.Background()
	f := newFlow(t, s)
	tok, err := f.conf.Exchange(ctx, f.code(t, "clinician@demo.test", "demo"), oauth2.VerifierOption(f.verifier))
	if err != nil {
		t.Fatal(err)
	}
	_, _, raw := f.verify(t, tok)
	var meta struct {
		EndSession string `json:"end_session_endpoint"`
	}
	if err := f.provider.Claims(&meta); err != nil {
		t.Fatal(err)
	}

	// An unregistered post_logout_redirect_uri is refused, not followed.
	bad := meta.EndSession + "?" + url.Values{"id_token_hint": {raw}, "post_logout_redirect_uri": {"http://127.0.0.1:1/elsewhere"}, "state": {"s1"}}.Encode()
	resp, err := f.client.Get(bad)
	if err != nil {
		t.Fatal(err)
	}
	readBody(t, resp)
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("unregistered post-logout URI: %d, want 400", resp.StatusCode)
	}

	good := meta.EndSession + "?" + url.Values{"id_token_hint": {raw}, "post_logout_redirect_uri": {postLogout}, "state": {"s2"}}.Encode()
	resp, err = f.client.Get(good)
	if err != nil {
		t.Fatal(err)
	}
	readBody(t, resp)
	loc, _ := resp.Location()
	if resp.StatusCode != http.StatusFound || loc == nil || loc.String() != postLogout+"?state=s2" {
		t.Fatalf("end session: %d %v, want redirect to %s?state=s2", resp.StatusCode, loc, postLogout)
	}
	// The session's refresh token no longer works.
	if _, err := f.conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token(); err == nil {
		t.Fatal("refresh token of an ended session accepted")
	}
}

type received struct {
	mu     sync.Mutex
	tokens []string
	ctype  []string
}

func TestBackchannelLogout(t *testing.T) {
	t.Parallel()
	var got received
	rp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil || r.Method != http.MethodPost {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		got.mu.Lock()
		got.tokens = append(got.tokens, r.PostForm.Get("logout_token"))
		got.ctype = append(got.ctype, r.Header.Get("Content-Type"))
		got.mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(rp.Close)

	s := start(t, Options{HTTPClient: rp.Client()})
	c := testClient()
	c.BackchannelLogoutURI = rp.URL + "/.telegate/backchannel-logout/demo"
	s.AddClient(c)
	ctx := context.Background()
	f := newFlow(t, s)
	tok, err := f.conf.Exchange(ctx, f.code(t, "patient@demo.test", "demo"), oauth2.VerifierOption(f.verifier))
	if err != nil {
		t.Fatal(err)
	}
	_, idc, _ := f.verify(t, tok)

	if err := s.BackchannelLogout(ctx, "patient@demo.test"); err != nil {
		t.Fatalf("BackchannelLogout: %v", err)
	}
	got.mu.Lock()
	defer got.mu.Unlock()
	if len(got.tokens) != 1 {
		t.Fatalf("%d logout tokens, want 1", len(got.tokens))
	}
	if got.ctype[0] != "application/x-www-form-urlencoded" {
		t.Errorf("content type %q", got.ctype[0])
	}
	raw := got.tokens[0]
	// Verifiable with the OP's published keys, for the client, fresh.
	lt, err := f.provider.Verifier(&oidc.Config{ClientID: testClientID}).Verify(ctx, raw)
	if err != nil {
		t.Fatalf("logout token did not verify: %v", err)
	}
	var claims map[string]any
	if err := lt.Claims(&claims); err != nil {
		t.Fatal(err)
	}
	ev, _ := claims["events"].(map[string]any)
	if _, ok := ev[backchannelEvent]; !ok {
		t.Errorf("events %v", claims["events"])
	}
	if claims["sub"] != "patient@demo.test" || claims["sid"] != idc.SID || claims["jti"] == "" || claims["iat"] == nil {
		t.Errorf("claims %v (sid of the ID token %q)", claims, idc.SID)
	}
	if _, ok := claims["nonce"]; ok {
		t.Error("logout token carries a nonce (§2.4 forbids it)")
	}
	jws, err := jose.ParseSignedCompact(raw, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	if typ := jws.Signatures[0].Protected.ExtraHeaders["typ"]; typ != "logout+jwt" {
		t.Errorf("typ %v, want logout+jwt", typ)
	}
	// The user's session ended: the refresh token is refused.
	if _, err := f.conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token(); err == nil {
		t.Error("refresh token accepted after back-channel logout")
	}
	if err := s.BackchannelLogout(ctx, "nobody@demo.test"); !errors.Is(err, ErrUnknownUser) {
		t.Errorf("unknown user: %v", err)
	}
}

func TestBackchannelLogoutReportsFailure(t *testing.T) {
	t.Parallel()
	rp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
	}))
	t.Cleanup(rp.Close)
	s := start(t, Options{HTTPClient: rp.Client()})
	c := testClient()
	c.BackchannelLogoutURI = rp.URL + "/bcl"
	s.AddClient(c)
	if err := s.BackchannelLogout(context.Background(), "admin@demo.test"); err == nil || !strings.Contains(err.Error(), "400") {
		t.Fatalf("error %v, want the client's 400", err)
	}
}

func TestInjectedClock(t *testing.T) {
	t.Parallel()
	past := time.Now().Add(-2 * time.Hour).Truncate(time.Second)
	s := start(t, Options{Now: func() time.Time { return past }})
	ctx := context.Background()
	f := newFlow(t, s)
	tok, err := f.conf.Exchange(ctx, f.code(t, "clinician@demo.test", "demo"), oauth2.VerifierOption(f.verifier))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := tok.Extra("id_token").(string)
	// By the wall clock the token expired long ago.
	if _, err := f.provider.Verifier(&oidc.Config{ClientID: testClientID}).Verify(ctx, raw); err == nil {
		t.Fatal("ID token from a clock two hours behind verified against the wall clock")
	}
	idt, err := f.provider.Verifier(&oidc.Config{ClientID: testClientID, Now: func() time.Time { return past }}).Verify(ctx, raw)
	if err != nil {
		t.Fatalf("verify at the injected time: %v", err)
	}
	if d := idt.IssuedAt.Sub(past); d < -2*time.Second || d > 2*time.Second {
		t.Errorf("iat %v, want about %v", idt.IssuedAt, past)
	}
	if d := idt.Expiry.Sub(past.Add(idTokenLifetime)); d < -2*time.Second || d > 2*time.Second {
		t.Errorf("exp %v, want about %v", idt.Expiry, past.Add(idTokenLifetime))
	}
}

// TestLoopbackOnly is the regression test for exposing the demo provider:
// it must refuse every address that is not loopback.
func TestLoopbackOnly(t *testing.T) {
	t.Parallel()
	for _, addr := range []string{":0", "0.0.0.0:0", "[::]:0", "192.0.2.10:0", "10.0.0.1:0", "example.com:0", "[::ffff:192.0.2.1]:0", "[fe80::1%lo]:0", "localhost.example:0"} {
		if _, err := Start(context.Background(), Options{Addr: addr}); !errors.Is(err, ErrNotLoopback) {
			t.Errorf("Start(%q): %v, want ErrNotLoopback", addr, err)
		}
	}
	for _, uri := range []string{"https://192.0.2.1/bcl", "https://gw.hospital.example/bcl", "file:///etc/passwd"} {
		if err := checkClient(Client{ID: "x", BackchannelLogoutURI: uri}); !errors.Is(err, ErrNotLoopback) {
			t.Errorf("back-channel URI %q: %v, want ErrNotLoopback", uri, err)
		}
	}
	s := start(t, Options{Addr: "[::1]:0"})
	if !strings.HasPrefix(s.Issuer(), "http://[::1]:") {
		t.Errorf("issuer %q", s.Issuer())
	}
}

func TestUnknownAuthRequest(t *testing.T) {
	t.Parallel()
	s := start(t, Options{})
	resp, err := http.Get(s.Issuer() + "/login?authRequestID=nope")
	if err != nil {
		t.Fatal(err)
	}
	body := readBody(t, resp)
	if resp.StatusCode != http.StatusBadRequest || strings.Contains(body, "<form") {
		t.Fatalf("unknown request: %d %s", resp.StatusCode, body)
	}
	resp, err = http.PostForm(s.Issuer()+"/login", url.Values{"id": {"nope"}, "username": {"patient@demo.test"}, "password": {"demo"}})
	if err != nil {
		t.Fatal(err)
	}
	readBody(t, resp)
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("post to unknown request: %d", resp.StatusCode)
	}
}
