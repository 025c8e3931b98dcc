package policies

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/internal/redisconn"
)

// RedisLimiterOptions configures a RedisLimiter.
type RedisLimiterOptions struct {
	// Conn is the Redis server and how telegate proves itself to it
	// (redisconn.FromConfig builds it from the redis section). Conn.Addr
	// is required.
	Conn redisconn.Conn
	// Prefix starts every bucket key. Default "telegate:rl:".
	Prefix string
	// HashKey keys the HMAC-SHA-256 (RFC 2104) that names buckets, so Redis
	// holds neither client addresses nor subjects. Every node must use the
	// same key, or their buckets differ. nil uses Password, which every
	// node shares by construction (so whoever can read Redis can also test
	// guesses of an address; pass another shared secret to prevent that).
	HashKey []byte
	// Timeout bounds each Redis call (dial, read, write, pool wait and the
	// whole script). It is on every request's path, so it is short: a
	// Redis slower than this is treated as down. Default 500ms.
	Timeout time.Duration
	// RetryAfter is how long decisions stay local after a Redis error
	// before Redis is tried again, so a Redis that is down costs at most one
	// timeout per RetryAfter instead of one per request. Default 1s.
	RetryAfter time.Duration
	// Now is the clock of the local fallback limiter. Default time.Now.
	// Buckets in Redis use the Redis server's clock (TIME), the one clock
	// every node shares.
	Now func() time.Time
	// MaxClients bounds each table of the local fallback limiter
	// (rate_limits.max_clients). Default config.DefaultMaxClients.
	MaxClients int
}

// RedisLimiter is the rate limiter for several nodes (docs/architecture.md "State":
// rate-limit buckets in Redis for global limits). It has the same contract
// as Limiter (gateway.Limiter: the caller passes each route's limit, from
// RouteLimits; IPv4 per address, IPv6 clients per /64; an invalid limit
// refuses) but keeps each bucket in Redis, so a limit holds across every
// node. The limit travels with every call, so a changed limit applies to
// the bucket's next request on every node.
//
// Each decision is one Lua script (atomic in Redis) running Limiter's
// token bucket: two numbers per bucket, the tokens taken and the time of
// the last change (the Redis server's clock), with a Redis TTL of the time
// until the bucket is full again. Buckets nobody uses vanish by
// themselves, so Redis memory is bounded by the clients active within one
// bucket refill time.
//
// When Redis fails (down, slow past Timeout, refused password) the
// decision is taken by a local in-memory Limiter with the same limits
// and counted in telegate_control_ratelimit_redis_fallbacks_total; Redis
// is tried again after RetryAfter. This is a deliberate choice for
// availability of the hospital's front door: a rate limit is not an
// authorisation, every request still passes authentication and policy
// (which fail closed), and the local limiter still bounds each node, so
// with Redis down the global limit becomes a per-node limit (at most
// nodes × limit) rather than no limit. Safe for concurrent use.
type RedisLimiter struct {
	rdb     *redis.Client
	local   *Limiter
	prefix  string
	hashKey []byte
	timeout time.Duration
	now     func() time.Time

	rest      redisconn.Breaker // decisions are local while it rests
	fallbacks atomic.Uint64
	errors    atomic.Uint64
}

