package node

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/internal/redisconn"
)

// redisStartTimeout bounds the connection check at start.
const redisStartTimeout = 5 * time.Second

// checkRedisAtStart connects to redis.addr, when set, before any part
// uses it, and stops the start (fail closed) when Redis refuses what
// telegate brings: a certificate that does not verify against
// redis.tls.ca_file, a failed TLS handshake, a refused ACL user or
// password (redisconn.ErrRefused). Those do not pass by themselves, and a
// node must not start with its rate limits silently local and its
// sign-ins refused. A Redis that is merely unreachable is left to the
// parts: the session store refuses to open without it, the rate limiter
// decides locally until it is back.
func checkRedisAtStart(ctx context.Context, cfg *config.Config) error {
	if cfg.Redis.Addr == "" {
		return nil
	}
	c, err := redisconn.FromConfig(cfg.Redis)
	if err != nil {
		return err
	}
	if err := c.Check(ctx, redisStartTimeout); errors.Is(err, redisconn.ErrRefused) {
		return err
	}
	return nil
}

// redisCheckTimeout bounds what `telegate check` asks Redis.
const redisCheckTimeout = 3 * time.Second

// checkRedisSetup is `telegate check`'s look at the Redis of redis.addr,
// connected to as run would (user, password, TLS), within
// redisCheckTimeout. It returns an error when Redis refuses the
// connection (redisconn.ErrRefused: run would not start either), and
// warnings for what docs/deployment.md asks of a Redis that several
// nodes share, where it can read it (CONFIG GET, INFO; telegate's ACL
// user needs them only for this check): maxmemory-policy other than
// noeviction (Redis would drop live sessions and visits silently), and
// no persistence (neither AOF nor RDB snapshots: a Redis restart signs
// everyone out and ends every visit). A Redis it cannot reach gets a
// warning that nothing was checked.
func checkRedisSetup(ctx context.Context, cfg *config.Config) (warns []config.FieldError, err error) {
	if cfg.Redis.Addr == "" {
		return nil, nil
	}
	c, err := redisconn.FromConfig(cfg.Redis)
	if err != nil {
		return nil, nil // the configuration's own problem, reported by Load
	}
	ctx, cancel := context.WithTimeout(ctx, redisCheckTimeout)
	defer cancel()
	rdb := c.NewClient(redisconn.Tuning{Timeout: redisCheckTimeout, MaxRetries: -1, DialerRetries: 1})
	defer rdb.Close()
	if err := c.Explain(rdb.Ping(ctx).Err()); err != nil {
		if errors.Is(err, redisconn.ErrRefused) {
			return nil, config.Errors{cfg.Problem("redis.addr", "%v", err)}
		}
		return []config.FieldError{cfg.Problem("redis.addr", "cannot reach Redis, so its settings were not checked: %v", err)}, nil
	}
	warn := func(format string, args ...any) {
		warns = append(warns, cfg.Problem("redis.addr", format, args...))
	}
	get := func(name string) (string, bool) {
		v, err := rdb.ConfigGet(ctx, name).Result()
		if err != nil {
			return "", false
		}
		s, ok := v[name]
		return s, ok
	}
	if p, ok := get("maxmemory-policy"); ok && p != "noeviction" {
		warn("Redis's maxmemory-policy is %q: when memory runs short Redis drops keys — live sessions, visits, single-use invites — without a word; set maxmemory-policy noeviction (docs/deployment.md, \"Redis\")", p)
	}
	aof, aofKnown := get("appendonly")
	save, saveKnown := get("save")
	if !aofKnown {
		if info, err := rdb.Info(ctx, "persistence").Result(); err == nil {
			aofKnown = true
			aof = "no"
			if strings.Contains(info, "aof_enabled:1") {
				aof = "yes"
			}
		}
	}
	if aofKnown && saveKnown && aof != "yes" && strings.TrimSpace(save) == "" {
		warn("Redis keeps nothing on disk (appendonly no, no save points): a Redis restart signs everyone out and ends every visit; set appendonly yes (docs/deployment.md, \"Redis\")")
	}
	return warns, nil
}
