package relay

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/telegate/telegate/audit"
	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/gateway"
)

// TestRegression_PseudonymKeyIsNotAuditKey: client addresses in ordinary
// logs are pseudonyms keyed with their own key (<data_dir>/keys/
// pseudonym.key), not with the audit chain key, and the gateway and the
// relay give one address — in its IPv4 or IPv4-mapped IPv6 form — the
// same pseudonym.
func TestRegression_PseudonymKeyIsNotAuditKey(t *testing.T) {
	dir := t.TempDir()
	auditKey, err := audit.Key(config.Audit{}, dir)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := audit.PseudonymKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(pk, auditKey) {
		t.Fatal("the pseudonym key is the audit key")
	}
	v4 := netip.MustParseAddr("192.0.2.10")
	want := audit.Pseudonym(pk, v4)
	for _, k := range [][]byte{auditKey, append([]byte("telegate log address hash\x00"), auditKey...)} {
		m := hmac.New(sha256.New, k)
		m.Write(v4.AsSlice())
		sum := m.Sum(nil)
		for _, n := range []int{6, 12, 16} {
			if h := hex.EncodeToString(sum[:n]); want == h || want == "ip-"+h {
				t.Fatalf("pseudonym %q is an HMAC with the audit key", want)
			}
		}
	}

	// The gateway, loading the key itself from the same data directory,
	// logs the IPv4-mapped form of the address with the same pseudonym.
	var logs bytes.Buffer
	cfg := &config.Config{DataDir: dir, Assertion: config.Assertion{TTL: time.Minute}}
	cfg.ApplyDefaults()
	g, err := gateway.New(gateway.Options{
		Config: cfg,
		Logger: slog.New(slog.NewJSONHandler(&logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodGet, "https://app.example.test/", nil)
	req.RemoteAddr = "[::ffff:192.0.2.10]:40000"
	g.Handler().ServeHTTP(httptest.NewRecorder(), req)
	var line struct {
		Msg    string `json:"msg"`
		Client string `json:"client"`
	}
	if err := json.Unmarshal(bytes.TrimSpace(logs.Bytes()), &line); err != nil || line.Msg != "request" {
		t.Fatalf("gateway log %q: %v", logs.String(), err)
	}
	if line.Client != want {
		t.Errorf("gateway logs the client as %q, want %q", line.Client, want)
	}

	// The relay, handed the node's key, logs the IPv4 form alike.
	s, err := New(Options{
		Config: config.Relay{
			Enabled: true, Listen: "127.0.0.1:0", UDPSockets: 1,
			RelayAddresses: []netip.Addr{netip.MustParseAddr("127.0.0.1")},
			PortMin:        20000, PortMax: 29999,
			Secrets: []string{"0123456789abcdef-test-secret"},
		},
		Audit:        &auditLog{},
		Logger:       slog.New(slog.DiscardHandler),
		PseudonymKey: pk,
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []netip.Addr{v4, netip.MustParseAddr("::ffff:192.0.2.10")} {
		if got := s.pseudonym(a); got != want {
			t.Errorf("relay logs %v as %q, want %q", a, got, want)
		}
	}
	if got := audit.RedactAddrs("peer 192.0.2.10:3478 refused", s.pseudonym); got != "peer "+want+" refused" {
		t.Errorf("redacted relay log %q", got)
	}
}
