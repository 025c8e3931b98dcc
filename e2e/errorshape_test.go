package e2e

import (
	"encoding/json"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
)

// TestRegression_OneErrorShape: refusals from every plane — the gateway's
// own 404 and 405, a canonicalisation refusal, sign-in (a callback with a
// state no browser was given), the visits API and inspection — answer an
// API client with one JSON shape carrying the request id of the
// X-Request-Id header, not cached and not sniffed.
func TestRegression_OneErrorShape(t *testing.T) {
	d := startDemo(t, filepath.Join(t.TempDir(), "data"), freePort(t), freePort(t))
	b := newBrowser(t, d)
	sqli := url.Values{"id": {"1' OR '1'='1"}}.Encode()
	for _, tc := range []struct {
		plane, method, path, ctype, body string
		status                           int
		reason                           string
	}{
		{"gateway 404", "GET", "/.telegate/nonexistent", "", "", 404, "not-found"},
		{"gateway 405", "POST", "/.telegate/jwks.json", "", "", 405, "method-not-allowed"},
		{"canonicalisation", "GET", "/public/../admin/", "", "", 400, "bad-request"},
		{"sign-in callback", "GET", "/.telegate/callback/demo?state=forged&code=x", "", "", 400, "bad-request"},
		{"visits API", "GET", "/.telegate/visits", "", "", 401, "unauthenticated"},
		{"visits API body", "POST", "/.telegate/visits/join", "text/plain", "x", 401, "unauthenticated"},
		{"inspection", "POST", "/public/", "application/x-www-form-urlencoded", sqli, 403, "blocked"},
	} {
		t.Run(tc.plane, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, d.Base()+"/", strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			req.URL.Opaque, req.URL.RawQuery, _ = strings.Cut(tc.path, "?")
			req.Header.Set("Accept", "application/json")
			req.Header.Set("Origin", d.Base())
			if tc.ctype != "" {
				req.Header.Set("Content-Type", tc.ctype)
			}
			resp, body := b.do(b.noRedirect(), req)
			if resp.StatusCode != tc.status {
				t.Fatalf("%d, want %d: %.300s", resp.StatusCode, tc.status, body)
			}
			h := resp.Header
			if ct := h.Get("Content-Type"); ct != "application/json; charset=utf-8" {
				t.Errorf("Content-Type %q: %.300s", ct, body)
			}
			if h.Get("Cache-Control") != "no-store" || h.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("headers %v", h)
			}
			var fields map[string]json.RawMessage
			if err := json.Unmarshal(body, &fields); err != nil {
				t.Fatalf("not JSON: %v: %.300s", err, body)
			}
			var got struct {
				Status    int    `json:"status"`
				Error     string `json:"error"`
				Reason    string `json:"reason"`
				RequestID string `json:"request_id"`
			}
			dec := json.NewDecoder(strings.NewReader(string(body)))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&got); err != nil || len(fields) != 4 {
				t.Fatalf("not the one error shape (%v): %s", err, body)
			}
			if got.Status != tc.status || got.Reason != tc.reason || got.Error == "" {
				t.Errorf("body %+v, want status %d reason %q", got, tc.status, tc.reason)
			}
			if rid := h.Get("X-Request-Id"); rid == "" || got.RequestID != rid {
				t.Errorf("request id %q, header %q", got.RequestID, rid)
			}
		})
	}
}
