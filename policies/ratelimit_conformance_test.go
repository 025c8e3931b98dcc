package policies

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/internal/redisconn"
)

// rateLimiter is the contract every rate limiter meets (gateway.Limiter),
// spelled here so that policies' tests need not import gateway.
type rateLimiter interface {
	AllowClient(routeID string, addr netip.Addr, lim config.RateLimit) bool
	AllowSubject(routeID, subjectKey string, lim config.RateLimit) bool
}

// limiterHarness makes the limiters of one implementation for the
// conformance suite.
type limiterHarness struct {
	// new returns an empty limiter whose tables hold at most maxClients
	// buckets each, and wait, which lets d pass for it: its injected clock
	// where it has one, else a real sleep.
	new func(t *testing.T, maxClients int) (l rateLimiter, wait func(d time.Duration))
	// clients, when not nil, is the number of per-client buckets l holds:
	// the implementation keeps a bounded table of its own.
	clients func(l rateLimiter) int
}

// invalidLimits are limits config validation refuses (config.CheckRateLimit);
// a limiter given one refuses the request and is never unlimited.
var invalidLimits = []config.RateLimit{
	{},
	{Rate: 0, Burst: 10},
	{Rate: -1, Burst: 10},
	{Rate: 10, Burst: 0},
	{Rate: 10, Burst: -1},
}

// slowLimit is a limit that does not refill within a test.
func slowLimit(burst int) config.RateLimit { return config.RateLimit{Rate: 0.001, Burst: burst} }

