package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// testOP is an OpenID Provider for tests, on a loopback TLS server. It
// implements discovery, the authorization endpoint (auto-approving), the
// token endpoint (authorization_code with PKCE S256 checked, refresh_token),
// UserInfo, the key set and end_session. Hooks let a test break the tokens
// it issues in the ways the OpenID RP conformance tests do.
type testOP struct {
	t      testing.TB
	srv    *httptest.Server
	issuer string

	clientID, clientSecret string

	mu   sync.Mutex
	keys []*opKey // published in the key set
	sign *opKey   // signs tokens
	// codes issued by /authorize, by code
	codes map[string]*authReq
	// refresh tokens issued, to the subject
	refreshTokens map[string]string

	// Hooks and knobs (set before the flow under test, under mu).
	subject         string
	groups          []string
	sid             string
	expiresIn       int
	idClaims        func(c map[string]any)      // edits ID token claims
	signOverride    func(payload []byte) string // replaces signing
	userinfoSub     string                      // "" means the subject
	discoveryIssuer string                      // "" means issuer
	issParam        *string                     // the authorization response's iss (RFC 9207); nil: none
	issSupported    bool                        // discovery says authorization_response_iss_parameter_supported
	noEndSession    bool
	refreshFail     bool
	lastAuthorize   url.Values
	lastVerifier    string
	lastEndSession  url.Values

	now func() time.Time // the OP's clock, default time.Now

	tokenHits, refreshHits, jwksHits, userinfoHits atomic.Int32
}

type opKey struct {
	kid  string
	alg  jose.SignatureAlgorithm
	priv crypto.Signer
}

type authReq struct {
	challenge, nonce, redirect string
}

func newECKey(t testing.TB, kid string) *opKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &opKey{kid: kid, alg: jose.ES256, priv: k}
}

// rsaKeyCache saves 2048-bit key generation across tests.
var rsaKeyCache struct {
	once sync.Once
	a, b *rsa.PrivateKey
}

func cachedRSA(t testing.TB, kid string, second bool) *opKey {
	rsaKeyCache.once.Do(func() {
		rsaKeyCache.a, _ = rsa.GenerateKey(rand.Reader, 2048)
		rsaKeyCache.b, _ = rsa.GenerateKey(rand.Reader, 2048)
	})
	if second {
		return &opKey{kid: kid, alg: jose.RS256, priv: rsaKeyCache.b}
	}
	return &opKey{kid: kid, alg: jose.RS256, priv: rsaKeyCache.a}
}

func newTestOP(t testing.TB) *testOP {
	t.Helper()
	op := &testOP{
		t:             t,
		clientID:      "telegate-client",
		clientSecret:  "s3cret-for-tests-0123456789abcdefghijklmnop",
		codes:         map[string]*authReq{},
		refreshTokens: map[string]string{},
		subject:       "alice",
		expiresIn:     3600,
		now:           time.Now,
	}
	k := cachedRSA(t, "k1", false)
	op.keys = []*opKey{k}
	op.sign = k
	op.srv = httptest.NewTLSServer(http.HandlerFunc(op.serve))
	op.issuer = op.srv.URL
	t.Cleanup(op.srv.Close)
	return op
}

func (op *testOP) set(f func(op *testOP)) {
	op.mu.Lock()
	defer op.mu.Unlock()
	f(op)
}

