package auth

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// signInRefused signs in through h and checks what the person sees when
// the sign-in is refused for reason: the error page with the request id,
// no session, a signin deny audit record with the reason, and the app
// never reached.
func signInRefused(t *testing.T, h *harness, what, reason string) {
	t.Helper()
	resp := h.signIn("/app/")
	body := bodyOf(resp)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "req-") || strings.Contains(body, "hello ") {
		t.Errorf("%s: status %d, want 401 and the error page with the request id:\n%.300s", what, resp.StatusCode, body)
	}
	if h.sessionCookie() != "" {
		t.Errorf("%s: a refused sign-in set a session cookie", what)
	}
	if !h.audit.find("signin", "deny", reason) {
		t.Errorf("%s: no signin deny audit record with reason %q", what, reason)
	}
}

// signInAccepted signs in through h and requires the app to be reached.
func signInAccepted(t *testing.T, h *harness, what string) {
	t.Helper()
	if resp := h.signIn("/app/"); resp.StatusCode != http.StatusOK || !strings.Contains(bodyOf(resp), "hello alice") {
		t.Errorf("%s: status %d, want the app", what, resp.StatusCode)
	}
}

// withTyp makes the OP sign its ID tokens with JOSE header typ.
func withTyp(t *testing.T, typ string) func(op *testOP) {
	return func(op *testOP) {
		op.signOverride = func(p []byte) string { return signJWT(t, op.sign, p, map[jose.HeaderKey]any{"typ": typ}) }
	}
}

