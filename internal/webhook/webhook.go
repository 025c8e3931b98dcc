// Package webhook is telegate's one way of telling another system of an
// event: a signed JSON POST to an HTTPS endpoint, in the background, from
// a bounded queue, each attempt bounded by a timeout, retried with
// exponential backoff while the failure may pass (no answer, 408, 429,
// 5xx), never following a redirect. The break-glass grant webhook
// (policies) and the visit-arrival webhook (media) both deliver through
// it; each delivery's end is reported once to the caller (to audit) and
// counted in telegate_webhook_deliveries_total{event,outcome}.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Headers of every delivery.
const (
	// SignatureHeader carries "sha256=" + hex(HMAC-SHA256(secret,
	// timestamp + "." + body)) (RFC 2104) when a secret is configured.
	SignatureHeader = "X-Telegate-Signature"
	// TimestampHeader carries the Unix time (seconds) of the attempt,
	// part of what is signed, so a receiver can refuse replays.
	TimestampHeader = "X-Telegate-Timestamp"
	// EventHeader names the event ("break-glass.grant", "visit.waiting").
	EventHeader = "X-Telegate-Event"
	// DeliveryHeader carries the delivery's id, the same on every attempt,
	// so a receiver can drop a retry of what it already has.
	DeliveryHeader = "X-Telegate-Delivery"
)

// Defaults of Options.
const (
	DefaultAttempts = 4
	DefaultBackoff  = time.Second
	MaxBackoff      = 30 * time.Second
	DefaultInFlight = 32
)

// Outcomes a delivery ends with.
const (
	Delivered = "delivered"
	QueueFull = "queue-full"
	// Closed: the sender closed before the delivery could finish its
	// retries.
	Closed = "closed"
)

// Options configure a Sender.
type Options struct {
	// URL is the https endpoint (http only for loopback in tests: the
	// caller checks, config.CheckHTTPSURL).
	URL string
	// Secret signs each body (SignatureHeader); nil sends unsigned.
	Secret []byte
	// Timeout bounds one attempt: connect, TLS, request and response.
	Timeout time.Duration
	// RootCAs are the CAs that may sign the endpoint's certificate; nil
	// the system's (or Base's).
	RootCAs *x509.CertPool
	// Base, when set, is the transport to clone (tests); its TLS roots
	// are kept unless RootCAs is set.
	Base *http.Transport
	// Attempts is how many times one delivery is tried, at least 1.
	// Default DefaultAttempts.
	Attempts int
	// Backoff is the wait before the second attempt, doubled before each
	// next one, at most MaxBackoff. Default DefaultBackoff.
	Backoff time.Duration
	// InFlight bounds the deliveries under way at once (waiting between
	// attempts included); one past it ends at once as QueueFull. Default
	// DefaultInFlight.
	InFlight int
	// Registry, when set, gets telegate_webhook_deliveries_total (shared
	// by every Sender on it).
	Registry prometheus.Registerer
}

// Sender delivers events to one endpoint. A nil *Sender delivers nothing.
type Sender struct {
	o       Options
	client  *http.Client
	slots   chan struct{}
	wg      sync.WaitGroup
	ctx     context.Context
	cancel  context.CancelFunc
	counter *prometheus.CounterVec
}

// New returns a Sender for o.
func New(o Options) (*Sender, error) {
	if o.URL == "" {
		return nil, errors.New("webhook: no url")
	}
	if o.Timeout <= 0 {
		return nil, errors.New("webhook: no timeout")
	}
	if o.Attempts < 1 {
		o.Attempts = DefaultAttempts
	}
	if o.Backoff <= 0 {
		o.Backoff = DefaultBackoff
	}
	if o.InFlight < 1 {
		o.InFlight = DefaultInFlight
	}
	var tr *http.Transport
	if o.Base != nil {
		tr = o.Base.Clone()
	} else {
		tr = &http.Transport{
			Proxy:       http.ProxyFromEnvironment,
			DialContext: (&net.Dialer{Timeout: o.Timeout}).DialContext,
		}
	}
	tr.TLSHandshakeTimeout = o.Timeout
	tr.ResponseHeaderTimeout = o.Timeout
	tr.MaxIdleConns, tr.IdleConnTimeout = 2, 90*time.Second
	if o.RootCAs != nil {
		tr.TLSClientConfig = &tls.Config{RootCAs: o.RootCAs, MinVersion: tls.VersionTLS12}
	} else if tr.TLSClientConfig == nil {
		tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	s := &Sender{o: o, slots: make(chan struct{}, o.InFlight)}
	s.client = &http.Client{
		Transport: tr,
		Timeout:   o.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.counter = deliveries
	if o.Registry != nil {
		if err := o.Registry.Register(deliveries); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, fmt.Errorf("webhook: metrics: %w", err)
			}
		}
	}
	return s, nil
}

