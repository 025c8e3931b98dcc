package gateway

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/policies"
)

// frozenClock stops the gateway's clock, so that no bucket refills while a
// test counts.
func frozenClock(_ *config.Config, o *Options) {
	t := time.Now()
	o.Now = func() time.Time { return t }
}

// status sends one request from remote ("addr:port") with an optional
// test identity and returns the status code; a 429 must carry Retry-After.
func status(t *testing.T, g *Gateway, remote, path, cookie string) int {
	t.Helper()
	req := httptest.NewRequest("GET", "https://"+appHost+path, nil)
	req.RemoteAddr = remote
	if cookie != "" {
		req.AddCookie(&http.Cookie{Name: "tg-test", Value: cookie})
	}
	w := httptest.NewRecorder()
	g.Handler().ServeHTTP(w, req)
	if w.Code == http.StatusTooManyRequests && w.Header().Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
	return w.Code
}

// passed counts the requests of n that are not refused with 429.
func passed(n int, f func(i int) int) int {
	c := 0
	for i := range n {
		if f(i) != http.StatusTooManyRequests {
			c++
		}
	}
	return c
}

// TestRateLimitReloadTakesEffect: a route's limit changed by Reload
// applies to its next request; the bucket keeps what it has taken.
func TestRateLimitReloadTakesEffect(t *testing.T) {
	t.Parallel()
	limit := func(burst int) func(*config.Config, *Options) {
		return func(c *config.Config, _ *Options) {
			c.Routes[0].RateLimit = &config.RateLimit{Rate: 0.001, Burst: burst}
		}
	}
	tg := newTestGateway(t, limit(5))
	get := func(i int) int { return status(t, tg.g, "192.0.2.60:1234", "/public/x", "") }
	if got := passed(2, get); got != 2 {
		t.Fatalf("burst 5: %d of 2 passed", got)
	}
	steps := []struct {
		burst, want int
	}{
		{3, 1},  // 3 less the 2 taken
		{10, 7}, // 10 less the 3 taken
		{1, 0},  // lowered below what was taken
	}
	for _, st := range steps {
		cfg := testConfig(t, tg.rec.srv.URL)
		limit(st.burst)(cfg, nil)
		if err := tg.g.Reload(cfg); err != nil {
			t.Fatal(err)
		}
		if got := passed(10, get); got != st.want {
			t.Errorf("after reload to burst %d: %d of 10 passed, want %d", st.burst, got, st.want)
		}
	}
	if got := passed(10, func(int) int { return status(t, tg.g, "192.0.2.61:1234", "/public/x", "") }); got != 1 {
		t.Errorf("another client after the reloads: %d of 10 passed, want its own burst 1", got)
	}
}

// TestDefaultLimiterIsBounded: the gateway's own limiter holds at most
// rate_limits.max_clients buckets.
func TestDefaultLimiterIsBounded(t *testing.T) {
	t.Parallel()
	tg := newTestGateway(t, func(c *config.Config, o *Options) {
		frozenClock(c, o)
		c.RateLimits.MaxClients = 10
	})
	for i := range 100 {
		status(t, tg.g, fmt.Sprintf("10.0.%d.%d:1234", i>>8, i&0xff), "/public/x", "")
	}
	l, ok := tg.g.limiter.(*policies.Limiter)
	if !ok {
		t.Fatalf("Options.Limiter nil gives %T, want *policies.Limiter", tg.g.limiter)
	}
	if n, _ := l.Len(); n != 10 {
		t.Errorf("client table holds %d buckets, want the cap 10", n)
	}
}

