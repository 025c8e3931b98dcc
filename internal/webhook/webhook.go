// Package webhook is telegate's one way of telling another system of an
// event: a signed JSON POST to an HTTPS endpoint, in the background, from
// an outbox kept where the node keeps its state (a bbolt file on one
// node, Redis shared by several; sealed, bounded in count and age), each
// attempt bounded by a timeout, retried with exponential backoff while
// the failure may pass (no answer, 408, 429, 5xx) across restarts of the
// node, never following a redirect; delivered at least once, with the
// same delivery id (DeliveryHeader) on every attempt, and attempted by
// one node at a time (a lease). The break-glass grant webhook
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
	// DeliveryHeader carries the delivery's id, the same on every
	// attempt, from every node and after a restart: the idempotency key
	// by which a receiver drops a second copy of what it already has
	// (delivery is at least once).
	DeliveryHeader = "X-Telegate-Delivery"
)

// Defaults of Options.
const (
	DefaultBackoff    = time.Second
	DefaultMaxBackoff = 5 * time.Minute
	DefaultInFlight   = 32
	DefaultMaxPending = 10000
	DefaultMaxAge     = 24 * time.Hour
	DefaultPoll       = time.Second
)

// Outcomes a delivery ends with, besides the last failure of its
// attempts ("status:<code>", "error").
const (
	Delivered = "delivered"
	// Dropped: the outbox was full (MaxPending) and this was its oldest
	// item.
	Dropped = "dropped"
	// Expired: still failing MaxAge after it was asked for (or past
	// Attempts); the cause names the last failure.
	Expired = "expired"
	// Unstored: the outbox could not store it (its Redis or file failed);
	// never attempted.
	Unstored = "unstored"
	// Closed: the sender closed while the delivery was pending in a
	// memory outbox (Options.Outbox nil). A durable outbox keeps it for
	// the next start.
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
	// Outbox keeps the pending deliveries: Store.Queue of the node's
	// store (on disk or in Redis), so a delivery outlives a stop of the
	// node. nil keeps them in memory (they end as Closed on Close).
	Outbox Outbox
	// Holder names this sender in the outbox's leases. Default a fresh
	// NewHolder.
	Holder string
	// Attempts, when above 0, caps how many times one delivery is tried
	// (then it ends with its last failure). Default 0: tried until MaxAge.
	Attempts int
	// Backoff is the wait after the first failed attempt, doubled after
	// each next one, at most MaxBackoff. Default DefaultBackoff.
	Backoff time.Duration
	// MaxBackoff caps the wait between attempts. Default
	// DefaultMaxBackoff.
	MaxBackoff time.Duration
	// MaxAge is how long a delivery is tried from when it was asked for;
	// past it, it ends as Expired. Default DefaultMaxAge.
	MaxAge time.Duration
	// MaxPending bounds the outbox: adding one more drops the oldest
	// (Dropped). Default DefaultMaxPending.
	MaxPending int
	// InFlight bounds the attempts under way at once. Default
	// DefaultInFlight.
	InFlight int
	// Lease is how long a claimed delivery is this sender's alone; past
	// it (the node stopped mid-attempt), another sender may take it.
	// Default 2 × Timeout + 5 s; at least Timeout + 1 s.
	Lease time.Duration
	// Poll is how often the outbox is looked at for deliveries due that
	// this sender did not schedule itself (another node's, or from
	// before a restart). Default DefaultPoll.
	Poll time.Duration
	// OnEnd is told once of each delivery's end, by the sender that ended
	// it (which may be another node's, or this node after a restart): the
	// delivery, Delivered or the outcome it failed with (the last
	// attempt's "status:<code>" or "error", Dropped, Expired, Unstored,
	// Closed), the cause (never the URL, which may be private) and the
	// attempts made.
	OnEnd func(d Delivery, outcome, cause string, attempts int)
	// Registry, when set, gets telegate_webhook_deliveries_total (shared
	// by every Sender on it).
	Registry prometheus.Registerer
}

// Sender delivers events to one endpoint through its outbox. A nil
// *Sender delivers nothing.
type Sender struct {
	o       Options
	client  *http.Client
	box     Outbox
	mem     *memOutbox // box, when in memory
	slots   chan struct{}
	wake    chan struct{}
	start   sync.Once
	wg      sync.WaitGroup
	ctx     context.Context
	cancel  context.CancelFunc
	counter *prometheus.CounterVec
}

