package admission

import "github.com/prometheus/client_golang/prometheus"

// Metrics counts what the controllers of a node close or refuse, in
// telegate_edge_connections_closed_total{listener, reason} (reason: a
// Reason). It is a prometheus.Collector; register it once per registry
// and hand Events to each listener's controller.
type Metrics struct {
	closed *prometheus.CounterVec
}

// NewMetrics returns the counters, not yet registered.
func NewMetrics() *Metrics {
	return &Metrics{closed: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "telegate_edge_connections_closed_total",
		Help: "Connections closed or refused by connection admission, by listener and reason (source_pending, source_conns, pending_full, conns_full, first_byte_timeout, handshake_timeout).",
	}, []string{"listener", "reason"})}
}

// Events returns an Options.OnEvent that counts under listener ("public",
// "http", "admin", "turn-tls").
func (m *Metrics) Events(listener string) func(Event) {
	return func(e Event) { m.closed.WithLabelValues(listener, string(e.Reason)).Inc() }
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) { m.closed.Describe(ch) }

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) { m.closed.Collect(ch) }
