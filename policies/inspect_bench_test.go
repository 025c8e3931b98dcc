package policies

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	coreruleset "github.com/corazawaf/coraza-coreruleset/v4"
	"github.com/corazawaf/coraza/v3"
	txhttp "github.com/corazawaf/coraza/v3/http"

	"github.com/telegate/telegate/audit"
	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/scope"
)

// benchForm is the 8-field form of the inspection benchmarks.
const benchForm = "patient=p-1029&visit=2026-03-01&clinician=dr-okafor&reason=Follow-up+after+knee+surgery" +
	"&pain=3&swelling=reduced&medication=paracetamol+500+mg&notes=Patient+asks+about+returning+to+work"

// BenchmarkInspection compares telegate's inspection stage with stock
// coraza/v3/http.WrapHandler over the same engine (the same directives:
// CRS at paranoia level 1, request phases only), for an inspected GET and
// an 8-field form POST, in process (no network). Run with -count to
// alternate the two; docs/benchmarks.md ("Inspection") has the ratios.
func BenchmarkInspection(b *testing.B) {
	eng, err := sharedEngine()
	if err != nil {
		b.Fatal(err)
	}
	stockWAF, err := coraza.NewWAF(coraza.NewWAFConfig().WithRootFS(coreruleset.FS).
		WithDirectives(directives(config.DefaultParanoiaLevel, config.DefaultAnomalyThreshold)))
	if err != nil {
		b.Fatal(err)
	}
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil {
			buf := make([]byte, 512)
			for {
				if _, err := r.Body.Read(buf); err != nil {
					break
				}
			}
		}
	})
	in := &Inspector{waf: eng.waf, enabled: true, sink: audit.Discard{}, logger: slog.New(slog.DiscardHandler)}
	handlers := map[string]http.Handler{"telegate": in.Inspect(ok), "stock": txhttp.WrapHandler(stockWAF, ok)}
	rt := &config.Route{ID: "clinic"}
	newReq := func(kind string) *http.Request {
		var r *http.Request
		if kind == "GET" {
			r = httptest.NewRequest("GET", "http://clinic.test/clinic/patients?page=2&sort=last_name&ward=cardiology", nil)
		} else {
			r = httptest.NewRequest("POST", "http://clinic.test/clinic/visits", strings.NewReader(benchForm))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		r.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/140.0 Safari/537.36")
		r.Header.Set("Accept", "text/html,application/xhtml+xml")
		r.Header.Set("Accept-Language", "en-GB,en;q=0.9")
		r.Header.Set("Cookie", "__Host-telegate=abc")
		s := &scope.Scope{RequestID: "b", RouteID: "clinic", Route: rt, ClientAddr: netip.MustParseAddr("192.0.2.1")}
		return r.WithContext(scope.With(r.Context(), s))
	}
	for _, kind := range []string{"GET", "POST"} {
		for _, impl := range []string{"telegate", "stock"} {
			h := handlers[impl]
			b.Run(kind+"/"+impl, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					b.StopTimer()
					r := newReq(kind)
					w := httptest.NewRecorder()
					b.StartTimer()
					h.ServeHTTP(w, r)
					if w.Code != 200 {
						b.Fatalf("status %d", w.Code)
					}
				}
			})
		}
	}
}
