package audit

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestLogMetrics(t *testing.T) {
	t.Parallel()
	l, err := OpenWithLogger(filepath.Join(t.TempDir(), "a.log"), testKey, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	l.Record(context.Background(), Event{Type: "request"})
	l.Record(context.Background(), Event{Type: "request"})
	l.Close()
	l.Record(context.Background(), Event{Type: "request"})
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(l)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		m := mf.GetMetric()[0]
		if g := m.GetGauge(); g != nil {
			got[mf.GetName()] = g.GetValue()
			continue
		}
		got[mf.GetName()] = m.GetCounter().GetValue()
	}
	want := map[string]float64{
		"telegate_edge_audit_records_total":             2,
		"telegate_edge_audit_dropped_records_total":     1,
		"telegate_edge_audit_write_errors_total":        0,
		"telegate_edge_audit_unconfirmed_records_total": 0,
		"telegate_edge_audit_checkpoints_total":         0,
		"telegate_edge_audit_checkpoint_errors_total":   0,
		"telegate_edge_audit_queued_records":            0,
	}
	if len(got) != len(want) {
		t.Fatalf("metrics %v", got)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
}
