package relay

import (
	"fmt"

	"github.com/pion/logging"

	"github.com/telegate/telegate/audit"
)

// pionLoggerFactory routes pion's logs to slog: warnings and errors only,
// rate limited, through audit.RedactLibraryLine: every IP address replaced
// by its pseudonym and every quoted string (what a client sent) dropped
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
	l.s.log.Warn("turn: "+audit.RedactLibraryLine(msg, l.s.pseudonym), "scope", l.scope, "level", level)
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
