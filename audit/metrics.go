package audit

import "github.com/prometheus/client_golang/prometheus"

var (
	descWritten = prometheus.NewDesc("telegate_edge_audit_records_total",
		"Audit records written to the trail.", nil, nil)
	descDropped = prometheus.NewDesc("telegate_edge_audit_dropped_records_total",
		"Audit records dropped because the writer queue stayed full or the trail was closed; alert on any increase.", nil, nil)
	descErrors = prometheus.NewDesc("telegate_edge_audit_write_errors_total",
		"Failed writes or fsyncs of the audit trail.", nil, nil)
	descUnconfirmed = prometheus.NewDesc("telegate_edge_audit_unconfirmed_records_total",
		"Request records that could not be written before their response (write error, queue full, timeout): each response was refused with 503 or, with audit.on_failure degrade, served unrecorded.", nil, nil)
	descQueued = prometheus.NewDesc("telegate_edge_audit_queued_records",
		"Audit records waiting for the writer now; at the queue's size (audit.QueueSize) further records wait, then are refused or dropped.", nil, nil)
	descCheckpoints = prometheus.NewDesc("telegate_edge_audit_checkpoints_total",
		"Signed checkpoints of the audit trail written.", nil, nil)
	descCheckpointErrors = prometheus.NewDesc("telegate_edge_audit_checkpoint_errors_total",
		"Checkpoints of the audit trail that could not be written; alert on any increase.", nil, nil)
)

// Describe implements prometheus.Collector.
func (l *Log) Describe(ch chan<- *prometheus.Desc) {
	ch <- descWritten
	ch <- descDropped
	ch <- descErrors
	ch <- descUnconfirmed
	ch <- descQueued
	ch <- descCheckpoints
	ch <- descCheckpointErrors
}

// Collect implements prometheus.Collector:
// telegate_edge_audit_records_total, telegate_edge_audit_dropped_records_total,
// telegate_edge_audit_write_errors_total,
// telegate_edge_audit_unconfirmed_records_total,
// telegate_edge_audit_queued_records,
// telegate_edge_audit_checkpoints_total and
// telegate_edge_audit_checkpoint_errors_total.
func (l *Log) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(descWritten, prometheus.CounterValue, float64(l.Written()))
	ch <- prometheus.MustNewConstMetric(descDropped, prometheus.CounterValue, float64(l.Dropped()))
	ch <- prometheus.MustNewConstMetric(descErrors, prometheus.CounterValue, float64(l.WriteErrors()))
	ch <- prometheus.MustNewConstMetric(descUnconfirmed, prometheus.CounterValue, float64(l.Unconfirmed()))
	ch <- prometheus.MustNewConstMetric(descQueued, prometheus.GaugeValue, float64(l.Queued()))
	ch <- prometheus.MustNewConstMetric(descCheckpoints, prometheus.CounterValue, float64(l.Checkpoints()))
	ch <- prometheus.MustNewConstMetric(descCheckpointErrors, prometheus.CounterValue, float64(l.CheckpointErrors()))
}
