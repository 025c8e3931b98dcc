package config

import (
	"net/url"
	"time"
)

// BreakGlassSettings configures what surrounds the routes' break-glass
// grants (policy.break_glass): where grants are kept is the session store
// (sessions.store; Redis when several nodes share one), who is told at
// once (webhook), and who reviews each use (reviewer_roles). The
// defaults are applied by ApplyDefaults.
type BreakGlassSettings struct {
	// ReviewerRoles are the telegate roles whose holders may list
	// break-glass uses and record a review on the review page
	// (/.telegate/break-glass/uses). Default none: the page refuses
	// everyone, and reviews come only from the admin listener
	// (telegate breakglass review).
	ReviewerRoles []string `yaml:"reviewer_roles"`
	// MaxGrants caps the grants kept, active and past, across every node
	// sharing the store. When full, the oldest reviewed grant is removed;
	// with none reviewed, new grants are refused. Default 10000.
	MaxGrants int `yaml:"max_grants"`
	// MaxGrantsPerSubject caps the unexpired grants of one person.
	// Default 5.
	MaxGrantsPerSubject int `yaml:"max_grants_per_subject"`
	// Webhook is told of every grant as it is made: a JSON POST with the
	// grant id, route, issuer and subject, reason and window (nothing
	// else about the person).
	Webhook Webhook `yaml:"webhook"`
}

// BreakGlassWebhook is the break-glass webhook's endpoint (Webhook).
type BreakGlassWebhook = Webhook

// Webhook is an HTTPS endpoint that telegate tells of events with a
// signed JSON POST, in the background, from an outbox that outlives a
// restart (webhooks), retried with backoff while a failure may pass (no
// answer, 408, 429, 5xx): 1s, 2s, 4s … apart, at most webhooks.max_backoff,
// until webhooks.max_age. X-Telegate-Delivery is the same on every
// attempt (delivery is at least once: a receiver drops a second copy by
// it). Each delivery's end is audited and counted in
// telegate_webhook_deliveries_total.
type Webhook struct {
	// URL is the https endpoint. Default none (no webhook).
	URL string `yaml:"url"`
	// Timeout bounds one attempt (connect, TLS, request and response).
	// Default 5s.
	Timeout time.Duration `yaml:"timeout"`
	// SecretFile holds the key that signs each body: header
	// X-Telegate-Signature is "sha256=" and hex(HMAC-SHA256(key,
	// timestamp "." body)) (RFC 2104), with the Unix timestamp in
	// X-Telegate-Timestamp. A secret file (mode 0600). Default none
	// (unsigned).
	SecretFile string `yaml:"secret_file"`
	// CAFile is a PEM bundle of the CAs that may sign the endpoint's
	// certificate. Default the system's roots.
	CAFile string `yaml:"ca_file"`
}

// Break-glass defaults.
const (
	DefaultBreakGlassMaxGrants           = 10000
	DefaultBreakGlassMaxGrantsPerSubject = 5
	DefaultBreakGlassWebhookTimeout      = 5 * time.Second
)

// ApplyDefaults implements SectionDefaulter. It is idempotent.
func (b *BreakGlassSettings) ApplyDefaults(*Config) {
	if b.MaxGrants == 0 {
		b.MaxGrants = DefaultBreakGlassMaxGrants
	}
	if b.MaxGrantsPerSubject == 0 {
		b.MaxGrantsPerSubject = DefaultBreakGlassMaxGrantsPerSubject
	}
	b.Webhook.applyDefaults()
}

func (w *Webhook) applyDefaults() {
	if w.Timeout == 0 {
		w.Timeout = DefaultBreakGlassWebhookTimeout
	}
}

// Validate implements Validator.
func (b *BreakGlassSettings) Validate(c *Config, r *Report) {
	if b.MaxGrants < 1 {
		r.Errorf("max_grants", "must be at least 1")
	}
	if b.MaxGrantsPerSubject < 1 {
		r.Errorf("max_grants_per_subject", "must be at least 1")
	}
	for _, role := range b.ReviewerRoles {
		if role == "" {
			r.Errorf("reviewer_roles", "must not hold an empty role")
		}
	}
	if len(b.ReviewerRoles) == 0 {
		for i := range c.Routes {
			if p := c.Routes[i].Policy; p != nil && p.BreakGlass != nil {
				r.Warnf("reviewer_roles", "is empty while routes offer break-glass: nobody can review their uses on the review page, only the operator with telegate breakglass review")
				break
			}
		}
	}
	b.Webhook.validate(r.Sub("webhook"), false)
}

// validate checks w (defaults applied) into r: without a url nothing else
// may be set; the url is https (http for a loopback host only when
// allowLoopbackHTTP), without a query; the timeout is in (0, 1m]; the
// secret and CA files can be read.
func (w *Webhook) validate(r *Report, allowLoopbackHTTP bool) {
	if w.URL == "" {
		for _, f := range []struct{ key, v string }{{"secret_file", w.SecretFile}, {"ca_file", w.CAFile}} {
			if f.v != "" {
				r.Errorf(f.key, "is set but %s is not", r.Path("url"))
			}
		}
		return
	}
	if err := CheckHTTPSURL(w.URL, allowLoopbackHTTP); err != nil {
		r.Errorf("url", "%v", err)
	} else if u, _ := url.Parse(w.URL); u.RawQuery != "" {
		r.Errorf("url", "must not have a query (a token there would be shown wherever the URL is); sign with secret_file instead")
	}
	if w.Timeout <= 0 || w.Timeout > time.Minute {
		r.Errorf("timeout", "must be more than 0 and at most 1m")
	}
	if w.SecretFile != "" {
		r.check("secret_file", CheckSecretFile(w.SecretFile))
	}
	if w.CAFile != "" {
		_, err := ReadCertPool(w.CAFile)
		r.check("ca_file", err)
	}
}
