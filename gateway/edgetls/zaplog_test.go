package edgetls

import (
	"bytes"
	"log/slog"
	"net/netip"
	"strings"
	"testing"

	"go.uber.org/zap"
)

// TestCertmagicLogsDropClientAddresses: client addresses are PHI once
// joined to a visit; certmagic's handshake messages carry them.
func TestCertmagicLogsDropClientAddresses(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	hash := func(a netip.Addr) string { return "pseudo" }
	l := zapToSlog(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), hash)
	l.Named("handshake").With(zap.String("remote_ip", "198.51.100.7")).
		Error("tls-alpn challenge", zap.String("remote_addr", "203.0.113.9:4711"), zap.String("remote", "203.0.113.9:4711"),
			zap.String("server_name", "zq7marker.test"), zap.String("identifier", "zq7marker.test"), zap.Int("attempt", 2),
			zap.String("error", "dial 192.0.2.1:443: refused"))
	out := buf.String()
	for _, leak := range []string{"203.0.113.9", "198.51.100.7", "192.0.2.1", "zq7marker"} {
		if strings.Contains(out, leak) {
			t.Errorf("log carries client address %s: %s", leak, out)
		}
	}
	for _, want := range []string{`"level":"ERROR"`, `"msg":"tls-alpn challenge"`, `"error":"dial pseudo: refused"`, `"attempt":2`, `"logger":"handshake"`, `"library":"certmagic"`} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s: %s", want, out)
		}
	}

	// Away from a client, identifier is a configured name and is kept.
	buf.Reset()
	l.Info("obtaining certificate", zap.String("identifier", "gw.hospital.test"))
	if !strings.Contains(buf.String(), `"identifier":"gw.hospital.test"`) {
		t.Errorf("the configured name was dropped: %s", buf.String())
	}

	// Level filtering follows the slog handler.
	buf.Reset()
	quiet := zapToSlog(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn})), hash)
	quiet.Info("obtaining certificate")
	if buf.Len() != 0 {
		t.Errorf("info logged below the warn level: %s", buf.String())
	}
}
