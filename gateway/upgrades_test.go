package gateway

import (
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/scope"
)

// TestRegression_ProxiedWebSocketsEndWithTheirAdmission: a proxied
// WebSocket was admitted once, at its upgrade; it is closed within a
// second when that admission no longer holds — its session ends, a reload
// takes WebSockets off its route, moves its path to another route, or
// changes the route's policy so that it no longer admits the identity —
// and a reload that still admits it leaves it open.
func TestRegression_ProxiedWebSocketsEndWithTheirAdmission(t *testing.T) {
	t.Parallel()
	echo := echoWebSocketServer(t)
	clinicWS := func(c *config.Config) {
		for i := range c.Routes {
			if c.Routes[i].ID == "clinic" {
				c.Routes[i].WebSocket = true
				c.Routes[i].Upstream = echo.URL
			}
		}
	}
	for _, tc := range []struct {
		name   string
		change func(s *served)
		closes bool
	}{
		{"session ended", func(s *served) { s.g.EndSession("sess-alice") }, true},
		{"another session ended", func(s *served) { s.g.EndSession("sess-root") }, false},
		{"reload that still admits", func(s *served) { s.reload(t, clinicWS, func(*config.Route) {}) }, false},
		{"policy no longer admits", func(s *served) {
			s.reload(t, clinicWS, func(r *config.Route) { r.Policy = &config.Policy{Allow: []config.Rule{{Roles: []string{"admin"}}}} })
		}, true},
		{"websocket turned off", func(s *served) { s.reload(t, clinicWS, func(r *config.Route) { r.WebSocket = false }) }, true},
		{"path moved to another route", func(s *served) { s.reload(t, clinicWS, func(r *config.Route) { r.Path = "/clinic-new/" }) }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := serveTestGateway(t, func(c *config.Config, _ *Options) { clinicWS(c) })
			echoOnce := s.dialClinicWS(t, "alice")
			if err := echoOnce(); err != nil {
				t.Fatalf("before: %v", err)
			}
			tc.change(s)
			// Closing takes a moment (the proxy closes the upstream side,
			// then the client's): within a second it is closed, or it
			// keeps answering.
			if closed := closesWithinASecond(echoOnce); closed != tc.closes {
				t.Fatalf("after: closed %v, want %v", closed, tc.closes)
			}
		})
	}
}

// TestRegression_WebSocketsEndWhenTheirCredentialExpires: a proxied
// WebSocket admitted on a bearer token or a client certificate is closed
// when that credential expires (its exp, its notAfter), as one admitted on
// a session is when the session ends; one whose credential is still valid
// stays open.
func TestRegression_WebSocketsEndWhenTheirCredentialExpires(t *testing.T) {
	t.Parallel()
	echo := echoWebSocketServer(t)
	for _, tc := range []struct {
		kind   string
		valid  time.Duration // from the upgrade on
		closes bool
	}{
		{"bearer", 1500 * time.Millisecond, true},
		{"device", 1500 * time.Millisecond, true},
		{"bearer", time.Hour, false},
		{"device", time.Hour, false},
	} {
		t.Run(fmt.Sprintf("%s valid %v", tc.kind, tc.valid), func(t *testing.T) {
			t.Parallel()
			s := serveTestGateway(t, func(c *config.Config, _ *Options) {
				for i := range c.Routes {
					if c.Routes[i].ID == "clinic" {
						c.Routes[i].WebSocket = true
						c.Routes[i].Upstream = echo.URL
						c.Routes[i].Bearer = []string{"staff-api"}
						c.Routes[i].ClientCert = []string{"ward-ca"}
					}
				}
			})
			notAfter := time.Now().Add(tc.valid)
			echoOnce := s.dialClinicWS(t, fmt.Sprintf("expiring:%s:%d", tc.kind, notAfter.UnixNano()))
			if err := echoOnce(); err != nil {
				t.Fatalf("before expiry: %v", err)
			}
			// Until a second past the short expiry, it keeps answering —
			// or it is closed.
			var closedAt time.Time
			for deadline := time.Now().Add(2500 * time.Millisecond); time.Now().Before(deadline) && closedAt.IsZero(); {
				if echoOnce() != nil {
					closedAt = time.Now()
				}
				time.Sleep(50 * time.Millisecond)
			}
			if closed := !closedAt.IsZero(); closed != tc.closes {
				t.Fatalf("closed %v, want %v", closed, tc.closes)
			}
			if tc.closes && closedAt.Before(notAfter) {
				t.Fatalf("closed %v before its credential expired", notAfter.Sub(closedAt))
			}
		})
	}
}

