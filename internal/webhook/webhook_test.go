package webhook

import (
	"crypto/hmac"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

type end struct {
	outcome, cause string
	attempts       int
}

// newSender is New(o) with its ends reported on the channel returned;
// the sender is closed at the test's end.
func newSender(t *testing.T, o Options) (*Sender, chan end) {
	t.Helper()
	ch := make(chan end, 16)
	o.OnEnd = func(_ Delivery, outcome, cause string, n int) { ch <- end{outcome, cause, n} }
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s, ch
}

func sendOne(t *testing.T, s *Sender, ch chan end, body string) end {
	t.Helper()
	s.Send("visit.waiting", "d1", []byte(body))
	return waitEnd(t, ch)
}

// TestDeliveredAndSignatureVerifies: a real loopback HTTPS receiver gets
// the body with the event, delivery id and timestamp headers, and the
// signature it computes from its copy of the secret matches.
func TestDeliveredAndSignatureVerifies(t *testing.T) {
	secret := []byte("shared-secret")
	got := make(chan bool, 1)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		ts, _ := strconv.ParseInt(r.Header.Get(TimestampHeader), 10, 64)
		ok := hmac.Equal([]byte(r.Header.Get(SignatureHeader)), []byte(Sign(secret, ts, b))) &&
			r.Header.Get(EventHeader) == "visit.waiting" && r.Header.Get(DeliveryHeader) == "d1" &&
			string(b) == `{"n":1}` && time.Since(time.Unix(ts, 0)) < time.Minute
		got <- ok
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	s, ch := newSender(t, Options{URL: srv.URL, Secret: secret, Timeout: time.Second, Base: srv.Client().Transport.(*http.Transport)})
	if e := sendOne(t, s, ch, `{"n":1}`); e.outcome != Delivered || e.attempts != 1 {
		t.Fatalf("ended %+v", e)
	}
	if !<-got {
		t.Error("the receiver could not verify the delivery")
	}
}

// TestRegression_WebhookRetriesPassingFailures: each failure that may
// pass — the receiver not listening yet, a 503, a 429, an answer slower
// than the timeout — is tried again with backoff and delivered once the
// receiver is up.
func TestRegression_WebhookRetriesPassingFailures(t *testing.T) {
	for _, kind := range []string{"down", "503", "429", "slow"} {
		t.Run(kind, func(t *testing.T) {
			var calls atomic.Int32
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n := calls.Add(1)
				if n == 1 {
					switch kind {
					case "503":
						w.WriteHeader(http.StatusServiceUnavailable)
						return
					case "429":
						w.WriteHeader(http.StatusTooManyRequests)
						return
					case "slow":
						select {
						case <-time.After(2 * time.Second):
						case <-r.Context().Done():
						}
						return
					}
				}
				w.WriteHeader(http.StatusOK)
			})
			srv := httptest.NewUnstartedServer(h)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addr := ln.Addr().String()
			if kind == "down" {
				ln.Close() // nobody listens at first
			} else {
				srv.Listener.Close()
				srv.Listener = ln
			}
			srv.StartTLS()
			defer srv.Close()
			s, ch := newSender(t, Options{URL: "https://" + addr + "/", Timeout: 300 * time.Millisecond, Backoff: 100 * time.Millisecond, Attempts: 5,
				Base: srv.Client().Transport.(*http.Transport)})
			s.Send("visit.waiting", "d", []byte(`{}`))
			if kind == "down" {
				time.Sleep(150 * time.Millisecond) // the first attempt fails
				up := httptest.NewUnstartedServer(h)
				l2, err := net.Listen("tcp", addr)
				if err != nil {
					t.Skipf("port taken again: %v", err)
				}
				up.Listener.Close()
				up.Listener, up.TLS = l2, srv.TLS
				up.StartTLS()
				defer up.Close()
			}
			select {
			case e := <-ch:
				if e.outcome != Delivered || e.attempts < 2 {
					t.Errorf("ended %+v, want delivered after a retry", e)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("never ended")
			}
		})
	}
}

// TestRegression_WebhookFailureBounded: a receiver that never comes up,
// or refuses for good (400, a redirect), ends the delivery as a failure
// — after every attempt for the first, at once for the others — within
// attempts × timeout plus the backoffs; past InFlight deliveries under
// MaxPending deliveries pending, the oldest is dropped; Close ends the
// waiting ones of a memory outbox as closed.
func TestRegression_WebhookFailureBounded(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	never := "https://" + ln.Addr().String() + "/"
	ln.Close()
	refuse := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/moved" {
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
			return
		}
		w.WriteHeader(http.StatusBadRequest)
	}))
	defer refuse.Close()
	tr := refuse.Client().Transport.(*http.Transport)
	for _, tc := range []struct {
		name, url, outcome string
		attempts           int
	}{
		{"never up", never, "error", 3},
		{"bad request", refuse.URL + "/", "status:400", 1},
		{"redirect", refuse.URL + "/moved", "status:302", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, ch := newSender(t, Options{URL: tc.url, Timeout: 200 * time.Millisecond, Backoff: 50 * time.Millisecond, Attempts: 3, Base: tr})
			start := time.Now()
			e := sendOne(t, s, ch, `{}`)
			if e.outcome != tc.outcome || e.attempts != tc.attempts {
				t.Errorf("ended %+v, want %s after %d", e, tc.outcome, tc.attempts)
			}
			if d := time.Since(start); d > 3*200*time.Millisecond+150*time.Millisecond+time.Second {
				t.Errorf("took %v", d)
			}
		})
	}
	// The outbox is bounded: past MaxPending the oldest is dropped.
	s, err := New(Options{URL: never, Timeout: 200 * time.Millisecond, Backoff: time.Hour, MaxPending: 2, Base: tr})
	if err != nil {
		t.Fatal(err)
	}
	ends := make(chan end, 3)
	s.o.OnEnd = func(_ Delivery, o, c string, n int) { ends <- end{o, c, n} }
	for range 3 {
		s.Send("visit.waiting", "d", []byte(`{}`))
		time.Sleep(20 * time.Millisecond)
	}
	if e := <-ends; e.outcome != Dropped {
		t.Errorf("third delivery past MaxPending 2 ended %+v, want the oldest dropped", e)
	}
	done := make(chan struct{})
	go func() { s.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.Fatal("Close waited out the backoff")
	}
	for range 2 {
		if e := <-ends; e.outcome != Closed {
			t.Errorf("waiting delivery ended %+v on Close, want closed", e)
		}
	}
}
