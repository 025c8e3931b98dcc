package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/time/rate"

	"github.com/telegate/telegate/config"
)

const (
	// jwksRefetchEvery and jwksRefetchBurst bound how often one use of a
	// key set (keyBudget) may fetch it again, so that a flood of tokens
	// with unknown "kid" values cannot hammer the provider (OIDC Core
	// §10.1.1: refetch on an unknown kid).
	jwksRefetchEvery = 10 * time.Second
	jwksRefetchBurst = 3
)

// errJWKSRateLimited is the error of a token whose key is not cached when
// its use has no refetch left in its budget.
var errJWKSRateLimited = errors.New("auth: key set refetch rate limited")

// joseAlgs are the algorithms a key set parses tokens with: every
// algorithm signing_algs may name. The verifier has already held the
// token to the provider's pinned list.
var joseAlgs = func() []jose.SignatureAlgorithm {
	out := make([]jose.SignatureAlgorithm, len(config.SigningAlgs))
	for i, a := range config.SigningAlgs {
		out[i] = jose.SignatureAlgorithm(a)
	}
	return out
}()

// keySet is one issuer's JSON Web Key Set (RFC 7517 §5), fetched from its
// jwks_uri and cached. Every use of it fetches through a keyBudget of its
// own, so that tokens anyone may send (back-channel logout) cannot spend
// the refetches sign-in needs after the provider rotates its key. Safe for
// concurrent use.
type keySet struct {
	url    string
	client *http.Client // capped bodies, the provider's timeout

	mu       sync.Mutex
	keys     []jose.JSONWebKey
	inflight *keyFetch
}

// keyFetch is a fetch of the key set in progress; every use waits for the
// same one.
type keyFetch struct {
	done chan struct{}
	keys []jose.JSONWebKey
	err  error
}

func newKeySet(url string, client *http.Client) *keySet {
	return &keySet{url: url, client: client}
}

// budget returns a view of ks that fetches it again at most burst times
// at once and once per every after that.
func (ks *keySet) budget(every time.Duration, burst int) *keyBudget {
	return &keyBudget{set: ks, limiter: rate.NewLimiter(rate.Every(every), burst)}
}

// cached returns the keys fetched last.
func (ks *keySet) cached() []jose.JSONWebKey {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	return ks.keys
}

// refresh fetches the key set again, or waits for the fetch already in
// progress, which costs no budget. A new fetch takes a token from
// limiter first; without one it returns errJWKSRateLimited. A failed
// fetch keeps the keys cached before it.
func (ks *keySet) refresh(ctx context.Context, limiter *rate.Limiter) ([]jose.JSONWebKey, error) {
	ks.mu.Lock()
	f := ks.inflight
	if f == nil {
		if !limiter.Allow() {
			ks.mu.Unlock()
			return nil, errJWKSRateLimited
		}
		f = &keyFetch{done: make(chan struct{})}
		ks.inflight = f
		go ks.fetch(context.WithoutCancel(ctx), f)
	}
	ks.mu.Unlock()
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-f.done:
		return f.keys, f.err
	}
}

// fetch runs f: one GET of the key set, bounded by the client's timeout.
func (ks *keySet) fetch(ctx context.Context, f *keyFetch) {
	keys, err := ks.get(ctx)
	ks.mu.Lock()
	if err == nil {
		ks.keys = keys
	}
	ks.inflight = nil
	ks.mu.Unlock()
	f.keys, f.err = keys, err
	close(f.done)
}

func (ks *keySet) get(ctx context.Context) ([]jose.JSONWebKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ks.url, nil)
	if err != nil {
		return nil, fmt.Errorf("auth: key set request: %w", err)
	}
	req.Header.Set("Cache-Control", "no-cache")
	resp, err := ks.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("auth: key set: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("auth: key set: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("auth: key set: HTTP %d", resp.StatusCode)
	}
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, fmt.Errorf("auth: key set: %w", err)
	}
	var keys []jose.JSONWebKey
	for _, raw := range set.Keys {
		var k jose.JSONWebKey
		// A key telegate cannot read (an unknown kty or curve) is skipped
		// (RFC 7517 §5: ignore what is not understood).
		if json.Unmarshal(raw, &k) != nil || !k.Valid() || !k.IsPublic() || (k.Use != "" && k.Use != "sig") {
			continue
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// keyBudget is a key set as one use sees it (sign-in, back-channel
// logout): the shared cache, with a refetch budget of its own. It is the
// oidc.KeySet of that use's verifier.
type keyBudget struct {
	set     *keySet
	limiter *rate.Limiter
}

// VerifySignature returns the payload of the compact JWS jwt once a key of
// the set verifies it: a cached key with its kid (any cached key when it
// names none), else a key fetched again when its kid is not cached — a
// kid the cache knows whose signature fails is a forgery, not a rotation,
// and costs no fetch. Fetches take the budget's tokens
// (errJWKSRateLimited without).
func (b *keyBudget) VerifySignature(ctx context.Context, jwt string) ([]byte, error) {
	jws, err := jose.ParseSignedCompact(jwt, joseAlgs)
	if err != nil {
		return nil, fmt.Errorf("auth: malformed token: %w", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, errors.New("auth: a token must have exactly one signature")
	}
	kid := jws.Signatures[0].Header.KeyID
	keys := b.set.cached()
	if p, known := verifyWith(jws, keys, kid); p != nil {
		return p, nil
	} else if known {
		return nil, errors.New("auth: token signature does not verify")
	}
	keys, err = b.set.refresh(ctx, b.limiter)
	if err != nil {
		return nil, err
	}
	if p, _ := verifyWith(jws, keys, kid); p != nil {
		return p, nil
	}
	return nil, errors.New("auth: no key of the key set verifies the token")
}

// verifyWith returns jws's payload when one of keys with kid ("" for any)
// verifies it; known reports whether keys hold kid at all.
func verifyWith(jws *jose.JSONWebSignature, keys []jose.JSONWebKey, kid string) (payload []byte, known bool) {
	for i := range keys {
		if kid != "" && keys[i].KeyID != kid {
			continue
		}
		known = kid != ""
		if p, err := jws.Verify(&keys[i]); err == nil {
			return p, known
		}
	}
	return nil, known
}
