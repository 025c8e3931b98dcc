package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/telegate/telegate/config"
)

// TestRegression_SessionsEndWithTheirProvider: a reload that removes an
// identity provider, or points its id at another issuer, ends the
// sessions it signed in at their next use — by a request or by a call's
// signaling (Active) — with a "session.end" audit record; a reload that
// keeps the provider (a new client secret or role mapping) keeps them. A
// hospital that drops a compromised identity provider drops its
// sign-ins with it.
func TestRegression_SessionsEndWithTheirProvider(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		edit  func(p *[]config.Provider)
		keeps bool
	}{
		{"provider removed", func(p *[]config.Provider) { *p = nil }, false},
		{"issuer changed", func(p *[]config.Provider) { (*p)[0].Issuer = "https://other-idp.example.test" }, false},
		{"another id", func(p *[]config.Provider) { (*p)[0].ID = "staff-2" }, false},
		{"development provider restarted on another port", func(p *[]config.Provider) {
			(*p)[0].Development = true
			(*p)[0].Issuer = "http://127.0.0.1:5556"
		}, true},
		{"secret and roles changed", func(p *[]config.Provider) {
			(*p)[0].ClientSecret = "rotated-secret"
			(*p)[0].Roles.Always = []string{"staff", "on-call"}
		}, true},
	} {
		for _, via := range []string{"request", "signaling"} {
			t.Run(tc.name+" via "+via, func(t *testing.T) {
				t.Parallel()
				h := newHarness(t)
				if resp := h.signIn("/app/"); resp.StatusCode != http.StatusOK {
					t.Fatalf("sign-in: %d", resp.StatusCode)
				}
				sessID := h.get("/app/").Header.Get("X-Session")
				if sessID == "" {
					t.Fatal("no session")
				}
				next := *h.cfg
				next.Providers = append([]config.Provider(nil), h.cfg.Providers...)
				tc.edit(&next.Providers)
				v, err := NewView(&next, h.svc, nil)
				if err != nil {
					t.Fatal(err)
				}
				h.svc.Activate(v)
				switch via {
				case "request":
					resp := h.get("/app/")
					if signedIn := resp.Header.Get("X-Session") == sessID; signedIn != tc.keeps {
						t.Fatalf("after the reload: signed in %v, want %v", signedIn, tc.keeps)
					}
				case "signaling":
					h.svc.Active(context.Background(), sessID)
				}
				_, err = h.svc.store.Get(context.Background(), sessID)
				if gone := err != nil; gone == tc.keeps {
					t.Fatalf("session in the store after the reload: %v, want %v", !gone, tc.keeps)
				}
				if ended := h.audit.find("session.end", "deny", "provider_removed"); ended == tc.keeps {
					t.Errorf("session.end provider_removed recorded: %v", ended)
				}
				h.endedMu.Lock()
				hooked := strings.Contains(strings.Join(h.ended, " "), sessID)
				h.endedMu.Unlock()
				if hooked == tc.keeps {
					t.Errorf("the end hooks ran for the session: %v", hooked)
				}
			})
		}
	}
}

