package auth

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/telegate/telegate/grants"
)

// redisGrants is the grants.Store kept in a RedisStore's server. Keys, below
// the store's Prefix (so in the same hash slot):
//
//	bg:g:<id>         the sealed grant (no TTL: past uses stay listed)
//	bg:order          sorted set of ids scored by Created (Unix ms)
//	bg:reviewed       sorted set of the reviewed ids, scored by Created
//	bg:active:<hex>   id of the latest grant of hex(H(route, iss, sub)),
//	                  with a TTL that ends at its Expires
//	bg:sub:<hex>      sorted set of ids of hex(H(iss, sub)) scored by
//	                  Expires (Unix ms)
//
// Create and Review run as Lua scripts, so they are atomic across nodes:
// two nodes never both pass a cap, and only the first review stands.
type redisGrants struct {
	s *RedisStore
	l grants.Limits
}

// Grants returns the grants.Store kept in the same Redis as the sessions,
// sealed with the same key, capped by l (globally, across every node). It
// is valid while s is open.
func (s *RedisStore) Grants(l grants.Limits) grants.Store { return &redisGrants{s: s, l: l} }

func (r *redisGrants) key(parts ...string) string {
	return r.s.prefix + "bg:" + strings.Join(parts, ":")
}

// grantCreateScript: KEYS grant, order, reviewed, sub, active; ARGV
// prefix, id, value, created ms, expires ms, now ms, max, per subject,
// active TTL ms.
var grantCreateScript = redis.NewScript(`
local g, order, reviewed, sub, active = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local prefix, id, val = ARGV[1], ARGV[2], ARGV[3]
local created, expires, now = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local max, per = tonumber(ARGV[7]), tonumber(ARGV[8])
if redis.call('EXISTS', g) == 1 then
  return redis.error_reply('INUSE grant id in use')
end
redis.call('ZREMRANGEBYSCORE', sub, '-inf', now)
if per > 0 and redis.call('ZCARD', sub) >= per then
  return redis.error_reply('SUBJECT too many active grants')
end
if max > 0 then
  local over = redis.call('ZCARD', order) - max + 1
  if over > 0 then
    if redis.call('ZCARD', reviewed) < over then
      return redis.error_reply('FULL grant store full')
    end
    for _, old in ipairs(redis.call('ZRANGE', reviewed, 0, over - 1)) do
      redis.call('DEL', prefix .. 'bg:g:' .. old)
      redis.call('ZREM', reviewed, old)
      redis.call('ZREM', order, old)
    end
  end
end
redis.call('SET', g, val)
redis.call('ZADD', order, created, id)
redis.call('ZADD', sub, expires, id)
local ttl = tonumber(ARGV[9])
if redis.call('PTTL', sub) < ttl then redis.call('PEXPIRE', sub, ttl) end
redis.call('SET', active, id, 'PX', ttl)
return 'OK'
`)

// grantReviewScript: KEYS grant, reviewed; ARGV id, value, created ms.
var grantReviewScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then
  return redis.error_reply('NOTFOUND no such grant')
end
if redis.call('ZSCORE', KEYS[2], ARGV[1]) then
  return redis.error_reply('REVIEWED already reviewed')
