package auth

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/internal/redisconn"
)

// RedisOptions configures a RedisStore.
type RedisOptions struct {
	// Conn is the Redis server and how telegate proves itself to it
	// (redisconn.FromConfig builds it from the redis section). Conn.Addr
	// is required.
	Conn redisconn.Conn
	// Key is the 32-byte AES-256 key that seals every record. Every node
	// sharing the Redis must use the same key.
	Key []byte
	// MaxSessions caps the number of sessions across all nodes; a Put past
	// it evicts the sessions with the earliest Expires. ≤0 means no cap.
	MaxSessions int
	// Prefix starts every key. It holds a hash tag ("{…}") so every key of
	// the store lands in one slot. Default "telegate:{sessions}:".
	Prefix string
	// Timeout bounds each Redis call: dial, read, write, pool wait and the
	// whole command. Default 2s.
	Timeout time.Duration
	// Grace is how long a record outlives its Expires in Redis before Redis
	// drops it by itself, so that a sweep (DeleteExpired, every minute) can
	// still read and hand it to the session end hooks. Default 5m.
	Grace time.Duration
	// Now is the clock used for Redis TTLs. Default time.Now.
	Now func() time.Time
	// Stale is how long after Redis last confirmed a session to this node
	// Get may still serve it while Redis is unreachable (see lastKnown):
	// sessions.idle_timeout, so that live sessions ride out an outage
	// within their idle window. 0 serves nothing without Redis.
	Stale time.Duration
}

// RedisStore is the SessionStore for several nodes: sessions live in one
// Redis (a single primary, optionally behind Sentinel) shared by every
// telegate node.
//
// Records are sealed exactly like BoltStore's (AES-256-GCM, NIST SP
// 800-38D; the session id and the clear-text header as associated data), so
// Redis, its replicas and its dumps see neither cookies, tokens nor user
// names. Keys, below Prefix:
//
//	s:<id>        the sealed record, with a Redis TTL of Expires−now+Grace
//	exp           sorted set of ids scored by Expires (Unix milliseconds)
//	sub:<hex>     set of ids of one (issuer, subject), hex(H(iss, sub))
//	sid:<hex>     set of ids of one (issuer, OP session id)
//	gone:<id>     tombstone of an ended session (sign-out, back-channel
//	              logout, eviction, sweep), kept as long as its record
//	              would have lived (at least a minute)
//
// A Put of an id that has a tombstone fails with ErrSessionEnded: a
// request on another node that read the session just before it ended
// cannot bring it back by recording its use (the idle-clock touch).
// Every operation that touches more than one key runs as one Lua script,
// so it is atomic across nodes. Index sets carry a TTL at least as long as
// their longest member's.
//
// Expiry: Redis drops a record by itself Grace after its Expires. The
// sweep (DeleteExpired) removes records whose Expires has passed first and
// returns them, so OnSessionEnd hooks still run for idle and absolute
// expiry; with several nodes each expired session is returned to exactly
// one node's sweep. A record that Redis dropped before any sweep ran (every
// node down for longer than Grace) ends without hooks; its stale index
// entries are removed by the next sweep. Get never checks Expires: the
// caller does (loadSession), so a record inside its grace period never
// authenticates.
//
// Cap: MaxSessions is enforced globally with the "exp" sorted set (ZCARD,
// ZPOPMIN), which may count records Redis already dropped until the next
// sweep removes them; the cap is therefore approximate by the number of
// sessions that expired within the last sweep interval. Redis's own
// maxmemory policy must be "noeviction" so that Redis never drops a live
// session silently.
//
// Failure: every call is bounded by Timeout. While Redis is down or slow,
// Get serves a session Redis confirmed to this node less than Stale ago
// (lastKnown; the caller's idle and absolute deadlines still apply), and
// fails with an error other than ErrNotFound for any other, which the
// caller treats as unauthenticated (fail closed). Writes fail: no new
// session is made without Redis.
type RedisStore struct {
	rdb     *redis.Client
	codec   *BoltStore // only its AEAD is set: seal and open are shared
	max     int
	prefix  string
	timeout time.Duration
	grace   time.Duration
	now     func() time.Time
	known   *lastKnown
}

