package gateway

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/telegate/telegate/config"
)

// TestRegression_UpgradeLatencyExcludesConnectionLifetime: the request
// duration histogram measures a WebSocket request up to its 101, not the
// life of the connection that follows — on telegate's own endpoints
// (/.telegate/…, signaling) and on proxied WebSocket routes alike.
func TestRegression_UpgradeLatencyExcludesConnectionLifetime(t *testing.T) {
	t.Parallel()
	const held = 1500 * time.Millisecond
	hold := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
		if err != nil {
			return
		}
		defer c.CloseNow()
		_, _, _ = c.Read(r.Context()) // until the client closes
	})
	upstream := httptest.NewServer(hold)
	t.Cleanup(upstream.Close)
	s := serveTestGateway(t, func(c *config.Config, o *Options) {
		o.Endpoints = []Endpoint{{Prefix: "/.telegate/visits", Handler: hold}}
		for i := range c.Routes {
			if c.Routes[i].ID == "clinic" {
				c.Routes[i].WebSocket = true
				c.Routes[i].Upstream = upstream.URL
			}
		}
	})
	for _, tc := range []struct{ name, path, route string }{
		{"own endpoint", "/.telegate/visits/x/signal", ""},
		{"proxied route", "/clinic/live", "clinic"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hc := s.client(s.addr)
			hc.Transport.(*http.Transport).ForceAttemptHTTP2 = false
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, _, err := websocket.Dial(ctx, "wss://"+appHost+tc.path, &websocket.DialOptions{
				HTTPClient: hc, HTTPHeader: http.Header{"Origin": {"https://" + appHost}, "Cookie": {"tg-test=alice"}},
			})
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			time.Sleep(held)
			_ = c.Close(websocket.StatusNormalClosure, "")
			// The record is written once the handler returns.
			var sum float64
			var n uint64
			for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline) && n == 0; time.Sleep(20 * time.Millisecond) {
				sum, n = durationOf(t, s, tc.route)
			}
			if n == 0 {
				t.Fatal("no duration observed")
			}
			if sum >= held.Seconds()/2 {
				t.Fatalf("%d observations summing %.3fs for a connection held %v: the histogram counts its lifetime", n, sum, held)
			}
		})
	}
}

// durationOf returns the sum and count of
// telegate_edge_request_duration_seconds for route; "" stands for the
// label of telegate's own endpoints (any but "clinic" and "public").
func durationOf(t *testing.T, s *served, route string) (float64, uint64) {
	t.Helper()
	mfs, err := s.g.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	var n uint64
	for _, mf := range mfs {
		if mf.GetName() != "telegate_edge_request_duration_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			label := ""
			for _, l := range m.GetLabel() {
				if l.GetName() == "route" {
					label = l.GetValue()
				}
			}
			if (route == "" && label != "clinic" && label != "public") || label == route {
				sum += m.GetHistogram().GetSampleSum()
				n += m.GetHistogram().GetSampleCount()
			}
		}
	}
	return sum, n
}
