package relay

import (
	"net/netip"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"golang.org/x/time/rate"

	"github.com/telegate/telegate/config"
)

// sourceLimiter is the per-source limit on answers without
// MESSAGE-INTEGRITY (relay.unauthenticated_rate): one token bucket per
// source address, in a table of relay.max_sources.
//
// Churning through more sources than the table holds must not reset a
// source's bucket, so a bucket leaves the table only once it has refilled
// (forgetting it then loses nothing). While the table is full of buckets
// that still owe, a new source is counted in the bucket of its aggregate
// (/24 for IPv4, /64 for IPv6) in a second table of the same size and
// rule, and past that in one overflow bucket shared by every such source.
// An aggregate bucket has aggregateShare times the per-source rate and
// burst, the overflow bucket overflowShare times.
type sourceLimiter struct {
	mu       sync.Mutex
	r        config.RateLimit
	exact    *simplelru.LRU[netip.Addr, *rate.Limiter]
	agg      *simplelru.LRU[netip.Prefix, *rate.Limiter]
	overflow *rate.Limiter
	size     int
}

const (
	aggregateShare = 4
	overflowShare  = 16
	aggregateBits4 = 24
	aggregateBits6 = 64
)

// newSourceLimiter returns a limiter with tables of size entries each
// (at least 1) and the per-source rate r.
func newSourceLimiter(size int, r config.RateLimit) *sourceLimiter {
	size = max(size, 1)
	// The tables never evict by themselves (one spare entry): allow
	// decides what leaves.
	exact, _ := simplelru.NewLRU[netip.Addr, *rate.Limiter](size+1, nil)
	agg, _ := simplelru.NewLRU[netip.Prefix, *rate.Limiter](size+1, nil)
	return &sourceLimiter{r: r, exact: exact, agg: agg, size: size, overflow: newBucket(r, overflowShare)}
}

func newBucket(r config.RateLimit, share int) *rate.Limiter {
	return rate.NewLimiter(rate.Limit(r.Rate*float64(share)), r.Burst*share)
}

// aggregate is the prefix a source shares a bucket with once the exact
// table is full.
func aggregate(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	bits := aggregateBits6
	if a.Is4() {
		bits = aggregateBits4
	}
	p, _ := a.Prefix(bits)
	return p
}

// allow takes one token for an answer to a, at now.
func (l *sourceLimiter) allow(a netip.Addr, now time.Time) bool {
	a = a.Unmap().WithZone("")
	l.mu.Lock()
	defer l.mu.Unlock()
	if b := lookupOrAdd(l.exact, a, l.size, now, func() *rate.Limiter { return newBucket(l.r, 1) }); b != nil {
		return b.AllowN(now, 1)
	}
	if b := lookupOrAdd(l.agg, aggregate(a), l.size, now, func() *rate.Limiter { return newBucket(l.r, aggregateShare) }); b != nil {
		return b.AllowN(now, 1)
	}
	return l.overflow.AllowN(now, 1)
}

// lookupOrAdd returns k's bucket, adding one when the table has room or
// its least recently used bucket has refilled (and is dropped); nil when
// the table is full of buckets that still owe.
func lookupOrAdd[K comparable](t *simplelru.LRU[K, *rate.Limiter], k K, size int, now time.Time, mk func() *rate.Limiter) *rate.Limiter {
	if b, ok := t.Get(k); ok {
		return b
	}
	if t.Len() >= size {
		_, old, _ := t.GetOldest()
		if old.TokensAt(now) < float64(old.Burst()) {
			return nil
		}
		t.RemoveOldest()
	}
	b := mk()
	t.Add(k, b)
	return b
}

// setRate gives every bucket, present and future, the per-source rate r
// (scaled for aggregates and the overflow).
func (l *sourceLimiter) setRate(r config.RateLimit) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.r = r
	set := func(b *rate.Limiter, share int) {
		b.SetLimit(rate.Limit(r.Rate * float64(share)))
		b.SetBurst(r.Burst * share)
	}
	for _, b := range l.exact.Values() {
		set(b, 1)
	}
	for _, b := range l.agg.Values() {
		set(b, aggregateShare)
	}
	set(l.overflow, overflowShare)
}
