package gateway

import (
	"crypto"
	"crypto/ecdsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/telegate/telegate/scope"
)

// Claim names of the assertion besides the registered ones (RFC 7519 §4.1:
// iss, sub, aud, exp, iat, jti).
const (
	ClaimIdP   = "idp"   // the user's issuer (OIDC iss) or "device:<ca id>"
	ClaimRoles = "roles" // telegate roles
	ClaimAMR   = "amr"   // authentication methods (RFC 8176)
)

// assertionCacheSize caps the per-(session, audience) cache.
const assertionCacheSize = 10000

// assertionSigner mints ES256 (RFC 7518 §3.4) JWT assertions.
type assertionSigner struct {
	kid    string
	signer jose.Signer
	jwks   []byte
	cache  *lru.Cache[string, cachedAssertion]
}

type cachedAssertion struct {
	token string
	exp   time.Time
}

// assertionInput is what one assertion says.
type assertionInput struct {
	issuer   string
	audience string
	ttl      time.Duration
	claims   []string // Route.AssertionClaims
	gen      uint64   // configuration generation (cache key part)
}

func newAssertionSigner(key *ecdsa.PrivateKey) (*assertionSigner, error) {
	pub := jose.JSONWebKey{Key: &key.PublicKey, Algorithm: string(jose.ES256), Use: "sig"}
	tp, err := pub.Thumbprint(crypto.SHA256) // RFC 7638
	if err != nil {
		return nil, fmt.Errorf("assertion key thumbprint: %w", err)
	}
	pub.KeyID = base64.RawURLEncoding.EncodeToString(tp)
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: key, KeyID: pub.KeyID}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return nil, fmt.Errorf("assertion signer: %w", err)
	}
	jwks, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{pub}})
	if err != nil {
		return nil, err
	}
	cache, _ := lru.New[string, cachedAssertion](assertionCacheSize)
	return &assertionSigner{kid: pub.KeyID, signer: sig, jwks: jwks, cache: cache}, nil
}

// mint returns a signed assertion for id toward in.audience. Assertions of
// a session are cached per (session, audience) and reused while more than
// half of their lifetime is left; others are minted per request.
func (a *assertionSigner) mint(id *scope.Identity, in assertionInput, now time.Time) (string, error) {
	key := ""
	if id.SessionID != "" {
		key = strconv.FormatUint(in.gen, 10) + "\x00" + id.SessionID + "\x00" + in.audience
		if c, ok := a.cache.Get(key); ok && c.exp.Sub(now) > in.ttl/2 {
			return c.token, nil
		}
	}
	exp := now.Add(in.ttl)
	claims := map[string]any{}
	for _, name := range in.claims {
		if v, ok := id.Claims[name]; ok {
			claims[name] = v
		}
	}
	claims["iss"] = in.issuer
	claims["aud"] = in.audience
	claims["sub"] = id.Subject
	claims[ClaimIdP] = id.Issuer
	claims[ClaimRoles] = nonNil(id.Roles)
	claims[ClaimAMR] = nonNil(id.AMR)
	claims["iat"] = now.Unix()
	claims["nbf"] = now.Unix()
	claims["exp"] = exp.Unix()
	claims["jti"] = newRequestID()
	tok, err := jwt.Signed(a.signer).Claims(claims).Serialize()
	if err != nil {
		return "", fmt.Errorf("mint assertion: %w", err)
	}
	if key != "" {
		a.cache.Add(key, cachedAssertion{token: tok, exp: exp})
	}
	return tok, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
