package node

import (
	"context"
	"errors"
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
