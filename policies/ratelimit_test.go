package policies

import (
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/telegate/telegate/config"
)

// fakeClock is a settable clock for token buckets.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newClock() *fakeClock { return &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

// allowed counts how many of n back-to-back requests pass.
func allowed(n int, f func() bool) int {
	c := 0
	for range n {
		if f() {
			c++
		}
	}
	return c
}

func TestAllowClientBurstAndRefill(t *testing.T) {
	t.Parallel()
	clk := newClock()
	l := NewLimiter(config.RateLimits{PerClient: config.RateLimit{Rate: 2, Burst: 3}}, clk.now)
	a := netip.MustParseAddr("192.0.2.1")
	if got := allowed(10, func() bool { return l.AllowClient("r", a, nil) }); got != 3 {
		t.Fatalf("burst passed %d, want 3", got)
	}
	clk.add(time.Second)
	if got := allowed(10, func() bool { return l.AllowClient("r", a, nil) }); got != 2 {
		t.Fatalf("after 1s passed %d, want 2", got)
	}
	if c, _ := l.Limited(); c != 15 {
		t.Fatalf("Limited = %d, want 15", c)
	}
}

func TestAllowClientKeys(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		r1, r2 string
		a1, a2 string
		shared bool
	}{
		{"same IPv4", "r", "r", "192.0.2.1", "192.0.2.1", true},
		{"other IPv4", "r", "r", "192.0.2.1", "192.0.2.2", false},
		{"IPv4-mapped is IPv4", "r", "r", "192.0.2.1", "::ffff:192.0.2.1", true},
		{"same IPv6 /64", "r", "r", "2001:db8:1:2::1", "2001:db8:1:2:ffff::9", true},
		{"IPv6 zone ignored", "r", "r", "fe80::1%eth0", "fe80::2%eth1", true},
		{"other IPv6 /64", "r", "r", "2001:db8:1:2::1", "2001:db8:1:3::1", false},
		{"other route", "a", "b", "192.0.2.1", "192.0.2.1", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l := NewLimiter(config.RateLimits{PerClient: config.RateLimit{Rate: 1, Burst: 2}}, newClock().now)
			a1, a2 := netip.MustParseAddr(tt.a1), netip.MustParseAddr(tt.a2)
			l.AllowClient(tt.r1, a1, nil)
			l.AllowClient(tt.r1, a1, nil)
			got := l.AllowClient(tt.r2, a2, nil)
			if got == tt.shared {
				t.Fatalf("second client allowed = %v; shared bucket expected %v", got, tt.shared)
			}
		})
	}
}

func TestLimiterDefaultsAndOverrides(t *testing.T) {
	t.Parallel()
	a := netip.MustParseAddr("2001:db8::1")
	tests := []struct {
		name     string
		cfg      config.RateLimits
		override *config.RateLimit
		subject  bool
		want     int // passes out of 500 at one instant
	}{
		{"default per client", config.RateLimits{}, nil, false, 100},
		{"default per subject", config.RateLimits{}, nil, true, 40},
		{"configured", config.RateLimits{PerClient: config.RateLimit{Rate: 5, Burst: 7}}, nil, false, 7},
		{"zero rate unlimited", config.RateLimits{PerClient: config.RateLimit{Rate: 0, Burst: 1}}, nil, false, 500},
		{"override", config.RateLimits{}, &config.RateLimit{Rate: 1, Burst: 3}, false, 3},
		{"override zero rate unlimited", config.RateLimits{}, &config.RateLimit{}, false, 500},
		{"override subject", config.RateLimits{}, &config.RateLimit{Rate: 1, Burst: 4}, true, 4},
		{"burst 0 takes ceil(rate)", config.RateLimits{PerSubject: config.RateLimit{Rate: 2.5}}, nil, true, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l := NewLimiter(tt.cfg, newClock().now)
			got := allowed(500, func() bool {
				if tt.subject {
					return l.AllowSubject("r", "https://idp|alice", tt.override)
				}
				return l.AllowClient("r", a, tt.override)
			})
			if got != tt.want {
				t.Fatalf("passed %d of 500, want %d", got, tt.want)
			}
		})
	}
}

func TestUnlimitedKeepsNoState(t *testing.T) {
	t.Parallel()
	l := NewLimiter(config.RateLimits{}, nil)
	for i := range 100 {
		l.AllowClient("r", netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), &config.RateLimit{})
		l.AllowSubject("r", "", nil)
	}
	if c, s := l.Len(); c != 0 || s != 0 {
		t.Fatalf("Len = %d, %d; want 0, 0", c, s)
	}
}