// NewRedisLimiter returns a RedisLimiter for the Redis server of o. It does
// not contact Redis: a Redis that is down at start is the same as one that
// fails later (local decisions). It fails only when o.Addr is empty.
func NewRedisLimiter(o RedisLimiterOptions) (*RedisLimiter, error) {
	if o.Conn.Addr == "" {
		return nil, errors.New("policies: redis address missing (redis.addr)")
	}
	if o.Timeout <= 0 {
		o.Timeout = 500 * time.Millisecond
	}
	if o.RetryAfter <= 0 {
		o.RetryAfter = time.Second
	}
	if o.Prefix == "" {
		o.Prefix = "telegate:rl:"
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.HashKey == nil {
		o.HashKey = []byte(o.Conn.Password)
	}
	// No retry: a retry would double the wait; the fallback answers instead.
	rdb := o.Conn.NewClient(redisconn.Tuning{Timeout: o.Timeout, MaxRetries: -1, DialerRetries: 1})
	return &RedisLimiter{
		rdb:     rdb,
		local:   NewLimiter(o.MaxClients, o.Now),
		prefix:  o.Prefix,
		hashKey: o.HashKey,
		timeout: o.Timeout,
		rest:    redisconn.Breaker{Rest: o.RetryAfter},
		now:     o.Now,
	}, nil
}

// RedisLimiterOptionsFrom returns the options for the redis section of
// the configuration (redisconn.FromConfig: address, ACL user, password
// from password or password_file, database, TLS). It fails when Addr is
// empty or a file fails config's rule.
func RedisLimiterOptionsFrom(rc config.Redis) (RedisLimiterOptions, error) {
	c, err := redisconn.FromConfig(rc)
	if err != nil {
		return RedisLimiterOptions{}, fmt.Errorf("policies: %w", err)
	}
	return RedisLimiterOptions{Conn: c}, nil
}

// bucketScript is Limiter's token bucket in Redis: KEYS[1] the bucket, a
// hash of l (tokens taken and not yet refilled) and t (when l was
// computed, µs of the server's TIME); ARGV[1] the rate in tokens per µs,
// ARGV[2] the burst. It drains l to now, admits when l+1 <= burst, and
// keeps the key until the bucket is full again. Returns 1 (allowed) or 0
// (refused). The limit is an argument, not stored, so a changed limit
// applies to the next request.
var bucketScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local v = redis.call('HMGET', KEYS[1], 'l', 't')
local level = tonumber(v[1]) or 0
local last = tonumber(v[2]) or now
if now > last then
  level = math.max(0, level - (now - last) * rate)
  last = now
end
if level + 1 > burst then
  return 0
end
level = level + 1
redis.call('HSET', KEYS[1], 'l', string.format('%.17g', level), 't', string.format('%.0f', last))
redis.call('PEXPIRE', KEYS[1], math.ceil(level / rate / 1000) + 1)
return 1
`)

// Ping checks that the Redis server answers PING (for a readiness check;
// decisions fall back to per-node limits while it does not). The error
// names the failure, never the password.
func (r *RedisLimiter) Ping(ctx context.Context) error {
	if err := r.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis PING: %w", err)
	}
	return nil
}

// Local returns the in-memory limiter that decides while Redis fails; its
// counters (Limited) count the refusals of Redis and local decisions alike.
func (r *RedisLimiter) Local() *Limiter { return r.local }

// AllowClient takes one token from the global bucket of (routeID, client
// network) under lim and reports whether the request may proceed; false
// means answer 429 (RFC 6585 §4). Grouping and invalid limits as
// Limiter.AllowClient.
func (r *RedisLimiter) AllowClient(routeID string, addr netip.Addr, lim config.RateLimit) bool {
	if !validLimit(lim) {
		return r.local.AllowClient(routeID, addr, lim) // refuses and counts
	}
	ok, err := r.take("bc", routeID, clientPrefix(addr).String(), lim)
	if err != nil {
		return r.local.AllowClient(routeID, addr, lim)
	}
	if !ok {
		r.local.limitedClient.Add(1)
	}
	return ok
}

// AllowSubject takes one token from the global bucket of (routeID,
// subjectKey) under lim and reports whether the request may proceed. ""
// (anonymous) is not limited here. Invalid limits as Limiter.AllowSubject.
func (r *RedisLimiter) AllowSubject(routeID, subjectKey string, lim config.RateLimit) bool {
	if subjectKey == "" || !validLimit(lim) {
		return r.local.AllowSubject(routeID, subjectKey, lim)
	}
	ok, err := r.take("bs", routeID, subjectKey, lim)
	if err != nil {
		return r.local.AllowSubject(routeID, subjectKey, lim)
	}
	if !ok {
		r.local.limitedSubject.Add(1)
	}
	return ok
}

// take runs bucketScript for one bucket under lim (valid). An error
// means the caller decides locally.
func (r *RedisLimiter) take(kind, routeID, who string, lim config.RateLimit) (bool, error) {
	if r.rest.Resting() {
		r.fallbacks.Add(1)
		return false, redisconn.ErrResting
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
	defer cancel()
	n, err := bucketScript.Run(ctx, r.rdb, []string{r.bucketKey(kind, routeID, who)}, lim.Rate/1e6, lim.Burst).Int()
	if err != nil {
		r.errors.Add(1)
		r.fallbacks.Add(1)
		r.rest.Fail()
		return false, err
	}
	return n == 1, nil
}

// bucketKey is Prefix + kind + ":" + base64url(HMAC-SHA-256(HashKey,
// route NUL who))[:22]: no address or subject in clear. The kinds are "bc"
// (client) and "bs" (subject): hashes of bucketScript, never read as the
// single-number buckets ("c", "s") of earlier versions, which expire by
// themselves.
func (r *RedisLimiter) bucketKey(kind, routeID, who string) string {
	m := hmac.New(sha256.New, r.hashKey)
	m.Write([]byte(routeID))
	m.Write([]byte{0})
	m.Write([]byte(who))
	return r.prefix + kind + ":" + base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:16])
}

// Fallbacks returns how many decisions were taken locally because Redis
// failed, and how many Redis calls failed.
func (r *RedisLimiter) Fallbacks() (decisions, redisErrors uint64) {
	return r.fallbacks.Load(), r.errors.Load()
}

// Close releases the Redis connections.
func (r *RedisLimiter) Close() error { return r.rdb.Close() }

var (
	descRedisFallbacks = prometheus.NewDesc("telegate_control_ratelimit_redis_fallbacks_total",
		"Rate-limit decisions taken by the local in-memory limiter because Redis failed.", nil, nil)
	descRedisErrors = prometheus.NewDesc("telegate_control_ratelimit_redis_errors_total",
		"Redis calls of the rate limiter that failed (down, timeout, refused).", nil, nil)
)

// Describe implements prometheus.Collector.
func (r *RedisLimiter) Describe(ch chan<- *prometheus.Desc) {
	r.local.Describe(ch)
	ch <- descRedisFallbacks
	ch <- descRedisErrors
}

// Collect implements prometheus.Collector: the refusals and local buckets
// of the local Limiter (refusals count Redis and local decisions alike), and
// telegate_control_ratelimit_redis_fallbacks_total and
// telegate_control_ratelimit_redis_errors_total.
func (r *RedisLimiter) Collect(ch chan<- prometheus.Metric) {
	r.local.Collect(ch)
	d, e := r.Fallbacks()
	ch <- prometheus.MustNewConstMetric(descRedisFallbacks, prometheus.CounterValue, float64(d))
	ch <- prometheus.MustNewConstMetric(descRedisErrors, prometheus.CounterValue, float64(e))
}
