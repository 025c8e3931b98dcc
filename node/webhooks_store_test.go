package node

import (
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/telegate/telegate/audit"
	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/internal/redistest"
	"github.com/telegate/telegate/internal/webhook"
	"github.com/telegate/telegate/policies"
)

// TestRegression_WebhookDeliveryOutlivesNodeRestart: a break-glass
// delivery whose receiver was down when the node's sender stopped waits
// in the node's outbox — the file webhooks.db in the data directory with
// file sessions, the sessions' Redis otherwise — and the node started
// again delivers it to the receiver, now up, with the same delivery id,
// and audits it as delivered.
func TestRegression_WebhookDeliveryOutlivesNodeRestart(t *testing.T) {
	rdb := redistest.Start(t)
	for _, store := range []string{"file", "redis"} {
		t.Run(store, func(t *testing.T) {
			got := make(chan string, 4)
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				got <- r.Header.Get(webhook.DeliveryHeader)
			}))
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addr := ln.Addr().String()
			ln.Close() // the receiver is down at first
			srv.StartTLS()
			defer srv.Close()
			ca := filepath.Join(t.TempDir(), "hook-ca.pem")
			if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg := nodeConfigWith(t, rdb, fmt.Sprintf("break_glass:\n  webhook:\n    url: https://%s/hook\n    ca_file: %s\n", addr, ca))
			cfg.Sessions.Store = store
			if store == "file" {
				cfg.Sessions.EncryptionKeyFile = ""
			}

			// The node's sender, before the stop: the receiver refuses the
			// connection, the delivery waits for its retry when it stops.
			hooks, err := openWebhookStore(cfg)
			if err != nil {
				t.Fatal(err)
			}
			ends := make(chan string, 4)
			o := webhookOptions(cfg, nil, hooks, policies.WebhookQueue)
			o.URL, o.Timeout, o.Backoff = cfg.BreakGlass.Webhook.URL, time.Second, 2*time.Second
			o.OnEnd = func(_ webhook.Delivery, outcome, _ string, _ int) { ends <- outcome }
			s, err := webhook.New(o)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := json.Marshal(policies.WebhookEvent{Type: "break-glass.grant", Purpose: audit.PurposeBTG,
				UseFacts: policies.UseFacts{GrantID: "grant-restart-1", Route: "public", Issuer: "https://idp.test", Subject: "dr-1"}})
			s.Send("break-glass.grant", "grant-restart-1", body)
			time.Sleep(500 * time.Millisecond) // the first attempt fails; the stop comes during the backoff
			s.Close()
			if err := hooks.Close(); err != nil {
				t.Fatal(err)
			}
			if len(ends) != 0 {
				t.Fatalf("the delivery ended before the restart: %s", <-ends)
			}
			if store == "file" {
				if _, err := os.Stat(filepath.Join(cfg.DataDir, webhook.BoltFile)); err != nil {
					t.Fatalf("no outbox file in the data directory: %v", err)
				}
			}

			// The receiver comes up at the address; the node starts.
			l2, err := net.Listen("tcp", addr)
			if err != nil {
				t.Skipf("the port was taken meanwhile: %v", err)
			}
			up := httptest.NewUnstartedServer(srv.Config.Handler)
			up.Listener.Close()
			up.Listener, up.TLS = l2, srv.TLS
			up.StartTLS()
			defer up.Close()
			_, _ = runNode(t, cfg)
			select {
			case id := <-got:
				if id != "grant-restart-1" {
					t.Errorf("delivery id %q", id)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("the restarted node never delivered")
			}
			deadline := time.Now().Add(10 * time.Second)
			for !notifyAudited(t, cfg, "grant-restart-1") {
				if time.Now().After(deadline) {
					t.Fatal("the delivery after the restart is not audited")
				}
				time.Sleep(100 * time.Millisecond)
			}
		})
	}
}

// notifyAudited reports whether cfg's trail holds an allowed
// "break-glass.notify" for grant.
func notifyAudited(t *testing.T, cfg *config.Config, grant string) bool {
	t.Helper()
	for _, e := range trailEvents(t, cfg) {
		if e.Type == "break-glass.notify" && e.Attrs["grant_id"] == grant && e.Decision == "allow" {
			return true
		}
	}
	return false
}