// deliveries counts every delivery's end by event and outcome.
var deliveries = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "telegate_webhook_deliveries_total",
	Help: "Webhook deliveries by event and outcome (delivered, status:<code>, error, queue-full, closed), after retries.",
}, []string{"event", "outcome"})

// Sign returns the SignatureHeader value of body sent at ts (Unix
// seconds) under secret.
func Sign(secret []byte, ts int64, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(strconv.FormatInt(ts, 10)))
	m.Write([]byte{'.'})
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Send delivers body (JSON) as event under the delivery id in the
// background and calls done once when the delivery ends, with Delivered
// or the last failure ("status:<code>", "error", QueueFull, Closed) and
// its cause (never the URL, which may be private) and the attempts made.
// With every slot taken it calls done with QueueFull before returning.
func (s *Sender) Send(event, id string, body []byte, done func(outcome, cause string, attempts int)) {
	if s == nil {
		return
	}
	end := func(outcome, cause string, n int) {
		s.counter.WithLabelValues(event, outcomeLabel(outcome)).Inc()
		if done != nil {
			done(outcome, cause, n)
		}
	}
	select {
	case s.slots <- struct{}{}:
	default:
		end(QueueFull, "too many deliveries under way", 0)
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer func() { <-s.slots }()
		wait := s.o.Backoff
		var outcome, cause string
		n := 0
		for n < s.o.Attempts {
			n++
			var retry bool
			outcome, cause, retry = s.attempt(event, id, body)
			if outcome == Delivered || !retry || n == s.o.Attempts {
				break
			}
			select {
			case <-time.After(wait):
			case <-s.ctx.Done():
				end(Closed, "closed after "+outcome, n)
				return
			}
			wait = min(wait*2, MaxBackoff)
		}
		end(outcome, cause, n)
	}()
}

func outcomeLabel(o string) string {
	if len(o) > 7 && o[:7] == "status:" {
		return o[:8] + "xx"
	}
	return o
}

// attempt POSTs body once; retry reports whether a later attempt may
// succeed (no answer, 408, 429, 5xx).
func (s *Sender) attempt(event, id string, body []byte) (outcome, cause string, retry bool) {
	// An attempt under way finishes within its timeout even on Close.
	ctx, cancel := context.WithTimeout(context.Background(), s.o.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.o.URL, bytes.NewReader(body))
	if err != nil {
		return "error", "bad url", false
	}
	ts := time.Now().Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(EventHeader, event)
	req.Header.Set(DeliveryHeader, id)
	req.Header.Set(TimestampHeader, strconv.FormatInt(ts, 10))
	if s.o.Secret != nil {
		req.Header.Set(SignatureHeader, Sign(s.o.Secret, ts, body))
	}
	resp, err := s.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return "error", err.Error(), true
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		c := resp.StatusCode
		return "status:" + strconv.Itoa(c), "", c == http.StatusRequestTimeout || c == http.StatusTooManyRequests || c >= 500
	}
	return Delivered, "", false
}

// Close stops retrying (deliveries waiting to retry end as Closed) and
// waits for the attempts under way, each bounded by the timeout.
func (s *Sender) Close() {
	if s == nil {
		return
	}
	s.cancel()
	s.wg.Wait()
}

// Wait returns once every delivery under way has ended, retries
// included (at most Attempts × Timeout plus the backoffs).
func (s *Sender) Wait() {
	if s != nil {
		s.wg.Wait()
	}
}