// New returns a Sender for o. It starts delivering with Start (or the
// first Send).
func New(o Options) (*Sender, error) {
	if o.URL == "" {
		return nil, errors.New("webhook: no url")
	}
	if o.Timeout <= 0 {
		return nil, errors.New("webhook: no timeout")
	}
	if o.Attempts < 0 {
		o.Attempts = 0
	}
	if o.Backoff <= 0 {
		o.Backoff = DefaultBackoff
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	if o.MaxAge <= 0 {
		o.MaxAge = DefaultMaxAge
	}
	if o.MaxPending < 1 {
		o.MaxPending = DefaultMaxPending
	}
	if o.InFlight < 1 {
		o.InFlight = DefaultInFlight
	}
	if o.Lease <= 0 {
		o.Lease = 2*o.Timeout + 5*time.Second
	}
	o.Lease = max(o.Lease, o.Timeout+time.Second)
	if o.Poll <= 0 {
		o.Poll = DefaultPoll
	}
	if o.Holder == "" {
		o.Holder = NewHolder()
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
	s := &Sender{o: o, box: o.Outbox, slots: make(chan struct{}, o.InFlight), wake: make(chan struct{}, 1)}
	if s.box == nil {
		s.mem = newMemOutbox()
		s.box = s.mem
	}
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
	Help: "Webhook deliveries by event and outcome (delivered, status:<code>, error, dropped, expired, unstored, closed), after retries.",
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

// Start starts delivering: the deliveries pending in the outbox (from
// before a restart, or another node's whose lease ran out) and those Send
// adds. Calling it again does nothing.
func (s *Sender) Start() {
	if s == nil {
		return
	}
	s.start.Do(func() {
		s.wg.Add(1)
		go s.run()
	})
}

// Send stores body (JSON) as event under the delivery id in the outbox,
// in the background (the caller never waits for the store or the
// receiver), and the sender delivers it at least once: attempted at
// once, then after each failure that may pass (no answer, 408, 429, 5xx)
// with backoff, across restarts of the node, until delivered, refused
// for good, or past MaxAge. Options.OnEnd is told of its end.
func (s *Sender) Send(event, id string, body []byte) {
	if s == nil {
		return
	}
	s.Start()
	now := time.Now()
	it := Item{Key: newKey(now), ID: id, Event: event, Body: body, Created: now}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), redisTimeout)
		defer cancel()
		dropped, err := s.box.Add(ctx, it, s.o.MaxPending)
		for _, d := range dropped {
			s.end(d, Dropped, "outbox full", d.Attempts)
		}
		if err != nil {
			s.end(it, Unstored, err.Error(), 0)
			return
		}
		s.poke()
	}()
}

// poke wakes the delivery loop.
func (s *Sender) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// end reports it's end once: counted, then Options.OnEnd.
func (s *Sender) end(it Item, outcome, cause string, attempts int) {
	s.counter.WithLabelValues(it.Event, outcomeLabel(outcome)).Inc()
	if s.o.OnEnd != nil {
		s.o.OnEnd(Delivery{ID: it.ID, Event: it.Event, Body: it.Body}, outcome, cause, attempts)
	}
}

// run claims the due deliveries as slots free up, when woken (a Send, a
// backoff ending) or every Poll.
func (s *Sender) run() {
	defer s.wg.Done()
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.wake:
		case <-t.C:
		}
		s.claim()
		t.Reset(s.o.Poll)
	}
}

// claim leases as many due deliveries as there are free slots and starts
// an attempt of each.
func (s *Sender) claim() {
	free := cap(s.slots) - len(s.slots)
	if free == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(s.ctx, redisTimeout)
	defer cancel()
	now := time.Now()
	items, err := s.box.Claim(ctx, s.o.Holder, now, s.o.Lease, free)
	if err != nil {
		return // the outbox is away for now: the next poll tries again
	}
	for _, it := range items {
		if now.Sub(it.Created) > s.o.MaxAge {
			s.finish(it, Expired, "past max_age after "+lastOr(it.Last))
			continue
		}
		s.slots <- struct{}{}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() { <-s.slots; s.poke() }()
			s.deliver(it)
		}()
	}
	if len(items) == free {
		s.poke() // more may be due
	}
}

func lastOr(last string) string {
	if last == "" {
		return "no attempt"
	}
	return last
}

// deliver makes one attempt of it, then removes it (delivered, refused
// for good, out of attempts) or schedules the next attempt.
func (s *Sender) deliver(it Item) {
	outcome, cause, retry := s.attempt(it.Event, it.ID, it.Body)
	it.Attempts++
	it.Last = outcome
	if outcome == Delivered || !retry || (s.o.Attempts > 0 && it.Attempts >= s.o.Attempts) {
		s.finish(it, outcome, cause)
		return
	}
	wait := s.o.Backoff
	for i := 1; i < it.Attempts && wait < s.o.MaxBackoff; i++ {
		wait *= 2
	}
	wait = min(wait, s.o.MaxBackoff)
	ctx, cancel := context.WithTimeout(context.Background(), redisTimeout)
	defer cancel()
	if err := s.box.Retry(ctx, s.o.Holder, it, time.Now().Add(wait)); err != nil {
		return // lost to another sender, or the outbox is away: the lease ends and it is due again
	}
	time.AfterFunc(wait, s.poke)
}

// finish removes it from the outbox and reports its end, unless another
// sender holds it now (it will report it).
func (s *Sender) finish(it Item, outcome, cause string) {
	ctx, cancel := context.WithTimeout(context.Background(), redisTimeout)
	defer cancel()
	if err := s.box.Remove(ctx, s.o.Holder, it.Key); err != nil {
		return
	}
	s.end(it, outcome, cause, it.Attempts)
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

// Close stops claiming deliveries and waits for the attempts under way,
// each bounded by the timeout. What is pending stays in a durable outbox
// for the next start (or another node); in a memory outbox it ends as
// Closed.
func (s *Sender) Close() {
	if s == nil {
		return
	}
	s.cancel()
	s.wg.Wait()
	if s.mem != nil {
		for _, it := range s.mem.drain() {
			s.end(it, Closed, "closed after "+lastOr(it.Last), it.Attempts)
		}
	}
}