// deviceAuth is testAuth that also answers for devices
// (DeviceChecker): identity is what it maps every chain to.
type deviceAuth struct {
	testAuth
	identity *scope.Identity
}

func (a deviceAuth) DeviceIdentity([]*x509.Certificate, *config.Route) *scope.Identity {
	return a.identity
}

// TestRegression_DeviceWebSocketsReadmittedByTheirCertificate: on a swap,
// a device's proxied WebSocket stays open only while the new generation's
// device CAs still map its certificate to the same identity on its route
// (a CA removed, or an id's file replaced by another CA's, changes that
// even though the route and its policy do not); an Authenticator that
// cannot say closes it (fail closed).
func TestRegression_DeviceWebSocketsReadmittedByTheirCertificate(t *testing.T) {
	t.Parallel()
	echo := echoWebSocketServer(t)
	deviceWS := func(c *config.Config) {
		for i := range c.Routes {
			if c.Routes[i].ID == "clinic" {
				c.Routes[i].WebSocket = true
				c.Routes[i].Upstream = echo.URL
				c.Routes[i].ClientCert = []string{"ward-ca"}
			}
		}
	}
	same := expiringIdentity(fmt.Sprintf("expiring:device:%d", time.Now().Add(time.Hour).UnixNano()))
	other := *same
	other.Subject = "monitor-8"
	otherCA := *same
	otherCA.Provider, otherCA.Issuer = "ward-ca-2027", "device:ward-ca-2027"
	for _, tc := range []struct {
		name   string
		auth   Authenticator
		closes bool
	}{
		{"still the same device", deviceAuth{identity: same}, false},
		{"no CA vouches for it any more", deviceAuth{}, true},
		{"another device", deviceAuth{identity: &other}, true},
		{"another CA", deviceAuth{identity: &otherCA}, true},
		{"an authenticator that cannot check devices", testAuth{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := serveTestGateway(t, func(c *config.Config, _ *Options) { deviceWS(c) })
			echoOnce := s.dialClinicWS(t, fmt.Sprintf("expiring:device:%d", same.NotAfter.UnixNano()))
			if err := echoOnce(); err != nil {
				t.Fatalf("before: %v", err)
			}
			cfg := testConfig(t, s.rec.srv.URL)
			deviceWS(cfg)
			if err := s.g.Swap(Generation{ID: s.g.current().ID + 1, Config: cfg, Auth: tc.auth}); err != nil {
				t.Fatal(err)
			}
			if closed := closesWithinASecond(echoOnce); closed != tc.closes {
				t.Fatalf("after: closed %v, want %v", closed, tc.closes)
			}
		})
	}
}

// echoWebSocketServer is a loopback WebSocket upstream that echoes every
// message.
func echoWebSocketServer(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			typ, b, err := c.Read(r.Context())
			if err != nil {
				return
			}
			if err := c.Write(r.Context(), typ, b); err != nil {
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// dialClinicWS opens a WebSocket to /clinic/live with the test identity
// cookie and returns a function that sends one message and reads its
// echo, each within a second (an error once the connection is closed).
func (s *served) dialClinicWS(t *testing.T, cookie string) func() error {
	t.Helper()
	hc := s.client(s.addr)
	hc.Transport.(*http.Transport).ForceAttemptHTTP2 = false
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	c, _, err := websocket.Dial(ctx, "wss://"+appHost+"/clinic/live", &websocket.DialOptions{
		HTTPClient: hc, HTTPHeader: http.Header{"Origin": {"https://" + appHost}, "Cookie": {"tg-test=" + cookie}},
	})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.CloseNow() })
	return func() error {
		rctx, rcancel := context.WithTimeout(ctx, time.Second)
		defer rcancel()
		if err := c.Write(rctx, websocket.MessageText, []byte("vitals")); err != nil {
			return err
		}
		_, _, err := c.Read(rctx)
		return err
	}
}