func TestAllowSubjectSeparatesSubjectsAndRoutes(t *testing.T) {
	t.Parallel()
	l := NewLimiter(config.RateLimits{PerSubject: config.RateLimit{Rate: 1, Burst: 1}}, newClock().now)
	if !l.AllowSubject("r", "iss|alice", nil) || l.AllowSubject("r", "iss|alice", nil) {
		t.Fatal("alice's bucket not 1")
	}
	if !l.AllowSubject("r", "iss|bob", nil) || !l.AllowSubject("other", "iss|alice", nil) {
		t.Fatal("buckets shared across subjects or routes")
	}
	if _, s := l.Limited(); s != 1 {
		t.Fatalf("Limited by subject = %d", s)
	}
}

// TestLimiterTableBounded: a flood of distinct clients cannot grow the
// table past MaxClients (docs/architecture.md principle 7).
func TestLimiterTableBounded(t *testing.T) {
	t.Parallel()
	l := NewLimiter(config.RateLimits{MaxClients: 50}, newClock().now)
	for i := range 1000 {
		l.AllowClient("r", netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), nil)
		l.AllowSubject("r", fmt.Sprint("s", i), nil)
	}
	if c, s := l.Len(); c != 50 || s != 50 {
		t.Fatalf("Len = %d, %d; want 50, 50", c, s)
	}
	// The most recent client is still limited by its own bucket.
	last := netip.AddrFrom4([4]byte{10, 0, 3, 231})
	if got := allowed(200, func() bool { return l.AllowClient("r", last, nil) }); got != DefaultPerClient.Burst-1 {
		t.Fatalf("recent client passed %d more, want %d", got, DefaultPerClient.Burst-1)
	}
}

func TestLimiterConcurrent(t *testing.T) {
	t.Parallel()
	l := NewLimiter(config.RateLimits{PerClient: config.RateLimit{Rate: 1, Burst: 100}, MaxClients: 8}, newClock().now)
	var wg sync.WaitGroup
	var mu sync.Mutex
	total := 0
	for g := range 8 {
		wg.Go(func() {
			n := 0
			for i := range 100 {
				if l.AllowClient("r", netip.MustParseAddr("192.0.2.1"), nil) {
					n++
				}
				l.AllowClient("r", netip.AddrFrom4([4]byte{10, 1, byte(g), byte(i)}), nil)
			}
			mu.Lock()
			total += n
			mu.Unlock()
		})
	}
	wg.Wait()
	if total > 100 {
		t.Fatalf("one client passed %d, burst is 100", total)
	}
}

func BenchmarkAllowClient(b *testing.B) {
	l := NewLimiter(config.RateLimits{PerClient: config.RateLimit{Rate: 1e9, Burst: 1e9}}, nil)
	addrs := make([]netip.Addr, 1024)
	for i := range addrs {
		addrs[i] = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte(i >> 8), byte(i), 15: 1})
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			l.AllowClient("clinic", addrs[i%len(addrs)], nil)
			i++
		}
	})
}

func BenchmarkAllowClientEvicting(b *testing.B) {
	l := NewLimiter(config.RateLimits{MaxClients: 1000}, nil)
	b.ReportAllocs()
	i := uint32(0)
	for b.Loop() {
		i++
		l.AllowClient("clinic", netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), nil)
	}
}

// TestRegressionChurnNeverRefillsBusyBucket: hits take only the table's
// read lock and promote a bucket lazily, yet a client that stays busy while
// new keys churn through a small table is never evicted, so its bucket is
// never refilled (a churn of fresh keys would otherwise reset it).
func TestRegressionChurnNeverRefillsBusyBucket(t *testing.T) {
	t.Parallel()
	l := NewLimiter(config.RateLimits{PerClient: config.RateLimit{Rate: 0.001, Burst: 5}, MaxClients: 8}, newClock().now)
	hot := netip.MustParseAddr("192.0.2.1")
	passed := 0
	for i := range 400 {
		if l.AllowClient("r", hot, nil) {
			passed++
		}
		for j := range 3 {
			l.AllowClient("r", netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), byte(j)}), nil)
		}
	}
	if passed != 5 {
		t.Fatalf("busy client passed %d requests with a burst of 5 while keys churned", passed)
	}
}