func (op *testOP) serve(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/.well-known/openid-configuration":
		op.mu.Lock()
		iss := op.issuer
		if op.discoveryIssuer != "" {
			iss = op.discoveryIssuer
		}
		doc := map[string]any{
			"issuer":                                iss,
			"authorization_endpoint":                op.issuer + "/authorize",
			"token_endpoint":                        op.issuer + "/token",
			"userinfo_endpoint":                     op.issuer + "/userinfo",
			"jwks_uri":                              op.issuer + "/keys",
			"response_types_supported":              []string{"code"},
			"subject_types_supported":               []string{"public"},
			"id_token_signing_alg_values_supported": []string{"RS256", "ES256", "HS256", "none"},
			"code_challenge_methods_supported":      []string{"S256"},
			"backchannel_logout_supported":          true,
			"backchannel_logout_session_supported":  true,
		}
		if !op.noEndSession {
			doc["end_session_endpoint"] = op.issuer + "/end_session"
		}
		if op.issSupported {
			doc["authorization_response_iss_parameter_supported"] = true
		}
		op.mu.Unlock()
		writeTestJSON(w, 200, doc)
	case "/keys":
		op.jwksHits.Add(1)
		op.mu.Lock()
		var set jose.JSONWebKeySet
		for _, k := range op.keys {
			set.Keys = append(set.Keys, jose.JSONWebKey{Key: k.priv.Public(), KeyID: k.kid, Algorithm: string(k.alg), Use: "sig"})
		}
		op.mu.Unlock()
		writeTestJSON(w, 200, set)
	case "/authorize":
		op.authorize(w, r)
	case "/token":
		op.token(w, r)
	case "/userinfo":
		op.userinfoHits.Add(1)
		if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
			w.WriteHeader(401)
			return
		}
		op.mu.Lock()
		sub := op.userinfoSub
		if sub == "" {
			sub = op.subject
		}
		op.mu.Unlock()
		writeTestJSON(w, 200, map[string]any{"sub": sub, "name": "Alice"})
	case "/end_session":
		q := r.URL.Query()
		op.mu.Lock()
		op.lastEndSession = q
		op.mu.Unlock()
		u, err := url.Parse(q.Get("post_logout_redirect_uri"))
		if err != nil || u.Host == "" {
			http.Error(w, "bad post_logout_redirect_uri", 400)
			return
		}
		v := u.Query()
		v.Set("state", q.Get("state"))
		u.RawQuery = v.Encode()
		http.Redirect(w, r, u.String(), http.StatusFound)
	default:
		http.NotFound(w, r)
	}
}

func (op *testOP) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	op.mu.Lock()
	op.lastAuthorize = q
	op.mu.Unlock()
	if q.Get("response_type") != "code" || q.Get("client_id") != op.clientID ||
		!strings.Contains(" "+q.Get("scope")+" ", " openid ") ||
		q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" ||
		q.Get("state") == "" || q.Get("nonce") == "" {
		http.Error(w, "invalid authorization request", 400)
		return
	}
	code := randomToken(16)
	op.mu.Lock()
	op.codes[code] = &authReq{challenge: q.Get("code_challenge"), nonce: q.Get("nonce"), redirect: q.Get("redirect_uri")}
	op.mu.Unlock()
	u, _ := url.Parse(q.Get("redirect_uri"))
	v := url.Values{"code": {code}, "state": {q.Get("state")}}
	op.mu.Lock()
	if op.issParam != nil {
		v.Set("iss", *op.issParam)
	}
	op.mu.Unlock()
	u.RawQuery = v.Encode()
	http.Redirect(w, r, u.String(), http.StatusFound)
}