// OpenRedisStore connects to o.Addr and checks the connection with PING
// (bounded by o.Timeout). It fails when Key is not 32 bytes, Addr is empty
// or the server cannot be reached or refuses the password.
func OpenRedisStore(ctx context.Context, o RedisOptions) (*RedisStore, error) {
	if len(o.Key) != 32 {
		return nil, fmt.Errorf("auth: session encryption key must be 32 bytes, got %d", len(o.Key))
	}
	if o.Conn.Addr == "" {
		return nil, errors.New("auth: redis address missing (redis.addr)")
	}
	block, err := aes.NewCipher(o.Key)
	if err != nil {
		return nil, fmt.Errorf("auth: session cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("auth: session cipher: %w", err)
	}
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Second
	}
	if o.Grace <= 0 {
		o.Grace = 5 * time.Minute
	}
	if o.Prefix == "" {
		o.Prefix = "telegate:{sessions}:"
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	conn := o.Conn
	rdb := conn.NewClient(redisconn.Tuning{Timeout: o.Timeout, MaxRetries: 1, DialerRetries: 2, Rest: redisconn.DefaultRest})
	s := &RedisStore{
		rdb:     rdb,
		codec:   &BoltStore{aead: aead},
		max:     o.MaxSessions,
		prefix:  o.Prefix,
		timeout: o.Timeout,
		grace:   o.Grace,
		now:     o.Now,
		known:   newLastKnown(o.Stale),
	}
	cctx, cancel := s.ctx(ctx)
	defer cancel()
	if err := rdb.Ping(cctx).Err(); err != nil {
		_ = rdb.Close()
		return nil, fmt.Errorf("auth: %w", conn.Explain(err))
	}
	return s, nil
}

func (s *RedisStore) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.timeout)
}

func (s *RedisStore) recKey(id string) string { return s.prefix + "s:" + id }
func (s *RedisStore) expKey() string          { return s.prefix + "exp" }

// luaLib is shared by the scripts: hex encoding of index hashes and removal
// of a record's index entries, read from its clear-text header
// (expires(8) | H(iss,sub)(16) | H(iss,sid)(16), see BoltStore.seal).
const luaLib = `
local prefix = ARGV[1]
local function hex(b)
  return (b:gsub('.', function(c) return string.format('%02x', string.byte(c)) end))
end
local zero = string.rep('\0', 16)
local function unindex(id, v)
  redis.call('ZREM', prefix .. 'exp', id)
  if v and #v >= 40 then
    redis.call('SREM', prefix .. 'sub:' .. hex(string.sub(v, 9, 24)), id)
    local sid = string.sub(v, 25, 40)
    if sid ~= zero then
      redis.call('SREM', prefix .. 'sid:' .. hex(sid), id)
    end
  end
end
local function remove(id, tomb)
  local k = prefix .. 's:' .. id
  local v = redis.call('GET', k)
  unindex(id, v)
  if v then
    if tomb then
      local ttl = redis.call('PTTL', k)
      if ttl < 60000 then ttl = 60000 end
      redis.call('SET', prefix .. 'gone:' .. id, '1', 'PX', ttl)
    end
    redis.call('DEL', k)
  end
  return v
end
local function keepset(k, ttl)
  local cur = redis.call('PTTL', k)
  if cur < ttl then redis.call('PEXPIRE', k, ttl) end
end
`

