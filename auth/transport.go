package auth

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"golang.org/x/time/rate"

	"github.com/telegate/telegate/config"
)

const (
	// maxIdPBody caps every response body read from an OpenID Provider
	// (discovery, JWKS, token, UserInfo).
	maxIdPBody = 1 << 20
	// jwksRefetchEvery and jwksRefetchBurst bound how often a key set is
	// fetched, so that a flood of tokens with unknown "kid" values cannot
	// hammer the provider (OIDC Core §10.1.1 refetch on unknown kid).
	jwksRefetchEvery = 10 * time.Second
	jwksRefetchBurst = 3
)

// errJWKSRateLimited is returned for a key set fetch refused by the limiter.
var errJWKSRateLimited = errors.New("auth: key set refetch rate limited")

// limitedBodyTransport caps response bodies at max bytes: a body that
// reaches the cap fails the read instead of growing memory.
type limitedBodyTransport struct {
	base http.RoundTripper
	max  int64
}

func (t *limitedBodyTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	resp.Body = &cappedBody{rc: resp.Body, left: t.max}
	return resp, nil
}

type cappedBody struct {
	rc   io.ReadCloser
	left int64
}

func (b *cappedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, fmt.Errorf("auth: identity provider response larger than %d bytes", maxIdPBody)
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	return n, err
}

func (b *cappedBody) Close() error { return b.rc.Close() }

// rateLimitedTransport refuses requests beyond its limiter instead of
// queueing them.
type rateLimitedTransport struct {
	base    http.RoundTripper
	limiter *rate.Limiter
}

func (t *rateLimitedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if !t.limiter.Allow() {
		return nil, errJWKSRateLimited
	}
	return t.base.RoundTrip(r)
}

// idpClients returns the HTTP client for calls to one provider (timeout per
// call, capped bodies, optional private root CA) and the client for its key
// set (the same, rate-limited).
func idpClients(base *http.Client, caFile string, timeout time.Duration) (call, jwks *http.Client, err error) {
	var rt http.RoundTripper = http.DefaultTransport
	if base != nil && base.Transport != nil {
		rt = base.Transport
	}
	if caFile != "" {
		pool, err := config.ReadCertPool(caFile)
		if err != nil {
			return nil, nil, fmt.Errorf("ca_root_file: %w", err)
		}
		ht, ok := rt.(*http.Transport)
		if !ok {
			return nil, nil, errors.New("ca_root_file: the base HTTP client's transport cannot take a root CA")
		}
		ht = ht.Clone()
		if ht.TLSClientConfig == nil {
			ht.TLSClientConfig = new(tls.Config)
		}
		ht.TLSClientConfig.RootCAs = pool
		rt = ht
	}
	capped := &limitedBodyTransport{base: rt, max: maxIdPBody}
	call = &http.Client{Transport: capped, Timeout: timeout}
	jwks = &http.Client{
		Transport: &rateLimitedTransport{base: capped, limiter: rate.NewLimiter(rate.Every(jwksRefetchEvery), jwksRefetchBurst)},
		Timeout:   timeout,
	}
	return call, jwks, nil
}
