package node

import (
	"github.com/telegate/telegate/auth"
	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/gateway/edgetls"
	"github.com/telegate/telegate/policies"
)

// certsStorageKeyPurpose names the key derived for certificate storage
// on Redis when tls.storage_key_file names none (auth.SharedKey).
const certsStorageKeyPurpose = "telegate tls storage key v1"

// certsOnRedis gives edgetls the Redis of tls.storage "redis" (redis.addr,
// redis.username, redis.password(_file), redis.db, redis.tls) and, when tls.storage_key_file names no
// key, the storage key derived from the session encryption key every node
// shares. With tls.storage "file" o is left as it is (edgetls seals the
// file storage with tls.storage_key_file or keys/tls-storage.key).
func certsOnRedis(cfg *config.Config, o *edgetls.Options) error {
	if cfg.TLS.Storage != edgetls.StorageRedis {
		return nil
	}
	ro, err := policies.RedisLimiterOptionsFrom(cfg.Redis)
	if err != nil {
		return err
	}
	o.Redis = &edgetls.RedisStorageOptions{Addr: ro.Addr, Username: ro.Username, Password: ro.Password, DB: ro.DB, TLS: ro.TLS}
	if cfg.TLS.StorageKeyFile == "" {
		key, err := auth.SharedKey(cfg, certsStorageKeyPurpose)
		if err != nil {
			return err
		}
		o.StorageKey = key
	}
	return nil
}