// putScript: ARGV prefix, id, value, ttl ms, score, max, sub hex, sid hex
// ("" when none), existing ("1": replace a stored record only). Returns
// the evicted records as id, value pairs.
var putScript = redis.NewScript(luaLib + `
local id, val, ttl, score, max = ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
if redis.call('EXISTS', prefix .. 'gone:' .. id) == 1 then
  return redis.error_reply('ENDED session ended')
end
if ARGV[9] == '1' and redis.call('EXISTS', prefix .. 's:' .. id) == 0 then
  return redis.error_reply('NOTFOUND no such session')
end
local old = remove(id, false)
local out = {}
if not old and max > 0 then
  while redis.call('ZCARD', prefix .. 'exp') >= max do
    local p = redis.call('ZPOPMIN', prefix .. 'exp')
    if #p == 0 then break end
    local v = remove(p[1], true)
    if v then
      table.insert(out, p[1])
      table.insert(out, v)
    end
  end
end
redis.call('SET', prefix .. 's:' .. id, val, 'PX', ttl)
redis.call('ZADD', prefix .. 'exp', score, id)
local sk = prefix .. 'sub:' .. ARGV[7]
redis.call('SADD', sk, id)
keepset(sk, ttl)
if ARGV[8] ~= '' then
  local dk = prefix .. 'sid:' .. ARGV[8]
  redis.call('SADD', dk, id)
  keepset(dk, ttl)
end
return out
`)

// deleteScript: ARGV prefix, id. Returns the removed record or nil.
var deleteScript = redis.NewScript(luaLib + `
return remove(ARGV[2], true)
`)

// deleteSetScript: ARGV prefix, index key suffix, sid hash (raw 16 bytes, ""
// for any). Removes every member of the index set (whose sid matches) and
// returns id, value pairs.
var deleteSetScript = redis.NewScript(luaLib + `
local set = prefix .. ARGV[2]
local out = {}
for _, id in ipairs(redis.call('SMEMBERS', set)) do
  local v = redis.call('GET', prefix .. 's:' .. id)
  if not v then
    redis.call('SREM', set, id)
  elseif ARGV[3] == '' or string.sub(v, 25, 40) == ARGV[3] then
    remove(id, true)
    table.insert(out, id)
    table.insert(out, v)
  end
end
return out
`)

// expireScript: ARGV prefix, now (Unix ms), batch. Removes up to batch
// records with Expires ≤ now and returns id, value pairs (value false when
// Redis had already dropped the record).
var expireScript = redis.NewScript(luaLib + `
local ids = redis.call('ZRANGEBYSCORE', prefix .. 'exp', '-inf', ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
for _, id in ipairs(ids) do
  local v = remove(id, true)
  table.insert(out, id)
  table.insert(out, v or '')
end
return out
`)

// ErrSessionEnded is returned by RedisStore.Put for a session id that was
// deleted (by any node) within its lifetime: an ended session is never
// stored again.
var ErrSessionEnded = errors.New("auth: session already ended; not stored again")

// expiryScore is Expires in Unix milliseconds, rounded up so that a
// session is never swept before its Expires.
func expiryScore(t time.Time) int64 {
	ms := t.UnixMilli()
	if t.After(time.UnixMilli(ms)) {
		ms++
	}
	if ms < 0 {
		ms = 0
	}
	return ms
}

// pairs decodes a script's id, value list into sessions, skipping records
// that fail authentication or were already dropped.
func (s *RedisStore) pairs(v any) []*Session {
	list, _ := v.([]any)
	var out []*Session
	for i := 0; i+1 < len(list); i += 2 {
		id, _ := list[i].(string)
		val, _ := list[i+1].(string)
		if val == "" {
			continue
		}
		if sess, err := s.codec.open(id, []byte(val)); err == nil {
			out = append(out, sess)
		}
	}
	return out
}

// Get implements SessionStore. A Redis error (down, timeout, refused
// password) is returned as is, never as ErrNotFound.
func (s *RedisStore) Get(ctx context.Context, id string) (*Session, error) {
	cctx, cancel := s.ctx(ctx)
	defer cancel()
	v, err := s.rdb.Get(cctx, s.recKey(id)).Bytes()
	if errors.Is(err, redis.Nil) {
		s.known.forget(id)
		return nil, ErrNotFound
	}
	if err != nil {
		if v, ok := s.known.get(id, s.now()); ok {
			if sess, oerr := s.codec.open(id, v); oerr == nil {
				return sess, nil
			}
		}
		return nil, fmt.Errorf("auth: redis get session: %w", err)
	}
	s.known.put(id, v, s.now())
	return s.codec.open(id, v)
}

