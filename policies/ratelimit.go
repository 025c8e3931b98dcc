package policies

import (
	"math"
	"net/netip"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/time/rate"

	"github.com/telegate/telegate/config"
)

// Safe defaults for rate limits (docs/architecture.md "defaults live in one place and
// are the safe ones"), used when rate_limits leaves a limit out.
var (
	// DefaultPerClient: 50 requests per second, bursts of 100, per route
	// and client address (IPv6 per /64).
	DefaultPerClient = config.RateLimit{Rate: 50, Burst: 100}
	// DefaultPerSubject: 20 requests per second, bursts of 40, per route and
	// signed-in subject.
	DefaultPerSubject = config.RateLimit{Rate: 20, Burst: 40}
	// DefaultMaxClients bounds each bucket table.
	DefaultMaxClients = 100000
)

// IPv6PrefixBits groups IPv6 clients: one bucket per /64, the smallest
// block an end site is usually given (RFC 6177), so one host cannot escape
// its limit by rotating addresses within its own network.
const IPv6PrefixBits = 64

type clientKey struct {
	route  string
	prefix netip.Prefix
}

type subjectKey struct {
	route   string
	subject string
}

// Limiter holds token buckets (golang.org/x/time/rate) per route and client
// address and per route and subject, in two tables bounded by MaxClients
// entries each with least-recently-used eviction (docs/architecture.md principle 7).
// An evicted client starts again with a full bucket; with the default cap
// that takes 100000 more recently active clients. A Limiter is safe for
// concurrent use.
type Limiter struct {
	perClient  config.RateLimit
	perSubject config.RateLimit
	now        func() time.Time

	clients  *bucketTable[clientKey]
	subjects *bucketTable[subjectKey]

	limitedClient  atomic.Uint64
	limitedSubject atomic.Uint64
}

// NewLimiter returns a Limiter for cfg. now is the clock (time.Now when
// nil). A limit left out of cfg (rate and burst both 0) takes
// DefaultPerClient or DefaultPerSubject; a limit with rate 0 and a burst is
// unlimited; a rate with burst 0 gets a burst of ceil(rate). MaxClients <= 0
// means DefaultMaxClients.
func NewLimiter(cfg config.RateLimits, now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	if cfg.PerClient == (config.RateLimit{}) {
		cfg.PerClient = DefaultPerClient
	}
	if cfg.PerSubject == (config.RateLimit{}) {
		cfg.PerSubject = DefaultPerSubject
	}
	size := cfg.MaxClients
	if size <= 0 {
		size = DefaultMaxClients
	}
	clients := newBucketTable[clientKey](size)
	subjects := newBucketTable[subjectKey](size)
	return &Limiter{
		perClient:  cfg.PerClient,
		perSubject: cfg.PerSubject,
		now:        now,
		clients:    clients,
		subjects:   subjects,
	}
}

// AllowClient takes one token from the bucket of (routeID, client network)
// and reports whether the request may proceed; false means answer 429
// (RFC 6585 §4). addr is grouped: IPv4 (and IPv4-mapped IPv6) per address,
// IPv6 per /64. An invalid addr shares one bucket per route. override, when
// not nil, replaces rate_limits.per_client for this route; a zero Rate is
// unlimited and keeps no state.
func (l *Limiter) AllowClient(routeID string, addr netip.Addr, override *config.RateLimit) bool {
	lim := l.perClient
	if override != nil {
		lim = *override
	}
	if lim.Rate <= 0 {
		return true
	}
	k := clientKey{route: routeID, prefix: clientPrefix(addr)}
	now := l.now()
	if l.clients.get(k, lim, now).AllowN(now, 1) {
		return true
	}
	l.limitedClient.Add(1)
	return false
}

