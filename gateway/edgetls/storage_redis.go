package edgetls

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/redis/go-redis/v9"

	"github.com/telegate/telegate/internal/redisconn"
)

// RedisStorageOptions configure a RedisStorage.
type RedisStorageOptions struct {
	// Conn is the Redis server and how telegate proves itself to it
	// (redisconn.FromConfig builds it from the redis section). Conn.Addr
	// is required.
	Conn redisconn.Conn
	// Prefix starts every key. It holds a hash tag ("{…}") so every key
	// lands in one slot. Default "telegate:{certs}:".
	Prefix string
	// Timeout bounds each Redis call: dial, read, write, pool wait and the
	// whole command. Default 2s.
	Timeout time.Duration
	// LockTTL is how long a lock outlives its holder's last refresh: a
	// holder refreshes it every LockTTL/3 while it holds it, so the lock
	// of a node that died frees itself within LockTTL. Default 30s.
	LockTTL time.Duration
	// LockPoll is how often Lock tries again while another holds the
	// lock. Default 1s.
	LockPoll time.Duration
}

// RedisStorage is a certmagic.Storage (with certmagic.TryLocker and
// certmagic.LockLeaseRenewer) in one Redis shared by every node, so that
// the nodes share ACME certificates, keys, account and HTTP-01/TLS-ALPN-01
// challenge tokens, and one node at a time obtains or renews a
// certificate. It stores values as given: the Manager seals them first
// (see sealMagic). Keys, below Prefix:
//
//	v:<key>      hash of a file: "v" its value, "m" its modification
//	             time (Unix milliseconds)
//	idx          sorted set of every file key (score 0), read in
//	             lexical order for directories (List, Exists, Stat,
//	             Delete of a prefix)
//	lock:<name>  a held lock: a random token of its holder, with a TTL
//
// Store and Delete change v: and idx in one Lua script, atomically
// across nodes. A lock is SET NX PX LockTTL with the holder's token,
// refreshed every LockTTL/3 by the holder (PEXPIRE only while the token is
// its own), released by a compare-and-delete script, so a node never
// releases a lock another took after its own expired. It is a lease, not
// a fencing token: certmagic checks storage again after it takes the
// lock, and tolerates the rare overlap (certmagic.Locker).
//
// Every call is bounded by Timeout; a Redis that cannot be reached makes
// the call fail (Load, Lock) rather than answer from elsewhere. Redis's
// maxmemory policy must be "noeviction". Redis 6.2 or later (ZRANGE
// BYLEX).
type RedisStorage struct {
	rdb     *redis.Client
	prefix  string
	timeout time.Duration
	ttl     time.Duration
	poll    time.Duration

	mu   sync.Mutex
	held map[string]*redisLock // the locks this instance holds, by name
}

// redisLock is a lock this instance holds.
type redisLock struct {
	token string
	ttl   time.Duration // under RedisStorage.mu
	stop  context.CancelFunc
	done  chan struct{}
}

var (
	_ certmagic.Storage          = (*RedisStorage)(nil)
	_ certmagic.TryLocker        = (*RedisStorage)(nil)
	_ certmagic.LockLeaseRenewer = (*RedisStorage)(nil)
)

// OpenRedisStorage connects to o.Addr and checks the connection with PING
// (bounded by o.Timeout).
func OpenRedisStorage(ctx context.Context, o RedisStorageOptions) (*RedisStorage, error) {
	if o.Conn.Addr == "" {
		return nil, errors.New("tls storage: redis address missing (redis.addr)")
	}
	if o.Prefix == "" {
		o.Prefix = "telegate:{certs}:"
	}
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Second
	}
	if o.LockTTL <= 0 {
		o.LockTTL = 30 * time.Second
	}
	if o.LockPoll <= 0 {
		o.LockPoll = time.Second
	}
	conn := o.Conn
	rdb := conn.NewClient(redisconn.Tuning{Timeout: o.Timeout, MaxRetries: 1, DialerRetries: 2})
	s := &RedisStorage{rdb: rdb, prefix: o.Prefix, timeout: o.Timeout, ttl: o.LockTTL, poll: o.LockPoll,
		held: map[string]*redisLock{}}
	if err := conn.Check(ctx, o.Timeout); err != nil {
		_ = rdb.Close()
		return nil, fmt.Errorf("tls storage: %w", err)
	}
	return s, nil
}

// Close stops refreshing the locks this instance holds (they expire
// within LockTTL) and closes the connection.
func (s *RedisStorage) Close() error {
	s.mu.Lock()
	held := s.held
	s.held = map[string]*redisLock{}
	s.mu.Unlock()
	for _, l := range held {
		l.stop()
		<-l.done
	}
	return s.rdb.Close()
}

func (s *RedisStorage) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.timeout)
}

func (s *RedisStorage) fileKey(key string) string  { return s.prefix + "v:" + key }
func (s *RedisStorage) idxKey() string             { return s.prefix + "idx" }
func (s *RedisStorage) lockKey(name string) string { return s.prefix + "lock:" + name }

