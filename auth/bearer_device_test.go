package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/page"
)

func withBearer(h *harness) {
	h.cfg.Bearer = []config.Bearer{{
		ID: "api-idp", Issuer: h.op.issuer, Audience: []string{"https://api.hospital.test"},
		Roles: config.RoleMapping{Claim: "roles", Map: map[string][]string{"reader": {"api-reader"}}},
	}}
	h.cfg.Routes[1].Bearer = []string{"api-idp"}
}

func TestBearerTokens(t *testing.T) {
	t.Parallel()
	h := newHarness(t, withBearer)
	now := time.Now()
	base := func() map[string]any {
		return map[string]any{
			"iss": h.op.issuer, "sub": "svc-scheduler", "aud": "https://api.hospital.test", "client_id": "scheduler",
			"iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(), "jti": randomToken(8), "roles": []string{"reader"},
		}
	}
	sign := func(edit func(c map[string]any)) string {
		c := base()
		if edit != nil {
			edit(c)
		}
		return h.op.signClaims(c)
	}
	payload, _ := json.Marshal(base())
	cases := []struct {
		name   string
		auth   string
		status int
	}{
		{"valid", "Bearer " + sign(nil), 200},
		{"scheme is case-insensitive", "bearer " + sign(nil), 200},
		{"audience one of several", "Bearer " + sign(func(c map[string]any) { c["aud"] = []string{"x", "https://api.hospital.test"} }), 200},
		{"wrong audience", "Bearer " + sign(func(c map[string]any) { c["aud"] = "https://other.test" }), 401},
		{"expired", "Bearer " + sign(func(c map[string]any) { c["exp"] = now.Add(-time.Minute).Unix() }), 401},
		{"no iat", "Bearer " + sign(func(c map[string]any) { delete(c, "iat") }), 401},
		{"iat in the future", "Bearer " + sign(func(c map[string]any) { c["iat"] = now.Add(time.Hour).Unix() }), 401},
		{"no sub", "Bearer " + sign(func(c map[string]any) { delete(c, "sub") }), 401},
		{"unknown issuer", "Bearer " + sign(func(c map[string]any) { c["iss"] = "https://evil.test" }), 401},
		{"alg none", "Bearer " + unsignedJWT(payload), 401},
		{"HS256", "Bearer " + hmacJWT(t, "0123456789abcdef0123456789abcdef", "k1", payload), 401},
		{"bad signature", "Bearer " + signJWT(t, cachedRSA(t, "k1", true), payload, nil), 401},
		{"not a JWT", "Bearer abc.def", 401},
		{"empty", "Bearer ", 401},
		{"bad characters", "Bearer a b\"c", 401},
	}
	c := h.noRedirectClient()
	for _, tc := range cases {
		r := h.do(c, "GET", "/api/v1/visits", http.Header{"Authorization": {tc.auth}})
		if r.StatusCode != tc.status {
			t.Errorf("%s: status %d, want %d", tc.name, r.StatusCode, tc.status)
			continue
		}
		if tc.status == 200 {
			if r.Header.Get("X-Kind") != "bearer" || r.Header.Get("X-Subject") != "svc-scheduler" || r.Header.Get("X-Roles") != "api-reader" {
				t.Errorf("%s: identity %s/%s/%s", tc.name, r.Header.Get("X-Kind"), r.Header.Get("X-Subject"), r.Header.Get("X-Roles"))
			}
			continue
		}
		if got := r.Header.Get("WWW-Authenticate"); got != `Bearer realm="telegate", error="invalid_token"` {
			t.Errorf("%s: WWW-Authenticate %q", tc.name, got)
		}
		var b page.Body
		if json.Unmarshal([]byte(bodyOf(r)), &b) != nil || b.Reason != "invalid_token" || b.Status != 401 || b.RequestID == "" {
			t.Errorf("%s: body %q", tc.name, bodyOf(r))
		}
	}
	// A bearer token on a route that takes none is not an identity.
	r := h.do(c, "GET", "/app/", http.Header{"Authorization": {"Bearer " + sign(nil)}})
	if r.StatusCode != http.StatusFound {
		t.Errorf("bearer token on a browser route: %d", r.StatusCode)
	}
	// Basic credentials on the API route are not a bearer token: challenge.
	r = h.do(c, "GET", "/api/v1", http.Header{"Authorization": {"Basic dXNlcjpwdw=="}})
	if r.StatusCode != 401 || r.Header.Get("WWW-Authenticate") != `Bearer realm="telegate"` {
		t.Errorf("basic credentials: %d %q", r.StatusCode, r.Header.Get("WWW-Authenticate"))
	}
}

// testCA issues client certificates.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