// TestRegression_GatewayLimiterMatchesProduction: the gateway's limiter
// when Options.Limiter is nil (tests, benchmarks) was a second
// implementation that keyed IPv6 clients per address, so a host rotating
// addresses in its /64 was never limited, and read a rate left out as "no
// limit" instead of the defaults. It is now the production limiter with
// the configured defaults: each member below is one way the two differed.
func TestRegression_GatewayLimiterMatchesProduction(t *testing.T) {
	t.Parallel()
	// The test configuration sets no rate_limits at all.
	burst := config.DefaultPerClientBurst
	subjectBurst := config.DefaultPerSubjectBurst
	cases := []struct {
		name string
		n    int
		send func(t *testing.T, g *Gateway, i int) int
		want int
	}{
		{"one IPv4 client takes the default per-client burst", burst + 20,
			func(t *testing.T, g *Gateway, i int) int { return status(t, g, "192.0.2.70:1234", "/public/x", "") }, burst},
		{"every address of one IPv6 /64 shares one bucket", burst + 20,
			func(t *testing.T, g *Gateway, i int) int {
				return status(t, g, fmt.Sprintf("[2001:db8:70:1:%x::%x]:1234", i, i+1), "/public/x", "")
			}, burst},
		{"privacy addresses (RFC 8981) of one /64 share it too", burst + 20,
			func(t *testing.T, g *Gateway, i int) int {
				return status(t, g, fmt.Sprintf("[2001:db8:70:2:%x:%x:%x:%x]:1234", 0x1000+i, 0xbeef, i*7, 0xf00d), "/public/x", "")
			}, burst},
		{"each IPv6 /64 has its own bucket", burst + 20,
			func(t *testing.T, g *Gateway, i int) int {
				return status(t, g, fmt.Sprintf("[2001:db8:70:%x::1]:1234", 0x100+i), "/public/x", "")
			}, burst + 20},
		{"IPv4-mapped IPv6 shares the bucket of its IPv4 address", burst + 20,
			func(t *testing.T, g *Gateway, i int) int {
				if i%2 == 0 {
					return status(t, g, "[::ffff:192.0.2.71]:1234", "/public/x", "")
				}
				return status(t, g, "192.0.2.71:1234", "/public/x", "")
			}, burst},
		{"each route has its own bucket", 2 * (burst + 20),
			func(t *testing.T, g *Gateway, i int) int {
				path := []string{"/public/x", "/matrix/x"}[i%2]
				return status(t, g, "[2001:db8:70:3::1]:1234", path, "")
			}, 2 * burst},
		{"telegate's own endpoints have their own bucket", burst + 20,
			func(t *testing.T, g *Gateway, i int) int {
				if i == 0 { // exhaust the client's bucket of a route first
					for range burst + 1 {
						status(t, g, "192.0.2.72:1234", "/public/x", "")
					}
				}
				return status(t, g, "192.0.2.72:1234", "/.telegate/jwks.json", "")
			}, burst},
		{"a signed-in subject takes the default per-subject burst", subjectBurst + 20,
			func(t *testing.T, g *Gateway, i int) int {
				return status(t, g, fmt.Sprintf("192.0.2.%d:1234", 100+i%100), "/admin/x", "root")
			}, subjectBurst},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tg := newTestGateway(t, frozenClock)
			if got := passed(tc.n, func(i int) int { return tc.send(t, tg.g, i) }); got != tc.want {
				t.Errorf("%d of %d passed, want %d", got, tc.n, tc.want)
			}
		})
	}

	// The decisions are those of the production pair (policies.Limiter
	// under policies.RouteLimits of the same configuration).
	tg := newTestGateway(t, frozenClock)
	prod := policies.NewLimiter(0, func() time.Time { return time.Time{} })
	limits := policies.NewRouteLimits(testConfig(t, ""))
	for i := range burst + 20 {
		remote := fmt.Sprintf("[2001:db8:70:4::%x]:1234", i+1)
		addr := netip.MustParseAddrPort(remote).Addr()
		want := prod.AllowClient("public", addr, limits.Client("public"))
		if got := status(t, tg.g, remote, "/public/x", "") != http.StatusTooManyRequests; got != want {
			t.Fatalf("request %d: gateway allowed %v, production limiter %v", i, got, want)
		}
	}
}
