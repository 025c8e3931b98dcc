package policies

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/telegate/telegate/audit"
	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/grants"
)

// Webhook headers (break_glass.webhook).
const (
	// WebhookSignatureHeader carries "sha256=" + hex(HMAC-SHA256(secret,
	// timestamp + "." + body)) (RFC 2104) when a secret is configured.
	WebhookSignatureHeader = "X-Telegate-Signature"
	// WebhookTimestampHeader carries the Unix time (seconds) of the
	// delivery, part of what is signed, so a receiver can refuse replays.
	WebhookTimestampHeader = "X-Telegate-Timestamp"
	// WebhookEventHeader names the event: "break-glass.grant".
	WebhookEventHeader = "X-Telegate-Event"
)

// maxWebhookInFlight bounds the deliveries under way at once; a grant past
// it is not delivered, and that is audited ("break-glass.notify",
// reason "queue-full").
const maxWebhookInFlight = 32

// WebhookEvent is the JSON body POSTed for each grant: the grant's
// UseFacts, with Type "break-glass.grant" and Purpose audit.PurposeBTG.
type WebhookEvent struct {
	Type    string `json:"type"`
	Purpose string `json:"purpose"`
	UseFacts
}

// Webhook delivers WebhookEvents to break_glass.webhook.url: one POST per
// grant, at once (in the background, so the grant is not held up), bounded
// by the configured timeout, never following a redirect. Every delivery's
// outcome is audited ("break-glass.notify": allow "delivered", or deny
// with "status:<code>", "error" or "queue-full").
type Webhook struct {
	url    string
	secret []byte
	client *http.Client
	slots  chan struct{}
	wg     sync.WaitGroup
}

// NewWebhook returns the webhook of c, or nil when c has no URL. The
// secret comes from c.SecretFile (config.ReadSecretFile), the trusted
// roots from c.CAFile (default the system's). base, when set, is the
// transport to clone (tests); its TLS roots are kept unless CAFile is
// set.
func NewWebhook(c config.BreakGlassWebhook, base *http.Transport) (*Webhook, error) {
	if c.URL == "" {
		return nil, nil
	}
	if err := config.CheckHTTPSURL(c.URL, false); err != nil {
		return nil, fmt.Errorf("break_glass.webhook.url: %w", err)
	}
	h := &Webhook{url: c.URL, slots: make(chan struct{}, maxWebhookInFlight)}
	if c.SecretFile != "" {
		s, err := config.ReadSecretFile(c.SecretFile)
		if err != nil {
			return nil, fmt.Errorf("break_glass.webhook.secret_file: %w", err)
		}
		h.secret = []byte(strings.TrimSpace(s))
	}
	var tr *http.Transport
	if base != nil {
		tr = base.Clone()
	} else {
		tr = &http.Transport{
			Proxy:       http.ProxyFromEnvironment,
			DialContext: (&net.Dialer{Timeout: c.Timeout}).DialContext,
		}
	}
	tr.TLSHandshakeTimeout = c.Timeout
	tr.ResponseHeaderTimeout = c.Timeout
	tr.MaxIdleConns, tr.IdleConnTimeout = 2, 90*time.Second
	if c.CAFile != "" {
		pool, err := config.ReadCertPool(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("break_glass.webhook.ca_file: %w", err)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	} else if tr.TLSClientConfig == nil {
		tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	h.client = &http.Client{
		Transport: tr,
		Timeout:   c.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	return h, nil
}

// Sign returns the WebhookSignatureHeader value of body sent at ts (Unix
// seconds) under secret.
func Sign(secret []byte, ts int64, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(strconv.FormatInt(ts, 10)))
	m.Write([]byte{'.'})
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// notify delivers g in the background and audits the outcome into sink.
func (h *Webhook) notify(g *grants.Grant, sink audit.Sink, log *slog.Logger) {
	ev := audit.Event{Type: "break-glass.notify", RouteID: g.Route, Issuer: g.Issuer, Subject: g.Subject,
		Purpose: audit.PurposeBTG, Attrs: map[string]string{"grant_id": g.ID}}
	select {
	case h.slots <- struct{}{}:
	default:
		ev.Decision, ev.Reason = "deny", "queue-full"
		sink.Record(context.Background(), ev)
		log.Error("break-glass webhook not told of a grant: too many deliveries under way", "grant_id", g.ID)
		return
	}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		defer func() { <-h.slots }()
		outcome, cause := h.deliver(g)
		ev.Decision, ev.Reason = "deny", outcome
		if outcome == "delivered" {
			ev.Decision = "allow"
		} else {
			log.Error("break-glass webhook delivery failed", "grant_id", g.ID, "outcome", outcome, "cause", cause)
		}
		sink.Record(context.Background(), ev)
	}()
}

// deliver POSTs g once and returns "delivered", "status:<code>" or
// "error" with the cause (without the URL, which may be private).
func (h *Webhook) deliver(g *grants.Grant) (outcome, cause string) {
	body, err := json.Marshal(WebhookEvent{Type: "break-glass.grant", Purpose: audit.PurposeBTG, UseFacts: factsOf(g)})
	if err != nil {
		return "error", err.Error()
	}
	req, err := http.NewRequest(http.MethodPost, h.url, bytes.NewReader(body))
	if err != nil {
		return "error", "bad url"
	}
	ts := time.Now().Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(WebhookEventHeader, "break-glass.grant")
	req.Header.Set(WebhookTimestampHeader, strconv.FormatInt(ts, 10))
	if h.secret != nil {
		req.Header.Set(WebhookSignatureHeader, Sign(h.secret, ts, body))
	}
	resp, err := h.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return "error", err.Error()
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return "status:" + strconv.Itoa(resp.StatusCode), ""
	}
	return "delivered", ""
}

// wait returns once every delivery under way has ended.
func (h *Webhook) wait() { h.wg.Wait() }