// Put implements SessionStore. The record's Redis TTL is
// Expires − now + Grace (at least one second). It fails with
// ErrSessionEnded when the id was deleted within its lifetime.
func (s *RedisStore) Put(ctx context.Context, sess *Session) ([]*Session, error) {
	return s.put(ctx, sess, false)
}

// Touch implements SessionStore: a record that ended (tombstone) or that
// Redis already dropped is not written again.
func (s *RedisStore) Touch(ctx context.Context, sess *Session) error {
	_, err := s.put(ctx, sess, true)
	return err
}

func (s *RedisStore) put(ctx context.Context, sess *Session, existing bool) ([]*Session, error) {
	if sess == nil || sess.ID == "" {
		return nil, errors.New("auth: session without id")
	}
	val, err := s.codec.seal(sess)
	if err != nil {
		return nil, err
	}
	ttl := sess.Expires.Sub(s.now()) + s.grace
	if ttl < time.Second {
		ttl = time.Second
	}
	sidHex := ""
	if sess.SID != "" {
		sidHex = hex.EncodeToString(indexHash(sess.Issuer, sess.SID))
	}
	cctx, cancel := s.ctx(ctx)
	defer cancel()
	res, err := putScript.Run(cctx, s.rdb, []string{s.recKey(sess.ID), s.expKey()},
		s.prefix, sess.ID, val, ttl.Milliseconds(), expiryScore(sess.Expires), s.max,
		hex.EncodeToString(indexHash(sess.Issuer, sess.Subject)), sidHex, existingFlag(existing)).Result()
	if err != nil {
		if strings.HasPrefix(err.Error(), "ENDED") {
			s.known.forget(sess.ID)
			return nil, ErrSessionEnded
		}
		if strings.HasPrefix(err.Error(), "NOTFOUND") {
			s.known.forget(sess.ID)
			return nil, ErrNotFound
		}
		return nil, fmt.Errorf("auth: redis store session: %w", err)
	}
	s.known.put(sess.ID, val, s.now())
	evicted := s.pairs(res)
	for _, e := range evicted {
		s.known.forget(e.ID)
	}
	return evicted, nil
}

func existingFlag(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// Delete implements SessionStore.
func (s *RedisStore) Delete(ctx context.Context, id string) (*Session, error) {
	s.known.forget(id)
	cctx, cancel := s.ctx(ctx)
	defer cancel()
	v, err := deleteScript.Run(cctx, s.rdb, []string{s.recKey(id), s.expKey()}, s.prefix, id).Text()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("auth: redis delete session: %w", err)
	}
	sess, _ := s.codec.open(id, []byte(v))
	return sess, nil
}

// DeleteBySubject implements SessionStore (OIDC Back-Channel Logout 1.0
// §2.4): by the (issuer, subject) set, filtered by sid when given, or by
// the (issuer, sid) set when subject is "".
func (s *RedisStore) DeleteBySubject(ctx context.Context, issuer, subject, sid string) ([]*Session, error) {
	if subject == "" && sid == "" {
		return nil, errors.New("auth: delete by subject needs a subject or a sid")
	}
	if subject != "" {
		var sidHash []byte
		if sid != "" {
			sidHash = indexHash(issuer, sid)
		}
		s.known.forgetIndexed(indexHash(issuer, subject), sidHash)
	} else {
		s.known.forgetIndexed(nil, indexHash(issuer, sid))
	}
	var set, filter string
	if subject != "" {
		set = "sub:" + hex.EncodeToString(indexHash(issuer, subject))
		if sid != "" {
			filter = string(indexHash(issuer, sid))
		}
	} else {
		set = "sid:" + hex.EncodeToString(indexHash(issuer, sid))
	}
	cctx, cancel := s.ctx(ctx)
	defer cancel()
	res, err := deleteSetScript.Run(cctx, s.rdb, []string{s.prefix + set, s.expKey()}, s.prefix, set, filter).Result()
	if err != nil {
		return nil, fmt.Errorf("auth: redis delete sessions: %w", err)
	}
	return s.pairs(res), nil
}

