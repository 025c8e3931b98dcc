package config

import "time"

// Webhooks bounds the outbox of every webhook (break_glass.webhook and
// visits.alert_webhooks): the deliveries not yet made, kept where the
// node keeps its state — the file webhooks.db in data_dir on one node,
// the Redis of redis.addr when sessions.store is "redis" (so a delivery
// outlives a restart, and one node at a time attempts it) — sealed, each
// retried with backoff until delivered, refused for good (a 4xx other
// than 408 and 429, a redirect), or max_age old. Every end is audited.
type Webhooks struct {
	// MaxPending caps the deliveries kept per webhook; one more drops the
	// oldest, audited with outcome "dropped". Default 10000.
	MaxPending int `yaml:"max_pending"`
	// MaxAge is how long a delivery is retried from when its event
	// happened; past it, it is removed and audited with outcome
	// "expired". Default 24h; at least 1m.
	MaxAge time.Duration `yaml:"max_age"`
	// MaxBackoff caps the wait between two attempts of a delivery (the
	// first retry comes after 1s, each next wait doubles). Default 5m;
	// from 1s to max_age.
	MaxBackoff time.Duration `yaml:"max_backoff"`
}

// Webhook outbox defaults.
const (
	DefaultWebhooksMaxPending = 10000
	DefaultWebhooksMaxAge     = 24 * time.Hour
	DefaultWebhooksMaxBackoff = 5 * time.Minute
)

// ApplyDefaults implements SectionDefaulter. It is idempotent.
func (w *Webhooks) ApplyDefaults(*Config) {
	if w.MaxPending == 0 {
		w.MaxPending = DefaultWebhooksMaxPending
	}
	if w.MaxAge == 0 {
		w.MaxAge = DefaultWebhooksMaxAge
	}
	if w.MaxBackoff == 0 {
		w.MaxBackoff = DefaultWebhooksMaxBackoff
	}
}

// Validate implements Validator.
func (w *Webhooks) Validate(_ *Config, r *Report) {
	if w.MaxPending < 1 {
		r.Errorf("max_pending", "must be at least 1")
	}
	if w.MaxAge < time.Minute {
		r.Errorf("max_age", "must be at least 1m")
	}
	if w.MaxBackoff < time.Second || w.MaxBackoff > w.MaxAge {
		r.Errorf("max_backoff", "must be from 1s to max_age")
	}
}
