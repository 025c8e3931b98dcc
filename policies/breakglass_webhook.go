package policies

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/telegate/telegate/audit"
	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/grants"
	"github.com/telegate/telegate/internal/webhook"
)

// Webhook headers (break_glass.webhook): those of every telegate webhook
// (package internal/webhook).
const (
	// WebhookSignatureHeader carries "sha256=" + hex(HMAC-SHA256(secret,
	// timestamp + "." + body)) (RFC 2104) when a secret is configured.
	WebhookSignatureHeader = webhook.SignatureHeader
	// WebhookTimestampHeader carries the Unix time (seconds) of the
	// attempt, part of what is signed, so a receiver can refuse replays.
	WebhookTimestampHeader = webhook.TimestampHeader
	// WebhookEventHeader names the event: "break-glass.grant".
	WebhookEventHeader = webhook.EventHeader
)

// WebhookEvent is the JSON body POSTed for each grant: the grant's
// UseFacts, with Type "break-glass.grant" and Purpose audit.PurposeBTG.
type WebhookEvent struct {
	Type    string `json:"type"`
	Purpose string `json:"purpose"`
	UseFacts
}

// Webhook delivers WebhookEvents to break_glass.webhook.url: one
// delivery per grant, in the background (the grant is not held up),
// through telegate's one webhook sender (internal/webhook: bounded queue,
// timeout per attempt, retries with backoff, no redirects). Every
// delivery's end is audited ("break-glass.notify": allow "delivered", or
// deny with "status:<code>", "error", "queue-full" or "closed", with the
// attempts made).
type Webhook struct {
	s *webhook.Sender
}

// WebhookTuning overrides the sender's retry schedule (tests); the zero
// value keeps webhook's defaults.
type WebhookTuning struct {
	Base     *http.Transport
	Attempts int
	Backoff  time.Duration
	InFlight int
	Registry prometheus.Registerer
}

// NewWebhook returns the webhook of c, or nil when c has no URL. The
// secret comes from c.SecretFile (config.ReadSecretFile), the trusted
// roots from c.CAFile (default the system's). base, when set, is the
// transport to clone (tests); its TLS roots are kept unless CAFile is
// set.
func NewWebhook(c config.BreakGlassWebhook, base *http.Transport) (*Webhook, error) {
	return NewWebhookTuned(c, WebhookTuning{Base: base})
}

// NewWebhookTuned is NewWebhook with the sender's schedule and metrics
// registry set.
func NewWebhookTuned(c config.BreakGlassWebhook, tu WebhookTuning) (*Webhook, error) {
	s, err := webhook.FromConfig(c, webhook.Options{Base: tu.Base, Attempts: tu.Attempts, Backoff: tu.Backoff, InFlight: tu.InFlight, Registry: tu.Registry})
	if err != nil {
		return nil, fmt.Errorf("break_glass.webhook.%w", err)
	}
	if s == nil {
		return nil, nil
	}
	return &Webhook{s: s}, nil
}

// Sign returns the WebhookSignatureHeader value of body sent at ts (Unix
// seconds) under secret.
func Sign(secret []byte, ts int64, body []byte) string { return webhook.Sign(secret, ts, body) }

// notify delivers g in the background and audits the outcome into sink.
func (h *Webhook) notify(g *grants.Grant, sink audit.Sink, log *slog.Logger) {
	body, err := json.Marshal(WebhookEvent{Type: "break-glass.grant", Purpose: audit.PurposeBTG, UseFacts: factsOf(g)})
	if err != nil {
		log.Error("break-glass webhook event not encoded", "grant_id", g.ID, "error", err)
		return
	}
	h.s.Send("break-glass.grant", g.ID, body, func(outcome, cause string, attempts int) {
		ev := audit.Event{Type: "break-glass.notify", RouteID: g.Route, Issuer: g.Issuer, Subject: g.Subject,
			Purpose: audit.PurposeBTG, Decision: "deny", Reason: outcome,
			Attrs: map[string]string{"grant_id": g.ID, "attempts": strconv.Itoa(attempts)}}
		if outcome == webhook.Delivered {
			ev.Decision = "allow"
		} else {
			log.Error("break-glass webhook delivery failed", "grant_id", g.ID, "outcome", outcome, "cause", cause, "attempts", attempts)
		}
		sink.Record(context.Background(), ev)
	})
}

// wait returns once every delivery under way has ended, retries
// included.
func (h *Webhook) wait() { h.s.Wait() }
