package policies

import "github.com/prometheus/client_golang/prometheus"

var (
	descRateRefusals = prometheus.NewDesc("telegate_control_ratelimit_refusals_total",
		"Requests refused by a rate limit, by bucket kind (client, subject).", []string{"by"}, nil)
	descRateBuckets = prometheus.NewDesc("telegate_control_ratelimit_buckets",
		"Token buckets held, by table (client, subject); each table is capped by rate_limits.max_clients.", []string{"table"}, nil)
	descInspected = prometheus.NewDesc("telegate_control_inspection_requests_total",
		"Requests run through the inspection rules.", nil, nil)
	descInspectMatched = prometheus.NewDesc("telegate_control_inspection_matches_total",
		"Requests the inspection rules would block, by action taken (blocked, detect_only).", []string{"action"}, nil)
)

// Describe implements prometheus.Collector.
func (l *Limiter) Describe(ch chan<- *prometheus.Desc) {
	ch <- descRateRefusals
	ch <- descRateBuckets
}

// Collect implements prometheus.Collector: telegate_control_ratelimit_refusals_total{by}
// and telegate_control_ratelimit_buckets{table}. Labels never carry an
// address or a subject.
func (l *Limiter) Collect(ch chan<- prometheus.Metric) {
	byClient, bySubject := l.Limited()
	clients, subjects := l.Len()
	ch <- prometheus.MustNewConstMetric(descRateRefusals, prometheus.CounterValue, float64(byClient), "client")
	ch <- prometheus.MustNewConstMetric(descRateRefusals, prometheus.CounterValue, float64(bySubject), "subject")
	ch <- prometheus.MustNewConstMetric(descRateBuckets, prometheus.GaugeValue, float64(clients), "client")
	ch <- prometheus.MustNewConstMetric(descRateBuckets, prometheus.GaugeValue, float64(subjects), "subject")
}

// Describe implements prometheus.Collector.
func (i *Inspector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descInspected
	ch <- descInspectMatched
}

// Collect implements prometheus.Collector:
// telegate_control_inspection_requests_total and
// telegate_control_inspection_matches_total{action}.
func (i *Inspector) Collect(ch chan<- prometheus.Metric) {
	inspected, blocked, detected := i.Stats()
	ch <- prometheus.MustNewConstMetric(descInspected, prometheus.CounterValue, float64(inspected))
	ch <- prometheus.MustNewConstMetric(descInspectMatched, prometheus.CounterValue, float64(blocked), "blocked")
	ch <- prometheus.MustNewConstMetric(descInspectMatched, prometheus.CounterValue, float64(detected), "detect_only")
}
