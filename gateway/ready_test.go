package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/telegate/telegate/config"
)

// fakeClock is a settable clock for the readiness cache.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// readyGateway is a test gateway with deps whose listeners count as up.
func readyGateway(t *testing.T, clock *fakeClock, deps ...Dependency) *Gateway {
	t.Helper()
	tg := newTestGateway(t, func(_ *config.Config, o *Options) {
		o.Dependencies = deps
		if clock != nil {
			o.Now = clock.Now
		}
	})
	tg.g.ready.Store(true)
	return tg.g
}

// readyz asks g's admin handler for /readyz and decodes the answer.
func readyz(t *testing.T, g *Gateway) (int, Readiness) {
	t.Helper()
	w := httptest.NewRecorder()
	g.AdminHandler().ServeHTTP(w, httptest.NewRequest("GET", "/readyz", nil))
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	var rd Readiness
	if err := json.Unmarshal(w.Body.Bytes(), &rd); err != nil {
		t.Fatalf("readyz body %q: %v", w.Body.String(), err)
	}
	return w.Code, rd
}

func TestReadyzReportsEachDependency(t *testing.T) {
	t.Parallel()
	var redisDown atomic.Bool
	g := readyGateway(t, nil,
		Dependency{Name: "relay", Check: func(context.Context) error { return nil }},
		Dependency{Name: "redis:sessions", Check: func(context.Context) error {
			if redisDown.Load() {
				return errors.New("redis PING: dial tcp 127.0.0.1:6379: connect: connection refused\nsecond line " + strings.Repeat("x", 300))
			}
			return nil
		}},
	)
	code, rd := readyz(t, g)
	if code != http.StatusOK || !rd.Ready || !rd.Listening || len(rd.Dependencies) != 2 {
		t.Fatalf("all ready: %d %+v", code, rd)
	}
	for i, name := range []string{"relay", "redis:sessions"} {
		if d := rd.Dependencies[i]; d.Name != name || !d.Ready || d.Error != "" {
			t.Errorf("dependency %d = %+v, want %s ready", i, d, name)
		}
	}

	redisDown.Store(true)
	g.readiness.cacheFor = 0 // no cache: see the change at once
	code, rd = readyz(t, g)
	if code != http.StatusServiceUnavailable || rd.Ready || !rd.Listening {
		t.Fatalf("redis down: %d %+v", code, rd)
	}
	if d := rd.Dependencies[0]; !d.Ready {
		t.Errorf("relay reported down with redis: %+v", d)
	}
	d := rd.Dependencies[1]
	if d.Name != "redis:sessions" || d.Ready || d.Error != "redis PING: dial tcp 127.0.0.1:6379: connect: connection refused" {
		t.Errorf("redis dependency = %+v, want its first error line", d)
	}

	redisDown.Store(false)
	if code, rd = readyz(t, g); code != http.StatusOK || !rd.Ready {
		t.Fatalf("redis back: %d %+v", code, rd)
	}

	// Not listening (before Serve, or shutting down): 503 even with every
	// dependency ready.
	g.ready.Store(false)
	if code, rd = readyz(t, g); code != http.StatusServiceUnavailable || rd.Ready || rd.Listening {
		t.Fatalf("not listening: %d %+v", code, rd)
	}
}

func TestReadyzWithoutDependencies(t *testing.T) {
	t.Parallel()
	g := readyGateway(t, nil)
	w := httptest.NewRecorder()
	g.AdminHandler().ServeHTTP(w, httptest.NewRequest("GET", "/readyz", nil))
	if w.Code != http.StatusOK || strings.TrimSpace(w.Body.String()) != `{"ready":true,"listening":true,"generation":1,"config_hash":"","dependencies":[],"draining":false}` {
		t.Fatalf("readyz: %d %s", w.Code, w.Body)
	}
}

func TestShortError(t *testing.T) {
	t.Parallel()
	long := shortError(errors.New(strings.Repeat("é", 150)))
	if len(long) > maxReadyErrorBytes+len("…") || !strings.HasSuffix(long, "…") || !strings.HasPrefix(long, "éé") {
		t.Errorf("long error cut to %d bytes: %q", len(long), long)
	}
	if s := shortError(errors.New("\n")); s != "not ready" {
		t.Errorf("empty error shown as %q", s)
	}
}

