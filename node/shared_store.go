package node

import (
	"github.com/telegate/telegate/auth"
	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/internal/redisconn"
)

// sharedRedis is how a part of cfg that keeps its records on the Redis
// every node shares reaches it (redis.addr, redis.username,
// redis.password(_file), redis.db, redis.tls) and, when purpose is not "",
// the key that seals them: derived for purpose from the session
// encryption key every node shares (auth.SharedKey), so every node opens
// what another sealed. The visits, the certificate storage and the
// webhook outbox choose Redis through it; each part says when
// (visitsOnRedis, certsOnRedis, openWebhookStore).
func sharedRedis(cfg *config.Config, purpose string) (redisconn.Conn, []byte, error) {
	c, err := redisconn.FromConfig(cfg.Redis)
	if err != nil {
		return redisconn.Conn{}, nil, err
	}
	if purpose == "" {
		return c, nil, nil
	}
	key, err := auth.SharedKey(cfg, purpose)
	if err != nil {
		return redisconn.Conn{}, nil, err
	}
	return c, key, nil
}