func (op *testOP) clientAuthOK(r *http.Request) bool {
	id, secret, ok := r.BasicAuth()
	if ok {
		id, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(secret)
	} else {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	return id == op.clientID && secret == op.clientSecret
}

func (op *testOP) token(w http.ResponseWriter, r *http.Request) {
	op.tokenHits.Add(1)
	if r.Method != http.MethodPost || r.ParseForm() != nil || !op.clientAuthOK(r) {
		writeTestJSON(w, 401, map[string]string{"error": "invalid_client"})
		return
	}
	switch r.PostForm.Get("grant_type") {
	case "authorization_code":
		code := r.PostForm.Get("code")
		op.mu.Lock()
		req := op.codes[code]
		delete(op.codes, code) // single use
		op.lastVerifier = r.PostForm.Get("code_verifier")
		op.mu.Unlock()
		if req == nil || req.redirect != r.PostForm.Get("redirect_uri") {
			writeTestJSON(w, 400, map[string]string{"error": "invalid_grant"})
			return
		}
		sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
		if base64.RawURLEncoding.EncodeToString(sum[:]) != req.challenge {
			writeTestJSON(w, 400, map[string]string{"error": "invalid_grant", "error_description": "PKCE verification failed"})
			return
		}
		op.issueTokens(w, req.nonce)
	case "refresh_token":
		op.refreshHits.Add(1)
		time.Sleep(20 * time.Millisecond) // widen the window for concurrent refreshes
		op.mu.Lock()
		_, known := op.refreshTokens[r.PostForm.Get("refresh_token")]
		fail := op.refreshFail
		op.mu.Unlock()
		if !known || fail {
			writeTestJSON(w, 400, map[string]string{"error": "invalid_grant"})
			return
		}
		op.issueTokens(w, "")
	default:
		writeTestJSON(w, 400, map[string]string{"error": "unsupported_grant_type"})
	}
}

// idTokenClaims are the claims of a well-formed ID token for nonce.
func (op *testOP) idTokenClaims(nonce string) map[string]any {
	now := op.now()
	c := map[string]any{
		"iss":                op.issuer,
		"sub":                op.subject,
		"aud":                op.clientID,
		"exp":                now.Add(time.Hour).Unix(),
		"iat":                now.Unix(),
		"auth_time":          now.Unix(),
		"amr":                []string{"pwd", "otp"},
		"acr":                "urn:telegate:loa:2",
		"name":               "Alice Example",
		"email":              "alice@hospital.example",
		"preferred_username": "alice",
		"address":            "not kept",
	}
	if nonce != "" {
		c["nonce"] = nonce
	}
	if op.groups != nil {
		c["groups"] = op.groups
	}
	if op.sid != "" {
		c["sid"] = op.sid
	}
	return c
}

func (op *testOP) issueTokens(w http.ResponseWriter, nonce string) {
	op.mu.Lock()
	claims := op.idTokenClaims(nonce)
	if op.idClaims != nil {
		op.idClaims(claims)
	}
	payload, _ := json.Marshal(claims)
	idt := op.signLocked(payload)
	rt := randomToken(16)
	op.refreshTokens[rt] = op.subject
	exp := op.expiresIn
	op.mu.Unlock()
	writeTestJSON(w, 200, map[string]any{
		"access_token":  randomToken(16),
		"token_type":    "Bearer",
		"expires_in":    exp,
		"refresh_token": rt,
		"id_token":      idt,
	})
}

func (op *testOP) signLocked(payload []byte) string {
	if op.signOverride != nil {
		return op.signOverride(payload)
	}
	return signJWT(op.t, op.sign, payload, nil)
}

// signJWT signs payload with k (kid omitted when k.kid is "").
func signJWT(t testing.TB, k *opKey, payload []byte, extra map[jose.HeaderKey]any) string {
	opts := &jose.SignerOptions{ExtraHeaders: map[jose.HeaderKey]any{}}
	if k.kid != "" {
		opts.ExtraHeaders["kid"] = k.kid
	}
	for h, v := range extra {
		opts.ExtraHeaders[h] = v
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: k.alg, Key: k.priv}, opts)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// unsignedJWT builds a token with alg "none" (RFC 7519 §6).
func unsignedJWT(payload []byte) string {
	h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))
	return h + "." + base64.RawURLEncoding.EncodeToString(payload) + "."
}

// hmacJWT signs payload with HS256 under secret (the alg-confusion attack).
func hmacJWT(t testing.TB, secret string, kid string, payload []byte) string {
	opts := (&jose.SignerOptions{}).WithHeader("kid", kid)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: []byte(secret)}, opts)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := jws.CompactSerialize()
	return s
}

// signClaims signs claims with the OP's current key.
func (op *testOP) signClaims(claims map[string]any) string {
	payload, _ := json.Marshal(claims)
	op.mu.Lock()
	defer op.mu.Unlock()
	return signJWT(op.t, op.sign, payload, nil)
}

func writeTestJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
