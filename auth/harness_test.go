package auth

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/telegate/telegate/audit"
	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/scope"
)

// fakeClock is an injected clock tests move by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Now()} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// auditLog records audit events.
type auditLog struct {
	mu     sync.Mutex
	events []audit.Event
}

func (a *auditLog) Record(_ context.Context, e audit.Event) {
	a.mu.Lock()
	a.events = append(a.events, e)
	a.mu.Unlock()
}

func (a *auditLog) find(typ, decision, reason string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, e := range a.events {
		if e.Type == typ && (decision == "" || e.Decision == decision) && (reason == "" || e.Reason == reason) {
			return true
		}
	}
	return false
}

// harness runs a gateway-shaped front (scope, Authenticate, Handler, an app)
// on a loopback TLS server in front of a test OP.
type harness struct {
	t      *testing.T
	op     *testOP
	cfg    *config.Config
	clock  *fakeClock
	audit  *auditLog
	reg    *prometheus.Registry
	logs   *syncBuffer
	svc    *Service
	gw     *httptest.Server
	url    string
	client *http.Client
	jar    *cookiejar.Jar

	setCookies []string // every Set-Cookie the client received
	scMu       sync.Mutex

	endedMu sync.Mutex
	ended   []string // reasons: session ids ended (via OnSessionEnd)

	reqN atomic.Int64

	// limit, when set, is the gateway's per-client rate-limit stage, run
	// after the scope is set and before Authenticate.
	limit func(http.Handler) http.Handler
}

type harnessOpt func(h *harness)

func newHarness(t *testing.T, opts ...harnessOpt) *harness {
	t.Helper()
	h := &harness{t: t, op: newTestOP(t), clock: newFakeClock(), audit: &auditLog{}}
	h.op.now = h.clock.Now
	h.reg = prometheus.NewRegistry()
	h.logs = &syncBuffer{}
	var handler atomic.Value
	h.gw = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handler.Load().(http.Handler).ServeHTTP(w, r)
	}))
	t.Cleanup(h.gw.Close)
	h.url = h.gw.URL
	h.cfg = &config.Config{
		DataDir: t.TempDir(),
		Server:  config.Server{PublicURL: h.url},
		Sessions: config.Sessions{
			IdleTimeout:     15 * time.Minute,
			AbsoluteTimeout: 12 * time.Hour,
		},
		Providers: []config.Provider{{
			ID:                "staff",
			DisplayName:       "Hospital staff",
			Issuer:            h.op.issuer,
			ClientID:          h.op.clientID,
			ClientSecret:      h.op.clientSecret,
			Scopes:            []string{"profile", "email"},
			BackchannelLogout: true,
			Roles: config.RoleMapping{
				Map:    map[string][]string{"clinicians": {"clinician"}},
				Always: []string{"staff"},
			},
		}},
		Routes: []config.Route{
			{ID: "app", Path: "/app/"},
			{ID: "api", Path: "/api/", API: true},
		},
	}
	for _, o := range opts {
		o(h)
	}
	h.start()
	handler.Store(h.front())

	h.jar, _ = cookiejar.New(nil)
	base := h.gw.Client().Transport
	h.client = &http.Client{Jar: h.jar, Transport: recordingTransport{base: base, h: h}, Timeout: 10 * time.Second}
	return h
}

// start (re)creates the service from h.cfg.
func (h *harness) start() {
	h.t.Helper()
	h.cfg.ApplyDefaults() // a configuration built in code, as Load would have it
	svc, err := New(context.Background(), Options{
		Config:     h.cfg,
		Audit:      h.audit,
		Logger:     slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:        h.clock.Now,
		HTTPClient: h.op.srv.Client(),
		Registry:   h.reg,
	})
	if err != nil {
		h.t.Fatalf("New: %v", err)
	}
	svc.OnSessionEnd(func(id string, ident *scope.Identity) {
		h.endedMu.Lock()
		h.ended = append(h.ended, id)
		h.endedMu.Unlock()
	})
	h.svc = svc
	h.t.Cleanup(func() { _ = svc.Close() })
}

// restart closes the service and opens a new one on the same data
// directory, as a process restart would.
func (h *harness) restart() {
	h.t.Helper()
	if err := h.svc.Close(); err != nil {
		h.t.Fatal(err)
	}
	h.start()
}

func (h *harness) endedCount() int {
	h.endedMu.Lock()
	defer h.endedMu.Unlock()
	return len(h.ended)
}

