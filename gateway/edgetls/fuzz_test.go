package edgetls

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/telegate/telegate/config"
)

// FuzzHTTPHandlerHost feeds hostile Host headers and paths to the redirect
// handler: it must answer 404 or 308, and a 308 must point at https on a
// configured host (never an open redirect).
func FuzzHTTPHandlerHost(f *testing.F) {
	for _, s := range [][2]string{
		{"localhost", "/"},
		{"video.hospital.test:80", "/a?b=c"},
		{"evil.example", "/"},
		{"localhost@evil.example", "//evil.example"},
		{"[::1]:80", "/%2e%2e/"},
		{"LOCALHOST.", "/\\evil"},
		{"a.b.hospital.test", "/"},
		{"xn--bcher-kva.hospital.test", "/"},
		{"*.hospital.test", "/"},
	} {
		f.Add(s[0], s[1])
	}
	pki := newTestCA(f, "PKI")
	dir := f.TempDir()
	c, k := pki.issue(f, 1, false, pki.cert.NotAfter, "*.hospital.test")
	cfg := &config.Config{
		DataDir: f.TempDir(),
		Server:  config.Server{Listen: "127.0.0.1:8443"},
		TLS: config.TLS{Hosts: []config.TLSHost{
			{Names: []string{"localhost", "::1"}, Mode: ModeLocal},
			{Names: []string{"*.hospital.test"}, Mode: ModeFiles, CertFile: dir + "/c.pem", KeyFile: dir + "/k.pem"},
		}},
	}
	if err := writeBytes(dir+"/c.pem", c); err != nil {
		f.Fatal(err)
	}
	if err := writeBytes(dir+"/k.pem", k); err != nil {
		f.Fatal(err)
	}
	m, err := New(f.Context(), Options{Config: cfg})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { m.Close() })
	h := m.HTTPHandler()

	f.Fuzz(func(t *testing.T, host, path string) {
		req := httptest.NewRequest(http.MethodGet, "http://placeholder/", nil)
		req.Host = host
		if u, err := url.ParseRequestURI(path); err == nil {
			req.URL = u
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusNotFound:
			return
		case http.StatusPermanentRedirect:
		default:
			t.Fatalf("status %d", rec.Code)
		}
		loc, err := url.Parse(rec.Header().Get("Location"))
		if err != nil {
			t.Fatalf("Location %q: %v", rec.Header().Get("Location"), err)
		}
		if loc.Scheme != "https" || loc.Port() != "8443" || loc.User != nil {
			t.Fatalf("Location %q", loc)
		}
		hn := loc.Hostname()
		ok := hn == "localhost" || hn == "::1"
		if sub, found := strings.CutSuffix(hn, ".hospital.test"); found && validLabel(sub) {
			ok = true
		}
		if !ok {
			t.Fatalf("redirect to unconfigured host %q (Host %q)", hn, host)
		}
	})
}
