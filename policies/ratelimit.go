package policies

import (
	"math"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/telegate/telegate/config"
)

type clientKey struct {
	route  string
	prefix netip.Prefix
}

type subjectKey struct {
	route   string
	subject string
}

// Limiter is the in-memory rate limiter (gateway.Limiter): token buckets
// per route and client network and per route and subject, in two tables
// bounded by MaxClients entries each with least-recently-used eviction
// (docs/architecture.md principle 7). It holds buckets only, no limits:
// every call passes the limit in force for its route (RouteLimits of the
// running configuration).
//
// A bucket records the tokens taken and not yet refilled (its level) and
// when it last changed; a request is admitted when level+1 <= Burst, and
// the level drains at Rate per second. Because the bucket stores no
// parameters, a changed limit applies to its very next request in both
// directions: a lower Burst leaves Burst-level tokens, a higher Rate
// drains faster from then on. RedisLimiter keeps the same two numbers per
// bucket in Redis, so the two behave alike (ratelimit_conformance_test.go).
// An evicted client starts again with a full bucket; with the default cap
// that takes 100000 more recently active clients. A Limiter is safe for
// concurrent use.
type Limiter struct {
	now func() time.Time

	clients  *bucketTable[clientKey]
	subjects *bucketTable[subjectKey]

	limitedClient  atomic.Uint64
	limitedSubject atomic.Uint64
}

// NewLimiter returns an empty Limiter whose two tables hold at most
// maxClients buckets each (rate_limits.max_clients; <= 0 means
// config.DefaultMaxClients). now is the clock (time.Now when nil).
func NewLimiter(maxClients int, now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	if maxClients <= 0 {
		maxClients = config.DefaultMaxClients
	}
	return &Limiter{
		now:      now,
		clients:  newBucketTable[clientKey](maxClients),
		subjects: newBucketTable[subjectKey](maxClients),
	}
}

// validLimit reports whether lim is a limit a bucket can enforce: a finite
// rate above 0 and a burst of at least 1 (config.CheckRateLimit). Validated
// configurations hold no other; any other is refused (fail closed), never
// read as "no limit".
func validLimit(lim config.RateLimit) bool {
	return lim.Rate > 0 && !math.IsInf(lim.Rate, 0) && lim.Burst >= 1
}

// AllowClient takes one token from the bucket of (routeID, client network)
// under lim (Rate per second, Burst) and reports whether the request may
// proceed; false means answer 429 (RFC 6585 §4). addr is grouped: IPv4
// (and IPv4-mapped IPv6, RFC 4291 §2.5.5.2) per address, IPv6 per
// config.RateLimitIPv6PrefixLen (/64), zones ignored. An invalid addr
// shares one bucket per route. An invalid lim (rate not above 0 or not
// finite, burst below 1) refuses the request and keeps no state.
func (l *Limiter) AllowClient(routeID string, addr netip.Addr, lim config.RateLimit) bool {
	if validLimit(lim) {
		now := l.now()
		if l.clients.get(clientKey{route: routeID, prefix: clientPrefix(addr)}).take(now, lim) {
			return true
		}
	}
	l.limitedClient.Add(1)
	return false
}

// AllowSubject takes one token from the bucket of (routeID, subjectKey)
// under lim and reports whether the request may proceed. subjectKey
// identifies the signed-in principal (issuer and subject, OIDC Core §2);
// "" (anonymous) is not limited here, the per-client limit applies to it.
// An invalid lim refuses a signed-in request, as AllowClient.
func (l *Limiter) AllowSubject(routeID, subjectKey string, lim config.RateLimit) bool {
	if subjectKey == "" {
		return true
	}
	if validLimit(lim) {
		now := l.now()
		if l.subjects.get(subjectKeyOf(routeID, subjectKey)).take(now, lim) {
			return true
		}
	}
	l.limitedSubject.Add(1)
	return false
}

func subjectKeyOf(routeID, subject string) subjectKey {
	return subjectKey{route: routeID, subject: subject}
}

// Limited returns how many requests were refused since NewLimiter, by
// client address and by subject (export as
// telegate_control_ratelimit_refusals_total{by="client"|"subject"}).
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
	p, _ := addr.Prefix(config.RateLimitIPv6PrefixLen)
	return p
}

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

// bucket is one token bucket: level is the tokens taken and not yet
// refilled (0 = full), last the time level was computed for. promoted is
// the table's insert count at its last promotion.
type bucket struct {
	mu       sync.Mutex
	level    float64
	last     time.Time
	promoted atomic.Uint64
}

// take drains the bucket to now at lim.Rate, then takes one token if
// level+1 <= lim.Burst. lim must be valid. A clock that goes back refills
// nothing.
func (b *bucket) take(now time.Time, lim config.RateLimit) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if d := now.Sub(b.last); d > 0 {
		b.level = max(0, b.level-d.Seconds()*lim.Rate)
		b.last = now
	}
	if b.level+1 > float64(lim.Burst) {
		return false
	}
	b.level++
	return true
}

func newBucketTable[K comparable](size int) *bucketTable[K] {
	c, err := lru.New[K, *bucket](size)
	if err != nil {
		panic(err) // only for size <= 0, excluded by NewLimiter
	}
	return &bucketTable[K]{c: c, every: uint64(max(1, size/4))}
}

// get returns k's bucket, making a full one on first use.
func (t *bucketTable[K]) get(k K) *bucket {
	if b, ok := t.c.Peek(k); ok {
		if n := t.inserts.Load(); n-b.promoted.Load() >= t.every {
			b.promoted.Store(n)
			t.c.Get(k)
		}
		return b
	}
	b := &bucket{}
	b.promoted.Store(t.inserts.Add(1))
	if prev, ok, _ := t.c.PeekOrAdd(k, b); ok {
		return prev
	}
	return b
}