// expireBatch bounds the work of one sweep script.
const expireBatch = 500

// DeleteExpired implements SessionStore: it removes every session whose
// Expires is not after now (in batches of 500, each atomic) and returns
// those whose records Redis still held.
func (s *RedisStore) DeleteExpired(ctx context.Context, now time.Time) ([]*Session, error) {
	var out []*Session
	limit := now.UnixMilli()
	for {
		cctx, cancel := s.ctx(ctx)
		res, err := expireScript.Run(cctx, s.rdb, []string{s.expKey()}, s.prefix, limit, expireBatch).Result()
		cancel()
		if err != nil {
			return out, fmt.Errorf("auth: redis sweep sessions: %w", err)
		}
		list, _ := res.([]any)
		ended := s.pairs(res)
		for _, e := range ended {
			s.known.forget(e.ID)
		}
		out = append(out, ended...)
		if len(list) < 2*expireBatch {
			return out, nil
		}
	}
}

// Close implements SessionStore.
func (s *RedisStore) Close() error { return s.rdb.Close() }

// Ping checks that the Redis server answers PING (for a readiness check).
// The error names the failure (e.g. connection refused), never the
// password.
func (s *RedisStore) Ping(ctx context.Context) error {
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis PING: %w", err)
	}
	return nil
}

// PingSessionStore checks the server the sessions live on (Ping) when the
// session store is Redis, and returns nil for the file store, which has
// no server to lose.
func (s *Service) PingSessionStore(ctx context.Context) error {
	if p, ok := s.store.(interface{ Ping(context.Context) error }); ok {
		return p.Ping(ctx)
	}
	return nil
}

// openRedisFromConfig opens the RedisStore for sessions.store "redis": the
// server in cfg.Redis (redisconn.FromConfig: user, password, TLS), records
// sealed with sessions.encryption_key(_file), which must be set so every
// node shares it (a key generated in one node's data directory would not
// open another node's sessions).
func openRedisFromConfig(cfg *config.Config) (SessionStore, error) {
	sc, rc := cfg.Sessions, cfg.Redis
	if sc.EncryptionKey == "" && sc.EncryptionKeyFile == "" {
		return nil, errors.New(`auth: sessions.store "redis" needs sessions.encryption_key or sessions.encryption_key_file, the same on every node`)
	}
	key, err := sessionKey(sc, cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	c, err := redisconn.FromConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	return OpenRedisStore(context.Background(), RedisOptions{
		Conn: c, Key: key, MaxSessions: sc.MaxSessions, Stale: sc.IdleTimeout,
	})

}

// jtiKey is the Redis key recording back-channel logout token (iss, jti):
// "jti:" and the hex of indexHash, so Redis holds neither in the clear.
func (s *RedisStore) jtiKey(iss, jti string) string {
	return s.prefix + "jti:" + hex.EncodeToString(indexHash(iss, jti))
}

// rememberJTI records (iss, jti) until exp (SET NX with that TTL, at
// least one second) and reports whether it was not recorded yet: one
// atomic command, so of two nodes receiving the same token at once one
// accepts it.
func (s *RedisStore) rememberJTI(ctx context.Context, iss, jti string, exp time.Time) (bool, error) {
	ttl := max(exp.Sub(s.now()), time.Second)
	cctx, cancel := s.ctx(ctx)
	defer cancel()
	ok, err := s.rdb.SetNX(cctx, s.jtiKey(iss, jti), "1", ttl).Result()
	if err != nil {
		return false, fmt.Errorf("auth: redis record logout token: %w", err)
	}
	return ok, nil
}

// forgetJTI drops the record of (iss, jti), best effort.
func (s *RedisStore) forgetJTI(ctx context.Context, iss, jti string) {
	cctx, cancel := s.ctx(ctx)
	defer cancel()
	_ = s.rdb.Del(cctx, s.jtiKey(iss, jti)).Err()
}
