package gateway

import (
	"log/slog"
	"net/http"
	"strconv"

	"github.com/telegate/telegate/audit"
	"github.com/telegate/telegate/policies"
	"github.com/telegate/telegate/scope"
)

// record wraps the rest of the chain and, when the response is done,
// writes one audit.Event of type "request" (request id, route, method,
// canonical path without query, status, client address, iss/sub, decision,
// reason), the request metrics, and at most one ordinary log line with no
// PHI: the client address only as its pseudonym (audit.Pseudonym), no query, no headers.
func (g *generation) record(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rw := &statusWriter{ResponseWriter: w}
		defer func() {
			// A panic below (http.ErrAbortHandler from the proxy when a
			// stream breaks) is recorded, then passed on to net/http.
			p := recover()
			if p != nil {
				defer panic(p)
			}
			s := scope.From(r.Context())
			rs := stateFrom(r.Context())
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
			if rw.status == 0 {
				rw.status = http.StatusOK
			}
			s.Status = rw.status
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
				Method: method, Path: s.Path, Status: rw.status, Client: s.ClientAddr.String(),
				Decision: decision, Reason: string(reason), Generation: g.ID,
			}
			if s.Identity != nil {
				e.Issuer, e.Subject = s.Identity.Issuer, s.Identity.Subject
			}
			g.audit.Record(r.Context(), e)
			elapsed := g.now().Sub(s.Start)
			label := route
			if label == "" {
				label = "none"
			}
			g.metrics.requests.WithLabelValues(label, strconv.Itoa(rw.status)).Inc()
			g.metrics.duration.WithLabelValues(label).Observe(elapsed.Seconds())
			if decision == "deny" && reason != "" {
				g.metrics.denials.WithLabelValues(reason.Kind()).Inc()
			}
			if !g.log.Enabled(r.Context(), slog.LevelInfo) {
				return
			}
			g.log.LogAttrs(r.Context(), slog.LevelInfo, "request",
				slog.String("request_id", s.RequestID),
				slog.String("route", route),
				slog.String("method", method),
				slog.String("path", s.Path),
				slog.Int("status", rw.status),
				slog.String("client", audit.Pseudonym(g.pseudoKey, s.ClientAddr)),
				slog.String("decision", decision),
				slog.String("reason", string(reason)),
				slog.Duration("duration", elapsed),
			)
		}()
		next.ServeHTTP(rw, r)
	})
}

// statusWriter records the final status.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (sw *statusWriter) WriteHeader(code int) {
	if sw.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		sw.status = code
	}
	sw.ResponseWriter.WriteHeader(code)
}

func (sw *statusWriter) Write(b []byte) (int, error) {
	if sw.status == 0 {
		sw.status = http.StatusOK
	}
	return sw.ResponseWriter.Write(b)
}

// Flush implements http.Flusher.
func (sw *statusWriter) Flush() { _ = http.NewResponseController(sw.ResponseWriter).Flush() }

// Unwrap lets http.ResponseController reach the connection.
func (sw *statusWriter) Unwrap() http.ResponseWriter { return sw.ResponseWriter }
