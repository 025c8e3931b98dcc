package edgetls

import (
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"sort"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/telegate/telegate/audit"
)

// droppedLogKeys are certmagic log fields that are never forwarded: what
// a client sent (its address, which is PHI once joined to a visit,
// docs/architecture.md principle 6; its ClientHello and the server name
// in it and its cipher suites; the URI, Host and User-Agent of a request to the HTTP-01
// challenge path), which certmagic names in handshake and challenge
// messages.
var droppedLogKeys = map[string]bool{
	"remote":        true,
	"remote_addr":   true,
	"remote_ip":     true,
	"remote_port":   true,
	"client_ip":     true,
	"client_hello":  true,
	"cipher_suites": true,
	"server_name":   true,
	"sni":           true,
	"uri":           true,
	"user_agent":    true,
}

// clientContextKeys mark an entry about a client's handshake or request:
// there "identifier" is the name the client asked for (SNI, Host) and is
// dropped too; elsewhere it is a configured name being obtained or renewed.
var clientContextKeys = []string{"remote", "remote_addr", "remote_ip", "server_name", "sni", "uri", "user_agent", "client_hello"}

// zapToSlog returns a zap logger whose entries go to l, so certmagic's logs
// share telegate's format and level; the message and every string field
// pass through audit.RedactAddrs with hash (the node's pseudonym).
func zapToSlog(l *slog.Logger, hash func(netip.Addr) string) *zap.Logger {
	return zap.New(&slogCore{h: l.With("library", "certmagic").Handler(), hash: hash})
}

// slogCore is a zapcore.Core writing to a slog.Handler.
type slogCore struct {
	h      slog.Handler
	hash   func(netip.Addr) string
	attrs  []slog.Attr
	client bool // a field of With marked a client's context
}

func slogLevel(l zapcore.Level) slog.Level {
	switch {
	case l <= zapcore.DebugLevel:
		return slog.LevelDebug
	case l == zapcore.InfoLevel:
		return slog.LevelInfo
	case l == zapcore.WarnLevel:
		return slog.LevelWarn
	default:
		return slog.LevelError
	}
}

func (c *slogCore) Enabled(l zapcore.Level) bool {
	return c.h.Enabled(context.Background(), slogLevel(l))
}

func (c *slogCore) With(fs []zapcore.Field) zapcore.Core {
	n := &slogCore{h: c.h, hash: c.hash, client: c.client || clientContext(fs), attrs: make([]slog.Attr, 0, len(c.attrs)+len(fs))}
	n.attrs = append(n.attrs, c.attrs...)
	n.attrs = append(n.attrs, c.fieldsToAttrs(fs, n.client)...)
	return n
}

func clientContext(fs []zapcore.Field) bool {
	for _, f := range fs {
		if slices.Contains(clientContextKeys, f.Key) {
			return true
		}
	}
	return false
}

func (c *slogCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *slogCore) Write(e zapcore.Entry, fs []zapcore.Field) error {
	r := slog.NewRecord(e.Time, slogLevel(e.Level), audit.RedactAddrs(e.Message, c.hash), 0)
	if e.LoggerName != "" {
		r.AddAttrs(slog.String("logger", e.LoggerName))
	}
	r.AddAttrs(c.attrs...)
	r.AddAttrs(c.fieldsToAttrs(fs, c.client || clientContext(fs))...)
	return c.h.Handle(context.Background(), r)
}

func (c *slogCore) Sync() error { return nil }

func (c *slogCore) fieldsToAttrs(fs []zapcore.Field, client bool) []slog.Attr {
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range fs {
		if droppedLogKeys[f.Key] || client && f.Key == "identifier" {
			continue
		}
		f.AddTo(enc)
	}
	keys := make([]string, 0, len(enc.Fields))
	for k := range enc.Fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	attrs := make([]slog.Attr, 0, len(keys))
	for _, k := range keys {
		v := enc.Fields[k]
		if s, ok := v.(string); ok {
			v = audit.RedactAddrs(s, c.hash)
		}
		attrs = append(attrs, slog.Any(k, v))
	}
	return attrs
}