// runLimiterConformance is the contract of a rate limiter: the in-memory
// Limiter and the RedisLimiter both run it.
func runLimiterConformance(t *testing.T, h limiterHarness) {
	addr := netip.MustParseAddr
	const alice, bob = "https://idp.test\x00alice", "https://idp.test\x00bob"

	t.Run("burst then refusal", func(t *testing.T) {
		t.Parallel()
		l, _ := h.new(t, 100)
		a := addr("192.0.2.1")
		if got := allowed(10, func() bool { return l.AllowClient("r", a, slowLimit(5)) }); got != 5 {
			t.Errorf("per client: %d of 10 allowed, want the burst 5", got)
		}
		if got := allowed(10, func() bool { return l.AllowSubject("r", alice, slowLimit(3)) }); got != 3 {
			t.Errorf("per subject: %d of 10 allowed, want the burst 3", got)
		}
	})

	t.Run("refill over time", func(t *testing.T) {
		t.Parallel()
		l, wait := h.new(t, 100)
		a := addr("192.0.2.2")
		// One token per 500ms: with a real clock (Redis) a request may be
		// late by up to that much before the counts below change.
		lim := config.RateLimit{Rate: 2, Burst: 2}
		if got := allowed(5, func() bool { return l.AllowClient("r", a, lim) }); got != 2 {
			t.Fatalf("%d of 5 allowed, want the burst 2", got)
		}
		wait(1100 * time.Millisecond) // 2.2 tokens, capped at the burst
		if got := allowed(5, func() bool { return l.AllowClient("r", a, lim) }); got != 2 {
			t.Fatalf("after 1.1s %d of 5 allowed, want a full bucket of 2 and no more", got)
		}
		if got := allowed(5, func() bool { return l.AllowSubject("r", alice, lim) }); got != 2 {
			t.Fatalf("subject: %d of 5 allowed, want 2", got)
		}
		wait(600 * time.Millisecond) // 1.2 tokens
		if got := allowed(5, func() bool { return l.AllowSubject("r", alice, lim) }); got != 1 {
			t.Fatalf("subject after 600ms: %d of 5 allowed, want the 1 token refilled", got)
		}
	})

	// shares reports, for each pair, whether exhausting the first
	// client's bucket (burst 2) also exhausts the second's.
	shares := func(t *testing.T, l rateLimiter, route string, first, second netip.Addr) bool {
		t.Helper()
		if got := allowed(3, func() bool { return l.AllowClient(route, first, slowLimit(2)) }); got != 2 {
			t.Fatalf("%s: %d of 3 allowed, want 2", first, got)
		}
		return !l.AllowClient(route, second, slowLimit(2))
	}
	clientCases := []struct {
		name          string
		first, second string
		shared        bool
	}{
		{"IPv4 same address", "192.0.2.10", "192.0.2.10", true},
		{"IPv4 per address", "192.0.2.10", "192.0.2.11", false},
		{"IPv4 neighbour in the same /24", "198.51.100.1", "198.51.100.254", false},
		{"IPv6 same /64, other interface id", "2001:db8:1:2::1", "2001:db8:1:2:ffff::9", true},
		{"IPv6 same /64, random interface id", "2001:db8:1:2::1", "2001:db8:1:2:a1b2:c3d4:e5f6:789", true},
		{"IPv6 other /64 in the same /48", "2001:db8:1:2::1", "2001:db8:1:3::1", false},
		{"IPv6 other /64 by its last prefix bit", "2001:db8:1:2::1", "2001:db8:1:3:ffff::1", false},
		{"IPv6 zone ignored", "fe80::1%eth0", "fe80::2%eth1", true},
		{"IPv4-mapped IPv6 is its IPv4 address", "192.0.2.20", "::ffff:192.0.2.20", true},
		{"IPv4 is its IPv4-mapped IPv6 address", "::ffff:192.0.2.21", "192.0.2.21", true},
		{"IPv4-mapped IPv6 per IPv4 address", "::ffff:192.0.2.22", "::ffff:192.0.2.23", false},
		{"IPv4-mapped not grouped by /64", "::ffff:192.0.2.24", "::ffff:192.0.2.25", false},
	}
	for _, tc := range clientCases {
		t.Run("client/"+tc.name, func(t *testing.T) {
			t.Parallel()
			l, _ := h.new(t, 100)
			if got := shares(t, l, "r", addr(tc.first), addr(tc.second)); got != tc.shared {
				t.Errorf("%s and %s share a bucket = %v, want %v", tc.first, tc.second, got, tc.shared)
			}
		})
	}

	t.Run("per-route isolation", func(t *testing.T) {
		t.Parallel()
		l, _ := h.new(t, 100)
		a := addr("2001:db8:5::1")
		for _, route := range []string{"clinic", "records", ".telegate"} {
			if got := allowed(5, func() bool { return l.AllowClient(route, a, slowLimit(2)) }); got != 2 {
				t.Errorf("client on %s: %d of 5 allowed, want its own burst 2", route, got)
			}
			if got := allowed(5, func() bool { return l.AllowSubject(route, alice, slowLimit(1)) }); got != 1 {
				t.Errorf("subject on %s: %d of 5 allowed, want its own burst 1", route, got)
			}
		}
	})

	t.Run("per-subject buckets", func(t *testing.T) {
		t.Parallel()
		l, _ := h.new(t, 100)
		lim := slowLimit(2)
		if got := allowed(5, func() bool { return l.AllowSubject("r", alice, lim) }); got != 2 {
			t.Fatalf("alice: %d of 5 allowed, want 2", got)
		}
		if got := allowed(5, func() bool { return l.AllowSubject("r", bob, lim) }); got != 2 {
			t.Errorf("bob: %d of 5 allowed, want his own 2", got)
		}
		if got := allowed(5, func() bool { return l.AllowSubject("r", "https://other-idp.test\x00alice", lim) }); got != 2 {
			t.Errorf("alice of another issuer: %d of 5 allowed, want her own 2", got)
		}
		if got := allowed(5, func() bool { return l.AllowSubject("r", "", lim) }); got != 5 {
			t.Errorf("anonymous: %d of 5 allowed; the subject limit is for signed-in identities only", got)
		}
		if !l.AllowClient("r", addr("192.0.2.30"), lim) {
			t.Error("a subject's bucket took the client's token")
		}
	})

	t.Run("changed limits take effect", func(t *testing.T) {
		t.Parallel()
		l, wait := h.new(t, 100)
		a := addr("192.0.2.40")
		gen := func(rl *config.RateLimit) *RouteLimits {
			return NewRouteLimits(&config.Config{
				RateLimits: config.RateLimits{PerClient: slowLimit(50), PerSubject: slowLimit(50)},
				Routes:     []config.Route{{ID: "r", RateLimit: rl}, {ID: "other"}},
			})
		}
		steps := []struct {
			name string
			rl   *config.RateLimit // the route's own limit in this generation
			n    int               // requests, client and subject alike
			want int
		}{
			{"first generation: burst 5, take 2", &config.RateLimit{Rate: 0.001, Burst: 5}, 2, 2},
			{"burst lowered to 3: 3-2 left", &config.RateLimit{Rate: 0.001, Burst: 3}, 10, 1},
			{"burst raised to 6: 6-3 left", &config.RateLimit{Rate: 0.001, Burst: 6}, 10, 3},
			{"route's own limit removed: rate_limits' burst 50 less 6", nil, 60, 44},
		}
		for _, st := range steps {
			g := gen(st.rl)
			if got := allowed(st.n, func() bool { return l.AllowClient("r", a, g.Client("r")) }); got != st.want {
				t.Errorf("%s: client %d of %d allowed, want %d", st.name, got, st.n, st.want)
			}
			if got := allowed(st.n, func() bool { return l.AllowSubject("r", alice, g.Subject("r")) }); got != st.want {
				t.Errorf("%s: subject %d of %d allowed, want %d", st.name, got, st.n, st.want)
			}
		}
		// A raised rate drains the bucket at the new rate from the next
		// request on, not after the old rate would have refilled it.
		b := addr("192.0.2.41")
		if got := allowed(3, func() bool { return l.AllowClient("r", b, slowLimit(1)) }); got != 1 {
			t.Fatalf("burst 1: %d of 3 allowed", got)
		}
		fast := config.RateLimit{Rate: 20, Burst: 1} // one token per 50ms
		wait(150 * time.Millisecond)
		if !l.AllowClient("r", b, fast) {
			t.Error("after the rate was raised to 20/s and 150ms, the bucket has not refilled")
		}
	})

	t.Run("rate 0 is refused, never unlimited", func(t *testing.T) {
		t.Parallel()
		l, _ := h.new(t, 100)
		for i, lim := range invalidLimits {
			a := netip.AddrFrom4([4]byte{192, 0, 2, byte(100 + i)})
			subject := fmt.Sprint("https://idp.test\x00s", i)
			if got := allowed(5, func() bool { return l.AllowClient("r", a, lim) }); got != 0 {
				t.Errorf("client under %+v: %d of 5 allowed, want 0", lim, got)
			}
			if got := allowed(5, func() bool { return l.AllowSubject("r", subject, lim) }); got != 0 {
				t.Errorf("subject under %+v: %d of 5 allowed, want 0", lim, got)
			}
			// The refusals took nothing: a valid limit finds a full bucket.
			if got := allowed(5, func() bool { return l.AllowClient("r", a, slowLimit(3)) }); got != 3 {
				t.Errorf("client after %+v: %d of 5 allowed under burst 3, want 3", lim, got)
			}
		}
		// And configuration refuses such a limit before any limiter sees it.
		for _, lim := range invalidLimits {
			c := &config.Config{Routes: []config.Route{{ID: "r", RateLimit: &lim}}}
			c.ApplyDefaults()
			if err := c.Validate(); err == nil || !containsField(err, "routes[0].rate_limit") {
				t.Errorf("configuration with rate_limit %+v: %v, want it refused at routes[0].rate_limit", lim, err)
			}
		}
	})

	if h.clients != nil {
		t.Run("bounded table evicts the least recently used", func(t *testing.T) {
			t.Parallel()
			l, _ := h.new(t, 50)
			lim := slowLimit(4)
			for i := range 1000 {
				l.AllowClient("r", netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), lim)
			}
			if n := h.clients(l); n != 50 {
				t.Fatalf("client table holds %d buckets, want the cap 50", n)
			}
			// The most recent client still has its own bucket (3 left) …
			last := netip.AddrFrom4([4]byte{10, 0, 3, 231})
			if got := allowed(10, func() bool { return l.AllowClient("r", last, lim) }); got != 3 {
				t.Errorf("recent client: %d more allowed, want 3", got)
			}
			// … and the first was evicted: it starts again full.
			first := netip.AddrFrom4([4]byte{10, 0, 0, 0})
			if got := allowed(10, func() bool { return l.AllowClient("r", first, lim) }); got != 4 {
				t.Errorf("evicted client: %d allowed, want a fresh bucket of 4", got)
			}
		})
	}
}