// TestReadyzCachesChecks: a flood of /readyz costs each dependency one
// check per cache period, however many requests arrive together.
func TestReadyzCachesChecks(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	var calls atomic.Int32
	var failing atomic.Bool
	release := make(chan struct{})
	g := readyGateway(t, clock, Dependency{Name: "redis:rate-limits", Check: func(ctx context.Context) error {
		calls.Add(1)
		select {
		case <-release: // hold the first round until every request waits on it
		case <-ctx.Done():
		}
		if failing.Load() {
			return errors.New("redis PING: i/o timeout")
		}
		return nil
	}})
	const flood = 50
	var wg sync.WaitGroup
	codes := make(chan int, flood)
	for range flood {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, _ := readyz(t, g)
			codes <- code
		}()
	}
	time.Sleep(50 * time.Millisecond)
	close(release)
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != http.StatusOK {
			t.Errorf("flooded readyz answered %d", c)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("%d concurrent /readyz ran the check %d times, want 1", flood, n)
	}

	// Within the cache period the result is reused, also when it is stale.
	failing.Store(true)
	clock.Add(config.DefaultReadyCacheFor - time.Millisecond)
	for range 10 {
		if code, _ := readyz(t, g); code != http.StatusOK {
			t.Fatalf("cached result not reused: %d", code)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("check ran %d times within the cache period, want 1", n)
	}

	// Past it, one new round, and its result is the answer.
	clock.Add(time.Millisecond)
	code, rd := readyz(t, g)
	if code != http.StatusServiceUnavailable || rd.Dependencies[0].Error != "redis PING: i/o timeout" {
		t.Fatalf("after the cache period: %d %+v", code, rd)
	}
	if n := calls.Load(); n != 2 {
		t.Fatalf("check ran %d times after the cache period, want 2", n)
	}
}

// TestReadyzChecksConcurrentlyWithTimeout: checks run at the same time,
// and one that does not answer in time is reported as not ready without
// holding up the answer.
func TestReadyzChecksConcurrentlyWithTimeout(t *testing.T) {
	t.Parallel()
	var started sync.WaitGroup
	started.Add(2)
	together := func(context.Context) error {
		started.Done()
		done := make(chan struct{})
		go func() { started.Wait(); close(done) }()
		select {
		case <-done:
			return nil
		case <-time.After(5 * time.Second):
			return errors.New("the other check did not run at the same time")
		}
	}
	hang := make(chan struct{})
	t.Cleanup(func() { close(hang) })
	g := readyGateway(t, nil,
		Dependency{Name: "a", Check: together},
		Dependency{Name: "b", Check: together},
		Dependency{Name: "stuck", Check: func(context.Context) error { <-hang; return nil }}, // ignores its context
	)
	g.readiness.timeout = 100 * time.Millisecond
	start := time.Now()
	code, rd := readyz(t, g)
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("readyz took %s with a check that hangs", took)
	}
	if code != http.StatusServiceUnavailable || len(rd.Dependencies) != 3 {
		t.Fatalf("readyz: %d %+v", code, rd)
	}
	if !rd.Dependencies[0].Ready || !rd.Dependencies[1].Ready {
		t.Errorf("concurrent checks: %+v", rd.Dependencies[:2])
	}
	if d := rd.Dependencies[2]; d.Ready || d.Error != "no answer within 100ms" {
		t.Errorf("stuck check = %+v", d)
	}
}

// TestDrainOverAdmin: POST /drain on the admin listener begins the drain
// of SIGTERM once: OnDrain runs once, /readyz answers 503 with draining
// true, and a second POST changes nothing; a named Host is refused.
func TestDrainOverAdmin(t *testing.T) {
	t.Parallel()
	var drains atomic.Int32
	tg := newTestGateway(t, func(_ *config.Config, o *Options) { o.OnDrain = func() { drains.Add(1) } })
	g := tg.g
	g.ready.Store(true)
	if st, rd := readyz(t, g); st != http.StatusOK || rd.Draining {
		t.Fatalf("before the drain: %d %+v", st, rd)
	}
	post := func(host string) int {
		r := httptest.NewRequest("POST", "/drain", nil)
		r.Host = host
		w := httptest.NewRecorder()
		g.AdminHandler().ServeHTTP(w, r)
		return w.Code
	}
	if st := post("rebind.attacker.test"); st != http.StatusMisdirectedRequest || drains.Load() != 0 {
		t.Fatalf("POST /drain for a named host: %d, %d drains", st, drains.Load())
	}
	for range 2 {
		if st := post("127.0.0.1:9090"); st != http.StatusAccepted {
			t.Fatalf("POST /drain: %d", st)
		}
	}
	if drains.Load() != 1 {
		t.Errorf("OnDrain ran %d times, want once", drains.Load())
	}
	if st, rd := readyz(t, g); st != http.StatusServiceUnavailable || !rd.Draining || rd.Listening {
		t.Fatalf("after POST /drain: %d %+v", st, rd)
	}
}
