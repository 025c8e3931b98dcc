package auth

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/telegate/telegate/config"
)

const (
	// iatSkew is how far in the future an "iat" may lie (clock skew).
	iatSkew = 2 * time.Minute
	// maxGroups and maxClaimLen bound what a token may put in a session.
	maxGroups   = 1000
	maxClaimLen = 256
)

// pinAlgs is the algorithm list token verification is pinned to: the
// configured signing_algs (config.DefaultSigningAlgs when the file names
// none), each by config's rule (config.CheckSigningAlg: the asymmetric JWS
// algorithms of config.SigningAlgs; "none" and the HMAC family never).
func pinAlgs(algs []string) ([]string, error) {
	if len(algs) == 0 {
		return nil, errors.New("signing_algs: none configured")
	}
	for i, a := range algs {
		if err := config.CheckSigningAlg(a); err != nil {
			return nil, fmt.Errorf("signing_algs[%d]: %w", i, err)
		}
	}
	return slices.Clone(algs), nil
}

// relyingParty is telegate's client registration at one OpenID Provider,
// as one View configures it. Its endpoints and keys come from the issuer's
// discovery, shared between views (see discovery).
type relyingParty struct {
	cfg     config.Provider
	algs    []string
	oauth   oauth2.Config // without Endpoint: ready() adds it
	client  *http.Client
	timeout time.Duration
	now     func() time.Time
	disc    *discovery
	live    atomic.Pointer[rpLive]
}

// rpLive is a relying party whose provider has been discovered.
type rpLive struct {
	oauth    *oauth2.Config
	provider *oidc.Provider
	// verifier checks ID tokens, refetching keys on the sign-in budget;
	// logoutVerifier checks back-channel logout tokens on the
	// back-channel budget (discovered).
	verifier       *oidc.IDTokenVerifier
	logoutVerifier *oidc.IDTokenVerifier
	endSession     string
	// issRequired: the provider announced the iss parameter (RFC 9207).
	issRequired bool
}

// discoveryDoc holds the discovery fields go-oidc does not expose.
type discoveryDoc struct {
	JWKSURI            string `json:"jwks_uri"`
	EndSessionEndpoint string `json:"end_session_endpoint"`
	// IssParameter: the provider puts iss in its authorization responses
	// (RFC 9207 §3), which telegate then requires.
	IssParameter bool `json:"authorization_response_iss_parameter_supported"`
}

// newRelyingParty prepares p's OAuth 2.0 client: pinned algorithms, the
// client secret (read from client_secret_file), redirect URI and scopes. It
// contacts nothing. A problem with one of p's fields is a
// config.FieldError naming that field (relative to p).
func newRelyingParty(p config.Provider, base *http.Client, now func() time.Time) (*relyingParty, error) {
	algs, err := pinAlgs(p.SigningAlgs)
	if err != nil {
		return nil, err
	}
	secret := p.ClientSecret
	if secret == "" && p.ClientSecretFile != "" {
		s, err := config.ReadSecretFile(p.ClientSecretFile)
		if err != nil {
			return nil, config.FieldError{Field: "client_secret_file", Message: err.Error()}
		}
		secret = strings.TrimSpace(s)
	}
	call, err := idpClient(base, p.CARootFile, p.Timeout)
	if err != nil {
		return nil, err
	}
	redirect := p.RedirectURL
	scopes := []string{oidc.ScopeOpenID}
	for _, s := range p.Scopes {
		if !slices.Contains(scopes, s) {
			scopes = append(scopes, s)
		}
	}
	return &relyingParty{
		cfg:  p,
		algs: algs,
		oauth: oauth2.Config{
			ClientID:     p.ClientID,
			ClientSecret: secret,
			RedirectURL:  redirect,
			Scopes:       scopes,
		},
		client:  call,
		timeout: call.Timeout,
		now:     now,
	}, nil
}

// displayName is the provider's name on pages: display_name, else its id.
func (rp *relyingParty) displayName() string {
	if rp.cfg.DisplayName != "" {
		return rp.cfg.DisplayName
	}
	return rp.cfg.ID
}

// discovered is provider id's relying party once discovered, or nil.
func (s *View) discovered(id string) *rpLive {
	rp := s.providers[id]
	if rp == nil {
		return nil
	}
	l, _ := rp.ready()
	return l
}

