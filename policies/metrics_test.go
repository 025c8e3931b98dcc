package policies

import (
	"net/netip"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/telegate/telegate/config"
)

// gather returns "name{label=value,...}" -> value for every sample of reg.
func gather(t *testing.T, c prometheus.Collector) map[string]float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			k := mf.GetName()
			for _, lp := range m.GetLabel() {
				k += "{" + lp.GetName() + "=" + lp.GetValue() + "}"
			}
			switch {
			case m.GetCounter() != nil:
				out[k] = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				out[k] = m.GetGauge().GetValue()
			}
		}
	}
	return out
}

func checkMetrics(t *testing.T, got, want map[string]float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("metrics %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v (all: %v)", k, got[k], v, got)
		}
	}
}

func TestLimiterMetrics(t *testing.T) {
	t.Parallel()
	r := NewLimiter(0, newClock().now)
	lim := config.RateLimit{Rate: 1, Burst: 1}
	a := netip.MustParseAddr("192.0.2.9")
	r.AllowClient("r", a, lim)
	r.AllowClient("r", a, lim)
	r.AllowClient("r", a, lim)
	r.AllowSubject("r", "iss\x00alice", config.DefaultRateLimits().PerSubject)
	checkMetrics(t, gather(t, r), map[string]float64{
		"telegate_control_ratelimit_refusals_total{by=client}":  2,
		"telegate_control_ratelimit_refusals_total{by=subject}": 0,
		"telegate_control_ratelimit_buckets{table=client}":      1,
		"telegate_control_ratelimit_buckets{table=subject}":     1,
	})
}

func TestInspectorMetrics(t *testing.T) {
	t.Parallel()
	in, _, _ := inspectorFor(t, true, false)
	srv, _ := serve(t, in, &config.Route{ID: "r"})
	req{"GET", "/r?page=1", "", ""}.do(t, srv)
	req{"GET", "/r?id=1'%20OR%20'1'='1", "", ""}.do(t, srv)
	checkMetrics(t, gather(t, in), map[string]float64{
		"telegate_control_inspection_requests_total":                    2,
		"telegate_control_inspection_matches_total{action=blocked}":     1,
		"telegate_control_inspection_matches_total{action=detect_only}": 0,
	})
}