// under returns the ZRANGEBYLEX bounds of the keys below dir ("" for all).
func under(dir string) (lo, hi string) {
	if dir == "" {
		return "-", "+"
	}
	// '0' follows '/': every key that starts with dir+"/" sorts between.
	return "[" + dir + "/", "(" + dir + "0"
}

var storeScript = redis.NewScript(`
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'm', ARGV[2])
redis.call('ZADD', KEYS[2], 0, ARGV[3])
return 1`)

// Store puts value at key.
func (s *RedisStorage) Store(ctx context.Context, key string, value []byte) error {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	now := strconv.FormatInt(time.Now().UnixMilli(), 10)
	if err := storeScript.Run(ctx, s.rdb, []string{s.fileKey(key), s.idxKey()}, value, now, key).Err(); err != nil {
		return fmt.Errorf("tls storage: redis store %s: %w", key, err)
	}
	return nil
}

// Load returns the value at key, fs.ErrNotExist when there is none.
func (s *RedisStorage) Load(ctx context.Context, key string) ([]byte, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	b, err := s.rdb.HGet(ctx, s.fileKey(key), "v").Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("tls storage: %s: %w", key, fs.ErrNotExist)
	}
	if err != nil {
		return nil, fmt.Errorf("tls storage: redis load %s: %w", key, err)
	}
	return b, nil
}

// deleteScript deletes the file KEYS[1]'s key and every file below it.
var deleteScript = redis.NewScript(`
local prefix, key = ARGV[1], ARGV[2]
redis.call('DEL', prefix .. 'v:' .. key)
redis.call('ZREM', KEYS[1], key)
local below = redis.call('ZRANGEBYLEX', KEYS[1], ARGV[3], ARGV[4])
for _, k in ipairs(below) do
  redis.call('DEL', prefix .. 'v:' .. k)
  redis.call('ZREM', KEYS[1], k)
end
return #below`)

// Delete deletes the file key and every file below it (a directory); a
// key that does not exist is no error.
func (s *RedisStorage) Delete(ctx context.Context, key string) error {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	lo, hi := under(key)
	if err := deleteScript.Run(ctx, s.rdb, []string{s.idxKey()}, s.prefix, key, lo, hi).Err(); err != nil {
		return fmt.Errorf("tls storage: redis delete %s: %w", key, err)
	}
	return nil
}

// hasBelow reports whether a file lies below dir.
func (s *RedisStorage) hasBelow(ctx context.Context, dir string) (bool, error) {
	lo, hi := under(dir)
	ks, err := s.rdb.ZRangeArgs(ctx, redis.ZRangeArgs{Key: s.idxKey(), Start: lo, Stop: hi, ByLex: true, Count: 1}).Result()
	return len(ks) > 0, err
}

// Exists reports whether key is a file or a directory (a prefix of a
// file). An error of Redis reads as false.
func (s *RedisStorage) Exists(ctx context.Context, key string) bool {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	n, err := s.rdb.Exists(ctx, s.fileKey(key)).Result()
	if err == nil && n > 0 {
		return true
	}
	ok, err := s.hasBelow(ctx, key)
	return err == nil && ok
}

// List returns the keys directly below dir (files and directories), or
// with recursive every key below it; fs.ErrNotExist when nothing is below
// dir.
func (s *RedisStorage) List(ctx context.Context, dir string, recursive bool) ([]string, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	lo, hi := under(dir)
	files, err := s.rdb.ZRangeArgs(ctx, redis.ZRangeArgs{Key: s.idxKey(), Start: lo, Stop: hi, ByLex: true}).Result()
	if err != nil {
		return nil, fmt.Errorf("tls storage: redis list %s: %w", dir, err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("tls storage: %s: %w", dir, fs.ErrNotExist)
	}
	base := ""
	if dir != "" {
		base = dir + "/"
	}
	seen := map[string]bool{}
	var out []string
	add := func(k string) {
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	for _, f := range files {
		rel := strings.TrimPrefix(f, base)
		parts := strings.Split(rel, "/")
		if !recursive {
			add(base + parts[0])
			continue
		}
		for i := range parts {
			add(base + strings.Join(parts[:i+1], "/"))
		}
	}
	slices.Sort(out)
	return out, nil
}

// Stat describes key: a file with its size and modification time, or a
// directory; fs.ErrNotExist when it is neither.
func (s *RedisStorage) Stat(ctx context.Context, key string) (certmagic.KeyInfo, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	pipe := s.rdb.Pipeline()
	mod := pipe.HGet(ctx, s.fileKey(key), "m")
	size := pipe.HStrLen(ctx, s.fileKey(key), "v")
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return certmagic.KeyInfo{}, fmt.Errorf("tls storage: redis stat %s: %w", key, err)
	}
	if ms, err := mod.Int64(); err == nil {
		return certmagic.KeyInfo{Key: key, Modified: time.UnixMilli(ms), Size: size.Val(), IsTerminal: true}, nil
	}
	ok, err := s.hasBelow(ctx, key)
	if err != nil {
		return certmagic.KeyInfo{}, fmt.Errorf("tls storage: redis stat %s: %w", key, err)
	}
	if !ok {
		return certmagic.KeyInfo{}, fmt.Errorf("tls storage: %s: %w", key, fs.ErrNotExist)
	}
	return certmagic.KeyInfo{Key: key, IsTerminal: false}, nil
}

// Lock takes the lock name, waiting (polling every LockPoll) while
// another instance holds it, until ctx ends.
func (s *RedisStorage) Lock(ctx context.Context, name string) error {
	for {
		ok, err := s.TryLock(ctx, name)
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("tls storage: waiting for lock %s: %w", name, ctx.Err())
		case <-time.After(s.poll):
		}
	}
}

