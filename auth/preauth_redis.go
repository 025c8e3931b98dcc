package auth

import (
	"context"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/telegate/telegate/internal/sealbox"
)

// redisPreAuth is the preAuthStore for several nodes (sessions.store
// "redis"): a sign-in that starts on one node completes on any other that
// shares the Redis.
//
// It uses the RedisStore's connection, timeout, key prefix and AES-256-GCM
// key (NIST SP 800-38D). Each record is one key,
//
//	<prefix>pre:<hex SHA-256(handle)>
//
// holding nonce(12) | AES-256-GCM(JSON record), with the key name as
// associated data, so Redis, its replicas and dumps see neither the handle
// nor the state, nonce, PKCE verifier or return path, and a record moved to
// another key does not open. The record's Redis TTL is its Expires − now
// (at least one second, at most preAuthTTL).
//
// Single use: take is GETDEL (Redis ≥ 6.2) in a script, atomic across nodes, so a
// record is returned to exactly one caller. peek is GET.
//
// Bounds: as the in-memory table, at most max records (maxPreAuth unless
// set), the least recently created evicted first, across every node that
// shares the Redis. A sorted set
//
//	<prefix>pre:index
//
// holds each record's key in the order created (a counter,
// <prefix>pre:seq, gives the scores); put adds the record and its index
// entry and evicts the oldest records past max, in one Lua script, so no
// two nodes can both fill the last place. take removes the record and its entry in one script. Redis
// also drops every record by itself when its TTL ends; its maxmemory
// policy must be "noeviction" as for sessions.
//
// Failure: every call is bounded by the store's Timeout; an error (down,
// slow, refused password, a record that fails authentication) is returned
// as is and the caller refuses the sign-in.
type redisPreAuth struct {
	rdb     *redis.Client
	max     int // records at most; 0 means maxPreAuth
	aead    cipher.AEAD
	prefix  string
	timeout time.Duration
	now     func() time.Time
}

// newRedisPreAuth keeps pre-auth records in st's Redis, with now the clock
// that sets their TTL.
func newRedisPreAuth(st *RedisStore, now func() time.Time) *redisPreAuth {
	if now == nil {
		now = time.Now
	}
	return &redisPreAuth{rdb: st.rdb, aead: st.codec.aead, prefix: st.prefix, timeout: st.timeout, now: now}
}

// key is the Redis key of handle's record.
func (p *redisPreAuth) key(handle string) string {
	h := sha256.Sum256([]byte(handle))
	return p.prefix + "pre:" + hex.EncodeToString(h[:])
}

func (p *redisPreAuth) seal(key string, rec *preAuth) ([]byte, error) {
	plain, err := json.Marshal(rec)
	if err != nil {
		return nil, err
	}
	return sealbox.FromAEAD(p.aead).Seal(nil, plain, []byte(key)), nil
}

func (p *redisPreAuth) open(key string, v []byte) (*preAuth, error) {
	if len(v) < sealbox.Overhead {
		return nil, errors.New("auth: pre-auth record truncated")
	}
	plain, err := sealbox.FromAEAD(p.aead).Open(v, []byte(key))
	if err != nil {
		return nil, errors.New("auth: pre-auth record fails authentication")
	}
	rec := new(preAuth)
	if err := json.Unmarshal(plain, rec); err != nil {
		return nil, errors.New("auth: pre-auth record malformed")
	}
	return rec, nil
}

func (p *redisPreAuth) put(ctx context.Context, rec *preAuth) (string, error) {
	h := randomToken(32)
	k := p.key(h)
	v, err := p.seal(k, rec)
	if err != nil {
		return "", err
	}
	ttl := min(rec.Expires.Sub(p.now()), preAuthTTL)
	ttl = max(ttl, time.Second)
	limit := p.max
	if limit <= 0 {
		limit = maxPreAuth
	}
	cctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	ok, err := preAuthPutScript.Run(cctx, p.rdb, []string{k, p.indexKey(), p.seqKey()},
		v, ttl.Milliseconds(), limit, preAuthTTL.Milliseconds()).Int()
	if err != nil {
		return "", fmt.Errorf("auth: redis store pre-auth record: %w", err)
	}
	if ok != 1 { // 256-bit handles do not collide; refuse rather than overwrite
		return "", errors.New("auth: pre-auth handle already in use")
	}
	return h, nil
}

// indexKey is the sorted set of every record's key in the order created.
func (p *redisPreAuth) indexKey() string { return p.prefix + "pre:index" }

// seqKey counts the records created: each one's place in the index.
func (p *redisPreAuth) seqKey() string { return p.prefix + "pre:seq" }

// preAuthPutScript stores a record and keeps the table within its cap.
// KEYS: record, index, sequence. ARGV: value, TTL (ms), the cap, the
// index's own TTL (ms). Each record's score is the next number of the
// sequence, so the order is the order of creation across every node (no
// clocks, no ties); the oldest entries past the cap are evicted, and
// entries whose records Redis has expired are among the oldest and go
// first. Returns 1, or 0 when the record's key is taken.
var preAuthPutScript = redis.NewScript(`
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 0 end
local n = redis.call('INCR', KEYS[3])
redis.call('ZADD', KEYS[2], n, KEYS[1])
local over = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[3])
if over > 0 then
  local old = redis.call('ZRANGE', KEYS[2], 0, over - 1)
  redis.call('DEL', unpack(old))
  redis.call('ZREM', KEYS[2], unpack(old))
end
redis.call('PEXPIRE', KEYS[2], ARGV[4])
redis.call('PEXPIRE', KEYS[3], ARGV[4])
return 1
`)

// preAuthTakeScript returns a record and removes it with its index entry.
// KEYS: record, index.
var preAuthTakeScript = redis.NewScript(`
local v = redis.call('GETDEL', KEYS[1])
if v then redis.call('ZREM', KEYS[2], KEYS[1]) end
return v
`)

func (p *redisPreAuth) take(ctx context.Context, handle string, now time.Time) (*preAuth, error) {
	return p.read(ctx, handle, now, true)
}

func (p *redisPreAuth) peek(ctx context.Context, handle string, now time.Time) (*preAuth, error) {
	return p.read(ctx, handle, now, false)
}

func (p *redisPreAuth) read(ctx context.Context, handle string, now time.Time, del bool) (*preAuth, error) {
	if handle == "" || len(handle) > 64 {
		return nil, nil
	}
	k := p.key(handle)
	cctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	var v []byte
	var err error
	if del {
		var s string
		s, err = preAuthTakeScript.Run(cctx, p.rdb, []string{k, p.indexKey()}).Text()
		v = []byte(s)
	} else {
		v, err = p.rdb.Get(cctx, k).Bytes()
	}
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("auth: redis read pre-auth record: %w", err)
	}
	rec, err := p.open(k, v)
	if err != nil {
		return nil, err
	}
	if !now.Before(rec.Expires) {
		return nil, nil
	}
	return rec, nil
}
