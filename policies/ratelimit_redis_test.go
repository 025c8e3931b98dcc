package policies

import (
	"context"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/telegate/telegate/internal/redisconn"
	"github.com/telegate/telegate/internal/redistest"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/telegate/telegate/config"
)

// testRedis is a redis-server the test started (internal/redistest).
type testRedis struct{ *redistest.Server }

func startRedis(t *testing.T) *testRedis { return &testRedis{redistest.Start(t)} }

func (r *testRedis) limiter(t *testing.T) *RedisLimiter {
	t.Helper()
	l, err := NewRedisLimiter(RedisLimiterOptions{Conn: redisconn.Conn{Addr: r.Addr, Password: r.Password}, HashKey: []byte("shared")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

func TestRedisLimiterIsGlobal(t *testing.T) {
	t.Parallel()
	r := startRedis(t)
	limits := NewRouteLimits(&config.Config{
		RateLimits: config.RateLimits{PerClient: slowLimit(5), PerSubject: slowLimit(3)},
		Routes:     []config.Route{{ID: "own", RateLimit: &config.RateLimit{Rate: 0.001, Burst: 2}}},
	})
	a := r.limiter(t) // node A
	b := r.limiter(t) // node B, same Redis
	client := func(l *RedisLimiter, route string, addr netip.Addr) bool {
		return l.AllowClient(route, addr, limits.Client(route))
	}
	subject := func(l *RedisLimiter, route, key string) bool {
		return l.AllowSubject(route, key, limits.Subject(route))
	}
	alice := netip.MustParseAddr("203.0.113.7")
	bob := netip.MustParseAddr("203.0.113.8")
	v6a := netip.MustParseAddr("2001:db8:1:2::1")
	v6b := netip.MustParseAddr("2001:db8:1:2:ffff::9") // same /64
	nodes := func(f func(l *RedisLimiter) bool) func() bool {
		i := 0
		return func() bool { i++; return f([]*RedisLimiter{a, b}[i%2]) }
	}
	tests := []struct {
		name string
		n    int
		f    func() bool
		want int
	}{
		{"one client over two nodes shares one bucket", 10, nodes(func(l *RedisLimiter) bool { return client(l, "app", alice) }), 5},
		{"another client has its own bucket", 10, nodes(func(l *RedisLimiter) bool { return client(l, "app", bob) }), 5},
		{"another route has its own bucket", 10, nodes(func(l *RedisLimiter) bool { return client(l, "api", alice) }), 5},
		{"route's own limit", 10, nodes(func(l *RedisLimiter) bool { return client(l, "own", alice) }), 2},
		{"IPv6 per /64", 10, nodes(func(l *RedisLimiter) bool {
			return client(l, "v6", v6a) && client(l, "v6", v6b)
		}), 2},
		{"subject over two nodes", 10, nodes(func(l *RedisLimiter) bool { return subject(l, "app", "https://idp\x00alice") }), 3},
		{"anonymous subject not limited here", 10, nodes(func(l *RedisLimiter) bool { return subject(l, "app", "") }), 10},
	}
	for _, tc := range tests {
		if got := allowed(tc.n, tc.f); got != tc.want {
			t.Errorf("%s: %d of %d allowed, want %d", tc.name, got, tc.n, tc.want)
		}
	}
	if d, e := a.Fallbacks(); d != 0 || e != 0 {
		t.Errorf("fallbacks with Redis up: %d decisions, %d errors", d, e)
	}
	byClient, bySubject := a.Local().Limited()
	byClientB, bySubjectB := b.Local().Limited()
	if byClient+byClientB == 0 || bySubject+bySubjectB != 7 {
		t.Errorf("refusals counted: client %d+%d subject %d+%d", byClient, byClientB, bySubject, bySubjectB)
	}
}

// TestRedisLimiterConcurrentIsAtomic: one bucket hit from many goroutines
// on two nodes admits exactly the burst.
func TestRedisLimiterConcurrentIsAtomic(t *testing.T) {
	t.Parallel()
	r := startRedis(t)
	lim := slowLimit(50)
	nodes := []*RedisLimiter{r.limiter(t), r.limiter(t)}
	c := netip.MustParseAddr("198.51.100.2")
	var ok atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 25; i++ {
				if nodes[(g+i)%2].AllowClient("app", c, lim) {
					ok.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 50 {
		t.Fatalf("%d of 200 allowed, want exactly 50", ok.Load())
	}
}

func TestRedisLimiterKeysHoldNoAddressOrSubject(t *testing.T) {
	t.Parallel()
	r := startRedis(t)
	l := r.limiter(t)
	d := config.DefaultRateLimits()
	l.AllowClient("app", netip.MustParseAddr("203.0.113.99"), d.PerClient)
	l.AllowSubject("app", "https://idp.test\x00patient-4711", d.PerSubject)
	c := redis.NewClient(&redis.Options{Addr: r.Addr, Password: r.Password, DisableIdentity: true, Protocol: 2})
	defer c.Close()
	keys, err := c.Keys(context.Background(), "*").Result()
	if err != nil || len(keys) != 2 {
		t.Fatalf("keys %v, %v", keys, err)
	}
	for _, k := range keys {
		for _, secret := range []string{"203.0.113.99", "patient-4711", "idp.test"} {
			if strings.Contains(k, secret) {
				t.Errorf("key %q holds %q", k, secret)
			}
		}
		// PTTL is -1 for a key that never expires and -2 for one that has
		// already expired (a bucket one token short refills within
		// milliseconds): only the first is a fault.
		if ttl := c.PTTL(context.Background(), k).Val(); ttl == -1 || ttl > 3*time.Second {
			t.Errorf("key %q TTL %v, want until the bucket is full again (≤2s at the defaults)", k, ttl)
		}
	}
}

// TestRedisLimiterFallsBackWhenRedisStops is the regression test for the
// documented choice: with Redis down the front door stays open, and the
// local limiter still refuses past the limit (never unlimited).
func TestRedisLimiterFallsBackWhenRedisStops(t *testing.T) {
	t.Parallel()
	r := startRedis(t)
	l := r.limiter(t)
	lim := slowLimit(3)
	c := netip.MustParseAddr("198.51.100.3")
	if !l.AllowClient("app", c, lim) {
		t.Fatal("first request refused")
	}
	r.Stop()
	start := time.Now()
	if got := allowed(10, func() bool { return l.AllowClient("app", c, lim) }); got != 3 {
		t.Errorf("with Redis down %d of 10 allowed, want the local burst 3", got)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("10 decisions with Redis down took %v", d)
	}
	d, e := l.Fallbacks()
	if d != 10 || e == 0 {
		t.Errorf("fallbacks %d (want 10), errors %d (want >0)", d, e)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(l)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var fallbacks float64 = -1
	for _, mf := range mfs {
		if mf.GetName() == "telegate_control_ratelimit_redis_fallbacks_total" {
			fallbacks = mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	if fallbacks != 10 {
		t.Errorf("telegate_control_ratelimit_redis_fallbacks_total = %v, want 10", fallbacks)
	}
}

// TestRedisLimiterTimesOut: a Redis that accepts connections and never
// answers costs one Timeout, then decisions are local.
func TestRedisLimiterTimesOut(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	silent := make(chan struct{})
	defer close(silent)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { <-silent; c.Close() }() // reads nothing, answers nothing
		}
	}()
	l, err := NewRedisLimiter(RedisLimiterOptions{Conn: redisconn.Conn{Addr: ln.Addr().String()}, Timeout: 200 * time.Millisecond, RetryAfter: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c := netip.MustParseAddr("198.51.100.4")
	start := time.Now()
	got := allowed(5, func() bool { return l.AllowClient("app", c, slowLimit(2)) })
	if d := time.Since(start); d > time.Second {
		t.Errorf("5 decisions against a silent Redis took %v, want about one timeout", d)
	}
	if got != 2 {
		t.Errorf("%d of 5 allowed, want the local burst 2", got)
	}
	if _, e := l.Fallbacks(); e != 1 {
		t.Errorf("Redis tried %d times within RetryAfter, want 1", e)
	}
}

func TestNewRedisLimiterNeedsAddr(t *testing.T) {
	t.Parallel()
	if _, err := NewRedisLimiter(RedisLimiterOptions{}); err == nil {
		t.Fatal("no address accepted")
	}
}

func TestRedisLimiterOptionsFrom(t *testing.T) {
	t.Parallel()
	r := startRedis(t)
	pwFile := t.TempDir() + "/redis.pw"
	if err := os.WriteFile(pwFile, []byte(r.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		rc      config.Redis
		wantErr bool
		allows  int // of 3 requests at burst 1
	}{
		{"password file", config.Redis{Addr: r.Addr, PasswordFile: pwFile}, false, 1},
		{"inline password", config.Redis{Addr: r.Addr, Password: r.Password}, false, 1},
		{"missing file", config.Redis{Addr: r.Addr, PasswordFile: pwFile + ".missing"}, true, 0},
		{"no address", config.Redis{Password: "x"}, true, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o, err := RedisLimiterOptionsFrom(tc.rc)
			if tc.wantErr {
				if err == nil {
					t.Fatal("accepted")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			l, err := NewRedisLimiter(o)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			c := netip.MustParseAddr("198.51.100.5")
			if got := allowed(3, func() bool { return l.AllowClient(tc.name, c, slowLimit(1)) }); got != tc.allows {
				t.Errorf("%d of 3 allowed, want %d", got, tc.allows)
			}
			if _, e := l.Fallbacks(); e != 0 {
				t.Errorf("Redis refused the configured password (%d errors)", e)
			}
		})
	}
}
