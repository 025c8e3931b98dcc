package auth

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/telegate/telegate/config"
)

// maxIdPBody caps every response body read from an OpenID Provider
// (discovery, JWKS, token, UserInfo).
const maxIdPBody = 1 << 20

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

// idpClient returns the HTTP client for calls to one provider, its key set
// included (timeout per call, capped bodies, optional private root CA).
// Key set refetches are bounded by their budgets (keyBudget).
func idpClient(base *http.Client, caFile string, timeout time.Duration) (*http.Client, error) {
	var rt http.RoundTripper = http.DefaultTransport
	if base != nil && base.Transport != nil {
		rt = base.Transport
	}
	if caFile != "" {
		pool, err := config.ReadCertPool(caFile)
		if err != nil {
			return nil, fmt.Errorf("ca_root_file: %w", err)
		}
		ht, ok := rt.(*http.Transport)
		if !ok {
			return nil, errors.New("ca_root_file: the base HTTP client's transport cannot take a root CA")
		}
		ht = ht.Clone()
		if ht.TLSClientConfig == nil {
			ht.TLSClientConfig = new(tls.Config)
		}
		ht.TLSClientConfig.RootCAs = pool
		rt = ht
	}
	return &http.Client{Transport: &limitedBodyTransport{base: rt, max: maxIdPBody}, Timeout: timeout}, nil
}