// ready is the relying party with its provider discovered, or the reason
// it cannot sign anyone in yet (errNotDiscovered: answer 503).
func (rp *relyingParty) ready() (*rpLive, error) {
	if l := rp.live.Load(); l != nil {
		return l, nil
	}
	d, err := rp.disc.result()
	if err != nil {
		return nil, err
	}
	oc := rp.oauth
	oc.Endpoint = d.op.Endpoint()
	vc := &oidc.Config{
		ClientID:             rp.cfg.ClientID,
		SupportedSigningAlgs: rp.algs,
		Now:                  rp.now,
	}
	l := &rpLive{
		oauth:          &oc,
		provider:       d.op,
		verifier:       oidc.NewVerifier(rp.cfg.Issuer, d.signIn, vc),
		logoutVerifier: oidc.NewVerifier(rp.cfg.Issuer, d.backchannel, vc),
		endSession:     d.endSession,
		issRequired:    d.issParameter,
	}
	rp.live.CompareAndSwap(nil, l)
	return rp.live.Load(), nil
}

// ctx returns a context for one call to the provider: its HTTP client and
// its timeout.
func (rp *relyingParty) ctx(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(parent), rp.timeout)
	return oidc.ClientContext(ctx, rp.client), cancel
}

// refusal is a sign-in refused for a reason that is safe to log, audit and
// count (a metric label).
type refusal struct {
	reason string
	status int
	err    error
}

func (r *refusal) Error() string {
	if r.err != nil {
		return r.reason + ": " + r.err.Error()
	}
	return r.reason
}

func refuse(reason string, status int, err error) *refusal {
	return &refusal{reason: reason, status: status, err: err}
}

// tokenClaims are the ID token claims telegate reads beyond go-oidc's.
type tokenClaims struct {
	AZP      string          `json:"azp"`
	SID      string          `json:"sid"`
	AMR      []string        `json:"amr"`
	ACR      string          `json:"acr"`
	AuthTime json.Number     `json:"auth_time"`
	Name     json.RawMessage `json:"name"`
	Email    json.RawMessage `json:"email"`
	PrefUser json.RawMessage `json:"preferred_username"`
}

// verifiedID is what a verified ID token contributes to a session.
type verifiedID struct {
	token  *oidc.IDToken
	raw    string
	claims tokenClaims
	all    map[string]json.RawMessage
}

// idTokenRules are the provider's checks of an ID token beyond go-oidc's
// (tokenRules): at most max_id_token_bytes, typ absent or JWT, NumericDate
// claims that are JSON numbers, iat present, not ahead by more than
// iatSkew and not older than max_token_age.
func (rp *relyingParty) idTokenRules() tokenRules {
	return tokenRules{use: useIDToken, maxBytes: rp.cfg.MaxIDTokenBytes, maxAge: rp.cfg.MaxTokenAge, now: rp.now}
}

// verifyIDToken applies OIDC Core §3.1.3.7: the size and JOSE header of
// the token (idTokenRules), then signature with a pinned algorithm, iss,
// aud, exp (go-oidc), then the checks go-oidc leaves to the caller: nonce
// equality (step 11), non-empty sub (§2), the claims' types and iat (step
// 10, idTokenRules), azp equal to the client id when present and required
// when aud has several values (steps 4–5), and at_hash when present
// (§3.1.3.8). nonce "" skips the nonce check (refresh, §12.2).
func (rp *relyingParty) verifyIDToken(ctx context.Context, raw, nonce, accessToken string) (*verifiedID, *refusal) {
	rules := rp.idTokenRules()
	if reason := rules.check(raw); reason != "" {
		return nil, refuse(reason, http.StatusUnauthorized, nil)
	}
	l, err := rp.ready()
	if err != nil {
		return nil, refuse("provider_unavailable", http.StatusServiceUnavailable, err)
	}
	tok, err := l.verifier.Verify(ctx, raw)
	if err != nil {
		return nil, refuse("id_token_invalid", http.StatusUnauthorized, err)
	}
	if nonce != "" && subtle.ConstantTimeCompare([]byte(tok.Nonce), []byte(nonce)) != 1 {
		return nil, refuse("nonce_mismatch", http.StatusUnauthorized, nil)
	}
	if tok.Subject == "" {
		return nil, refuse("sub_missing", http.StatusUnauthorized, nil)
	}
	v := &verifiedID{token: tok, raw: raw}
	if err := tok.Claims(&v.all); err != nil {
		return nil, refuse("id_token_claims", http.StatusUnauthorized, err)
	}
	if reason := rules.checkClaims(v.all); reason != "" {
		return nil, refuse(reason, http.StatusUnauthorized, nil)
	}
	if err := tok.Claims(&v.claims); err != nil {
		return nil, refuse("id_token_claims", http.StatusUnauthorized, err)
	}
	if v.claims.AZP != "" && v.claims.AZP != rp.cfg.ClientID {
		return nil, refuse("azp_mismatch", http.StatusUnauthorized, nil)
	}
	if len(tok.Audience) > 1 && v.claims.AZP == "" {
		return nil, refuse("azp_missing", http.StatusUnauthorized, nil)
	}
	if tok.AccessTokenHash != "" && accessToken != "" {
		if err := tok.VerifyAccessToken(accessToken); err != nil {
			return nil, refuse("at_hash_mismatch", http.StatusUnauthorized, err)
		}
	}
	return v, nil
}

