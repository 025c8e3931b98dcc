package policies

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/telegate/telegate/audit"
	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/grants"
)

// notifySink keeps the "break-glass.notify" records.
type notifySink struct{ ev chan audit.Event }

func (s notifySink) Record(_ context.Context, e audit.Event) {
	if e.Type == "break-glass.notify" {
		s.ev <- e
	}
}

// TestRegression_BreakGlassWebhookFailureAudited: every way a delivery
// can fail — an error status, a redirect (never followed), a receiver
// slower than the timeout, a closed port, a certificate not trusted — is
// an audited "break-glass.notify" deny after its retries (none for a
// redirect, which will not pass), and the grant stands; a good receiver
// is an audited delivery.
func TestRegression_BreakGlassWebhookFailureAudited(t *testing.T) {
	t.Parallel()
	var followed atomic.Bool
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusAccepted) })
	mux.HandleFunc("/fail", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusInternalServerError) })
	mux.HandleFunc("/moved", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/elsewhere", http.StatusTemporaryRedirect)
	})
	mux.HandleFunc("/elsewhere", func(w http.ResponseWriter, r *http.Request) { followed.Store(true) })
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(time.Second):
		case <-r.Context().Done():
		}
	})
	srv := httptest.NewTLSServer(mux)
	defer srv.Close()
	trusted := srv.Client().Transport.(*http.Transport)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "https://" + ln.Addr().String() + "/"
	ln.Close()

	rule := &BreakGlassRule{Allow: []config.Rule{{Roles: []string{"clinician"}}}, Duration: time.Minute}
	for _, tc := range []struct {
		name, url string
		base      *http.Transport
		decision  string
		reason    string
		attempts  string
	}{
		{"delivered", srv.URL + "/ok", trusted, "allow", "delivered", "1"},
		{"error status", srv.URL + "/fail", trusted, "deny", "status:500", "3"},
		{"redirect", srv.URL + "/moved", trusted, "deny", "status:307", "1"},
		{"slower than the timeout", srv.URL + "/slow", trusted, "deny", "error", "3"},
		{"closed port", closed, trusted, "deny", "error", "3"},
		{"untrusted certificate", srv.URL + "/ok", nil, "deny", "error", "3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hook, err := NewWebhookTuned(config.BreakGlassWebhook{URL: tc.url, Timeout: 300 * time.Millisecond},
				WebhookTuning{Base: tc.base, Attempts: 3, Backoff: 20 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			sink := notifySink{make(chan audit.Event, 1)}
			bg := newTestBreakGlass(t, sink, nil, grants.Limits{})
			bg.hook = hook
			g, err := bg.Grant(context.Background(), bgRoute("r", rule), clinician(), "emergency-care")
			if err != nil {
				t.Fatalf("the grant must stand whatever the webhook does: %v", err)
			}
			select {
			case e := <-sink.ev:
				if e.Decision != tc.decision || e.Reason != tc.reason || e.Attrs["grant_id"] != g.ID || e.Purpose != audit.PurposeBTG || e.Attrs["attempts"] != tc.attempts {
					t.Errorf("notify record %+v, want %s %s for %s", e, tc.decision, tc.reason, g.ID)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("no notify record")
			}
			if !bg.Active(context.Background(), "r", clinician()) {
				t.Error("grant not active")
			}
		})
	}
	if followed.Load() {
		t.Error("the webhook followed a redirect")
	}
	if _, err := NewWebhook(config.BreakGlassWebhook{URL: "http://127.0.0.1:1/", Timeout: time.Second}, nil); err == nil {
		t.Error("a webhook over plain http was accepted")
	}
}
