package gateway

import (
	"bufio"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/telegate/telegate/audit"
	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/page"
	"github.com/telegate/telegate/policies"
	"github.com/telegate/telegate/scope"
)

// record wraps the rest of the chain and writes one audit.Event of type
// "request" (request id, route, method, canonical path without query,
// status, client address, iss/sub, decision, reason) when the response
// starts — at its first WriteHeader, Write, Flush or Hijack, or when the
// handler returns having written nothing — and before the status line
// goes out: through audit.Committer.Commit, which returns once the line
// is written (write(2)). When it cannot be written, audit.on_failure
// (audit.on_failure_public for a public route) decides: "refuse" answers
// 503 instead (the page with the request id), "degrade" sends the
// response unrecorded (counted by the trail,
// telegate_edge_audit_unconfirmed_records_total). A response that breaks
// off after it started gets a second record, "request.end", with the
// reason. Then come the request metrics and at most one ordinary log line
// with no PHI: the request id, route, method, status, decision; the
// client address only as its pseudonym (audit.Pseudonym); no path (an
// upstream's paths name patients and records: /Patient/123, a visit's
// id — the trail holds it, joined by the request id), no query, no
// headers.
func (g *generation) record(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rw := &statusWriter{ResponseWriter: w, now: g.now, send: g.cfg.Server.SendTimeout, h2: r.ProtoMajor == 2}
		rw.commit = func(status int) bool { return g.commitRecord(rw, r, status) }
		if !rw.h2 {
			// What net/http writes itself before the handler's first write
			// (100 Continue) has the same bound.
			_ = rw.sendDeadline()
		}
		defer func() {
			// net/http writes the end of the response once the handler
			// returns (the buffered body, the last chunk): that write has
			// the same bound; an HTTP/2 stream's deadline ends with it.
			defer func() { _ = rw.sendDeadline() }()
			// A panic below (http.ErrAbortHandler from the proxy when a
			// stream breaks) is recorded, then passed on to net/http.
			p := recover()
			if p != nil {
				defer panic(p)
			}
			s := scope.From(r.Context())
			rs := stateFrom(r.Context())
			started := rw.committed
			if p != nil && rw.status != 0 && rs.reason == "" {
				// The status was sent and the response broke off: the
				// record must not read as a complete answer.
				rs.reason = scope.ReasonResponseCut
				if g.shuttingDown() {
					rs.reason = scope.ReasonShutdown
				}
			}
			if rw.status == 0 && p != nil {
				rw.status = http.StatusInternalServerError
			}
			if !started {
				if p == nil {
					// Nothing written: net/http sends 200 once the handler
					// returns, so the record (or the 503) goes first.
					rw.WriteHeader(http.StatusOK)
				} else {
					rw.committed = true
					rw.status = http.StatusInternalServerError
					g.audit.Record(r.Context(), g.requestEvent(r, rw.status))
				}
			} else if rs.reason == scope.ReasonResponseCut || rs.reason == scope.ReasonShutdown {
				e := g.requestEvent(r, rw.status)
				e.Type = "request.end"
				g.audit.Record(r.Context(), e)
			}
			if rw.status == 0 {
				rw.status = http.StatusOK
			}
			s.Status = rw.status
			e := g.requestEvent(r, rw.status)
			// An upgraded connection (101, WebSocket) answered when it
			// switched protocols; what follows is the connection's
			// lifetime, not the request's latency.
			end := g.now()
			if !rw.switched.IsZero() {
				end = rw.switched
			}
			elapsed := end.Sub(s.Start)
			label := e.RouteID
			if label == "" {
				label = "none"
			}
			g.metrics.requests.WithLabelValues(label, strconv.Itoa(rw.status)).Inc()
			g.metrics.duration.WithLabelValues(label).Observe(elapsed.Seconds())
			if e.Decision == "deny" && e.Reason != "" {
				g.metrics.denials.WithLabelValues(scope.Reason(e.Reason).Kind()).Inc()
			}
			if !g.log.Enabled(r.Context(), slog.LevelInfo) {
				return
			}
			g.log.LogAttrs(r.Context(), slog.LevelInfo, "request",
				slog.String("request_id", s.RequestID),
				slog.String("route", e.RouteID),
				slog.String("method", e.Method),
				slog.Int("status", rw.status),
				slog.String("client", audit.Pseudonym(g.pseudoKey, s.ClientAddr)),
				slog.String("decision", e.Decision),
				slog.String("reason", e.Reason),
				slog.Duration("duration", elapsed),
			)
		}()
		next.ServeHTTP(rw, r)
	})
}

// requestEvent is the "request" record of r answered with status, from
// the request's scope as it stands.
func (g *generation) requestEvent(r *http.Request, status int) audit.Event {
	s := scope.From(r.Context())
	rs := stateFrom(r.Context())
	route := s.RouteID
	if rs.own {
		route = policies.OwnRouteID
	}
	decision, reason := "deny", s.Decision.Reason
	if s.Decision.Allow {
		decision = "allow"
	}
	if rs.reason != "" {
		reason = rs.reason
	}
	if rs.own && reason == "" {
		decision = ""
	}
	method := r.Method
	if rs.method != "" {
		method = rs.method
	}
	e := audit.Event{
		Time: s.Start, Type: "request", RequestID: s.RequestID, RouteID: route,
		Method: method, Path: s.Path, Status: status, Client: s.ClientAddr.String(),
		Decision: decision, Reason: string(reason), Generation: g.ID,
	}
	if s.Identity != nil {
		e.Issuer, e.Subject = s.Identity.Issuer, s.Identity.Subject
	}
	if s.Decision.Allow && s.Decision.Reason == scope.ReasonBreakGlass {
		e.Purpose = audit.PurposeBTG
	}
	return e
}

