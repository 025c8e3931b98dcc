package policies

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"

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
// through telegate's one webhook sender (internal/webhook: an outbox in
// the node's store, timeout per attempt, retries with backoff across
// restarts, no redirects). Every delivery's end is audited
// ("break-glass.notify": allow "delivered", or deny with
// "status:<code>", "error", "dropped", "expired", "unstored" or
// "closed", with the attempts made) by the node that ended it.
type Webhook struct {
	s    *webhook.Sender
	once sync.Once
	mu   sync.Mutex
	sink audit.Sink
	log  *slog.Logger
}

// NewWebhook returns the webhook of c, or nil when c has no URL. The
// secret comes from c.SecretFile (config.ReadSecretFile), the trusted
// roots from c.CAFile (default the system's). base, when set, is the
// transport to clone (tests); its TLS roots are kept unless CAFile is
// set. Its deliveries wait in memory.
func NewWebhook(c config.BreakGlassWebhook, base *http.Transport) (*Webhook, error) {
	return NewWebhookTuned(c, webhook.Options{Base: base})
}

// WebhookQueue is the outbox queue of the break-glass webhook
// (webhook.Store.Queue).
const WebhookQueue = "break-glass"

// WebhookTuning is the sender's outbox (a webhook.Store queue,
// WebhookQueue), schedule (attempts, backoff), bounds (pending, age),
// transport (tests) and metrics registry; the zero value keeps the
// webhook's defaults and waits in memory.
type WebhookTuning = webhook.Options

// NewWebhookTuned is NewWebhook with the sender's outbox, schedule,
// bounds and metrics registry of o (its URL, timeout, secret, roots and
// OnEnd are set here).
func NewWebhookTuned(c config.BreakGlassWebhook, o WebhookTuning) (*Webhook, error) {
	h := &Webhook{}
	o.OnEnd = h.ended
	s, err := webhook.FromConfig(c, o)
	if err != nil {
		return nil, fmt.Errorf("break_glass.webhook.%w", err)
	}
	if s == nil {
		return nil, nil
	}
	h.s = s
	return h, nil
}

// Sign returns the WebhookSignatureHeader value of body sent at ts (Unix
// seconds) under secret.
func Sign(secret []byte, ts int64, body []byte) string { return webhook.Sign(secret, ts, body) }

// start audits into sink from now on and starts the deliveries (those
// pending from before a restart included); the first call counts.
func (h *Webhook) start(sink audit.Sink, log *slog.Logger) {
	h.once.Do(func() {
		h.mu.Lock()
		h.sink, h.log = sink, log
		h.mu.Unlock()
		h.s.Start()
	})
}

// notify delivers g in the background; the outcome is audited into sink.
func (h *Webhook) notify(g *grants.Grant, sink audit.Sink, log *slog.Logger) {
	h.start(sink, log)
	body, err := json.Marshal(WebhookEvent{Type: "break-glass.grant", Purpose: audit.PurposeBTG, UseFacts: factsOf(g)})
	if err != nil {
		log.Error("break-glass webhook event not encoded", "grant_id", g.ID, "error", err)
		return
	}
	h.s.Send("break-glass.grant", g.ID, body)
}

// ended audits the end of a delivery, from the grant's facts in its body.
func (h *Webhook) ended(d webhook.Delivery, outcome, cause string, attempts int) {
	h.mu.Lock()
	sink, log := h.sink, h.log
	h.mu.Unlock()
	if sink == nil {
		sink, log = audit.Discard{}, slog.Default()
	}
	var ev WebhookEvent
	_ = json.Unmarshal(d.Body, &ev)
	e := audit.Event{Type: "break-glass.notify", RouteID: ev.Route, Issuer: ev.Issuer, Subject: ev.Subject,
		Purpose: audit.PurposeBTG, Decision: "deny", Reason: outcome,
		Attrs: map[string]string{"grant_id": d.ID, "attempts": strconv.Itoa(attempts)}}
	if outcome == webhook.Delivered {
		e.Decision = "allow"
	} else {
		log.Error("break-glass webhook delivery failed", "grant_id", d.ID, "outcome", outcome, "cause", cause, "attempts", attempts)
	}
	sink.Record(context.Background(), e)
}

// close stops the deliveries; those pending stay in the outbox.
func (h *Webhook) close() { h.s.Close() }
