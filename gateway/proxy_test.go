package gateway

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/telegate/telegate/config"
)

func get(t *testing.T, tg *testGateway, path string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest("GET", "https://"+appHost+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := tg.client(tg.ts.Listener.Addr().String()).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestUpstreamFailurePages(t *testing.T) {
	t.Parallel()
	tg := newTestGateway(t, nil)
	cases := []struct {
		path   string
		status int
		accept string
		ctype  string
	}{
		{"/down/x", http.StatusBadGateway, "text/html", "text/html; charset=utf-8"},
		{"/slow/x", http.StatusGatewayTimeout, "text/html", "text/html; charset=utf-8"},
		{"/down/x", http.StatusBadGateway, "application/json", "application/json; charset=utf-8"},
	}
	for _, tc := range cases {
		resp, body := get(t, tg, tc.path, map[string]string{"Accept": tc.accept})
		id := resp.Header.Get(RequestIDHeader)
		if resp.StatusCode != tc.status || id == "" || !strings.Contains(body, id) {
			t.Errorf("%s: %d %q (id %q), want %d with the request id", tc.path, resp.StatusCode, body, id, tc.status)
		}
		if resp.Header.Get("Content-Type") != tc.ctype {
			t.Errorf("%s: content type %q", tc.path, resp.Header.Get("Content-Type"))
		}
		for _, leak := range []string{"127.0.0.1", "dial", "timeout awaiting", "connection refused"} {
			if strings.Contains(body, leak) {
				t.Errorf("%s: error page leaks %q: %q", tc.path, leak, body)
			}
		}
		if e, ok := tg.audit.find(id); !ok || e.Status != tc.status || e.Reason == "" {
			t.Errorf("%s: audit %+v", tc.path, e)
		}
	}
}

func TestSecurityHeaders(t *testing.T) {
	t.Parallel()
	tg := newTestGateway(t, func(c *config.Config, _ *Options) { c.Server.HSTSMaxAge = time.Hour })
	// Proxied response: HSTS, nosniff, the route's response headers, and
	// the upstream's own headers.
	resp, _ := get(t, tg, "/api/x", nil)
	h := resp.Header
	if h.Get("Strict-Transport-Security") != "max-age=3600" || h.Get("X-Content-Type-Options") != "nosniff" ||
		h.Get("Content-Security-Policy") != "default-src 'self'" || h.Get("X-Upstream") != "yes" {
		t.Errorf("proxied headers: %v", h)
	}
	if ids := h.Values(RequestIDHeader); len(ids) != 1 || ids[0] == "upstream-chosen" {
		t.Errorf("request id %q", ids)
	}
	if sc := h.Values("Set-Cookie"); len(sc) != 1 || !strings.HasPrefix(sc[0], "app=1") {
		t.Errorf("upstream Set-Cookie passed: %q (the session cookie must be dropped)", sc)
	}
	// telegate's own page.
	resp, _ = get(t, tg, "/.telegate/login", nil)
	h = resp.Header
	if resp.StatusCode != 200 || h.Get("Cache-Control") != "no-store" || h.Get("Referrer-Policy") != "no-referrer" ||
		!strings.Contains(h.Get("Content-Security-Policy"), "frame-ancestors 'none'") ||
		!strings.Contains(h.Get("Content-Security-Policy"), "default-src 'none'") ||
		h.Get("Strict-Transport-Security") == "" || h.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("own page %d headers: %v", resp.StatusCode, h)
	}
	// Error pages.
	resp, _ = get(t, tg, "/nowhere", nil)
	if resp.StatusCode != 404 || resp.Header.Get("Cache-Control") != "no-store" ||
		!strings.Contains(resp.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
		t.Errorf("404 page %d headers: %v", resp.StatusCode, resp.Header)
	}
}

func TestUnknownHostsAndAdminPathsAre404(t *testing.T) {
	t.Parallel()
	tg := newTestGateway(t, nil)
	for _, host := range []string{appHost, "other.example.test", "localhost", "127.0.0.1"} {
		for _, p := range []string{"/metrics", "/healthz", "/readyz", "/", "/x"} {
			req := httptest.NewRequest("GET", "https://"+host+p, nil)
			w := httptest.NewRecorder()
			tg.g.Handler().ServeHTTP(w, req)
			if w.Code != 404 {
				t.Errorf("%s%s: %d, want 404", host, p, w.Code)
			}
			if strings.Contains(w.Body.String(), "telegate_edge") {
				t.Errorf("%s%s: metrics on the public handler", host, p)
			}
		}
	}
}

func TestTrustedProxies(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		trusted []netip.Prefix
		xff     string
		want    string // client address
		wantXFF string // upstream X-Forwarded-For
	}{
		{"untrusted peer: header ignored", nil, "6.6.6.6", "127.0.0.1", "127.0.0.1"},
		{"trusted peer", []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, "6.6.6.6, 203.0.113.9", "203.0.113.9", "203.0.113.9, 127.0.0.1"},
		{"trusted chain", []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("10.0.0.0/8")},
			"6.6.6.6, 203.0.113.9, 10.1.1.1", "203.0.113.9", "203.0.113.9, 10.1.1.1, 127.0.0.1"},
		{"garbage hop", []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, "nonsense", "127.0.0.1", "127.0.0.1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tg := newTestGateway(t, func(c *config.Config, _ *Options) { c.Server.TrustedProxies = tc.trusted })
			resp, _ := get(t, tg, "/public/x", map[string]string{"X-Forwarded-For": tc.xff})
			e, _ := tg.audit.find(resp.Header.Get(RequestIDHeader))
			if e.Client != tc.want {
				t.Errorf("client %q, want %q", e.Client, tc.want)
			}
			seen, _ := tg.rec.last()
			if got := seen.Header.Get("X-Forwarded-For"); got != tc.wantXFF {
				t.Errorf("upstream X-Forwarded-For %q, want %q", got, tc.wantXFF)
			}
		})
	}
}