// reload swaps in the test configuration with base applied and then edit
// applied to the clinic route.
func (s *served) reload(t *testing.T, base func(*config.Config), edit func(*config.Route)) {
	t.Helper()
	cfg := testConfig(t, s.rec.srv.URL)
	base(cfg)
	for i := range cfg.Routes {
		if cfg.Routes[i].ID == "clinic" {
			edit(&cfg.Routes[i])
		}
	}
	if err := s.g.Reload(cfg); err != nil {
		t.Fatal(err)
	}
}

// TestRegression_WebSocketOriginIsTheWholeOrigin: without configured
// origins, a route admits upgrades only from its own origin — scheme,
// host and port (RFC 6454 §4). A gateway on a port other than 443 used to
// refuse its own pages and admit a page on port 443 of the same host.
func TestRegression_WebSocketOriginIsTheWholeOrigin(t *testing.T) {
	t.Parallel()
	s := &scope.Scope{Host: "clinic.example.test", Route: &config.Route{ID: "ws", WebSocket: true}}
	for _, tc := range []struct {
		host, origin string
		ok           bool
	}{
		{"clinic.example.test:8443", "https://clinic.example.test:8443", true},
		{"clinic.example.test:8443", "https://clinic.example.test", false},
		{"clinic.example.test:8443", "https://clinic.example.test:9443", false},
		{"clinic.example.test:8443", "http://clinic.example.test:8443", false},
		{"clinic.example.test", "https://clinic.example.test", true},
		{"clinic.example.test:443", "https://clinic.example.test", true},
		{"clinic.example.test", "https://clinic.example.test:8443", false},
		{"clinic.example.test", "https://evil.example", false},
		{"clinic.example.test", "null", false},                            // sandboxed frame, file:, data:
		{"clinic.example.test", "https://clinic.example.test.", false},    // another origin to the browser
		{"clinic.example.test", "https://clinic.example.test:443", false}, // never sent so by a browser
		{"clinic.example.test", "HTTPS://CLINIC.EXAMPLE.TEST", true},      // scheme and host fold case
		{"clinic.example.test", "https://clinic.example.test.evil.example", false},
		{"clinic.example.test", "https://clinic.example.test@evil.example", false},
		{"clinic.example.test", "https://evil.example/https://clinic.example.test", false},
		{"clinic.example.test", "https://xn--clinc-9sa.example.test", false}, // a punycode look-alike
		{"clinic.example.test", " https://clinic.example.test", false},
		{"clinic.example.test", "wss://clinic.example.test", false},
		{"clinic.example.test", "", false},
	} {
		if got := originAllowed([]string{tc.origin}, s, tc.host); got != tc.ok {
			t.Errorf("Host %s, Origin %s: allowed %v, want %v", tc.host, tc.origin, got, tc.ok)
		}
	}
	// Two Origin fields, or none, are no origin.
	for _, origins := range [][]string{{"https://clinic.example.test", "https://evil.example"}, {"https://clinic.example.test", "https://clinic.example.test"}, nil} {
		if originAllowed(origins, s, "clinic.example.test") {
			t.Errorf("Origin fields %q allowed", origins)
		}
	}
}

