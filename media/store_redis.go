package media

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/telegate/telegate/internal/redisconn"
)

// RedisOptions configure the visit store on Redis, shared by every node
// of a deployment (sessions.store "redis": visits follow the sessions).
type RedisOptions struct {
	// Conn is the Redis server and how telegate proves itself to it
	// (redisconn.FromConfig builds it from the redis section). Conn.Addr
	// is required.
	Conn redisconn.Conn
	// Prefix starts every key. It holds a hash tag ("{…}") so every key
	// of the store lands in one slot (the scripts touch several). Default
	// "telegate:{visits}:".
	Prefix string
}

// redisStore is the visitStore of several nodes. Keys, below the prefix:
//
//	v:<id>        the sealed record (as in visits.db)
//	open          set of the ids of open visits
//	owner:<hex>   set of the ids of one owner's open visits, hex of
//	              sealer.owner(iss, sub)
//
// create is one Lua script (quota check, record and indexes together).
// update reads the record, runs fn in Go (the record is sealed: Redis
// cannot judge it) and writes the result with a compare-and-set script
// that succeeds only if the record is still byte for byte the one read
// (every seal has a fresh nonce, so equal bytes are the same version); a
// lost race reads again and retries after a short random pause. Ending a
// visit leaves the indexes in the same script. Redis's maxmemory policy
// must be "noeviction", as for sessions.
type redisStore struct {
	rdb    *redis.Client
	c      *sealer
	prefix string
	log    *slog.Logger
}

var _ visitStore = (*redisStore)(nil)

// openRedisStore connects to o.Addr and checks it with PING.
func openRedisStore(o RedisOptions, key []byte, log *slog.Logger) (*redisStore, error) {
	if o.Conn.Addr == "" {
		return nil, errors.New("media: redis address missing (redis.addr)")
	}
	if o.Prefix == "" {
		o.Prefix = "telegate:{visits}:"
	}
	c, err := newSealer(key)
	if err != nil {
		return nil, err
	}
	conn := o.Conn
	rdb := conn.NewClient(redisconn.Tuning{Timeout: storeTimeout, MaxRetries: 1, Rest: redisconn.DefaultRest})
	ctx, cancel := storeCtx()
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		_ = rdb.Close()
		return nil, fmt.Errorf("media: %w", conn.Explain(err))
	}
	return &redisStore{rdb: rdb, c: c, prefix: o.Prefix, log: log}, nil
}

func (st *redisStore) recKey(id string) string { return st.prefix + "v:" + id }
func (st *redisStore) openKey() string         { return st.prefix + "open" }
func (st *redisStore) ownerKey(v *visit) string {
	return st.prefix + "owner:" + hex.EncodeToString(st.c.owner(v.OwnerIss, v.OwnerSub))
}

// createScript: KEYS record, open, owner; ARGV record, max open, max per
// owner, id. Returns 1, or an error reply EXISTS, MAXVISITS or MAXOWNER.
var createScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return redis.error_reply('EXISTS visit exists') end
if redis.call('SCARD', KEYS[2]) >= tonumber(ARGV[2]) then return redis.error_reply('MAXVISITS too many open visits') end
if redis.call('SCARD', KEYS[3]) >= tonumber(ARGV[3]) then return redis.error_reply('MAXOWNER too many open visits of this owner') end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[2], ARGV[4])
redis.call('SADD', KEYS[3], ARGV[4])
return 1
`)

// casScript: KEYS record, open, owner; ARGV the record read, the new
// record, "1" when the update ends the visit, id. Returns 1 when written,
// 0 when the record changed meanwhile, an error reply NOTFOUND when it is
// gone.
var casScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if not cur then return redis.error_reply('NOTFOUND no such visit') end
if cur ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
if ARGV[3] == '1' then
  redis.call('SREM', KEYS[2], ARGV[4])
  redis.call('SREM', KEYS[3], ARGV[4])
end
return 1
`)

// deleteScript: KEYS record, open, owner (a key that names no owner when
// the record does not open); ARGV id.
var deleteScript = redis.NewScript(`
redis.call('SREM', KEYS[2], ARGV[1])
redis.call('SREM', KEYS[3], ARGV[1])
redis.call('DEL', KEYS[1])
return 1
`)

func (st *redisStore) create(ctx context.Context, v *visit, q quota) error {
	b, err := st.c.seal(v)
	if err != nil {
		return err
	}
	err = createScript.Run(ctx, st.rdb, []string{st.recKey(v.ID), st.openKey(), st.ownerKey(v)},
		b, q.open, q.perOwner, v.ID).Err()
	switch {
	case err == nil:
		return nil
	case strings.HasPrefix(err.Error(), "EXISTS"):
		return errVisitExists
	case strings.HasPrefix(err.Error(), "MAXVISITS"):
		return errMaxVisits
	case strings.HasPrefix(err.Error(), "MAXOWNER"):
		return errMaxVisitsPerOwner
	}
	return fmt.Errorf("media: redis create visit: %w", err)
}