func TestWebSocketThroughGateway(t *testing.T) {
	t.Parallel()
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
		if err != nil {
			return
		}
		defer c.CloseNow()
		ctx := r.Context()
		for {
			typ, b, err := c.Read(ctx)
			if err != nil {
				return
			}
			if err := c.Write(ctx, typ, b); err != nil {
				return
			}
		}
	}))
	t.Cleanup(echo.Close)
	// Served with a short read timeout: the upgraded connection must
	// outlive it.
	s := serveTestGateway(t, func(c *config.Config, _ *Options) {
		c.Server.ReadTimeout = 300 * time.Millisecond
		for i := range c.Routes {
			if c.Routes[i].ID == "ws" {
				c.Routes[i].Upstream = echo.URL
			}
		}
	})
	hc := s.client(s.addr)
	hc.Transport.(*http.Transport).ForceAttemptHTTP2 = false
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, tc := range []struct {
		path, origin string
		ok           bool
	}{
		{"/ws/chat", "https://" + appHost, true},
		{"/ws/chat", "https://evil.example", false},
		{"/public/chat", "https://" + appHost, false},
	} {
		c, resp, err := websocket.Dial(ctx, "wss://"+appHost+tc.path, &websocket.DialOptions{
			HTTPClient: hc, HTTPHeader: http.Header{"Origin": {tc.origin}},
		})
		if !tc.ok {
			if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
				t.Errorf("%s from %s: want 403, got %v %v", tc.path, tc.origin, resp, err)
			}
			if c != nil {
				c.CloseNow()
			}
			continue
		}
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		for _, pause := range []time.Duration{0, 600 * time.Millisecond} {
			time.Sleep(pause)
			if err := c.Write(ctx, websocket.MessageText, []byte("hello")); err != nil {
				t.Fatal(err)
			}
			_, b, err := c.Read(ctx)
			if err != nil || string(b) != "hello" {
				t.Fatalf("echo after %v: %q %v", pause, b, err)
			}
		}
		c.Close(websocket.StatusNormalClosure, "")
	}
}

func TestReloadIsAtomicAndKeepsOldOnError(t *testing.T) {
	t.Parallel()
	tg := newTestGateway(t, nil)
	if resp, _ := get(t, tg, "/public/x", nil); resp.StatusCode != 200 {
		t.Fatalf("before: %d", resp.StatusCode)
	}
	bad := testConfig(t, tg.rec.srv.URL)
	bad.Routes[0].Upstream = "ftp://nope"
	bad.Routes[1].Path = "no-slash"
	err := tg.g.Reload(bad)
	if err == nil || !strings.Contains(err.Error(), "no-slash") || !strings.Contains(err.Error(), "routes[0].upstream") {
		t.Fatalf("bad reload: %v (want every error reported)", err)
	}
	if resp, _ := get(t, tg, "/public/x", nil); resp.StatusCode != 200 {
		t.Fatalf("after refused reload: %d", resp.StatusCode)
	}
	good := testConfig(t, tg.rec.srv.URL)
	good.Routes = good.Routes[1:] // drop "public"
	if err := tg.g.Reload(good); err != nil {
		t.Fatal(err)
	}
	if resp, _ := get(t, tg, "/public/x", nil); resp.StatusCode != 404 {
		t.Fatalf("after reload: %d, want 404", resp.StatusCode)
	}
}

