package audit

import "github.com/prometheus/client_golang/prometheus"

var (
	descWritten = prometheus.NewDesc("telegate_edge_audit_records_total",
		"Audit records written to the trail.", nil, nil)
	descDropped = prometheus.NewDesc("telegate_edge_audit_dropped_records_total",
		"Audit records dropped because the writer queue stayed full or the trail was closed; alert on any increase.", nil, nil)
	descErrors = prometheus.NewDesc("telegate_edge_audit_write_errors_total",
		"Failed writes or fsyncs of the audit trail.", nil, nil)
)

// Describe implements prometheus.Collector.
func (l *Log) Describe(ch chan<- *prometheus.Desc) {
	ch <- descWritten
	ch <- descDropped
	ch <- descErrors
}

// Collect implements prometheus.Collector:
// telegate_edge_audit_records_total, telegate_edge_audit_dropped_records_total
// and telegate_edge_audit_write_errors_total.
func (l *Log) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(descWritten, prometheus.CounterValue, float64(l.Written()))
	ch <- prometheus.MustNewConstMetric(descDropped, prometheus.CounterValue, float64(l.Dropped()))
	ch <- prometheus.MustNewConstMetric(descErrors, prometheus.CounterValue, float64(l.WriteErrors()))
}
