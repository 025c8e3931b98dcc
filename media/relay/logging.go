package relay

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"

	"github.com/pion/logging"
)

// pionLoggerFactory routes pion's logs to slog: warnings and errors only,
// rate limited, with every IP address replaced by its keyed hash
// (docs/architecture.md principle 6). Pion's debug and info lines name client and
// peer addresses on every packet and are dropped.
type pionLoggerFactory struct{ s *Server }

func (f pionLoggerFactory) NewLogger(scope string) logging.LeveledLogger {
	return pionLogger{s: f.s, scope: scope}
}

type pionLogger struct {
	s     *Server
	scope string
}

func (l pionLogger) emit(level, msg string) {
	if !l.s.logLimit.Allow() {
		return
	}
	l.s.log.Warn("turn: "+redactAddrs(msg, l.s.pseudonym), "scope", l.scope, "level", level)
}

func (pionLogger) Trace(string)          {}
func (pionLogger) Tracef(string, ...any) {}
func (pionLogger) Debug(string)          {}
func (pionLogger) Debugf(string, ...any) {}
func (pionLogger) Info(string)           {}
func (pionLogger) Infof(string, ...any)  {}
func (l pionLogger) Warn(msg string)     { l.emit("warn", msg) }
func (l pionLogger) Warnf(format string, args ...any) {
	l.emit("warn", fmt.Sprintf(format, args...))
}
func (l pionLogger) Error(msg string) { l.emit("error", msg) }
func (l pionLogger) Errorf(format string, args ...any) {
	l.emit("error", fmt.Sprintf(format, args...))
}

// addrToken matches anything that might be an IPv4 or IPv6 address, with
// or without a port or brackets.
var addrToken = regexp.MustCompile(`[\[]?[0-9A-Fa-f:.]*[:.][0-9A-Fa-f:.]*[\]]?(?::[0-9]+)?(?:%[0-9A-Za-z_.-]+)?`)

// redactAddrs replaces every IP address (with or without port) in msg by
// hash(addr).
func redactAddrs(msg string, hash func(netip.Addr) string) string {
	return addrToken.ReplaceAllStringFunc(msg, func(tok string) string {
		if ap, err := netip.ParseAddrPort(tok); err == nil {
			return hash(ap.Addr())
		}
		t := strings.TrimSuffix(strings.TrimPrefix(tok, "["), "]")
		if a, err := netip.ParseAddr(t); err == nil {
			return hash(a)
		}
		// A trailing ":" or "." from prose ("from 1.2.3.4:") is not part
		// of the address.
		if u := strings.TrimRight(t, ":."); u != t {
			if a, err := netip.ParseAddr(u); err == nil {
				return hash(a) + t[len(u):]
			}
		}
		if strings.ContainsAny(t, ".:") && strings.ContainsAny(t, "0123456789") && len(t) >= 3 && looksNumeric(t) {
			return "[addr]"
		}
		return tok
	})
}

// looksNumeric: only hex digits and separators, at least two separators.
func looksNumeric(t string) bool {
	seps := strings.Count(t, ".") + strings.Count(t, ":")
	return seps >= 2
}
