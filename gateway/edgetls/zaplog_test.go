package edgetls

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"go.uber.org/zap"
)

// TestCertmagicLogsDropClientAddresses: client addresses are PHI once
// joined to a visit; certmagic's handshake messages carry them.
func TestCertmagicLogsDropClientAddresses(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	l := zapToSlog(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	l.Named("handshake").With(zap.String("remote_ip", "198.51.100.7")).
		Error("tls-alpn challenge", zap.String("remote_addr", "203.0.113.9:4711"), zap.String("remote", "203.0.113.9:4711"),
			zap.String("server_name", "gw.hospital.test"), zap.Int("attempt", 2))
	out := buf.String()
	for _, leak := range []string{"203.0.113.9", "198.51.100.7"} {
		if strings.Contains(out, leak) {
			t.Errorf("log carries client address %s: %s", leak, out)
		}
	}
	for _, want := range []string{`"level":"ERROR"`, `"msg":"tls-alpn challenge"`, `"server_name":"gw.hospital.test"`, `"attempt":2`, `"logger":"handshake"`, `"library":"certmagic"`} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s: %s", want, out)
		}
	}

	// Level filtering follows the slog handler.
	buf.Reset()
	quiet := zapToSlog(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn})))
	quiet.Info("obtaining certificate")
	if buf.Len() != 0 {
		t.Errorf("info logged below the warn level: %s", buf.String())
	}
}