// backchannel posts a logout token to the harness's back-channel endpoint.
func (h *harness) backchannel(token string) *http.Response {
	h.t.Helper()
	resp, err := h.gw.Client().PostForm(h.url+"/.telegate/backchannel-logout/staff", url.Values{"logout_token": {token}})
	if err != nil {
		h.t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// logoutClaims are the claims of a valid logout token for alice.
func (h *harness) logoutClaims() map[string]any {
	now := h.clock.Now()
	return map[string]any{
		"iss": h.op.issuer, "aud": h.op.clientID, "iat": now.Unix(), "exp": now.Add(2 * time.Minute).Unix(),
		"jti": randomToken(8), "sub": "alice", "events": map[string]any{backchannelEvent: map[string]any{}},
	}
}

// TestRegression_NumericDatesAreNumbers: exp, iat, nbf and auth_time are
// NumericDates (RFC 7519 §2), JSON numbers. go-oidc read a string holding
// digits as a number; now an ID token, a logout token or a bearer token
// with any of them as a string, a boolean, an array or null is refused.
func TestRegression_NumericDatesAreNumbers(t *testing.T) {
	t.Parallel()
	now := time.Now()
	wrong := []struct {
		claim string
		value any
	}{
		{"exp", "9999999999"},
		{"iat", "1700000000"},
		{"iat", true},
		{"nbf", []int64{now.Unix()}},
		{"auth_time", "1700000000"},
		{"auth_time", false},
		{"iat", nil},
	}
	h := newHarness(t, withBearer)
	for _, w := range wrong {
		what := w.claim + "=" + fmtJSON(w.value)
		h.op.set(claims(func(c map[string]any) { c[w.claim] = w.value }))
		h.jar.SetCookies(mustURL(h.url), nil)
		resp := h.signIn("/app/")
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(bodyOf(resp), "req-") {
			t.Errorf("ID token %s: status %d, want 401 with the request id", what, resp.StatusCode)
		}

		lc := h.logoutClaims()
		lc[w.claim] = w.value
		if r := h.backchannel(h.op.signClaims(lc)); r.StatusCode != http.StatusBadRequest {
			t.Errorf("logout token %s: status %d, want 400", what, r.StatusCode)
		}

		bc := map[string]any{"iss": h.op.issuer, "sub": "svc", "aud": "https://api.hospital.test",
			"iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix()}
		bc[w.claim] = w.value
		r := h.do(h.noRedirectClient(), "GET", "/api/v1", http.Header{"Authorization": {"Bearer " + h.op.signClaims(bc)}})
		if r.StatusCode != http.StatusUnauthorized || r.Header.Get("X-Subject") != "" {
			t.Errorf("bearer token %s: status %d (app reached: %v), want 401", what, r.StatusCode, r.Header.Get("X-Subject") != "")
		}
	}
	if !h.audit.find("signin", "deny", "claim_type") {
		t.Error("no signin deny audit record with reason claim_type")
	}
	// Numbers, integral or not, pass.
	h.op.set(claims(func(c map[string]any) { c["auth_time"] = float64(now.Unix()) + 0.5 }))
	signInAccepted(t, h, "auth_time with a fraction")
}

func fmtJSON(v any) string {
	switch v := v.(type) {
	case string:
		return `"` + v + `"`
	case nil:
		return "null"
	}
	return string(mustJSON(v))
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// TestRegression_OldTokensAreRefused: an ID token or logout token whose
// iat is older than the provider's max_token_age (default 10 minutes) is
// refused, so a captured token cannot sign in or log out long after.
func TestRegression_OldTokensAreRefused(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	for _, age := range []time.Duration{11 * time.Minute, time.Hour, 48 * time.Hour} {
		h.op.set(claims(func(c map[string]any) { c["iat"] = h.clock.Now().Add(-age).Unix() }))
		signInRefused(t, h, "ID token issued "+age.String()+" ago", "iat_too_old")
		lc := h.logoutClaims()
		lc["iat"] = h.clock.Now().Add(-age).Unix()
		if r := h.backchannel(h.op.signClaims(lc)); r.StatusCode != http.StatusBadRequest {
			t.Errorf("logout token issued %v ago: status %d, want 400", age, r.StatusCode)
		}
	}
	h.op.set(claims(func(c map[string]any) { c["iat"] = h.clock.Now().Add(-9 * time.Minute).Unix() }))
	signInAccepted(t, h, "ID token issued 9m ago")

	long := newHarness(t, func(h *harness) { h.cfg.Providers[0].MaxTokenAge = 2 * time.Hour })
	long.op.set(claims(func(c map[string]any) { c["iat"] = long.clock.Now().Add(-time.Hour).Unix() }))
	signInAccepted(t, long, "ID token issued 1h ago, max_token_age 2h")
}

// TestRegression_TokensAreTypedForTheirUse: the JOSE header typ (RFC 7515
// §4.1.9, case-insensitive, "application/" optional) keeps each token to
// its use. A logout+jwt or at+jwt token is never an ID token; an ID token
// is never a logout token; an issuer configured rfc9068 has its bearer
// tokens typed at+jwt (RFC 9068 §2.1).
func TestRegression_TokensAreTypedForTheirUse(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(h *harness) {
		withBearer(h)
		h.cfg.Bearer[0].RFC9068 = true
	})
	for _, typ := range []string{"logout+jwt", "at+jwt", "application/at+jwt", "LOGOUT+JWT", "secevent+jwt", ""} {
		h.op.set(withTyp(t, typ))
		signInRefused(t, h, "ID token typed "+typ, "token_typ")
	}
	// A nested JWT (cty, RFC 7519 §5.2) is not an ID token: its payload
	// would be another token, which telegate never unwraps.
	for _, cty := range []string{"JWT", "jwt"} {
		h.op.set(func(op *testOP) {
			op.signOverride = func(p []byte) string { return signJWT(t, op.sign, p, map[jose.HeaderKey]any{"cty": cty}) }
		})
		signInRefused(t, h, "ID token with cty "+cty, "token_typ")
	}
	for _, typ := range []string{"JWT", "jwt", "application/JWT"} {
		h.op.set(withTyp(t, typ))
		h.jar.SetCookies(mustURL(h.url), nil)
		signInAccepted(t, h, "ID token typed "+typ)
	}

	// An ID token the provider issued to this client is not a logout
	// token, typed or not; nor is a token typed for another use.
	idt := h.op.idTokenClaims("some-nonce")
	sign := func(c map[string]any, typ string) string {
		return signJWT(t, h.op.sign, mustJSON(c), map[jose.HeaderKey]any{"typ": typ})
	}
	for _, tc := range []struct {
		what  string
		token string
	}{
		{"an ID token", h.op.signClaims(idt)},
		{"an ID token typed JWT", sign(idt, "JWT")},
		{"a logout token typed at+jwt", sign(h.logoutClaims(), "at+jwt")},
		{"a logout token with an ID token's nonce", sign(func() map[string]any { c := h.logoutClaims(); c["nonce"] = "n"; return c }(), "logout+jwt")},
	} {
		if r := h.backchannel(tc.token); r.StatusCode != http.StatusBadRequest {
			t.Errorf("%s as a logout token: status %d, want 400", tc.what, r.StatusCode)
		}
	}
	if h.get("/app/").StatusCode != http.StatusOK {
		t.Fatal("a refused logout token ended the session")
	}
	if r := h.backchannel(sign(h.logoutClaims(), "logout+jwt")); r.StatusCode != http.StatusOK {
		t.Errorf("a logout token typed logout+jwt: status %d, want 200", r.StatusCode)
	}

	// Bearer tokens of an rfc9068 issuer.
	now := time.Now()
	at := map[string]any{"iss": h.op.issuer, "sub": "svc", "aud": "https://api.hospital.test", "iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix()}
	for _, tc := range []struct {
		typ    string
		status int
	}{
		{"at+jwt", 200}, {"application/at+jwt", 200}, {"AT+JWT", 200},
		{"JWT", 401}, {"logout+jwt", 401}, {"", 401},
	} {
		tok := sign(at, tc.typ)
		if tc.typ == "" {
			tok = h.op.signClaims(at)
		}
		r := h.do(h.noRedirectClient(), "GET", "/api/v1", http.Header{"Authorization": {"Bearer " + tok}})
		if r.StatusCode != tc.status || (tc.status == 200) != (r.Header.Get("X-Subject") == "svc") {
			t.Errorf("bearer token typed %q: status %d (app reached %v), want %d", tc.typ, r.StatusCode, r.Header.Get("X-Subject") == "svc", tc.status)
		}
	}
}

// TestRegression_LargeIDTokenIsRefusedClearly: an ID token over the
// provider's max_id_token_bytes (default 16 KiB) is refused before its
// signature is checked, with a sign-in error page that says what
// happened and carries the request id, and an audit record.
func TestRegression_LargeIDTokenIsRefusedClearly(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	for _, n := range []int{1000, 5000} {
		h.op.set(func(op *testOP) {
			op.groups = make([]string, n)
			for i := range op.groups {
				op.groups[i] = "group-with-a-long-name-" + randomToken(3)
			}
		})
		resp := h.signIn("/app/")
		body := bodyOf(resp)
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "sign-in token larger than this site accepts") || !strings.Contains(body, "req-") {
			t.Errorf("%d groups: status %d, want 401 with the explanation and request id:\n%.400s", n, resp.StatusCode, body)
		}
		if h.sessionCookie() != "" {
			t.Errorf("%d groups: session created", n)
		}
	}
	if !h.audit.find("signin", "deny", "token_too_large") {
		t.Error("no signin deny audit record with reason token_too_large")
	}
	h.op.set(func(op *testOP) { op.groups = []string{"clinicians"} })
	signInAccepted(t, h, "a small ID token")

	big := newHarness(t, func(h *harness) { h.cfg.Providers[0].MaxIDTokenBytes = 256 << 10 })
	big.op.set(func(op *testOP) {
		op.groups = make([]string, 1000)
		for i := range op.groups {
			op.groups[i] = "group-with-a-long-name-" + randomToken(3)
		}
	})
	signInAccepted(t, big, "1000 groups under max_id_token_bytes 256 KiB")
}

// signCompact signs the compact serialisation of header and payload, both
// given as JSON text, with k (RS256 or ES256): the JOSE header as written,
// which go-jose would rewrite.
func signCompact(t *testing.T, k *opKey, header, payload string) string {
	t.Helper()
	in := base64.RawURLEncoding.EncodeToString([]byte(header)) + "." + base64.RawURLEncoding.EncodeToString([]byte(payload))
	sum := sha256.Sum256([]byte(in))
	var sig []byte
	switch priv := k.priv.(type) {
	case *rsa.PrivateKey:
		b, err := rsa.SignPKCS1v15(rand.Reader, priv, crypto.SHA256, sum[:])
		if err != nil {
			t.Fatal(err)
		}
		sig = b
	case *ecdsa.PrivateKey:
		r, s, err := ecdsa.Sign(rand.Reader, priv, sum[:])
		if err != nil {
			t.Fatal(err)
		}
		sig = append(r.FillBytes(make([]byte, 32)), s.FillBytes(make([]byte, 32))...)
	default:
		t.Fatalf("key %T", k.priv)
	}
	return in + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// TestRegression_ClaimNamesAreUnique: a token whose claims set or JOSE
// header names a member twice — exactly, or in other letter case, which
// go-oidc's struct fields read as the same claim while telegate's claims
// do not — is refused as an ID token, a logout token and a bearer token:
// one reading of who the subject is, not two.
func TestRegression_ClaimNamesAreUnique(t *testing.T) {
	t.Parallel()
	h := newHarness(t, withBearer)
	// twice adds a member before and after the encoded claims' others.
	twice := func(before, after string) func([]byte) []byte {
		return func(p []byte) []byte {
			p = bytes.Replace(p, []byte("{"), []byte("{"+before), 1)
			if after != "" {
				p = append(p[:len(p)-1], []byte(after+"}")...)
			}
			return p
		}
	}
	members := []struct {
		what    string
		payload func([]byte) []byte
		header  string // "" is the usual header
	}{
		{"sub twice", twice(`"sub":"mallory",`, ""), ""},
		{"SUB before sub", twice(`"SUB":"mallory",`, ""), ""},
		{"Sub after sub", twice("", `,"Sub":"mallory"`), ""},
		{"iss in other case", twice("", `,"ISS":"https://evil.example"`), ""},
		{"exp twice", twice(`"exp":1,`, ""), ""},
		{"typ twice in the header", nil, `{"alg":"%s","kid":"%s","typ":"logout+jwt","typ":"JWT"}`},
		{"kid in other case in the header", nil, `{"alg":"%s","kid":"%s","KID":"other"}`},
	}
	header := func(format string) string {
		if format == "" {
			format = `{"alg":"%s","kid":"%s"}`
		}
		return fmt.Sprintf(format, h.op.sign.alg, h.op.sign.kid)
	}
	sign := func(c map[string]any, payload func([]byte) []byte, hdr string) string {
		p := mustJSON(c)
		if payload != nil {
			p = payload(p)
		}
		return signCompact(t, h.op.sign, header(hdr), string(p))
	}
	now := time.Now()
	for _, m := range members {
		h.op.set(func(op *testOP) {
			op.signOverride = func(p []byte) string {
				if m.payload != nil {
					p = m.payload(p)
				}
				return signCompact(t, op.sign, header(m.header), string(p))
			}
		})
		h.jar.SetCookies(mustURL(h.url), nil)
		signInRefused(t, h, "ID token, "+m.what, "claim_duplicate")
		if r := h.backchannel(sign(h.logoutClaims(), m.payload, m.header)); r.StatusCode != http.StatusBadRequest {
			t.Errorf("logout token, %s: status %d, want 400", m.what, r.StatusCode)
		}
		bc := map[string]any{"iss": h.op.issuer, "sub": "svc", "aud": "https://api.hospital.test",
			"iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix()}
		r := h.do(h.noRedirectClient(), "GET", "/api/v1", http.Header{"Authorization": {"Bearer " + sign(bc, m.payload, m.header)}})
		if r.StatusCode != http.StatusUnauthorized || r.Header.Get("X-Subject") != "" {
			t.Errorf("bearer token, %s: status %d (app reached: %v), want 401", m.what, r.StatusCode, r.Header.Get("X-Subject") != "")
		}
	}
	// The same tokens signed as written, without the second member, pass.
	h.op.set(func(op *testOP) {
		op.signOverride = func(p []byte) string { return signCompact(t, op.sign, header(""), string(p)) }
	})
	h.jar.SetCookies(mustURL(h.url), nil)
	signInAccepted(t, h, "ID token with unique names")
	bc := map[string]any{"iss": h.op.issuer, "sub": "svc", "aud": "https://api.hospital.test",
		"iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix()}
	if r := h.do(h.noRedirectClient(), "GET", "/api/v1", http.Header{"Authorization": {"Bearer " + sign(bc, nil, "")}}); r.StatusCode != http.StatusOK {
		t.Errorf("bearer token with unique names: status %d, want 200", r.StatusCode)
	}
}
