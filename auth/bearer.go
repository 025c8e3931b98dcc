package auth

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"

	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/page"
	"github.com/telegate/telegate/scope"
)

// maxBearerLen caps the Authorization header a bearer token may use.
const maxBearerLen = 16 << 10

// bearerVerifier verifies JWT access tokens (RFC 9068) from one issuer.
type bearerVerifier struct {
	cfg      config.Bearer
	algs     []jose.SignatureAlgorithm
	oidcAlgs []string
	client   *http.Client
	now      func() time.Time
	disc     *discovery
	live     atomic.Pointer[oidc.IDTokenVerifier]
}

// newBearerVerifier prepares b's access-token checks (pinned algorithms,
// issuer, audiences). Its keys come from the issuer's discovery or from
// b.JWKSURL; it contacts nothing.
func newBearerVerifier(b config.Bearer, base *http.Client, now func() time.Time) (*bearerVerifier, error) {
	algs, err := pinAlgs(b.SigningAlgs)
	if err != nil {
		return nil, err
	}
	// bearer issuers have no timeout setting: calls to them take the
	// providers' default.
	call, err := idpClient(base, b.CARootFile, config.DefaultProviderTimeout)
	if err != nil {
		return nil, err
	}
	bv := &bearerVerifier{cfg: b, oidcAlgs: algs, client: call, now: now}
	for _, a := range algs {
		bv.algs = append(bv.algs, jose.SignatureAlgorithm(a))
	}
	return bv, nil
}

// verifier is the token verifier once the issuer's keys are known.
func (bv *bearerVerifier) verifier() (*oidc.IDTokenVerifier, error) {
	if v := bv.live.Load(); v != nil {
		return v, nil
	}
	d, err := bv.disc.result()
	if err != nil {
		return nil, err
	}
	v := oidc.NewVerifier(bv.cfg.Issuer, d.signIn, &oidc.Config{
		SkipClientIDCheck:    true, // audience is checked against the list below
		SupportedSigningAlgs: bv.oidcAlgs,
		Now:                  bv.now,
	})
	bv.live.CompareAndSwap(nil, v)
	return bv.live.Load(), nil
}

func bearerFromRequest(r *http.Request) (token string, present, ok bool) {
	vals := r.Header.Values("Authorization")
	if len(vals) == 0 {
		return "", false, false
	}
	scheme, rest, _ := strings.Cut(vals[0], " ")
	if !strings.EqualFold(scheme, "Bearer") {
		if len(vals) == 1 {
			return "", false, false
		}
		return "", true, false
	}
	if len(vals) > 1 || len(vals[0]) > maxBearerLen {
		return "", true, false
	}
	token = strings.TrimSpace(rest)
	if token == "" {
		return "", true, false
	}
	for i := 0; i < len(token); i++ {
		c := token[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.IndexByte("-._~+/=", c) >= 0) {
			return "", true, false
		}
	}
	return token, true, true
}

// accessClaims are the RFC 9068 §2.2 claims telegate reads.
type accessClaims struct {
	Issuer   string      `json:"iss"`
	Audience audience    `json:"aud"`
	AMR      []string    `json:"amr"`
	ACR      string      `json:"acr"`
	AuthTime json.Number `json:"auth_time"`
}

// audience accepts "aud" as a string or an array (RFC 7519 §4.1.3).
type audience []string

func (a *audience) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*a = audience{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return err
	}
	*a = many
	return nil
}

// verifyBearer verifies raw against the route's bearer issuers: typ
// (at+jwt required when the issuer is rfc9068), signature with a pinned
// algorithm, iss, exp (go-oidc), aud one of the configured audiences,
// NumericDate claims that are JSON numbers, iat present and not in the
// future (tokenRules), non-empty sub (RFC 9068 §4).
// It returns the identity, or nil and a short reason.
func (s *View) verifyBearer(ctx context.Context, route *config.Route, raw string) (*scope.Identity, string) {
	// Find the issuer without trusting the token yet.
	var iss string
	for _, id := range route.Bearer {
		bv := s.bearers[id]
		if bv == nil {
			continue
		}
		jws, err := jose.ParseSignedCompact(raw, bv.algs)
		if err != nil {
			continue
		}
		var c accessClaims
		if json.Unmarshal(jws.UnsafePayloadWithoutVerification(), &c) != nil {
			return nil, "malformed"
		}
		iss = c.Issuer
		break
	}
	if iss == "" {
		return nil, "malformed"
	}
	var bv *bearerVerifier
	for _, id := range route.Bearer {
		if b := s.bearers[id]; b != nil && b.cfg.Issuer == iss {
			bv = b
			break
		}
	}
	if bv == nil {
		return nil, "issuer"
	}
	rules := tokenRules{use: useAccess, maxBytes: maxBearerLen, rfc9068: bv.cfg.RFC9068, now: bv.now}
	if reason := rules.check(raw); reason != "" {
		return nil, reason
	}
	verifier, err := bv.verifier()
	if err != nil {
		return nil, "unavailable"
	}
	tok, err := verifier.Verify(ctx, raw)
	if err != nil {
		var exp *oidc.TokenExpiredError
		if errors.As(err, &exp) {
			return nil, "expired"
		}
		return nil, "signature"
	}
	var c accessClaims
	var all map[string]json.RawMessage
	if tok.Claims(&c) != nil || tok.Claims(&all) != nil {
		return nil, "malformed"
	}
	if !slices.ContainsFunc(c.Audience, func(a string) bool { return slices.Contains(bv.cfg.Audience, a) }) {
		return nil, "audience"
	}
	if tok.Subject == "" {
		return nil, "sub_missing"
	}
	if reason := rules.checkClaims(all); reason != "" {
		return nil, reason
	}
	groups, roles := mapRoles(bv.cfg.Roles, all, false)
	id := &scope.Identity{
		Kind:     "bearer",
		Provider: bv.cfg.ID,
		Issuer:   tok.Issuer,
		Subject:  tok.Subject,
		Roles:    roles,
		Groups:   groups,
		AMR:      c.AMR,
		ACR:      c.ACR,
		AuthTime: authTime(c.AuthTime, time.Time{}),
		NotAfter: tok.Expiry,
	}
	if kept := keptClaims(all, false); len(kept) > 0 {
		id.Claims = make(map[string]any, len(kept))
		for k, v := range kept {
			id.Claims[k] = v
		}
	}
	return id, ""
}

// bearerError answers 401 with `WWW-Authenticate: Bearer realm="telegate",
// error="invalid_token"` (RFC 6750 §3, §3.1) and a JSON body.
func (s *View) bearerError(w http.ResponseWriter, r *http.Request, reason string) {
	rid := requestID(r)
	s.metrics.bearer.WithLabelValues(reason).Inc()
	s.log.Info("auth: bearer token refused", "reason", reason, "request_id", rid)
	w.Header().Set("WWW-Authenticate", `Bearer realm="telegate", error="invalid_token"`)
	page.Write(w, r, page.Problem{Status: http.StatusUnauthorized, Reason: "invalid_token", Message: "The access token was not accepted.", JSON: true})
}
