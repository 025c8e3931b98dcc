package gateway

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/policies"
)

func TestRouterMatch(t *testing.T) {
	t.Parallel()
	cfg := &config.Config{
		TLS: config.TLS{Hosts: []config.TLSHost{{Names: []string{"a.test", "B.test."}}}},
		Routes: []config.Route{
			{ID: "root", Hosts: []string{"a.test"}, Path: "/"},
			{ID: "clinic", Hosts: []string{"a.test"}, Path: "/clinic/"},
			{ID: "clinic-admin", Hosts: []string{"a.test"}, Path: "/clinic/admin/"},
			{ID: "api", Hosts: []string{"A.TEST."}, Path: "/api"},
			{ID: "every-tls-host", Path: "/shared/"},
			{ID: "files", Hosts: []string{"a.test"}, Path: "/files/", UpstreamCaseInsensitive: true},
			{ID: "cafe", Hosts: []string{"a.test"}, Path: "/café/"},
			{ID: "strasse", Hosts: []string{"a.test"}, Path: "/strasse/"},
			{ID: "files-private", Hosts: []string{"a.test"}, Path: "/files/private/"},
		},
	}
	rt, err := newRouter(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct{ host, path, want string }{
		{"a.test", "/", "root"},
		{"a.test", "/x", "root"},
		{"a.test", "/clinic/x", "clinic"},
		{"a.test", "/clinic", "clinic"},
		{"a.test", "/clinicx", "root"},
		{"a.test", "/clinic/admin/", "clinic-admin"},
		{"a.test", "/clinic/admin", "clinic-admin"},
		{"a.test", "/clinic/ADMIN/", "path:case"},
		{"a.test", "/CLINIC/x", "path:case"},
		{"a.test", "/Clinic", "path:case"},
		{"a.test", "/clinicX", "root"},
		{"a.test", "/files/x", "files"},
		{"a.test", "/FILES/x", "files"},
		{"a.test", "/Files", "files"},
		{"a.test", "/files/PRIVATE/x", "path:case"}, // files-private's upstream does not fold
		{"a.test", "/files/private/x", "files-private"},
		{"a.test", "/caf%C3%A9/x", "cafe"},
		{"a.test", "/CAF%C3%89/x", "path:case"},
		{"a.test", "/stra%C3%9Fe/", "path:case"}, // "ß" folds to "ss"
		{"a.test", "/STRASSE", "path:case"},
		{"a.test", "/API/v1", "path:case"},
		{"a.test", "/api", "api"},
		{"a.test", "/api/v1", "api"},
		{"a.test", "/apix", "root"},
		{"b.test", "/shared/x", "every-tls-host"},
		{"b.test", "/x", ""},
		{"c.test", "/", ""},
		{"A.test", "/", ""}, // callers pass canonical hosts only
	}
	for _, tc := range cases {
		r, reason := rt.pick(tc.host, tc.path, false)
		got := string(reason)
		if r != nil {
			got = r.ID
		}
		if got != tc.want {
			t.Errorf("pick(%q, %q) = %q, want %q", tc.host, tc.path, got, tc.want)
		}
	}
	// Folding that changes a prefix's length: the longest folded prefix
	// decides, whatever the order of the prefixes as written.
	shift, err := newRouter(&config.Config{Routes: []config.Route{
		{ID: "root", Hosts: []string{"a.test"}, Path: "/"},
		{ID: "strasse", Hosts: []string{"a.test"}, Path: "/straße/"},
		{ID: "strasse-a", Hosts: []string{"a.test"}, Path: "/strasse/a/"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		"/strasse/a/x":     "strasse-a",
		"/stra%C3%9Fe/a/x": "path:case",
		"/stra%C3%9Fe/b":   "strasse",
		"/strasse/b":       "path:case",
		"/STRA%C3%9FE/a/":  "path:case",
		"/x":               "root",
	} {
		r, reason := shift.pick("a.test", path, false)
		got := string(reason)
		if r != nil {
			got = r.ID
		}
		if got != want {
			t.Errorf("pick(%q) = %q, want %q", path, got, want)
		}
	}
	// Prefixes that differ only in case cannot both be routes.
	cfg.Routes = append(cfg.Routes, config.Route{ID: "clinic-upper", Hosts: []string{"a.test"}, Path: "/Clinic/"})
	if _, err := newRouter(cfg); err == nil {
		t.Errorf("newRouter took /clinic/ and /Clinic/ on one host")
	}
}

func TestOwnEndpoints(t *testing.T) {
	t.Parallel()
	ep := func(name string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, name) })
	}
	tg := newTestGateway(t, func(_ *config.Config, o *Options) {
		o.Endpoints = []Endpoint{
			{Prefix: "/.telegate/visits", Handler: ep("visits")},
			{Prefix: "/.telegate/visits/admin/", Handler: ep("visits-admin")},
		}
	})
	for _, tc := range []struct{ host, path, body string }{
		{appHost, "/.telegate/visits", "visits"},
		{appHost, "/.telegate/visits/1", "visits"},
		{"other.example.test", "/.telegate/visits/1", "visits"}, // every host
		{appHost, "/.telegate/visits/admin/x", "visits-admin"},
		{appHost, "/.telegate/login", "login page"},
		{appHost, "/.telegate/%76isits", "visits"}, // canonical form first
	} {
		req := httptest.NewRequest("GET", "https://"+tc.host+tc.path, nil)
		w := httptest.NewRecorder()
		tg.g.Handler().ServeHTTP(w, req)
		if w.Code != 200 || w.Body.String() != tc.body {
			t.Errorf("%s%s: %d %q, want %q", tc.host, tc.path, w.Code, w.Body.String(), tc.body)
		}
	}
	if _, err := New(Options{Config: defaulted(&config.Config{DataDir: t.TempDir()}), Endpoints: []Endpoint{{Prefix: "/visits", Handler: ep("x")}}}); err == nil {
		t.Error("endpoint outside /.telegate/ accepted")
	}
}

func TestRateLimits(t *testing.T) {
	t.Parallel()
	tg := newTestGateway(t, func(c *config.Config, _ *Options) {
		c.RateLimits.PerClient = config.RateLimit{Rate: 0.001, Burst: 3}
		c.RateLimits.PerSubject = config.RateLimit{Rate: 0.001, Burst: 2}
		c.Routes[0].RateLimit = &config.RateLimit{Rate: 0.001, Burst: 1}
	})
	do := func(path, cookie string) int {
		req := httptest.NewRequest("GET", "https://"+appHost+path, nil)
		req.RemoteAddr = "192.0.2.7:1234"
		if cookie != "" {
			req.AddCookie(&http.Cookie{Name: "tg-test", Value: cookie})
		}
		w := httptest.NewRecorder()
		tg.g.Handler().ServeHTTP(w, req)
		if w.Code == 429 && w.Header().Get("Retry-After") == "" {
			t.Error("429 without Retry-After")
		}
		return w.Code
	}
	// Route override: burst 1.
	if a, b := do("/public/x", ""), do("/public/x", ""); a != 200 || b != 429 {
		t.Errorf("public route: %d %d, want 200 429", a, b)
	}
	// Per subject: burst 2 (client bucket of the route has 3).
	got := []int{do("/admin/x", "root"), do("/admin/x", "root"), do("/admin/x", "root")}
	if fmt.Sprint(got) != "[200 200 429]" {
		t.Errorf("per subject: %v", got)
	}
}

func BenchmarkRouteMatch(b *testing.B) {
	cfg := &config.Config{}
	for i := range 50 {
		cfg.Routes = append(cfg.Routes, config.Route{ID: fmt.Sprint("r", i), Hosts: []string{"a.test", "b.test"}, Path: fmt.Sprintf("/app%d/", i)})
	}
	cfg.Routes = append(cfg.Routes, config.Route{ID: "root", Hosts: []string{"a.test"}, Path: "/"})
	rt, err := newRouter(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if r, _ := rt.pick("a.test", "/app42/patients/1", false); r == nil {
			b.Fatal("no match")
		}
	}
}

// TestHostFieldConflict: an HTTP/2 request whose Host field differs from
// :authority is refused (RFC 9113 §8.3.1).
func TestHostFieldConflict(t *testing.T) {
	t.Parallel()
	tg := newTestGateway(t, nil)
	for host, want := range map[string]int{"other.example.test": 400, "APP.example.test.": 200} {
		req := httptest.NewRequest("GET", "https://"+appHost+"/public/x", nil)
		req.ProtoMajor, req.ProtoMinor, req.Proto = 2, 0, "HTTP/2.0"
		req.Header.Set("Host", host)
		w := httptest.NewRecorder()
		tg.g.Handler().ServeHTTP(w, req)
		if w.Code != want {
			t.Errorf("Host %q: %d, want %d", host, w.Code, want)
		}
	}
}

// TestPanicIsAudited: a handler that aborts still leaves one audit record.
func TestPanicIsAudited(t *testing.T) {
	t.Parallel()
	tg := newTestGateway(t, func(_ *config.Config, o *Options) {
		o.Endpoints = []Endpoint{{Prefix: "/.telegate/boom", Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
			panic(http.ErrAbortHandler)
		})}}
	})
	req := httptest.NewRequest("GET", "https://"+appHost+"/.telegate/boom", nil)
	w := httptest.NewRecorder()
	func() {
		defer func() {
			if p := recover(); p != http.ErrAbortHandler {
				t.Errorf("panic %v not passed on", p)
			}
		}()
		tg.g.Handler().ServeHTTP(w, req)
	}()
	e, ok := tg.audit.find(w.Header().Get(RequestIDHeader))
	if !ok || e.Status != 500 || e.RouteID != policies.OwnRouteID {
		t.Errorf("audit %+v", e)
	}
}