// front is the part of the gateway chain auth relies on: scope first, then
// Authenticate, then telegate's endpoints or the app.
func (h *harness) front() http.Handler {
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sc := scope.From(r.Context())
		if strings.HasPrefix(r.URL.Path, "/.telegate/") && !strings.HasPrefix(r.URL.Path, VisitsAPIPrefix) {
			h.svc.View().Handler().ServeHTTP(w, r)
			return
		}
		if sc.Identity == nil {
			h.svc.View().Challenge(w, r)
			return
		}
		w.Header().Set("X-Kind", sc.Identity.Kind)
		w.Header().Set("X-Subject", sc.Identity.Subject)
		w.Header().Set("X-Roles", strings.Join(sc.Identity.Roles, ","))
		w.Header().Set("X-Session", sc.Identity.SessionID)
		w.Header().Set("X-MFA", strconv.FormatBool(sc.Identity.HasMFA()))
		w.Header().Set("X-Upstream-Cookie", r.Header.Get("Cookie"))
		fmt.Fprintf(w, "hello %s", sc.Identity.Subject)
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		client := netip.MustParseAddr("127.0.0.1")
		if a, err := netip.ParseAddr(r.Header.Get(testClientHeader)); err == nil {
			client = a // several sources, as trusted proxies would name them
		}
		sc := &scope.Scope{
			RequestID:  fmt.Sprintf("req-%d", h.reqN.Add(1)),
			Start:      time.Now(),
			ClientAddr: client,
			Host:       "127.0.0.1",
			Path:       r.URL.Path,
			RawQuery:   r.URL.RawQuery,
		}
		if !strings.HasPrefix(r.URL.Path, "/.telegate/") {
			for i := range h.svc.View().cfg.Routes {
				rt := &h.svc.View().cfg.Routes[i]
				if strings.HasPrefix(r.URL.Path, rt.Path) {
					sc.Route, sc.RouteID = rt, rt.ID
				}
			}
		}
		var next http.Handler = h.svc.View().Authenticate(app)
		if h.limit != nil {
			next = h.limit(next)
		}
		next.ServeHTTP(w, r.WithContext(scope.With(r.Context(), sc)))
	})
}

// testClientHeader names the client address the harness front puts in the
// scope (default 127.0.0.1).
const testClientHeader = "X-Test-Client"

type recordingTransport struct {
	base http.RoundTripper
	h    *harness
}

func (rt recordingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := rt.base.RoundTrip(r)
	if err == nil {
		rt.h.scMu.Lock()
		rt.h.setCookies = append(rt.h.setCookies, resp.Header.Values("Set-Cookie")...)
		rt.h.scMu.Unlock()
	}
	return resp, err
}

// get fetches path on the gateway with the harness client.
func (h *harness) get(path string) *http.Response {
	h.t.Helper()
	return h.do(h.client, http.MethodGet, path, nil)
}

func (h *harness) do(c *http.Client, method, path string, hdr http.Header) *http.Response {
	h.t.Helper()
	req, err := http.NewRequest(method, h.url+path, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(strings.NewReader(string(body)))
	return resp
}

func bodyOf(r *http.Response) string {
	b, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(strings.NewReader(string(b)))
	return string(b)
}

// sessionCookie returns the session cookie value in the jar, "" if none.
func (h *harness) sessionCookie() string {
	u, _ := url.Parse(h.url)
	for _, c := range h.jar.Cookies(u) {
		if c.Name == h.svc.View().cookieName && c.Value != "" {
			return c.Value
		}
	}
	return ""
}

// signIn runs the whole flow for rd and returns the final response.
func (h *harness) signIn(rd string) *http.Response {
	h.t.Helper()
	return h.get("/.telegate/login?rd=" + url.QueryEscape(rd))
}

// noRedirectClient shares the jar but stops at the first redirect.
func (h *harness) noRedirectClient() *http.Client {
	return &http.Client{
		Jar:           h.jar,
		Transport:     h.client.Transport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       10 * time.Second,
	}
}

// tlsClientWithCert returns a client presenting cert to the gateway.
func (h *harness) tlsClientWithCert(cert *tls.Certificate) *http.Client {
	tr := h.gw.Client().Transport.(*http.Transport).Clone()
	if cert != nil {
		tr.TLSClientConfig.Certificates = []tls.Certificate{*cert}
	}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// syncBuffer collects log output from concurrent handlers.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// defaulted applies config's defaults to a configuration built in code,
// as Load does for a file.
func defaulted(cfg *config.Config) *config.Config {
	cfg.ApplyDefaults()
	return cfg
}

// continueRE finds the link of the "Signing out" page to the provider's
// end-session endpoint.
var continueRE = regexp.MustCompile(`id="continue" href="([^"]+)"`)

// continueSignOut follows the "Signing out" page that a sign-out POST
// answers when the provider has an end-session endpoint, as the page's
// meta refresh makes a browser do: it GETs the page's link with c and
// returns that response (resp itself when it is not that page).
func continueSignOut(t testing.TB, c *http.Client, resp *http.Response) *http.Response {
	t.Helper()
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := continueRE.FindSubmatch(b)
	if m == nil {
		resp.Body = io.NopCloser(bytes.NewReader(b))
		return resp
	}
	next, err := c.Get(html.UnescapeString(string(m[1])))
	if err != nil {
		t.Fatal(err)
	}
	return next
}
