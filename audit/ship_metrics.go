package audit

import "github.com/prometheus/client_golang/prometheus"

var (
	descShipped = prometheus.NewDesc("telegate_edge_audit_shipped_records_total",
		"Audit records delivered to a shipping target since start (a record sent again after a failed delivery counts again).", []string{"target"}, nil)
	descShipPosition = prometheus.NewDesc("telegate_edge_audit_ship_position",
		"Chain position (seq) up to which a shipping target has acknowledged the trail; compare with telegate_edge_audit_records_total for the backlog.", []string{"target"}, nil)
	descShipFailing = prometheus.NewDesc("telegate_edge_audit_ship_failures",
		"Failed deliveries to a shipping target in a row (0 while it receives); alert when it stays above 0.", []string{"target"}, nil)
)

// Describe implements prometheus.Collector.
func (sh *Shipper) Describe(ch chan<- *prometheus.Desc) {
	ch <- descShipped
	ch <- descShipPosition
	ch <- descShipFailing
}

// Collect implements prometheus.Collector, per target ("syslog",
// "https"): telegate_edge_audit_shipped_records_total,
// telegate_edge_audit_ship_position and telegate_edge_audit_ship_failures.
func (sh *Shipper) Collect(ch chan<- prometheus.Metric) {
	for _, t := range sh.targets {
		ch <- prometheus.MustNewConstMetric(descShipped, prometheus.CounterValue, float64(t.shipped.Load()), t.name)
		ch <- prometheus.MustNewConstMetric(descShipPosition, prometheus.GaugeValue, float64(t.acked.Load()), t.name)
		ch <- prometheus.MustNewConstMetric(descShipFailing, prometheus.GaugeValue, float64(t.failures.Load()), t.name)
	}
}