end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[2], tonumber(ARGV[3]), ARGV[1])
return 'OK'
`)

// Create implements grants.Store.
func (r *redisGrants) Create(ctx context.Context, g *grants.Grant, now time.Time) error {
	if g == nil || g.ID == "" {
		return errors.New("auth: grant without id")
	}
	val, err := sealGrant(r.s.codec.aead, g)
	if err != nil {
		return err
	}
	ttl := max(g.Expires.Sub(now), time.Millisecond)
	cctx, cancel := r.s.ctx(ctx)
	defer cancel()
	keys := []string{
		r.key("g", g.ID), r.key("order"), r.key("reviewed"),
		r.key("sub", hex.EncodeToString(indexHash(g.Issuer, g.Subject))),
		r.key("active", hex.EncodeToString(grantKeyHash(g.Route, g.Issuer, g.Subject))),
	}
	err = grantCreateScript.Run(cctx, r.s.rdb, keys, r.s.prefix, g.ID, val,
		g.Created.UnixMilli(), expiryScore(g.Expires), now.UnixMilli(), r.l.Max, r.l.PerSubject, ttl.Milliseconds()).Err()
	switch {
	case err == nil:
		return nil
	case strings.HasPrefix(err.Error(), "SUBJECT"):
		return grants.ErrSubjectLimit
	case strings.HasPrefix(err.Error(), "FULL"):
		return grants.ErrStoreFull
	}
	return fmt.Errorf("auth: redis store grant: %w", err)
}

// Active implements grants.Store.
func (r *redisGrants) Active(ctx context.Context, route, issuer, subject string, now time.Time) (*grants.Grant, error) {
	cctx, cancel := r.s.ctx(ctx)
	defer cancel()
	id, err := r.s.rdb.Get(cctx, r.key("active", hex.EncodeToString(grantKeyHash(route, issuer, subject)))).Result()
	if errors.Is(err, redis.Nil) {
		return nil, grants.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("auth: redis get grant: %w", err)
	}
	g, err := r.get(cctx, id)
	if err != nil {
		return nil, err
	}
	// The index is hashed, and its TTL is Redis's clock: the record must
	// name the same person and route and be unexpired by ours.
	if g.Route != route || g.Issuer != issuer || g.Subject != subject || !g.Unexpired(now) {
		return nil, grants.ErrNotFound
	}
	return g, nil
}

func (r *redisGrants) get(ctx context.Context, id string) (*grants.Grant, error) {
	v, err := r.s.rdb.Get(ctx, r.key("g", id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, grants.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("auth: redis get grant: %w", err)
	}
	return openGrant(r.s.codec.aead, id, v)
}

// Get implements grants.Store.
func (r *redisGrants) Get(ctx context.Context, id string) (*grants.Grant, error) {
	cctx, cancel := r.s.ctx(ctx)
	defer cancel()
	return r.get(cctx, id)
}

// List implements grants.Store.
func (r *redisGrants) List(ctx context.Context, limit int) ([]*grants.Grant, error) {
	cctx, cancel := r.s.ctx(ctx)
	defer cancel()
	ids, err := r.s.rdb.ZRangeArgs(cctx, redis.ZRangeArgs{Key: r.key("order"), Start: 0, Stop: int64(limit) - 1, Rev: true}).Result()
	if err != nil {
		return nil, fmt.Errorf("auth: redis list grants: %w", err)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = r.key("g", id)
	}
	vals, err := r.s.rdb.MGet(cctx, keys...).Result()
	if err != nil {
		return nil, fmt.Errorf("auth: redis list grants: %w", err)
	}
	out := make([]*grants.Grant, 0, len(ids))
	for i, v := range vals {
		s, ok := v.(string)
		if !ok {
			continue // removed meanwhile
		}
		g, err := openGrant(r.s.codec.aead, ids[i], []byte(s))
		if err != nil {
			return nil, err
		}
		out = append(out, g)
	}
	return out, nil
}

// Review implements grants.Store.
func (r *redisGrants) Review(ctx context.Context, id string, rv grants.Review) (*grants.Grant, error) {
	cctx, cancel := r.s.ctx(ctx)
	defer cancel()
	g, err := r.get(cctx, id)
	if err != nil {
		return nil, err
	}
	if g.Review != nil {
		return nil, grants.ErrReviewed
	}
	g.Review = &rv
	val, err := sealGrant(r.s.codec.aead, g)
	if err != nil {
		return nil, err
	}
	err = grantReviewScript.Run(cctx, r.s.rdb, []string{r.key("g", id), r.key("reviewed")}, id, val, g.Created.UnixMilli()).Err()
	switch {
	case err == nil:
		return g, nil
	case strings.HasPrefix(err.Error(), "NOTFOUND"):
		return nil, grants.ErrNotFound
	case strings.HasPrefix(err.Error(), "REVIEWED"):
		return nil, grants.ErrReviewed
	}
	return nil, fmt.Errorf("auth: redis review grant: %w", err)
}
