package media

import (
	"bytes"
	"crypto/hmac"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/telegate/telegate/audit"
	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/internal/redisconn"
	"github.com/telegate/telegate/internal/redistest"
	"github.com/telegate/telegate/internal/webhook"
)

// hookReceiver is a loopback HTTPS receiver of arrival webhooks that
// verifies each delivery's signature with its copy of the secret.
type hookReceiver struct {
	srv    *httptest.Server
	got    chan AlertEvent
	raw    chan string
	secret []byte
}

func newHookReceiver(t *testing.T, secret []byte) *hookReceiver {
	t.Helper()
	h := &hookReceiver{got: make(chan AlertEvent, 8), raw: make(chan string, 8), secret: secret}
	h.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		ts, _ := strconv.ParseInt(r.Header.Get(webhook.TimestampHeader), 10, 64)
		if !hmac.Equal([]byte(r.Header.Get(webhook.SignatureHeader)), []byte(webhook.Sign(h.secret, ts, b))) || r.Header.Get(webhook.EventHeader) != "visit.waiting" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var ev AlertEvent
		if err := json.Unmarshal(b, &ev); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		h.raw <- string(b)
		h.got <- ev
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

// downAddr returns a loopback address nobody listens at (yet).
func downAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// upAt brings rc's handler up at addr (downAddr), with its certificate,
// until the test ends; it skips the test if the port was taken meanwhile.
func (rc *hookReceiver) upAt(t *testing.T, addr string) {
	t.Helper()
	up := httptest.NewUnstartedServer(rc.srv.Config.Handler)
	l2, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("the port was taken again: %v", err)
	}
	up.Listener.Close()
	up.Listener, up.TLS = l2, rc.srv.TLS
	up.StartTLS()
	t.Cleanup(up.Close)
}

// settledAlerts waits up to d for a first visit.alert record, then a
// moment for any second one, and returns them.
func settledAlerts(h *harness, d time.Duration) []audit.Event {
	deadline := time.Now().Add(d)
	for len(alertEvents(h.sink)) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	return alertEvents(h.sink)
}