// read returns the record of id and its opened visit.
func (st *redisStore) read(ctx context.Context, id string) ([]byte, *visit, error) {
	b, err := st.rdb.Get(ctx, st.recKey(id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil, errVisitNotFound
	}
	if err != nil {
		return nil, nil, fmt.Errorf("media: redis read visit: %w", err)
	}
	v, err := st.c.open(id, b)
	return b, v, err
}

func (st *redisStore) get(ctx context.Context, id string) (*visit, error) {
	_, v, err := st.read(ctx, id)
	return v, err
}

// casAttempts bounds the retries of one update under contention.
const casAttempts = 200

func (st *redisStore) update(ctx context.Context, id string, fn func(*visit) error) (*visit, error) {
	for attempt := 0; attempt < casAttempts; attempt++ {
		cur, v, err := st.read(ctx, id)
		if err != nil {
			return nil, err
		}
		wasOpen := v.active()
		// The owner index is named by the stored owner, which fn may not
		// change.
		ok := st.ownerKey(v)
		if err := fn(v); err != nil {
			if errors.Is(err, errNoChange) {
				return v, nil
			}
			return v, err
		}
		if v.ID != id {
			return nil, errors.New("media: an update changed the visit id")
		}
		b, err := st.c.seal(v)
		if err != nil {
			return nil, err
		}
		ended := "0"
		if wasOpen && !v.active() {
			ended = "1"
		}
		n, err := casScript.Run(ctx, st.rdb, []string{st.recKey(id), st.openKey(), ok}, cur, b, ended, id).Int()
		switch {
		case err != nil && strings.HasPrefix(err.Error(), "NOTFOUND"):
			return nil, errVisitNotFound
		case err != nil:
			return nil, fmt.Errorf("media: redis update visit: %w", err)
		case n == 1:
			return v, nil
		}
		// Another writer won: read its result and decide again.
		pause := time.Duration(rand.Int64N(int64(time.Millisecond) * int64(1+min(attempt, 10))))
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(pause):
		}
	}
	return nil, errContended
}

func (st *redisStore) owned(ctx context.Context, iss, sub string) ([]*visit, error) {
	ids, err := st.rdb.SMembers(ctx, st.ownerKey(&visit{OwnerIss: iss, OwnerSub: sub})).Result()
	if err != nil {
		return nil, fmt.Errorf("media: redis list visits: %w", err)
	}
	return st.many(ctx, ids)
}

// many reads the records of ids (one MGET per 500), skipping records
// that are gone or do not open.
func (st *redisStore) many(ctx context.Context, ids []string) ([]*visit, error) {
	var out []*visit
	for len(ids) > 0 {
		n := min(len(ids), 500)
		keys := make([]string, n)
		for i, id := range ids[:n] {
			keys[i] = st.recKey(id)
		}
		vals, err := st.rdb.MGet(ctx, keys...).Result()
		if err != nil {
			return nil, fmt.Errorf("media: redis read visits: %w", err)
		}
		for i, val := range vals {
			s, ok := val.(string)
			if !ok {
				continue
			}
			v, err := st.c.open(ids[i], []byte(s))
			if err != nil {
				st.log.Warn("visit record cannot be opened (changed invite key, or corrupt); skipped", "visit", ids[i])
				continue
			}
			out = append(out, v)
		}
		ids = ids[n:]
	}
	return out, nil
}

func (st *redisStore) all(ctx context.Context) ([]*visit, error) {
	var ids []string
	iter := st.rdb.Scan(ctx, 0, st.prefix+"v:*", 500).Iterator()
	for iter.Next(ctx) {
		ids = append(ids, strings.TrimPrefix(iter.Val(), st.prefix+"v:"))
	}
	if err := iter.Err(); err != nil {
		return nil, fmt.Errorf("media: redis list visits: %w", err)
	}
	return st.many(ctx, ids)
}

func (st *redisStore) delete(ctx context.Context, id string) error {
	owner := st.prefix + "owner:unknown"
	if v, err := st.get(ctx, id); err == nil {
		owner = st.ownerKey(v)
	} else if !errors.Is(err, errVisitNotFound) && !errors.Is(err, errRecord) {
		return err
	}
	if err := deleteScript.Run(ctx, st.rdb, []string{st.recKey(id), st.openKey(), owner}, id).Err(); err != nil {
		return fmt.Errorf("media: redis delete visit: %w", err)
	}
	return nil
}

func (st *redisStore) shared() bool { return true }

func (st *redisStore) close() error { return st.rdb.Close() }
