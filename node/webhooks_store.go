package node

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/telegate/telegate/auth"
	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/internal/webhook"
)

// webhookOutboxKeyPurpose names the key that seals the webhook outbox
// (auth.SharedKey on Redis, auth.LocalKey in the data directory).
const webhookOutboxKeyPurpose = "telegate webhook outbox key v1"

// hasWebhooks reports whether cfg sends any webhook: break_glass.webhook,
// or visits.alert_webhooks with visits enabled.
func hasWebhooks(cfg *config.Config) bool {
	return cfg.BreakGlass.Webhook.URL != "" || (cfg.Visits.Enabled && len(cfg.Visits.AlertWebhooks) > 0)
}

// openWebhookStore opens the outbox of the webhooks where the sessions
// are: with sessions.store "redis" in the same Redis (openStore), every
// node's senders sharing each queue, sealed with the key derived from the
// session encryption key every node shares; with the file store in
// <data_dir>/webhooks.db, sealed with a key derived from the session key.
// nil when cfg sends no webhook.
func openWebhookStore(cfg *config.Config) (webhook.Store, error) {
	if !hasWebhooks(cfg) {
		return nil, nil
	}
	s, err := openStore(cfg, cfg.Sessions.Store == "redis", webhookOutboxKeyPurpose)
	if err != nil {
		return nil, fmt.Errorf("webhooks: %w", err)
	}
	if s != nil {
		st, err := webhook.OpenRedis(s.Conn, s.Key)
		if err != nil {
			return nil, fmt.Errorf("webhooks: %w", err)
		}
		return st, nil
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("webhooks: %w", err)
	}
	key, err := auth.LocalKey(cfg, webhookOutboxKeyPurpose)
	if err != nil {
		return nil, fmt.Errorf("webhooks: %w", err)
	}
	st, err := webhook.OpenBolt(filepath.Join(cfg.DataDir, webhook.BoltFile), key)
	if err != nil {
		return nil, fmt.Errorf("webhooks: %w", err)
	}
	return st, nil
}

// webhookOptions are the senders' options of cfg (webhooks: pending,
// age and backoff bounds) with the node's metrics registry, on queue of
// store when there is one.
func webhookOptions(cfg *config.Config, reg prometheus.Registerer, store webhook.Store, queue string) webhook.Options {
	o := webhook.Options{Registry: reg, MaxPending: cfg.Webhooks.MaxPending, MaxAge: cfg.Webhooks.MaxAge, MaxBackoff: cfg.Webhooks.MaxBackoff}
	if store != nil && queue != "" {
		o.Outbox = store.Queue(queue)
	}
	return o
}