func secretFile(t *testing.T, secret string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "hook-secret")
	if err := os.WriteFile(p, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func alertEvents(sink *recordSink) []audit.Event {
	var out []audit.Event
	for _, e := range sink.all() {
		if e.Type == "visit.alert" {
			out = append(out, e)
		}
	}
	return out
}

// TestArrivalWebhookDeliveredSignedAndPHIFree: a patient entering the
// waiting room of a visit made by a clinician of no listed group is told
// to the clinic without groups — signed, verified by a real loopback
// HTTPS receiver — with the visit id, the time and the number waiting,
// and not the patient's name or the visit's title; the clinic whose
// groups do not match hears nothing; a second patient makes a second
// delivery with two waiting, a patient's page polling again none; every
// delivery is audited.
func TestArrivalWebhookDeliveredSignedAndPHIFree(t *testing.T) {
	secret := "arrival-secret-0123456789"
	main, other := newHookReceiver(t, []byte(secret)), newHookReceiver(t, []byte(secret))
	cfg := config.Visits{Enabled: true, AlertWebhooks: []config.VisitAlertWebhook{
		{Clinic: "oncology", Groups: []string{"oncology"}, Webhook: config.Webhook{URL: other.srv.URL + "/hook", SecretFile: secretFile(t, secret)}},
		{Clinic: "main", Webhook: config.Webhook{URL: main.srv.URL + "/hook", SecretFile: secretFile(t, secret)}},
	}}
	h := newHarnessWith(t, cfg, func(h *harness) {
		h.alert = webhook.Options{Base: main.srv.Client().Transport.(*http.Transport), Backoff: 20 * time.Millisecond}
	})
	vid, inv := h.createVisit("dr", nil)
	h.join("pat", inv)
	var ev AlertEvent
	select {
	case ev = <-main.got:
	case <-time.After(5 * time.Second):
		t.Fatal("no arrival delivered")
	}
	raw := <-main.raw
	if ev.Type != "visit.waiting" || ev.Clinic != "main" || ev.VisitID != vid || ev.Waiting != 1 || !ev.Time.Equal(h.clock.Now().UTC()) {
		t.Errorf("event %+v", ev)
	}
	for _, phi := range []string{"Pat Patient", "Secret diagnosis", "p-1", "patient-idp", "Dr. Ada"} {
		if strings.Contains(raw, phi) {
			t.Errorf("the webhook body carries %q: %s", phi, raw)
		}
	}
	h.join("pat", inv) // the page asks again: no new arrival
	h.join("pat2", inv)
	select {
	case ev = <-main.got:
		if ev.Waiting != 2 {
			t.Errorf("second arrival %+v, want 2 waiting", ev)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no second arrival delivered")
	}
	select {
	case ev := <-main.got:
		t.Errorf("a page polling again was delivered as an arrival: %+v", ev)
	case ev := <-other.got:
		t.Errorf("a clinic whose groups do not match was told: %+v", ev)
	case <-time.After(300 * time.Millisecond):
	}
	deadline := time.Now().Add(2 * time.Second)
	for len(alertEvents(h.sink)) < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	for _, e := range alertEvents(h.sink) {
		if e.Decision != "allow" || e.Reason != "delivered" || e.Attrs["visit_id"] != vid || e.Attrs["clinic"] != "main" {
			t.Errorf("audit %+v", e)
		}
	}
	if n := len(alertEvents(h.sink)); n != 2 {
		t.Errorf("%d visit.alert records, want 2", n)
	}
}

// TestRegression_ArrivalWebhookReceiverNeverUp: with the clinic's
// receiver never listening, joining still works at once, and the
// delivery ends, after its bounded retries, as an audited failure.
func TestRegression_ArrivalWebhookReceiverNeverUp(t *testing.T) {
	url := "https://" + downAddr(t) + "/hook"
	cfg := config.Visits{Enabled: true, AlertWebhooks: []config.VisitAlertWebhook{{Clinic: "main", Webhook: config.Webhook{URL: url, Timeout: 200 * time.Millisecond}}}}
	h := newHarnessWith(t, cfg, func(h *harness) {
		h.alert = webhook.Options{Attempts: 3, Backoff: 30 * time.Millisecond}
	})
	_, inv := h.createVisit("dr", nil)
	start := time.Now()
	h.join("pat", inv)
	if d := time.Since(start); d > time.Second {
		t.Errorf("joining waited %v for the webhook", d)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(alertEvents(h.sink)) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	evs := alertEvents(h.sink)
	if len(evs) != 1 || evs[0].Decision != "deny" || evs[0].Reason != "error" || evs[0].Attrs["attempts"] != "3" {
		t.Fatalf("visit.alert records %+v, want one deny after 3 attempts", evs)
	}
}

// TestRegression_ArrivalWebhookReceiverDownThenUp: the clinic's receiver
// is down when the patient arrives and comes up a moment later: the
// arrival is delivered on a retry, signed, and audited as delivered with
// the attempts it took.
func TestRegression_ArrivalWebhookReceiverDownThenUp(t *testing.T) {
	secret := "arrival-secret-down-then-up"
	rc := newHookReceiver(t, []byte(secret))
	// Nobody listens at the address the clinic's webhook names until the
	// receiver is moved there.
	addr := downAddr(t)
	cfg := config.Visits{Enabled: true, AlertWebhooks: []config.VisitAlertWebhook{{Clinic: "main",
		Webhook: config.Webhook{URL: "https://" + addr + "/hook", Timeout: 300 * time.Millisecond, SecretFile: secretFile(t, secret)}}}}
	h := newHarnessWith(t, cfg, func(h *harness) {
		h.alert = webhook.Options{Base: rc.srv.Client().Transport.(*http.Transport), Attempts: 5, Backoff: 150 * time.Millisecond}
	})
	vid, inv := h.createVisit("dr", nil)
	h.join("pat", inv)
	time.Sleep(50 * time.Millisecond) // the first attempt is refused
	rc.upAt(t, addr)
	select {
	case ev := <-rc.got:
		if ev.VisitID != vid || ev.Waiting != 1 {
			t.Errorf("event %+v", ev)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("not delivered after the receiver came up")
	}
	evs := settledAlerts(h, 2*time.Second)
	if len(evs) != 1 || evs[0].Decision != "allow" || evs[0].Attrs["attempts"] == "1" {
		t.Errorf("visit.alert records %+v, want one delivery after a retry", evs)
	}
}

// TestRegression_ArrivalWebhookOutlivesRestart: the clinic's receiver is
// down when the patient arrives, and the visits service stops (with its
// outbox: the node's file, or Redis) while the delivery waits for its
// retry; the receiver comes up and the service starts again: the arrival
// is delivered, signed, with the same delivery id, and audited once as
// delivered after more than one attempt.
func TestRegression_ArrivalWebhookOutlivesRestart(t *testing.T) {
	for _, kind := range []string{"bbolt", "redis"} {
		t.Run(kind, func(t *testing.T) {
			secret := "arrival-secret-restart"
			rc := newHookReceiver(t, []byte(secret))
			addr := downAddr(t)
			var open func() webhook.Store
			var ro *RedisOptions
			if kind == "redis" {
				r := redistest.Start(t)
				ro = &RedisOptions{Conn: redisconn.Conn{Addr: r.Addr, Password: r.Password}, Prefix: "n{" + newID() + "}:"}
				open = func() webhook.Store {
					st, err := webhook.OpenRedis(redisconn.Conn{Addr: r.Addr, Password: r.Password}, bytes.Repeat([]byte{3}, 32))
					if err != nil {
						t.Fatal(err)
					}
					return st
				}
			} else {
				path := filepath.Join(t.TempDir(), webhook.BoltFile)
				open = func() webhook.Store {
					st, err := webhook.OpenBolt(path, bytes.Repeat([]byte{3}, 32))
					if err != nil {
						t.Fatal(err)
					}
					return st
				}
			}
			cfg := config.Visits{Enabled: true, AlertWebhooks: []config.VisitAlertWebhook{{Clinic: "main",
				Webhook: config.Webhook{URL: "https://" + addr + "/hook", Timeout: 300 * time.Millisecond, SecretFile: secretFile(t, secret)}}}}
			var h *harness
			t.Cleanup(func() { _ = h.hooks.Close() }) // after the service's own cleanup
			h = newHarnessWith(t, cfg, func(h *harness) {
				h.alert = webhook.Options{Base: rc.srv.Client().Transport.(*http.Transport), Backoff: time.Second, Poll: 50 * time.Millisecond}
				h.hooks = open()
				if ro != nil {
					h.redis, h.key = ro, bytes.Repeat([]byte{5}, 32)
				}
			})
			vid, inv := h.createVisit("dr", nil)
			h.join("pat", inv)
			time.Sleep(300 * time.Millisecond) // refused; the retry is a second away
			h.srv.Close()
			if err := h.svc.Close(); err != nil {
				t.Fatal(err)
			}
			if err := h.hooks.Close(); err != nil {
				t.Fatal(err)
			}
			if evs := alertEvents(h.sink); len(evs) != 0 {
				t.Fatalf("ended before the restart: %+v", evs)
			}

			rc.upAt(t, addr)
			h.hooks = open()
			h.start()
			select {
			case ev := <-rc.got:
				if ev.VisitID != vid || ev.Clinic != "main" {
					t.Errorf("event %+v", ev)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("not delivered after the restart")
			}
			evs := settledAlerts(h, 3*time.Second)
			if len(evs) != 1 || evs[0].Decision != "allow" || evs[0].Attrs["visit_id"] != vid || evs[0].Attrs["attempts"] == "1" {
				t.Errorf("visit.alert records %+v, want one delivery after a retry", evs)
			}
		})
	}
}