// TestRegression_ProviderErrorPagesAreNotLogged: an identity provider that
// answers discovery with a large error page (or a hostile one, with lines
// that look like log records) leaves at most a short, single-line reason
// in the log and in /readyz, however many retries and refused sign-ins
// follow.
func TestRegression_ProviderErrorPagesAreNotLogged(t *testing.T) {
	t.Parallel()
	for _, body := range []string{
		strings.Repeat("<p>Service unavailable</p>", 40000), // ~1 MB
		"oops\nlevel=ERROR msg=\"forged record\"\n" + strings.Repeat("x", 5000),
		strings.Repeat("é", 300) + "\x1b[31m",
	} {
		err := shortError(errors.New("discovery at https://idp.test: 500 Internal Server Error: " + body))
		if msg := err.Error(); len(msg) > maxErrorText+len("…") || strings.ContainsAny(msg, "\n\r\x1b") || !utf8.ValidString(msg) {
			t.Errorf("%d bytes, %q", len(msg), msg[:min(len(msg), 80)])
		}
	}
	h := newHarness(t)
	h.op.set(func(op *testOP) { op.discoveryIssuer = strings.Repeat("https://evil.example/", 1000) })
	cfg := *h.cfg
	cfg.DataDir = t.TempDir()
	svc, err := New(context.Background(), Options{Config: &cfg, HTTPClient: h.op.srv.Client(), Logger: slog.New(slog.NewTextHandler(h.logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Close() })
	if err := svc.View().ProviderReady("staff"); err == nil || len(err.Error()) > 300 {
		t.Fatalf("ProviderReady: %d bytes", len(fmt.Sprint(err)))
	}
	for _, line := range strings.Split(h.logs.String(), "\n") {
		if len(line) > 1000 {
			t.Errorf("a log line of %d bytes", len(line))
		}
	}
}

// TestRegression_SignOutWithLargeTokensEndsTheProviderSession: signing out
// still sends the browser to the provider's end-session endpoint when the
// ID token is too large for a URL — with client_id instead of
// id_token_hint (OIDC RP-Initiated Logout 1.0 §2) — so the provider's
// session ends too; with a small token the hint is sent. Members: a small
// token, one just past the limit, a very large one.
func TestRegression_SignOutWithLargeTokensEndsTheProviderSession(t *testing.T) {
	t.Parallel()
	for _, size := range []int{0, maxEndSessionURL, 6000} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			h.op.set(claims(func(m map[string]any) {
				if size > 0 {
					m["note"] = strings.Repeat("x", size)
				}
			}))
			h.signIn("/app/")
			req, _ := http.NewRequest("POST", h.url+"/.telegate/logout", strings.NewReader("rd=%2Fapp%2F"))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Origin", h.url)
			req.Header.Set("Sec-Fetch-Site", "same-origin")
			resp, err := h.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			continueSignOut(t, h.client, resp).Body.Close()
			h.op.mu.Lock()
			es := h.op.lastEndSession
			h.op.mu.Unlock()
			if es == nil || es.Get("client_id") != h.op.clientID || es.Get("state") == "" {
				t.Fatalf("the provider's end-session endpoint got %v", es)
			}
			if hinted := es.Get("id_token_hint") != ""; hinted != (size == 0) {
				t.Errorf("id_token_hint sent %v for a token with a %d-byte claim", hinted, size)
			}
		})
	}
}

// TestRegression_AuthorizationResponseNamesItsIssuer (RFC 9207): a
// callback whose iss parameter is not the provider's issuer is refused
// (a mix-up: another provider's response), an iss that is present twice
// or empty too, and a callback without iss is refused when the provider's
// discovery announced it; the provider's own iss, and no iss from a
// provider that never sends it, sign in.
func TestRegression_AuthorizationResponseNamesItsIssuer(t *testing.T) {
	t.Parallel()
	str := func(s string) *string { return &s }
	for _, tc := range []struct {
		name      string
		iss       func(op *testOP) *string
		supported bool
		ok        bool
	}{
		{"no iss, not announced", func(*testOP) *string { return nil }, false, true},
		{"own iss", func(op *testOP) *string { return str(op.issuer) }, true, true},
		{"own iss, not announced", func(op *testOP) *string { return str(op.issuer) }, false, true},
		{"another provider's iss", func(*testOP) *string { return str("https://other-idp.example.test") }, false, false},
		{"empty iss", func(*testOP) *string { return str("") }, false, false},
		{"iss with a trailing slash", func(op *testOP) *string { return str(op.issuer + "/") }, true, false},
		{"no iss, announced", func(*testOP) *string { return nil }, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, func(h *harness) {
				h.op.issSupported = tc.supported
				h.op.issParam = tc.iss(h.op)
			})
			resp := h.signIn("/app/")
			if ok := resp.StatusCode == http.StatusOK && h.sessionCookie() != ""; ok != tc.ok {
				t.Fatalf("signed in %v (%d), want %v", ok, resp.StatusCode, tc.ok)
			}
			if !tc.ok && !h.audit.find("signin", "deny", "") {
				t.Error("no signin deny record")
			}
		})
	}
}