func TestNewRefusesPublicAdminAddress(t *testing.T) {
	t.Parallel()
	for addr, ok := range map[string]bool{
		"127.0.0.1:9090": true, "[::1]:9090": true, "10.0.0.5:9090": true, "localhost:9090": true,
		":9090": false, "0.0.0.0:9090": false, "203.0.113.5:9090": false, "[::]:9090": false,
	} {
		cfg := defaulted(&config.Config{DataDir: t.TempDir(), Server: config.Server{Admin: addr}})
		_, err := New(Options{Config: cfg, Logger: quietLogger()})
		if (err == nil) != ok {
			t.Errorf("admin %q: err %v", addr, err)
		}
	}
}

func TestRouteValidation(t *testing.T) {
	t.Parallel()
	up := "http://127.0.0.1:9"
	pub := &config.Policy{Public: true}
	cases := map[string][]config.Route{
		"no hosts":       {{ID: "a", Path: "/", Upstream: up, Policy: pub}},
		"upstream path":  {{ID: "a", Hosts: []string{"h"}, Path: "/", Upstream: up + "/base", Policy: pub}},
		"own prefix":     {{ID: "a", Hosts: []string{"h"}, Path: "/.telegate/x", Upstream: up, Policy: pub}},
		"duplicate id":   {{ID: "a", Hosts: []string{"h"}, Path: "/", Upstream: up}, {ID: "a", Hosts: []string{"h"}, Path: "/b/", Upstream: up}},
		"same host path": {{ID: "a", Hosts: []string{"h"}, Path: "/", Upstream: up}, {ID: "b", Hosts: []string{"H."}, Path: "/", Upstream: up}},
		"dot path":       {{ID: "a", Hosts: []string{"h"}, Path: "/a/../", Upstream: up}},
		"tls on http":    {{ID: "a", Hosts: []string{"h"}, Path: "/", Upstream: up, UpstreamTLS: config.UpstreamTLS{ServerName: "x"}}},
	}
	for name, routes := range cases {
		cfg := defaulted(&config.Config{DataDir: t.TempDir(), Routes: routes})
		if _, err := New(Options{Config: cfg, Logger: quietLogger()}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// bufferingInspector reads the whole body and replaces it, as a WAF does.
type bufferingInspector struct{ saw chan int }

func (b bufferingInspector) Inspect(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		b.saw <- len(body)
		if err != nil {
			http.Error(w, "blocked", http.StatusRequestEntityTooLarge)
			return
		}
		r.Body = io.NopCloser(strings.NewReader(string(body)))
		next.ServeHTTP(w, r)
	})
}

// TestInspectorSeesBoundedBodyAndItsReplacementIsForwarded: the body limit
// applies before inspection, and a body the inspector buffered and
// replaced reaches the upstream whole.
func TestInspectorSeesBoundedBodyAndItsReplacementIsForwarded(t *testing.T) {
	t.Parallel()
	insp := bufferingInspector{saw: make(chan int, 4)}
	tg := newTestGateway(t, func(_ *config.Config, o *Options) { o.Inspector = insp })
	c := tg.client(tg.ts.Listener.Addr().String())
	resp, err := c.Post("https://"+appHost+"/api/x", "text/plain", strings.NewReader("0123456789"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	seen, _ := tg.rec.last()
	if resp.StatusCode != 200 || seen.Body != "0123456789" || <-insp.saw != 10 {
		t.Errorf("status %d, upstream body %q", resp.StatusCode, seen.Body)
	}
	// Streamed (no Content-Length) and over the 16-byte limit: the
	// inspector never holds more than the limit.
	pr, pw := io.Pipe()
	go func() { pw.Write([]byte(strings.Repeat("x", 4096))); pw.Close() }()
	resp, err = c.Post("https://"+appHost+"/api/x", "text/plain", pr)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if n := <-insp.saw; n > 16 || resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("inspector saw %d bytes, status %d", n, resp.StatusCode)
	}
}