// TestRegression_CutResponsesAreAuditedAsCut: a response whose status was
// sent and whose body broke off — the upstream's stream closing in the
// middle, with or without a declared length — is audited with the reason
// "response:cut" (a "request.end" record after the "request" record
// written as it started), not as a complete 200 only.
func TestRegression_CutResponsesAreAuditedAsCut(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		length bool
	}{{"declared length", true}, {"chunked", false}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tc.length {
					w.Header().Set("Content-Length", "100000")
				}
				w.WriteHeader(http.StatusOK)
				_, _ = w.Write([]byte("part of a chart"))
				w.(http.Flusher).Flush()
				c, _, err := http.NewResponseController(w).Hijack()
				if err == nil {
					c.Close()
				}
			}))
			t.Cleanup(up.Close)
			tg := newTestGateway(t, func(c *config.Config, _ *Options) {
				for i := range c.Routes {
					if c.Routes[i].ID == "public" {
						c.Routes[i].Upstream = up.URL
					}
				}
			})
			req, _ := http.NewRequest(http.MethodGet, "https://"+appHost+"/public/chart", nil)
			if resp, err := tg.client(tg.ts.Listener.Addr().String()).Do(req); err == nil {
				_, _ = io.Copy(io.Discard, resp.Body) // the body breaks off
				resp.Body.Close()
			}
			deadline := time.Now().Add(2 * time.Second)
			for {
				var got []string
				tg.audit.mu.Lock()
				for _, e := range tg.audit.ev {
					if e.Type == "request.end" && e.Path == "/public/chart" {
						got = append(got, e.Reason)
					}
				}
				tg.audit.mu.Unlock()
				if len(got) == 1 && got[0] == string(scope.ReasonResponseCut) {
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("audit reasons %q, want one response:cut", got)
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}

// TestRegression_PatientPagesAreNotCached: the responses of a route that
// is not public carry "Cache-Control: no-store" whatever the upstream
// said (a long max-age, public, an Expires date, nothing at all), so that
// no browser or shared cache keeps a page that may show patient data; a
// public route, and a route that allows caching, keep the upstream's.
func TestRegression_PatientPagesAreNotCached(t *testing.T) {
	t.Parallel()
	for _, upstreamCache := range []string{"", "max-age=3600", "public, max-age=86400", "private"} {
		up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if upstreamCache != "" {
				w.Header().Set("Cache-Control", upstreamCache)
			}
			w.Header().Set("Expires", "Thu, 01 Jan 2099 00:00:00 GMT")
			_, _ = io.WriteString(w, "chart")
		}))
		tg := newTestGateway(t, func(c *config.Config, _ *Options) {
			for i := range c.Routes {
				c.Routes[i].Upstream = up.URL
				if c.Routes[i].ID == "admin" {
					c.Routes[i].Cacheable = true
				}
			}
		})
		for _, tc := range []struct {
			path, user string
			noStore    bool
		}{
			{"/clinic/chart", "alice", true},
			{"/admin/x", "root", false},    // cacheable: true
			{"/public/leaflet", "", false}, // public
		} {
			hdr := map[string]string{}
			if tc.user != "" {
				hdr["Cookie"] = "tg-test=" + tc.user
			}
			resp, _ := get(t, tg, tc.path, hdr)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("%s: %d", tc.path, resp.StatusCode)
			}
			cc := resp.Header.Get("Cache-Control")
			if got := cc == "no-store" && resp.Header.Get("Expires") == ""; got != tc.noStore {
				t.Errorf("upstream %q, %s: Cache-Control %q Expires %q", upstreamCache, tc.path, cc, resp.Header.Get("Expires"))
			}
			if !tc.noStore && cc != upstreamCache {
				t.Errorf("upstream %q, %s: Cache-Control changed to %q", upstreamCache, tc.path, cc)
			}
		}
		up.Close()
	}
}

// closesWithinASecond reports whether echo (one round trip over a
// WebSocket) fails within a second: closing takes a moment (the proxy
// closes the upstream side, then the client's).
func closesWithinASecond(echo func() error) bool {
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if echo() != nil {
			return true
		}
	}
	return false
}
