package node

import (
	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/media"
)

// visitsInviteKeyPurpose names the invite key derived for visits on Redis
// (openStore).
const visitsInviteKeyPurpose = "telegate visits invite key v1"

// visitsOnRedis puts the visits where the sessions are: with
// sessions.store "redis" they live in the same Redis (openStore), and
// their invite key — which also seals their records — is derived from the
// session encryption key every node shares. With the file store o is left
// as it is (visits.db and keys/invite.key in the data directory).
func visitsOnRedis(cfg *config.Config, o *media.Options) error {
	s, err := openStore(cfg, cfg.Sessions.Store == "redis", visitsInviteKeyPurpose)
	if err != nil || s == nil {
		return err
	}
	o.Redis = &media.RedisOptions{Conn: s.Conn}
	o.InviteKey = s.Key
	return nil
}

// VisitsKey is the key the visits of cfg seal their records and relay
// registrations with when they live on Redis (sessions.store "redis"),
// derived from the session encryption key every node shares; nil with
// the file store. For operators' tools and tests (media.RelayRegistration).
func VisitsKey(cfg *config.Config) ([]byte, error) {
	var o media.Options
	if err := visitsOnRedis(cfg, &o); err != nil {
		return nil, err
	}
	return o.InviteKey, nil
}
