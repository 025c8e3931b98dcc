package edgetls

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/telegate/telegate/config"
)

// TestHTTPHandlerRedirectsOnlyConfiguredHosts is also the regression test
// against an open redirect through the Host header.
func TestHTTPHandlerRedirectsOnlyConfiguredHosts(t *testing.T) {
	t.Parallel()
	pki := newTestCA(t, "PKI")
	dir := t.TempDir()
	c, k := pki.issue(t, 1, false, pki.cert.NotAfter, "*.hospital.test")
	cfg := baseConfig(t,
		config.TLSHost{Names: []string{"localhost", "::1"}, Mode: ModeLocal},
		config.TLSHost{Names: []string{"*.hospital.test"}, Mode: ModeFiles, CertFile: writeFile(t, dir, "c.pem", c), KeyFile: writeFile(t, dir, "k.pem", k)},
	)
	m := newManager(t, Options{Config: cfg})
	h := m.HTTPHandler()

	for _, tc := range []struct {
		name, host, target string
		wantCode           int
		wantLoc            string
	}{
		{"configured host", "localhost", "/clinic/visit?id=7", 308, "https://localhost:8443/clinic/visit?id=7"},
		{"host with port and case", "LOCALHOST:8080", "/", 308, "https://localhost:8443/"},
		{"wildcard host", "video.hospital.test", "/a%2Fb", 308, "https://video.hospital.test:8443/a%2Fb"},
		{"ipv6 literal", "[::1]:8080", "/x", 308, "https://[::1]:8443/x"},
		{"scheme-relative path stays on host", "localhost", "//evil.example/", 308, "https://localhost:8443//evil.example/"},
		{"unknown host", "evil.example", "/", 404, ""},
		{"unknown host with port", "evil.example:8080", "/", 404, ""},
		{"host with userinfo trick", "localhost@evil.example", "/", 404, ""},
		{"empty host", "", "/", 404, ""},
		{"two labels under wildcard", "a.b.hospital.test", "/", 404, ""},
		{"acme path on a non-acme host", "localhost", "/.well-known/acme-challenge/abc", 404, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			req := httptest.NewRequest(http.MethodGet, "http://placeholder"+tc.target, nil)
			req.Host = tc.host
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.wantCode {
				t.Fatalf("status %d, want %d", rec.Code, tc.wantCode)
			}
			if got := rec.Header().Get("Location"); got != tc.wantLoc {
				t.Errorf("Location %q, want %q", got, tc.wantLoc)
			}
		})
	}
}

func TestHTTPHandlerDefaultPortOmitted(t *testing.T) {
	t.Parallel()
	cfg := baseConfig(t, config.TLSHost{Names: []string{"localhost"}, Mode: ModeLocal})
	cfg.Server.Listen = ":443"
	m := newManager(t, Options{Config: cfg})
	req := httptest.NewRequest(http.MethodPost, "http://localhost/login", nil)
	rec := httptest.NewRecorder()
	m.HTTPHandler().ServeHTTP(rec, req)
	if rec.Code != http.StatusPermanentRedirect || rec.Header().Get("Location") != "https://localhost/login" {
		t.Fatalf("got %d %q", rec.Code, rec.Header().Get("Location"))
	}
}