// commitRecord writes r's record for status before the response starts.
// It returns false when the record could not be written and the route's
// setting is "refuse": the 503 has then been written in its place.
func (g *generation) commitRecord(rw *statusWriter, r *http.Request, status int) bool {
	e := g.requestEvent(r, status)
	c, ok := g.audit.(audit.Committer)
	if !ok {
		g.audit.Record(r.Context(), e)
		return true
	}
	err := c.Commit(r.Context(), e)
	if err == nil {
		return true
	}
	s := scope.From(r.Context())
	mode := g.cfg.Audit.OnFailure
	if s.Route != nil && s.Route.Policy != nil && s.Route.Policy.Public {
		mode = g.cfg.Audit.OnFailurePublic
	}
	if mode != config.AuditRefuse {
		return true
	}
	g.log.LogAttrs(r.Context(), slog.LevelError, "request refused: its audit record could not be written",
		slog.String("request_id", s.RequestID), slog.String("route", e.RouteID), slog.String("error", err.Error()))
	h := rw.ResponseWriter.Header()
	for k := range h {
		delete(h, k)
	}
	rw.status = http.StatusServiceUnavailable
	page.Error(&secWriter{ResponseWriter: rw.ResponseWriter, r: r, g: g}, r, http.StatusServiceUnavailable,
		"The request could not be recorded, so it was not served.", "Try again in a moment.")
	return false
}

// statusWriter records the final status and has the request's record
// written (commit) before the response starts. After a refused commit it
// swallows what the handler writes: the 503 took its place.
type statusWriter struct {
	http.ResponseWriter
	status    int
	commit    func(status int) bool
	committed bool
	refused   bool
	now       func() time.Time
	switched  time.Time // when the response switched protocols (101), or zero

	// send is server.send_timeout: every write to the client must make
	// progress within it (sendDeadline); h2 marks an HTTP/2 stream.
	send     time.Duration
	h2       bool
	buffered int // HTTP/2: body bytes written while they fit h2HandlerBuffer
}

// sendDeadline gives the next write to the client send to make progress
// (http.ResponseController.SetWriteDeadline: HTTP/1.1 the connection's
// deadline, HTTP/2 the stream's, past which net/http resets it). It
// returns the deadline's undo for HTTP/2, whose deadline fires whether a
// write is under way or not, so that idle time between writes does not
// count; an HTTP/1.1 deadline only acts on a write under way, and the
// next write moves it.
func (sw *statusWriter) sendDeadline() (undo func()) {
	if sw.send <= 0 || !sw.switched.IsZero() {
		return func() {}
	}
	rc := http.NewResponseController(sw.ResponseWriter)
	_ = rc.SetWriteDeadline(time.Now().Add(sw.send))
	if !sw.h2 {
		return func() {}
	}
	return func() { _ = rc.SetWriteDeadline(time.Time{}) }
}

// switching notes the moment the response switches protocols.
func (sw *statusWriter) switching() {
	if sw.switched.IsZero() && sw.now != nil {
		sw.switched = sw.now()
	}
}

func (sw *statusWriter) WriteHeader(code int) {
	if sw.refused {
		return
	}
	final := code >= 200 || code == http.StatusSwitchingProtocols
	if final && !sw.committed {
		sw.committed = true
		if !sw.commit(code) {
			sw.refused = true
			return
		}
	}
	if sw.status == 0 && final {
		sw.status = code
	}
	if code == http.StatusSwitchingProtocols {
		sw.switching()
	}
	sw.ResponseWriter.WriteHeader(code)
}

func (sw *statusWriter) Write(b []byte) (int, error) {
	if sw.status == 0 && !sw.refused {
		sw.WriteHeader(http.StatusOK)
	}
	if sw.refused {
		return len(b), nil
	}
	if sw.h2 && sw.buffered+len(b) <= h2HandlerBuffer {
		// It only fills net/http's buffer, which the deadline set when
		// the handler returns covers.
		sw.buffered += len(b)
		return sw.ResponseWriter.Write(b)
	}
	sw.buffered = h2HandlerBuffer + 1
	undo := sw.sendDeadline()
	n, err := sw.ResponseWriter.Write(b)
	undo()
	return n, err
}

// h2HandlerBuffer is what net/http's HTTP/2 server buffers of a handler's
// body before writing to the stream (its handlerChunkWriteSize, 4 KiB): a
// response whose body is no longer cannot block in Write, only in the
// write after the handler returns, so its writes need no deadline of
// their own (each costs a message to the connection's serve loop).
const h2HandlerBuffer = 4 << 10

// Flush implements http.Flusher.
func (sw *statusWriter) Flush() {
	if sw.status == 0 && !sw.refused {
		sw.WriteHeader(http.StatusOK)
	}
	if sw.refused {
		return
	}
	undo := sw.sendDeadline()
	_ = http.NewResponseController(sw.ResponseWriter).Flush()
	undo()
}

// errNotRecorded refuses a hijack whose record could not be written.
var errNotRecorded = errors.New("gateway: the request's audit record could not be written")

// Hijack implements http.Hijacker: a proxied upgrade (101) takes the
// connection, so its record is written first.
func (sw *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if !sw.committed {
		sw.committed = true
		if !sw.commit(http.StatusSwitchingProtocols) {
			sw.refused = true
		}
	}
	if sw.refused {
		return nil, nil, errNotRecorded
	}
	if sw.status == 0 {
		sw.status = http.StatusSwitchingProtocols
	}
	sw.switching()
	return http.NewResponseController(sw.ResponseWriter).Hijack()
}

// Unwrap lets http.ResponseController reach the connection.
func (sw *statusWriter) Unwrap() http.ResponseWriter { return sw.ResponseWriter }
