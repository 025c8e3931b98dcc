package gateway

import (
	"fmt"
	"log"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/telegate/telegate/audit"
)

// metrics are the edge plane's Prometheus metrics
// (telegate_<plane>_<thing>_<unit>).
type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	denials  *prometheus.CounterVec
}

func newMetrics(reg *prometheus.Registry) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "telegate_edge_requests_total", Help: "Requests answered, by route and status code.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "telegate_edge_request_duration_seconds", Help: "Time from the request head to the end of the response.",
			Buckets: prometheus.DefBuckets,
		}, []string{"route"}),
		denials: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "telegate_edge_denials_total", Help: "Requests refused, by the kind of their reason (\"role\", \"path\", \"rate\", …).",
		}, []string{"reason"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.denials} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// AdminHandler serves the admin listener: /healthz (200 while the process
// serves), /readyz (JSON Readiness: 200 once the listeners are up, a
// configuration is loaded and every Options.Dependencies check passes;
// 503 before, and from the moment a shutdown begins, so a load balancer
// stops sending; it names the running generation and its configuration
// hash), /metrics (Prometheus text format), the break-glass uses
// (GET /break-glass, POST /break-glass/{id}/review:
// policies.BreakGlass.AdminHandler) and POST /reload
// (Options.Reload: 200 with the generation now running, 409 with the
// problems, one per line, when the configuration is refused) and POST
// /drain (202; the drain of SIGTERM begins). None of it is reachable
// through Handler().
func (g *Gateway) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", g.serveReadyz)
	// A page in a browser on this host must not trigger a reload.
	mux.Handle("POST /reload", addressedHost(http.NewCrossOriginProtection().Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if g.o.Reload == nil {
			http.Error(w, "reload is not available on this node", http.StatusNotFound)
			return
		}
		id, hash, err := g.o.Reload()
		if err != nil {
			w.WriteHeader(http.StatusConflict)
			_, _ = fmt.Fprintf(w, "reload refused; generation %d keeps running\n%s\n", id, err)
			return
		}
		_, _ = fmt.Fprintf(w, "reloaded\ngeneration %d\nconfig_hash %s\n", id, hash)
	}))))
	// POST /drain is SIGTERM over HTTP, for orchestrators that cannot
	// send signals: the drain begins (BeginShutdown, Options.OnDrain) and
	// the process exits once it is done. 202 at once.
	mux.Handle("POST /drain", addressedHost(http.NewCrossOriginProtection().Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		g.BeginShutdown()
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write([]byte("draining\n"))
	}))))
	mux.Handle("GET /metrics", promhttp.HandlerFor(g.reg, promhttp.HandlerOpts{Registry: g.reg}))
	if g.o.BreakGlass != nil {
		// The uses name people: like /reload, only by address, and never
		// from a page in a browser on this host.
		bg := addressedHost(http.NewCrossOriginProtection().Handler(g.o.BreakGlass.AdminHandler()))
		mux.Handle("/break-glass", bg)
		mux.Handle("/break-glass/", bg)
	}
	return mux
}

// addressedHost answers 421 Misdirected Request (RFC 9110 §15.5.20) to a
// request whose Host is not an IP address or "localhost". POST /reload
// takes it: a page whose own name was rebound to the admin listener's
// address (DNS rebinding) is same-origin with itself and would get past
// the cross-origin check. The read-only endpoints accept any Host, since
// probes and scrapers name their targets.
func addressedHost(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(r.Host); err == nil {
			host = h
		}
		host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
		if _, err := netip.ParseAddr(host); err != nil && !strings.EqualFold(host, "localhost") {
			http.Error(w, "the admin listener is reached by its address", http.StatusMisdirectedRequest)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// errorLog is net/http's, the HTTP/2 server's and the reverse proxy's
// ErrorLog: their lines go to the gateway's logger at warning level
// through audit.RedactLibraryLine — every IP address replaced by its
// pseudonym, since some of them name the client ("http: panic serving
// 203.0.113.7:51234: …"), and every quoted string dropped, since that is
// how they quote what a client sent ("http2: server: error reading
// preface from client …: bogus greeting \"…\"").
func (g *Gateway) errorLog() *log.Logger {
	return log.New(redactingWriter{g}, "", 0)
}

type redactingWriter struct{ g *Gateway }

func (w redactingWriter) Write(p []byte) (int, error) {
	msg := strings.TrimRight(string(p), "\n")
	w.g.log.Warn(audit.RedactLibraryLine(msg, func(a netip.Addr) string { return audit.Pseudonym(w.g.pseudoKey, a) }))
	return len(p), nil
}
