package relay

import (
	"errors"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the relay's Prometheus metrics (names
// telegate_media_relay_*). No label carries an address or an id.
type metrics struct {
	active  prometheus.Gauge
	totals  *prometheus.CounterVec
	denials *prometheus.CounterVec
	drops   *prometheus.CounterVec
	packets prometheus.Counter
	bytes   prometheus.Counter
	tls     *prometheus.CounterVec
	// carried counts the bytes of packets, as bytes does, for the
	// relay's own load figure (Server.Throughput).
	carried atomic.Uint64
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		active: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "telegate_media_relay_allocations_active",
			Help: "TURN allocations currently open.",
		}),
		totals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "telegate_media_relay_allocations_total",
			Help: "Allocate outcomes: created, unauthorized, expired, revoked (ended visit or removed participant; 401), not_admitted, unsupported_transport, address_family (440), moved (the visit has another relay; 300 ALTERNATE-SERVER), rate_limited, quota_participant, quota_visit, quota_total, error.",
		}, []string{"outcome"}),
		denials: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "telegate_media_relay_permission_denials_total",
			Help: "Refused peer operations and packets by reason: deny_list, not_in_visit, bad_request, allocation_mismatch, wrong_credentials, send, ingress, unauthenticated_rate, amplification (an answer without MESSAGE-INTEGRITY larger than 4 times its request). Drops for capacity are telegate_media_relay_dropped_datagrams_total.",
		}, []string{"reason"}),
		drops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "telegate_media_relay_dropped_datagrams_total",
			Help: "Datagrams of admitted allocations dropped for capacity, not refused, by reason: bandwidth (past relay.bandwidth_bits_per_second), queue_full (an allocation's inbox full), tls_send_queue (a message for a TURN-over-TLS client whose send queue is full). A loaded machine drops some in healthy calls, as any UDP path does.",
		}, []string{"reason"}),
		packets: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "telegate_media_relay_packets_total",
			Help: "Datagrams relayed from one allocation to another.",
		}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "telegate_media_relay_bytes_total",
			Help: "Payload bytes relayed, counted like telegate_media_relay_packets_total.",
		}),
		tls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "telegate_media_relay_tls_connections_closed_total",
			Help: "TURN-over-TLS connections closed by reason: allocate_timeout (no allocation within relay.tls_allocate_timeout), write_stalled (the client did not read within the write deadline), evicted (a connection without allocation gave its slot to a new one), revoked (its allocation's participant was removed or its visit ended), refused (no slot, or the address already connected), idle, ended (by the client or a bad frame), shutdown.",
		}, []string{"reason"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.active, m.totals, m.denials, m.drops, m.packets, m.bytes, m.tls} {
			if err := reg.Register(c); err != nil {
				var are prometheus.AlreadyRegisteredError
				if errors.As(err, &are) {
					return nil, errors.New("relay: metrics already registered on this registry")
				}
				return nil, err
			}
		}
	}
	return m, nil
}

func (m *metrics) total(outcome string) { m.totals.WithLabelValues(outcome).Inc() }

func (m *metrics) denial(reason string) { m.denials.WithLabelValues(reason).Inc() }

// drop counts a datagram dropped for capacity (see metrics.drops).
func (m *metrics) drop(reason string) { m.drops.WithLabelValues(reason).Inc() }

func (m *metrics) tlsClosed(reason string) { m.tls.WithLabelValues(reason).Inc() }

func (m *metrics) packet(n int) {
	m.packets.Inc()
	m.bytes.Add(float64(n))
	m.carried.Add(uint64(n))
}
