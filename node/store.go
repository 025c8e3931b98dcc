package node

import (
	"github.com/telegate/telegate/auth"
	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/internal/redisconn"
)

// storeOnRedis is where a store of the node lives when it is shared by
// every node: the Redis of the redis section and the key that seals its
// records there.
type storeOnRedis struct {
	// Conn is the Redis of redis.addr, redis.username,
	// redis.password(_file), redis.db and redis.tls (redisconn.FromConfig).
	Conn redisconn.Conn
	// Key is the 32-byte key derived for the store from the session
	// encryption key every node shares (auth.SharedKey); nil when the
	// store was asked for none (its key comes from a file of its own).
	Key []byte
}

// openStore decides where a store of the node lives — the one choice
// every store that can be shared makes (certificates, visits, the webhook
// outbox):
//
//   - onRedis false: nil, nil. The store stays on bbolt (or files) in the
//     data directory, sealed with a key file of its own, both of which
//     its package opens itself.
//   - onRedis true: the Redis of the redis section and, when keyPurpose
//     is not "", the key derived for keyPurpose from the session key, so
//     every node opens the same records; keyPurpose must name the store
//     and a version ("telegate visits invite key v1"), and differ from
//     every other store's, so that no two stores share a key.
//
// It fails when the redis section is incomplete or malformed, or when no
// session key is given to derive from (Redis stores need one shared by
// every node); the error names the field and holds no secret.
func openStore(cfg *config.Config, onRedis bool, keyPurpose string) (*storeOnRedis, error) {
	if !onRedis {
		return nil, nil
	}
	c, err := redisconn.FromConfig(cfg.Redis)
	if err != nil {
		return nil, err
	}
	s := &storeOnRedis{Conn: c}
	if keyPurpose != "" {
		if s.Key, err = auth.SharedKey(cfg, keyPurpose); err != nil {
			return nil, err
		}
	}
	return s, nil
}
