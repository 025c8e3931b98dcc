package webhook

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/telegate/telegate/internal/redisconn"
)

// RedisPrefix starts every key of the outbox on Redis; its hash tag puts
// every key in one slot (the scripts touch several).
const RedisPrefix = "telegate:{webhooks}:"

// redisTimeout bounds each outbox command.
const redisTimeout = 3 * time.Second

// redisStore is the Store of several nodes sharing one Redis. Keys of a
// queue, below RedisPrefix + name + ":":
//
//	items    hash key → sealed record
//	due      sorted set of keys by due time (Unix ms)
//	created  sorted set of keys by creation time (Unix ms): the oldest go first when full
//	holder   hash key → the holder leasing it
//
// Each operation is one Lua script, so a claim, a retry and a removal
// see one another whole: of the nodes, one holds an item at a time.
// Redis's maxmemory policy must be "noeviction", as for sessions.
type redisStore struct {
	rdb  *redis.Client
	conn redisconn.Conn
	s    *sealer
}

// OpenRedis connects to the Redis of conn, checks it with PING and
// returns the Store on it, its records sealed under key (32 bytes, the
// same on every node).
func OpenRedis(conn redisconn.Conn, key []byte) (Store, error) {
	s, err := newSealer(key)
	if err != nil {
		return nil, err
	}
	rdb := conn.NewClient(redisconn.Tuning{Timeout: redisTimeout, MaxRetries: 1, Rest: redisconn.DefaultRest})
	ctx, cancel := context.WithTimeout(context.Background(), redisTimeout)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		_ = rdb.Close()
		return nil, fmt.Errorf("webhook outbox: %w", conn.Explain(err))
	}
	return &redisStore{rdb: rdb, conn: conn, s: s}, nil
}

func (r *redisStore) Queue(name string) Outbox {
	p := RedisPrefix + name + ":"
	return &redisQueue{st: r, name: name, keys: []string{p + "items", p + "due", p + "created", p + "holder"}}
}

func (r *redisStore) Close() error { return r.rdb.Close() }

type redisQueue struct {
	st   *redisStore
	name string
	keys []string // items, due, created, holder
}

// addScript: ARGV max, key, sealed, created ms. Drops the oldest while
// full and returns their keys and records.
var addScript = redis.NewScript(`
local out = {}
local n = redis.call('ZCARD', KEYS[3])
while n >= tonumber(ARGV[1]) and n > 0 do
  local old = redis.call('ZRANGE', KEYS[3], 0, 0)[1]
  local rec = redis.call('HGET', KEYS[1], old)
  redis.call('HDEL', KEYS[1], old)
  redis.call('ZREM', KEYS[2], old)
  redis.call('ZREM', KEYS[3], old)
  redis.call('HDEL', KEYS[4], old)
  if rec then
    out[#out+1] = old
    out[#out+1] = rec
  end
  n = n - 1
end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[2])
return out
`)

// claimScript: ARGV now ms, lease end ms, n, holder. Leases the due
// items and returns their keys and records.
var claimScript = redis.NewScript(`
local out = {}
local ks = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, k in ipairs(ks) do
  local rec = redis.call('HGET', KEYS[1], k)
  if rec then
    redis.call('ZADD', KEYS[2], ARGV[2], k)
    redis.call('HSET', KEYS[4], k, ARGV[4])
    out[#out+1] = k
    out[#out+1] = rec
  else
    redis.call('ZREM', KEYS[2], k)
    redis.call('ZREM', KEYS[3], k)
    redis.call('HDEL', KEYS[4], k)
  end
end
return out
`)

// retryScript: ARGV key, holder, sealed, due ms. 1, or 0 when not held.
var retryScript = redis.NewScript(`
if redis.call('HGET', KEYS[4], ARGV[1]) ~= ARGV[2] or not redis.call('HGET', KEYS[1], ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
redis.call('HDEL', KEYS[4], ARGV[1])
return 1
`)

// removeScript: ARGV key, holder. 1, or 0 when not held.
var removeScript = redis.NewScript(`
if redis.call('HGET', KEYS[4], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('HDEL', KEYS[4], ARGV[1])
return 1
`)

func (q *redisQueue) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, redisTimeout)
}

func (q *redisQueue) err(err error) error {
	if err == nil || errors.Is(err, ErrLost) {
		return err
	}
	return fmt.Errorf("webhook outbox: %w", q.st.conn.Explain(err))
}

// items opens the key, record pairs a script returned; one that does not
// open is skipped (it was sealed under another key).
func (q *redisQueue) items(v any) []Item {
	a, _ := v.([]any)
	var out []Item
	for i := 0; i+1 < len(a); i += 2 {
		k, _ := a[i].(string)
		rec, _ := a[i+1].(string)
		if it, err := q.st.s.open(q.name, k, []byte(rec)); err == nil {
			out = append(out, it)
		}
	}
	return out
}

func (q *redisQueue) Add(ctx context.Context, it Item, max int) ([]Item, error) {
	sealed, err := q.st.s.seal(q.name, it)
	if err != nil {
		return nil, err
	}
	ctx, cancel := q.ctx(ctx)
	defer cancel()
	v, err := addScript.Run(ctx, q.st.rdb, q.keys, max, it.Key, sealed, it.Created.UnixMilli()).Result()
	if err != nil {
		return nil, q.err(err)
	}
	return q.items(v), nil
}

func (q *redisQueue) Claim(ctx context.Context, holder string, now time.Time, lease time.Duration, n int) ([]Item, error) {
	ctx, cancel := q.ctx(ctx)
	defer cancel()
	v, err := claimScript.Run(ctx, q.st.rdb, q.keys, now.UnixMilli(), now.Add(lease).UnixMilli(), n, holder).Result()
	if err != nil {
		return nil, q.err(err)
	}
	return q.items(v), nil
}

func (q *redisQueue) Retry(ctx context.Context, holder string, it Item, due time.Time) error {
	sealed, err := q.st.s.seal(q.name, it)
	if err != nil {
		return err
	}
	ctx, cancel := q.ctx(ctx)
	defer cancel()
	n, err := retryScript.Run(ctx, q.st.rdb, q.keys, it.Key, holder, sealed, due.UnixMilli()).Int()
	if err == nil && n == 0 {
		err = ErrLost
	}
	return q.err(err)
}

func (q *redisQueue) Remove(ctx context.Context, holder, key string) error {
	ctx, cancel := q.ctx(ctx)
	defer cancel()
	n, err := removeScript.Run(ctx, q.st.rdb, q.keys, key, holder).Int()
	if err == nil && n == 0 {
		err = ErrLost
	}
	return q.err(err)
}