func (ca *testCA) issue(t *testing.T, cn string, uri string, eku x509.ExtKeyUsage, notAfter time.Time) *tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{eku},
	}
	if uri != "" {
		u, _ := url.Parse(uri)
		tmpl.URIs = []*url.URL{u}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func TestDeviceCertificates(t *testing.T) {
	t.Parallel()
	carts := newTestCA(t, "Carts CA")
	other := newTestCA(t, "Other CA")
	h := newHarness(t, func(h *harness) {
		h.cfg.Routes = append(h.cfg.Routes, config.Route{ID: "cart", Path: "/cart/", ClientCert: []string{"carts"}})
	})
	h.svc.View().clientCAs = map[string]*x509.CertPool{"carts": carts.pool, "other": other.pool}

	// A TLS listener that asks for any client certificate, as the public
	// listener does; auth verifies against the route's CA itself.
	srv := httptest.NewUnstartedServer(h.front())
	srv.TLS = &tls.Config{ClientAuth: tls.RequestClientCert}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	get := func(cert *tls.Certificate, path string) *http.Response {
		c := h.tlsClientWithCert(cert)
		c.Transport.(*http.Transport).TLSClientConfig.RootCAs = nil
		c.Transport.(*http.Transport).TLSClientConfig.InsecureSkipVerify = true // loopback test server
		resp, err := c.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	future := time.Now().Add(time.Hour)
	cases := []struct {
		name    string
		cert    *tls.Certificate
		status  int
		subject string
	}{
		{"URI SAN", carts.issue(t, "cart-7", "urn:device:cart-7", x509.ExtKeyUsageClientAuth, future), 200, "urn:device:cart-7"},
		{"CN only", carts.issue(t, "cart-8", "", x509.ExtKeyUsageClientAuth, future), 200, "cart-8"},
		{"no certificate", nil, 401, ""},
		{"other CA", other.issue(t, "x", "", x509.ExtKeyUsageClientAuth, future), 403, ""},
		{"server-auth only", carts.issue(t, "srv", "", x509.ExtKeyUsageServerAuth, future), 403, ""},
		{"expired", carts.issue(t, "old", "", x509.ExtKeyUsageClientAuth, time.Now().Add(-time.Minute)), 403, ""},
	}
	for _, tc := range cases {
		r := get(tc.cert, "/cart/x")
		if r.StatusCode != tc.status {
			t.Errorf("%s: status %d, want %d", tc.name, r.StatusCode, tc.status)
			continue
		}
		if tc.status == 200 && (r.Header.Get("X-Kind") != "device" || r.Header.Get("X-Subject") != tc.subject || r.Header.Get("X-Roles") != "device") {
			t.Errorf("%s: identity %s/%s/%s", tc.name, r.Header.Get("X-Kind"), r.Header.Get("X-Subject"), r.Header.Get("X-Roles"))
		}
		if tc.status != 200 && r.Header.Get("Location") != "" {
			t.Errorf("%s: redirected to %q", tc.name, r.Header.Get("Location"))
		}
	}
	// A device certificate is no identity on a route that names no CA.
	if r := get(cases[0].cert, "/app/"); r.StatusCode != http.StatusFound {
		t.Errorf("device on a browser route: %d", r.StatusCode)
	}
}

// TestVisitsAPIBearer: the visits API takes access tokens from the issuers
// in visits.bearer (a scheduling app), and only from them; without that
// setting a token there is ignored and the caller is anonymous.
func TestVisitsAPIBearer(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		enabled bool
		tamper  bool
		status  int
		kind    string
	}{
		{"accepted from visits.bearer", true, false, 200, "bearer"},
		{"bad token refused", true, true, 401, ""},
		{"not configured: anonymous", false, false, 302, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, withBearer, func(h *harness) {
				if tc.enabled {
					h.cfg.Visits.Bearer = []string{"api-idp"}
				}
			})
			now := time.Now()
			tok := h.op.signClaims(map[string]any{
				"iss": h.op.issuer, "sub": "svc-scheduler", "aud": "https://api.hospital.test",
				"iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(), "roles": []string{"reader"},
			})
			if tc.tamper {
				tok = tok[:len(tok)-4] + "AAAA"
			}
			r := h.do(h.noRedirectClient(), "GET", VisitsAPIPrefix+"/abc", http.Header{"Authorization": {"Bearer " + tok}, "Accept": {"text/html"}})
			if r.StatusCode != tc.status || r.Header.Get("X-Kind") != tc.kind {
				t.Fatalf("status %d kind %q, want %d %q", r.StatusCode, r.Header.Get("X-Kind"), tc.status, tc.kind)
			}
		})
	}
}
