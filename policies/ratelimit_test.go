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

// The in-memory limiter's contract is ratelimit_conformance_test.go; the
// tests here are about its table and its counters.

func TestLimiterCountsRefusals(t *testing.T) {
	t.Parallel()
	clk := newClock()
	l := NewLimiter(0, clk.now)
	lim := config.RateLimit{Rate: 2, Burst: 3}
	a := netip.MustParseAddr("192.0.2.1")
	if got := allowed(10, func() bool { return l.AllowClient("r", a, lim) }); got != 3 {
		t.Fatalf("burst passed %d, want 3", got)
	}
	clk.add(time.Second)
	if got := allowed(10, func() bool { return l.AllowClient("r", a, lim) }); got != 2 {
		t.Fatalf("after 1s passed %d, want 2", got)
	}
	l.AllowSubject("r", "iss\x00alice", config.RateLimit{Rate: 1, Burst: 1})
	l.AllowSubject("r", "iss\x00alice", config.RateLimit{Rate: 1, Burst: 1})
	if c, s := l.Limited(); c != 15 || s != 1 {
		t.Fatalf("Limited = %d, %d; want 15, 1", c, s)
	}
}

// TestInvalidLimitKeepsNoState: a limit no configuration could hold (rate
// 0, negative, infinite, burst 0) refuses without making a bucket, and an
// anonymous subject makes none either.
func TestInvalidLimitKeepsNoState(t *testing.T) {
	t.Parallel()
	l := NewLimiter(0, nil)
	for i := range 100 {
		a := netip.AddrFrom4([4]byte{10, 0, 0, byte(i)})
		for _, lim := range invalidLimits {
			if l.AllowClient("r", a, lim) || l.AllowSubject("r", fmt.Sprint("s", i), lim) {
				t.Fatalf("%+v admitted a request", lim)
			}
		}
		l.AllowSubject("r", "", config.DefaultRateLimits().PerSubject)
	}
	if c, s := l.Len(); c != 0 || s != 0 {
		t.Fatalf("Len = %d, %d; want 0, 0", c, s)
	}
}

// TestNewLimiterDefaultCap: a cap left out is config.DefaultMaxClients.
func TestNewLimiterDefaultCap(t *testing.T) {
	t.Parallel()
	l := NewLimiter(-1, nil)
	lim := config.RateLimit{Rate: 1, Burst: 1}
	for i := range config.DefaultMaxClients + 10 {
		l.AllowSubject("r", fmt.Sprint(i), lim)
	}
	if _, s := l.Len(); s != config.DefaultMaxClients {
		t.Fatalf("subject table holds %d, want config.DefaultMaxClients", s)
	}
}

func TestLimiterConcurrent(t *testing.T) {
	t.Parallel()
	l := NewLimiter(8, newClock().now)
	lim := config.RateLimit{Rate: 1, Burst: 100}
	var wg sync.WaitGroup
	var mu sync.Mutex
	total := 0
	for g := range 8 {
		wg.Go(func() {
			n := 0
			for i := range 100 {
				if l.AllowClient("r", netip.MustParseAddr("192.0.2.1"), lim) {
					n++
				}
				l.AllowClient("r", netip.AddrFrom4([4]byte{10, 1, byte(g), byte(i)}), lim)
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
	l := NewLimiter(0, nil)
	lim := config.RateLimit{Rate: 1e9, Burst: 1e9}
	addrs := make([]netip.Addr, 1024)
	for i := range addrs {
		addrs[i] = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte(i >> 8), byte(i), 15: 1})
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			l.AllowClient("clinic", addrs[i%len(addrs)], lim)
			i++
		}
	})
}

func BenchmarkAllowClientEvicting(b *testing.B) {
	l := NewLimiter(1000, nil)
	lim := config.DefaultRateLimits().PerClient
	b.ReportAllocs()
	i := uint32(0)
	for b.Loop() {
		i++
		l.AllowClient("clinic", netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), lim)
	}
}

// TestRegressionChurnNeverRefillsBusyBucket: hits take only the table's
// read lock and promote a bucket lazily, yet a client that stays busy while
// new keys churn through a small table is never evicted, so its bucket is
// never refilled (a churn of fresh keys would otherwise reset it).
func TestRegressionChurnNeverRefillsBusyBucket(t *testing.T) {
	t.Parallel()
	l := NewLimiter(8, newClock().now)
	lim := config.RateLimit{Rate: 0.001, Burst: 5}
	hot := netip.MustParseAddr("192.0.2.1")
	passed := 0
	for i := range 400 {
		if l.AllowClient("r", hot, lim) {
			passed++
		}
		for j := range 3 {
			l.AllowClient("r", netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), byte(j)}), lim)
		}
	}
	if passed != 5 {
		t.Fatalf("busy client passed %d requests with a burst of 5 while keys churned", passed)
	}
}