// TryLock takes the lock name if nobody holds it.
func (s *RedisStorage) TryLock(ctx context.Context, name string) (bool, error) {
	tok := make([]byte, 16)
	_, _ = rand.Read(tok)
	token := hex.EncodeToString(tok)
	cctx, cancel := s.ctx(ctx)
	defer cancel()
	ok, err := s.rdb.SetNX(cctx, s.lockKey(name), token, s.ttl).Result()
	if err != nil {
		return false, fmt.Errorf("tls storage: redis lock %s: %w", name, err)
	}
	if !ok {
		return false, nil
	}
	rctx, stop := context.WithCancel(context.Background())
	l := &redisLock{token: token, ttl: s.ttl, stop: stop, done: make(chan struct{})}
	s.mu.Lock()
	prev := s.held[name]
	s.held[name] = l
	s.mu.Unlock()
	if prev != nil { // its lease expired unseen; this one replaces it
		prev.stop()
	}
	go s.refresh(rctx, name, l)
	return true, nil
}

// refreshScript extends the lock KEYS[1] to ARGV[2] ms while it holds
// the token ARGV[1].
var refreshScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0`)

// refresh extends l every third of its TTL until stopped, or until the
// lock is found lost (expired and perhaps taken by another).
func (s *RedisStorage) refresh(ctx context.Context, name string, l *redisLock) {
	defer close(l.done)
	for {
		s.mu.Lock()
		ttl := l.ttl
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-time.After(ttl / 3):
		}
		cctx, cancel := s.ctx(ctx)
		n, err := refreshScript.Run(cctx, s.rdb, []string{s.lockKey(name)}, l.token, ttl.Milliseconds()).Int()
		cancel()
		if err == nil && n == 0 {
			return // lost: Unlock will say so
		}
		// A failed refresh is tried again at the next tick; the lease
		// lasts the TTL meanwhile.
	}
}

// RenewLockLease confirms that this instance still holds the lock
// lockKey and extends it to LockTTL from now. certmagic asks for a lease
// of d (its retry interval plus the obtain timeout, minutes to hours)
// before a long retry; the holder's refreshes keep the lock that long
// while it lives, so the lease in Redis stays LockTTL: a holder killed
// during the retry frees its lock within LockTTL, not d.
func (s *RedisStorage) RenewLockLease(ctx context.Context, lockKey string, d time.Duration) error {
	s.mu.Lock()
	l := s.held[lockKey]
	s.mu.Unlock()
	if l == nil {
		return fmt.Errorf("tls storage: lock %s is not held here", lockKey)
	}
	cctx, cancel := s.ctx(ctx)
	defer cancel()
	n, err := refreshScript.Run(cctx, s.rdb, []string{s.lockKey(lockKey)}, l.token, l.ttl.Milliseconds()).Int()
	if err != nil {
		return fmt.Errorf("tls storage: redis renew lock %s: %w", lockKey, err)
	}
	if n == 0 {
		return fmt.Errorf("tls storage: lock %s was lost (expired)", lockKey)
	}
	return nil
}

// unlockScript deletes the lock KEYS[1] while it holds the token ARGV[1].
var unlockScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0`)

// Unlock releases the lock name this instance holds. It fails when the
// lock is not held here, or was lost (it expired, and another may hold
// it now: that one is left alone).
func (s *RedisStorage) Unlock(ctx context.Context, name string) error {
	s.mu.Lock()
	l := s.held[name]
	delete(s.held, name)
	s.mu.Unlock()
	if l == nil {
		return fmt.Errorf("tls storage: lock %s is not held here", name)
	}
	l.stop()
	<-l.done
	cctx, cancel := s.ctx(ctx)
	defer cancel()
	n, err := unlockScript.Run(cctx, s.rdb, []string{s.lockKey(name)}, l.token).Int()
	if err != nil {
		return fmt.Errorf("tls storage: redis unlock %s: %w", name, err)
	}
	if n == 0 {
		return fmt.Errorf("tls storage: lock %s was lost (expired) before it was released", name)
	}
	return nil
}

// String names the storage in certmagic's logs.
func (s *RedisStorage) String() string { return "redis:" + s.prefix }