// TestRegression_UnverifiedEmailIsNotTrusted: a session keeps the email
// claim — which policy rules and the assertion may use — only when the
// provider says it verified it (email_verified true), unless the
// provider is configured with trust_unverified_email.
func TestRegression_UnverifiedEmailIsNotTrusted(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		verified any // nil: absent
		trust    bool
		kept     bool
	}{
		{"absent", nil, false, false},
		{"false", false, false, false},
		{"string false", "false", false, false},
		{"a number", 1, false, false},
		{"true", true, false, true},
		{"string true", "true", false, true},
		{"absent, trusted by configuration", nil, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, func(h *harness) { h.cfg.Providers[0].TrustUnverifiedEmail = tc.trust })
			h.op.set(claims(func(m map[string]any) {
				if tc.verified != nil {
					m["email_verified"] = tc.verified
				}
			}))
			if resp := h.signIn("/app/"); resp.StatusCode != http.StatusOK {
				t.Fatalf("sign-in: %d", resp.StatusCode)
			}
			sess, err := h.svc.store.Get(context.Background(), h.get("/app/").Header.Get("X-Session"))
			if err != nil {
				t.Fatal(err)
			}
			if _, kept := sess.Claims["email"]; kept != tc.kept {
				t.Errorf("email kept %v, want %v (claims %v)", kept, tc.kept, sess.Claims)
			}
			if sess.Claims["name"] == "" {
				t.Error("the name was dropped too")
			}
		})
	}

	// The same rule for phone_number (phone_number_verified; no setting
	// trusts an unverified number), and for a role mapping whose group
	// claim is email or phone_number.
	for _, tc := range []struct {
		name     string
		claim    string // the role mapping's group claim
		set      map[string]any
		trust    bool
		kept     bool // the claim is kept for rules and the assertion
		clinican bool // the mapping gave the role
	}{
		{"phone unverified", "phone_number", map[string]any{"phone_number": "+41790000000"}, false, false, false},
		{"phone verified false", "phone_number", map[string]any{"phone_number": "+41790000000", "phone_number_verified": false}, false, false, false},
		{"phone unverified, email trusted", "phone_number", map[string]any{"phone_number": "+41790000000"}, true, false, false},
		{"phone verified", "phone_number", map[string]any{"phone_number": "+41790000000", "phone_number_verified": true}, false, true, true},
		{"phone verified by a string", "phone_number", map[string]any{"phone_number": "+41790000000", "phone_number_verified": "true"}, false, true, true},
		{"email role mapping unverified", "email", map[string]any{"email_verified": false}, false, false, false},
		{"email role mapping verified", "email", map[string]any{"email_verified": true}, false, true, true},
		{"email role mapping trusted by configuration", "email", nil, true, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, func(h *harness) {
				h.cfg.Providers[0].TrustUnverifiedEmail = tc.trust
				h.cfg.Providers[0].Roles = config.RoleMapping{Claim: tc.claim,
					Map: map[string][]string{"alice@hospital.example": {"clinician"}, "+41790000000": {"clinician"}}}
			})
			h.op.set(claims(func(m map[string]any) {
				for k, v := range tc.set {
					m[k] = v
				}
			}))
			if resp := h.signIn("/app/"); resp.StatusCode != http.StatusOK {
				t.Fatalf("sign-in: %d", resp.StatusCode)
			}
			sess, err := h.svc.store.Get(context.Background(), h.get("/app/").Header.Get("X-Session"))
			if err != nil {
				t.Fatal(err)
			}
			if _, kept := sess.Claims[tc.claim]; kept != tc.kept {
				t.Errorf("%s kept %v, want %v (claims %v)", tc.claim, kept, tc.kept, sess.Claims)
			}
			if got := slices.Contains(sess.Roles, "clinician"); got != tc.clinican {
				t.Errorf("role from the %s mapping: %v, want %v (roles %v)", tc.claim, got, tc.clinican, sess.Roles)
			}
		})
	}
}