// AllowSubject takes one token from the bucket of (routeID, subjectKey) and
// reports whether the request may proceed. subjectKey identifies the
// signed-in principal (issuer and subject); "" (anonymous) is not limited
// here, the per-client limit applies to it. override, when not nil,
// replaces rate_limits.per_subject for this route; a zero Rate is
// unlimited.
func (l *Limiter) AllowSubject(routeID, subjectKey string, override *config.RateLimit) bool {
	lim := l.perSubject
	if override != nil {
		lim = *override
	}
	if lim.Rate <= 0 || subjectKey == "" {
		return true
	}
	now := l.now()
	if l.subjects.get(subjectKeyOf(routeID, subjectKey), lim, now).AllowN(now, 1) {
		return true
	}
	l.limitedSubject.Add(1)
	return false
}

func subjectKeyOf(routeID, subject string) subjectKey {
	return subjectKey{route: routeID, subject: subject}
}

// Limited returns how many requests were refused since NewLimiter, by
// client address and by subject (export as
// telegate_control_ratelimited_requests_total{by="client"|"subject"}).
func (l *Limiter) Limited() (byClient, bySubject uint64) {
	return l.limitedClient.Load(), l.limitedSubject.Load()
}

// Len returns the number of buckets held per client and per subject.
func (l *Limiter) Len() (clients, subjects int) {
	return l.clients.c.Len(), l.subjects.c.Len()
}

// clientPrefix is the network a client address is limited as.
func clientPrefix(addr netip.Addr) netip.Prefix {
	if !addr.IsValid() {
		return netip.Prefix{}
	}
	addr = addr.Unmap().WithZone("")
	if addr.Is4() {
		return netip.PrefixFrom(addr, 32)
	}
	p, _ := addr.Prefix(IPv6PrefixBits)
	return p
}

// getBucket returns the bucket for k, creating it full, and brings its
// limit in line with lim (an override may change on reload).
// bucketTable is a bounded table of token buckets with least-recently-used
// eviction. A hit takes the table's read lock only; it moves the bucket to
// the front of the recency list (the exclusive lock) only once a quarter of
// the table has been inserted since it last did. A bucket in use is
// therefore always promoted before it could reach the end of the list, so
// churning new keys never evicts (and so never refills) a busy bucket, and
// the busy bucket of a single client no longer serialises its requests on
// the table's lock.
type bucketTable[K comparable] struct {
	c       *lru.Cache[K, *bucket]
	inserts atomic.Uint64
	every   uint64
}

// bucket is a token bucket and the insert count at its last promotion.
type bucket struct {
	*rate.Limiter
	promoted atomic.Uint64
}

func newBucketTable[K comparable](size int) *bucketTable[K] {
	c, err := lru.New[K, *bucket](size)
	if err != nil {
		panic(err) // only for size <= 0, excluded by NewLimiter
	}
	return &bucketTable[K]{c: c, every: uint64(max(1, size/4))}
}

// get returns k's bucket for lim, making it on first use; a bucket whose
// settings differ (a reload changed the limit) keeps its tokens and takes
// the new settings.
func (t *bucketTable[K]) get(k K, lim config.RateLimit, now time.Time) *rate.Limiter {
	burst := lim.Burst
	if burst <= 0 {
		burst = int(math.Max(1, math.Ceil(lim.Rate)))
	}
	want := rate.Limit(lim.Rate)
	if b, ok := t.c.Peek(k); ok {
		if n := t.inserts.Load(); n-b.promoted.Load() >= t.every {
			b.promoted.Store(n)
			t.c.Get(k)
		}
		if b.Limit() != want || b.Burst() != burst {
			b.SetLimitAt(now, want)
			b.SetBurstAt(now, burst)
		}
		return b.Limiter
	}
	b := &bucket{Limiter: rate.NewLimiter(want, burst)}
	b.promoted.Store(t.inserts.Add(1))
	if prev, ok, _ := t.c.PeekOrAdd(k, b); ok {
		return prev.Limiter
	}
	return b.Limiter
}
