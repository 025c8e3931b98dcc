package node

import (
	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/gateway/edgetls"
)

// certsStorageKeyPurpose names the key derived for certificate storage
// on Redis when tls.storage_key_file names none (openStore).
const certsStorageKeyPurpose = "telegate tls storage key v1"

// certsOnRedis gives edgetls the Redis of tls.storage "redis" (openStore)
// and, when tls.storage_key_file names no key, the storage key derived
// from the session encryption key every node shares. With tls.storage
// "file" o is left as it is (edgetls seals the file storage with
// tls.storage_key_file or keys/tls-storage.key).
func certsOnRedis(cfg *config.Config, o *edgetls.Options) error {
	purpose := certsStorageKeyPurpose
	if cfg.TLS.StorageKeyFile != "" {
		purpose = "" // edgetls reads the operator's key
	}
	s, err := openStore(cfg, cfg.TLS.Storage == edgetls.StorageRedis, purpose)
	if err != nil || s == nil {
		return err
	}
	o.Redis = &edgetls.RedisStorageOptions{Conn: s.Conn}
	if s.Key != nil {
		o.StorageKey = s.Key
	}
	return nil
}