// containsField reports whether err holds a problem at field path f or
// inside it.
func containsField(err error, f string) bool {
	var fes config.Errors
	if !errors.As(err, &fes) {
		return false
	}
	for _, fe := range fes {
		if strings.HasPrefix(fe.Field, f) {
			return true
		}
	}
	return false
}

func TestLimiterConformance(t *testing.T) {
	t.Parallel()
	runLimiterConformance(t, limiterHarness{
		new: func(t *testing.T, maxClients int) (rateLimiter, func(time.Duration)) {
			clk := newClock()
			return NewLimiter(maxClients, clk.now), clk.add
		},
		clients: func(l rateLimiter) int { n, _ := l.(*Limiter).Len(); return n },
	})
}

func TestRedisLimiterConformance(t *testing.T) {
	t.Parallel()
	r := startRedis(t)
	runLimiterConformance(t, limiterHarness{
		new: func(t *testing.T, maxClients int) (rateLimiter, func(time.Duration)) {
			l, err := NewRedisLimiter(RedisLimiterOptions{
				Conn: redisconn.Conn{Addr: r.Addr, Password: r.Password}, HashKey: []byte("shared"),
				Prefix: "telegate:rl:" + t.Name() + ":", MaxClients: maxClients,
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if d, e := l.Fallbacks(); d != 0 || e != 0 {
					t.Errorf("decided locally %d times (%d Redis errors): the suite did not test Redis", d, e)
				}
				_ = l.Close()
			})
			return l, time.Sleep
		},
	})
}