// checkUserInfo fetches UserInfo (OIDC Core §5.3) and requires its sub to
// equal the ID token's (§5.3.2).
func (rp *relyingParty) checkUserInfo(ctx context.Context, tok *oauth2.Token, sub string) *refusal {
	cctx, cancel := rp.ctx(ctx)
	defer cancel()
	l, err := rp.ready()
	if err != nil {
		return refuse("provider_unavailable", http.StatusServiceUnavailable, err)
	}
	ui, err := l.provider.UserInfo(cctx, oauth2.StaticTokenSource(tok))
	if err != nil {
		return refuse("userinfo_failed", http.StatusUnauthorized, err)
	}
	if ui.Subject == "" || subtle.ConstantTimeCompare([]byte(ui.Subject), []byte(sub)) != 1 {
		return refuse("userinfo_sub_mismatch", http.StatusUnauthorized, nil)
	}
	return nil
}

// mapRoles turns the group claim into groups and roles by m: every value of
// the claim (a string or an array of strings) is a group; roles are
// m.Always plus m.Map[group] for each group. Both are sorted and unique.
// A group claim of email or phone_number that the provider did not
// verify gives no group (unverifiedClaim).
func mapRoles(m config.RoleMapping, all map[string]json.RawMessage, trustUnverifiedEmail bool) (groups, roles []string) {
	claim := m.Claim
	if raw, ok := all[claim]; ok && !unverifiedClaim(all, claim, trustUnverifiedEmail) {
		var list []any
		if err := json.Unmarshal(raw, &list); err == nil {
			for _, g := range list {
				if s, ok := g.(string); ok && s != "" && len(s) <= maxClaimLen && len(groups) < maxGroups {
					groups = append(groups, s)
				}
			}
		} else {
			var one string
			if err := json.Unmarshal(raw, &one); err == nil && one != "" && len(one) <= maxClaimLen {
				groups = append(groups, one)
			}
		}
	}
	sort.Strings(groups)
	groups = slices.Compact(groups)
	roles = append(roles, m.Always...)
	for _, g := range groups {
		roles = append(roles, m.Map[g]...)
	}
	sort.Strings(roles)
	roles = slices.Compact(roles)
	return groups, roles
}

// keptClaims returns the string claims a session keeps for policy and the
// assertion allow-list: name, preferred_username, and email and
// phone_number only when the provider verified them (unverifiedClaim).
func keptClaims(all map[string]json.RawMessage, trustUnverifiedEmail bool) map[string]string {
	var out map[string]string
	for _, name := range []string{"name", "email", "phone_number", "preferred_username"} {
		raw, ok := all[name]
		if !ok || unverifiedClaim(all, name, trustUnverifiedEmail) {
			continue
		}
		var s string
		if json.Unmarshal(raw, &s) != nil || s == "" || len(s) > maxClaimLen {
			continue
		}
		if out == nil {
			out = make(map[string]string, 4)
		}
		out[name] = s
	}
	return out
}

// unverifiedClaim reports whether claim is one whose value the provider
// vouches for only with a verification claim (OIDC Core §5.1), and did
// not: email without email_verified true (unless trustUnverifiedEmail,
// providers[].trust_unverified_email), phone_number without
// phone_number_verified true. Such a claim is used by no policy rule,
// role mapping or assertion: the person may not own the address or
// number. The one rule; keptClaims and mapRoles follow it.
func unverifiedClaim(all map[string]json.RawMessage, claim string, trustUnverifiedEmail bool) bool {
	switch claim {
	case "email":
		return !trustUnverifiedEmail && !claimTrue(all["email_verified"])
	case "phone_number":
		return !claimTrue(all["phone_number_verified"])
	}
	return false
}

// claimTrue reports whether a claim is JSON true or the string "true".
func claimTrue(raw json.RawMessage) bool {
	var b bool
	if json.Unmarshal(raw, &b) == nil {
		return b
	}
	var s string
	return json.Unmarshal(raw, &s) == nil && s == "true"
}

// authTime returns the auth_time claim (OIDC Core §2) or def.
func authTime(n json.Number, def time.Time) time.Time {
	if n == "" {
		return def
	}
	f, err := n.Float64()
	if err != nil || f <= 0 {
		return def
	}
	return time.Unix(int64(f), 0)
}
