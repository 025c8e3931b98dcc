package policies

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/corazawaf/coraza/v3"

	"github.com/telegate/telegate/audit"
	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/page"
	"github.com/telegate/telegate/scope"
)

// sharedEngine builds the rule set once for the whole test binary.
var sharedEngine = sync.OnceValues(func() (*Inspector, error) {
	return NewInspector(config.Inspection{Enabled: true, ParanoiaLevel: config.DefaultParanoiaLevel, AnomalyThreshold: config.DefaultAnomalyThreshold}, nil, nil, nil)
})

// inspectorFor returns an Inspector with the shared engine and its own
// settings, audit trail (a real audit.Log in a temporary directory) and log
// buffer.
func inspectorFor(t testing.TB, enabled, detectOnly bool) (*Inspector, *trail, *syncBuffer) {
	t.Helper()
	eng, err := sharedEngine()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "audit.log")
	al, err := audit.Open(path, bytes.Repeat([]byte{3}, 32))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { al.Close() })
	logs := &syncBuffer{}
	return &Inspector{waf: eng.waf, enabled: enabled, detectOnly: detectOnly, sink: al,
		logger: slog.New(slog.NewJSONHandler(logs, nil))}, &trail{al, path}, logs
}

// trail is a real audit log and its file.
type trail struct {
	*audit.Log
	path string
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// upstreamSeen is what the handler after the inspector received.
type upstreamSeen struct {
	mu     sync.Mutex
	calls  int
	body   []byte
	length int64
}

// serve starts a real HTTP server on loopback: a front stage that sets the
// request scope (as the gateway does) with route rt, then the inspector,
// then an upstream handler that records what reached it.
func serve(t testing.TB, in *Inspector, rt *config.Route) (*httptest.Server, *upstreamSeen) {
	t.Helper()
	seen := &upstreamSeen{}
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, "read", 500)
			return
		}
		seen.mu.Lock()
		seen.calls++
		seen.body, seen.length = b, r.ContentLength
		seen.mu.Unlock()
		io.WriteString(w, "ok")
	})
	h := in.Inspect(up)
	front := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := &scope.Scope{RequestID: "req-" + r.Header.Get("X-Test-Id"), Start: time.Now(),
			ClientAddr: netip.MustParseAddr("192.0.2.50"), Host: "clinic.test", Path: r.URL.Path, RawQuery: r.URL.RawQuery}
		if rt != nil {
			s.RouteID, s.Route = rt.ID, rt
		}
		h.ServeHTTP(w, r.WithContext(scope.With(r.Context(), s)))
	})
	srv := httptest.NewServer(front)
	t.Cleanup(srv.Close)
	return srv, seen
}

type req struct {
	method, target, ctype, body string
}

func (q req) do(t testing.TB, srv *httptest.Server) (*http.Response, string) {
	t.Helper()
	return q.send(t, srv, false)
}

// send sends q; with chunked the body goes without a length.
func (q req) send(t testing.TB, srv *httptest.Server, chunked bool) (*http.Response, string) {
	t.Helper()
	var body io.Reader
	if q.body != "" {
		body = strings.NewReader(q.body)
		if chunked {
			body = io.MultiReader(body)
		}
	}
	hr, err := http.NewRequest(q.method, srv.URL+q.target, body)
	if err != nil {
		t.Fatal(err)
	}
	hr.Host = "clinic.test"
	hr.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/140.0 Safari/537.36")
	hr.Header.Set("Accept", "text/html,application/json;q=0.9,*/*;q=0.8")
	hr.Header.Set("Accept-Language", "en-GB,en;q=0.9")
	hr.Header.Set("X-Test-Id", "t1")
	if q.ctype != "" {
		hr.Header.Set("Content-Type", q.ctype)
	}
	resp, err := srv.Client().Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

const clinicalForm = `{"patient_id":"p-1029","visit_reason":"Follow-up after knee surgery; pain 3/10, swelling reduced.",` +
	`"symptoms":["mild fever (38.2 C)","headache since Tuesday"],"medications":[{"name":"paracetamol","dose_mg":500,"per_day":3}],` +
	`"allergies":"none known","consent":true,"notes":"Patient asks whether she can return to work on Monday."}`

func TestInspectBlocksAttacks(t *testing.T) {
	t.Parallel()
	in, al, logs := inspectorFor(t, true, false)
	rt := &config.Route{ID: "clinic", Path: "/clinic/", MaxBodyBytes: 1 << 20}
	srv, seen := serve(t, in, rt)
	attacks := []struct {
		name string
		q    req
	}{
		{"sql injection in query", req{"GET", "/clinic/records?id=1'%20OR%20'1'='1", "", ""}},
		{"sql injection union", req{"GET", "/clinic/records?id=1%20UNION%20SELECT%20username,password%20FROM%20users--", "", ""}},
		{"xss in query", req{"GET", "/clinic/search?q=%3Cscript%3Ealert(document.cookie)%3C/script%3E", "", ""}},
		{"path traversal in query", req{"GET", "/clinic/files?name=../../../../etc/passwd", "", ""}},
		{"xss in form body", req{"POST", "/clinic/notes", "application/x-www-form-urlencoded", "note=" + url.QueryEscape(`<img src=x onerror=alert(1)>`)}},
		{"sql injection in json body", req{"POST", "/clinic/notes", "application/json", `{"note":"x' OR 1=1 UNION SELECT password FROM users --"}`}},
		{"command injection", req{"GET", "/clinic/ping?host=127.0.0.1;cat%20/etc/passwd", "", ""}},
		{"content type outside policy", req{"POST", "/clinic/notes", "application/x-php", "<?php system($_GET['c']); ?>"}},
	}
	for _, a := range attacks {
		resp, body := a.q.do(t, srv)
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s: status %d, want 403", a.name, resp.StatusCode)
			continue
		}
		if !strings.Contains(body, "Request id: <code>req-t1</code>") {
			t.Errorf("%s: body %q lacks the request id", a.name, body)
		}
	}
	if seen.calls != 0 {
		t.Errorf("upstream called %d times for attacks", seen.calls)
	}
	if _, blocked, _ := in.Stats(); blocked != uint64(len(attacks)) {
		t.Errorf("blocked = %d, want %d", blocked, len(attacks))
	}
	events := readAudit(t, al)
	if len(events) != len(attacks) {
		t.Fatalf("%d audit events, want %d", len(events), len(attacks))
	}
	for _, e := range events {
		if e.Type != "inspect" || e.Decision != "deny" || e.RequestID != "req-t1" || e.RouteID != "clinic" ||
			e.Status != 403 || e.Client != "192.0.2.50" || e.Attrs["rule_id"] == "" || e.Attrs["rule_id"] == "0" {
			t.Errorf("audit event %+v", e)
		}
	}
	checkNoPayload(t, "audit trail", rawAudit(t, al))
	checkNoPayload(t, "logs", logs.String())
}

// checkNoPayload asserts that no attack payload, query or body text leaked.
func checkNoPayload(t *testing.T, where, s string) {
	t.Helper()
	for _, bad := range []string{"OR", "script", "passwd", "UNION", "onerror", "id=", "1'"} {
		if strings.Contains(s, bad) {
			t.Errorf("%s contain %q:\n%s", where, bad, s)
		}
	}
}

func TestInspectPassesClinicalTraffic(t *testing.T) {
	t.Parallel()
	in, _, logs := inspectorFor(t, true, false)
	srv, seen := serve(t, in, &config.Route{ID: "clinic", MaxBodyBytes: 1 << 20})
	ok := []req{
		{"GET", "/clinic/", "", ""},
		{"GET", "/clinic/patients?page=2&sort=last_name&ward=cardiology", "", ""},
		{"GET", "/clinic/appointments?from=2026-03-01&to=2026-03-31&clinician=dr-okafor", "", ""},
		{"POST", "/clinic/api/intake", "application/json", clinicalForm},
		{"POST", "/clinic/messages", "application/x-www-form-urlencoded", "to=dr-okafor&subject=Prescription+refill&body=" + url.QueryEscape("Could you renew my blood pressure tablets (amlodipine 5 mg)? Thank you!")},
		{"PUT", "/clinic/api/intake/p-1029", "application/json", clinicalForm},
		{"DELETE", "/clinic/api/drafts/17", "", ""},
		{"POST", "/clinic/fhir/Observation", "application/fhir+json", `{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4","display":"Heart rate"}]},"subject":{"reference":"Patient/p-1029"},"valueQuantity":{"value":72,"unit":"beats/minute"}}`},
		{"PUT", "/clinic/uploads/wound-photo.jpg", "image/jpeg", "\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xdb\x00C\x00\x08\x06\x06\x07\x06\x05\x08"},
		{"POST", "/clinic/notes.txt", "text/plain; charset=utf-8", "Blood pressure 128/82 this morning, slightly dizzy after standing up."},
	}
	for _, q := range ok {
		resp, body := q.do(t, srv)
		if resp.StatusCode != http.StatusOK || body != "ok" {
			t.Errorf("%s %s: status %d body %q, want 200 ok", q.method, q.target, resp.StatusCode, body)
		}
	}
	if seen.calls != len(ok) {
		t.Errorf("upstream saw %d of %d requests", seen.calls, len(ok))
	}
	if logs.String() != "" {
		t.Errorf("clean traffic logged: %s", logs.String())
	}
}

// TestInspectBodyRestoredForProxy: the upstream receives the body byte for
// byte with its length, also when the client sent it chunked.
func TestInspectBodyRestoredForProxy(t *testing.T) {
	t.Parallel()
	in, _, _ := inspectorFor(t, true, false)
	srv, seen := serve(t, in, &config.Route{ID: "clinic", MaxBodyBytes: 1 << 20})
	for _, chunked := range []bool{false, true} {
		var body io.Reader = strings.NewReader(clinicalForm)
		if chunked {
			body = io.MultiReader(strings.NewReader(clinicalForm[:10]), strings.NewReader(clinicalForm[10:]))
		}
		hr, _ := http.NewRequest("POST", srv.URL+"/clinic/api/intake", body)
		hr.Header.Set("Content-Type", "application/json")
		hr.Header.Set("Accept", "application/json")
		hr.Header.Set("User-Agent", "telegate-test")
		hr.Host = "clinic.test"
		resp, err := srv.Client().Do(hr)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("chunked=%v: status %d", chunked, resp.StatusCode)
		}
		seen.mu.Lock()
		if string(seen.body) != clinicalForm || seen.length != int64(len(clinicalForm)) {
			t.Errorf("chunked=%v: upstream got %d bytes (ContentLength %d), want %d", chunked, len(seen.body), seen.length, len(clinicalForm))
		}
		seen.mu.Unlock()
	}
}

func TestInspectBodyLimit(t *testing.T) {
	t.Parallel()
	in, _, _ := inspectorFor(t, true, false)
	srv, seen := serve(t, in, &config.Route{ID: "upload", MaxBodyBytes: 1000})
	resp, body := req{"POST", "/upload", "text/plain", strings.Repeat("a", 1001)}.do(t, srv)
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(body, "req-t1") {
		t.Fatalf("status %d body %q, want 413 with the request id", resp.StatusCode, body)
	}
	resp, _ = req{"POST", "/upload", "text/plain", strings.Repeat("a", 1000)}.do(t, srv)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("body at the limit: status %d", resp.StatusCode)
	}
	if seen.calls != 1 {
		t.Fatalf("upstream calls %d, want 1", seen.calls)
	}
}

func TestInspectModes(t *testing.T) {
	t.Parallel()
	yes, no := true, false
	sqli := req{"GET", "/r?id=1'%20OR%20'1'='1", "", ""}
	tests := []struct {
		name       string
		enabled    bool
		detectOnly bool
		inspect    *bool
		api        bool
		want       int
		decision   string
	}{
		{"enabled blocks", true, false, nil, false, 403, "deny"},
		{"route opts out", true, false, &no, false, 200, ""},
		{"route opts in", false, false, &yes, false, 403, "deny"},
		{"disabled passes", false, false, nil, false, 200, ""},
		{"detect only passes and records", true, true, nil, false, 200, "allow"},
		{"api route answers json", true, false, nil, true, 403, "deny"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in, al, logs := inspectorFor(t, tt.enabled, tt.detectOnly)
			srv, _ := serve(t, in, &config.Route{ID: "r", Inspect: tt.inspect, API: tt.api})
			resp, body := sqli.do(t, srv)
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.want)
			}
			if tt.api {
				var j page.Body
				if err := json.Unmarshal([]byte(body), &j); err != nil || j.RequestID != "req-t1" || j.Reason != "blocked" || j.Status != 403 {
					t.Errorf("API body %q", body)
				}
			}
			events := readAudit(t, al)
			if tt.decision == "" {
				if len(events) != 0 {
					t.Errorf("uninspected request audited: %+v", events)
				}
				return
			}
			if len(events) != 1 || events[0].Decision != tt.decision {
				t.Fatalf("audit %+v, want one %s", events, tt.decision)
			}
			if tt.detectOnly && !strings.Contains(logs.String(), "detect only") {
				t.Errorf("detect-only match not logged: %s", logs.String())
			}
		})
	}
}

func TestNewInspectorRejectsBadSettings(t *testing.T) {
	t.Parallel()
	for _, cfg := range []config.Inspection{{ParanoiaLevel: 5}, {ParanoiaLevel: -1}, {AnomalyThreshold: -3}} {
		if _, err := NewInspector(cfg, nil, nil, nil); err == nil {
			t.Errorf("NewInspector(%+v) accepted", cfg)
		}
	}
}

func TestNewInspectorParanoia(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a second engine")
	}
	t.Parallel()
	in, err := NewInspector(config.Inspection{Enabled: true, ParanoiaLevel: 4, AnomalyThreshold: 1000}, nil, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	srv, _ := serve(t, in, &config.Route{ID: "r"})
	// A threshold of 1000 lets a single injection through.
	if resp, _ := (req{"GET", "/r?id=1'%20OR%20'1'='1", "", ""}).do(t, srv); resp.StatusCode != 200 {
		t.Fatalf("threshold 1000: status %d, want 200", resp.StatusCode)
	}
}

func readAudit(t testing.TB, al *trail) []audit.Event {
	t.Helper()
	var out []audit.Event
	sc := bufio.NewScanner(strings.NewReader(rawAudit(t, al)))
	for sc.Scan() {
		var e audit.Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

// rawAudit closes the trail and returns its content.
func rawAudit(t testing.TB, al *trail) string {
	t.Helper()
	if err := al.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(al.path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// TestRegressionDuplicateContentType: a second Content-Type must not switch
// the body processor away from the one the upstream will use (Coraza
// GHSA-w253-m66g-rx24); a JSON injection behind two Content-Type headers is
// still refused.
func TestRegressionDuplicateContentType(t *testing.T) {
	t.Parallel()
	in, _, _ := inspectorFor(t, true, false)
	srv, seen := serve(t, in, &config.Route{ID: "r"})
	hr, _ := http.NewRequest("POST", srv.URL+"/r", strings.NewReader(`{"q":"1' UNION SELECT password FROM users --"}`))
	hr.Host = "clinic.test"
	hr.Header.Set("User-Agent", "telegate-test")
	hr.Header.Set("Accept", "*/*")
	hr.Header["Content-Type"] = []string{"application/json", "text/plain"}
	resp, err := srv.Client().Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK || seen.calls != 0 {
		t.Fatalf("status %d, upstream calls %d: injection passed", resp.StatusCode, seen.calls)
	}
}

// FuzzInspect sends arbitrary queries and bodies through the real stage:
// it must answer 200 (with the body forwarded unchanged), 400, 403 or 413,
// and never panic.
func FuzzInspect(f *testing.F) {
	in, _, _ := inspectorFor(f, true, false)
	in.logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	rt := &config.Route{ID: "r", MaxBodyBytes: 4096}
	f.Add("page=2&sort=name", "application/json", clinicalForm)
	f.Add("id=1'%20OR%20'1'='1", "application/x-www-form-urlencoded", "a=b&c=d")
	f.Add("", "multipart/form-data; boundary=x", "--x\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nb\r\n--x--\r\n")
	f.Add("q=%zz", "application/json", `{"a":[[[[[[1]]]]]]}`)
	f.Add("", "text/xml", "<a><b>1</b></a>")
	f.Add("", "image/png", "\x89PNG\r\n\x1a\n\x00\x00")
	f.Fuzz(func(t *testing.T, query, ctype, body string) {
		var got []byte
		called := false
		h := in.Inspect(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			called = true
			got, _ = io.ReadAll(r.Body)
		}))
		r := httptest.NewRequest("POST", "http://clinic.test/r", strings.NewReader(body))
		r.URL.RawQuery = query
		r.Header.Set("Content-Type", ctype)
		r = r.WithContext(scope.With(r.Context(), &scope.Scope{RequestID: "f", RouteID: "r", Route: rt}))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		switch {
		case called:
			if string(got) != body {
				t.Fatalf("forwarded body differs: %q vs %q", got, body)
			}
		case w.Code == 400 || w.Code == 403 || w.Code == 413:
		default:
			t.Fatalf("status %d without calling next", w.Code)
		}
	})
}

func BenchmarkInspectCleanGET(b *testing.B) {
	in, _, _ := inspectorFor(b, true, false)
	h := in.Inspect(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	rt := &config.Route{ID: "clinic"}
	s := &scope.Scope{RequestID: "b", RouteID: "clinic", Route: rt, ClientAddr: netip.MustParseAddr("192.0.2.1")}
	r := httptest.NewRequest("GET", "http://clinic.test/clinic/patients?page=2&sort=last_name&ward=cardiology", nil)
	r.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/140.0 Safari/537.36")
	r.Header.Set("Accept", "text/html")
	r.Header.Set("Cookie", "__Host-telegate=abc")
	r = r.WithContext(scope.With(r.Context(), s))
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != 200 {
			b.Fatal(w.Code)
		}
	}
}

// TestRegressionPartialBodyNeverForwarded: when the engine's own body limit
// stops reading before the route's limit, the request is refused with 413
// in every mode; a truncated body must never reach the upstream.
func TestRegressionPartialBodyNeverForwarded(t *testing.T) {
	t.Parallel()
	waf, err := coraza.NewWAF(coraza.NewWAFConfig().WithDirectives("SecRuleEngine On\nSecRequestBodyAccess On\nSecRequestBodyLimit 100\nSecRequestBodyLimitAction Reject"))
	if err != nil {
		t.Fatal(err)
	}
	for _, detectOnly := range []bool{false, true} {
		in := &Inspector{waf: waf, enabled: true, detectOnly: detectOnly, sink: audit.Discard{}, logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
		srv, seen := serve(t, in, &config.Route{ID: "r", MaxBodyBytes: 1000})
		resp, _ := req{"POST", "/r", "text/plain", strings.Repeat("b", 500)}.do(t, srv)
		if resp.StatusCode != http.StatusRequestEntityTooLarge || seen.calls != 0 {
			t.Errorf("detectOnly=%v: status %d, upstream calls %d; want 413 and none", detectOnly, resp.StatusCode, seen.calls)
		}
	}
}

// TestRegressionArgumentLimitBypass: an SQL injection placed after many
// harmless body arguments is still blocked — arguments past the engine's
// cap are refused, never passed uninspected — while a large but clean
// request passes.
func TestRegressionArgumentLimitBypass(t *testing.T) {
	t.Parallel()
	in, _, _ := inspectorFor(t, true, false)
	srv, seen := serve(t, in, nil)
	form := func(n int, tail string) string {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, "a%d=1&", i)
		}
		return b.String() + tail
	}
	jsonBody := func(n int, tail string) string {
		var b strings.Builder
		b.WriteString("{")
		for i := range n {
			fmt.Fprintf(&b, `"a%d":1,`, i)
		}
		return b.String() + tail + "}"
	}
	sqli := "id=" + url.QueryEscape("1' OR '1'='1")
	cases := []struct {
		name   string
		q      req
		status int
	}{
		{"form sqli after 1000", req{"POST", "/", "application/x-www-form-urlencoded", form(1000, sqli)}, 403},
		{"form sqli after cap", req{"POST", "/", "application/x-www-form-urlencoded", form(MaxInspectedArguments, sqli)}, 403},
		{"json sqli after cap", req{"POST", "/", "application/json", jsonBody(MaxInspectedArguments, `"id":"1' OR '1'='1"`)}, 403},
		{"clean form over the cap", req{"POST", "/", "application/x-www-form-urlencoded", form(MaxInspectedArguments+10, "z=1")}, 403},
		{"clean form of 1200", req{"POST", "/", "application/x-www-form-urlencoded", form(1200, "z=1")}, 200},
	}
	for _, tc := range cases {
		seen.mu.Lock()
		before := seen.calls
		seen.mu.Unlock()
		resp, _ := tc.q.do(t, srv)
		if resp.StatusCode != tc.status {
			t.Errorf("%s: %d, want %d", tc.name, resp.StatusCode, tc.status)
		}
		seen.mu.Lock()
		reached := seen.calls > before
		seen.mu.Unlock()
		if reached != (tc.status == 200) {
			t.Errorf("%s: reached the upstream: %v", tc.name, reached)
		}
	}
}

// TestRegression_InspectionFailsClosed: a request the engine cannot fully
// inspect — a body past the limit, more arguments than it inspects, an
// engine failure, a body it cannot parse — is refused with an error page
// carrying the request id, never forwarded and never answered with an
// empty 200; an over-limit body and an engine failure are refused in
// detect-only mode too.
func TestRegression_InspectionFailsClosed(t *testing.T) {
	eng, err := sharedEngine()
	if err != nil {
		t.Fatal(err)
	}
	// An engine whose body buffer must spill to a temporary directory that
	// is gone once the engine is built: every body past 16 bytes makes the
	// engine fail.
	tmp := filepath.Join(t.TempDir(), "spill")
	if err := os.Mkdir(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TMPDIR", tmp)
	broken, err := coraza.NewWAF(coraza.NewWAFConfig().WithDirectives("SecRuleEngine On\nSecRequestBodyAccess On\nSecRequestBodyInMemoryLimit 16\nSecRequestBodyLimit 1000000"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(tmp); err != nil {
		t.Fatal(err)
	}
	many := strings.Repeat("a=1&", MaxInspectedArguments+1) + "z=1"
	deep := strings.Repeat(`{"a":`, 1100) + "1" + strings.Repeat("}", 1100)
	multipart := "--x\r\nContent-Disposition: form-data; name=\"a\"\r\nContent-Type: text/plain\r\n\r\nb\r\n--x\r\nbroken header without colon\r\n\r\nc\r\n--x--\r\n"
	members := []struct {
		name       string
		waf        coraza.WAF
		limit      int64 // the route's max_body_bytes
		q          req
		chunked    bool
		want       int
		detectOnly bool // also refused in detect-only mode
	}{
		{"body over the route limit", eng.waf, 2000, req{"POST", "/r", "text/plain", strings.Repeat("a", 2001)}, false, 413, true},
		{"chunked body over the route limit", eng.waf, 2000, req{"POST", "/r", "text/plain", strings.Repeat("a", 2001)}, true, 413, true},
		{"more arguments than inspected", eng.waf, 1 << 20, req{"POST", "/r", "application/x-www-form-urlencoded", many}, false, 403, false},
		{"engine error", broken, 2000, req{"POST", "/r", "text/plain", strings.Repeat("b", 100)}, false, 500, true},
		{"chunked body, engine error", broken, 2000, req{"POST", "/r", "application/json", `{"note":"` + strings.Repeat("b", 100) + `"}`}, true, 500, true},
		{"malformed multipart", eng.waf, 2000, req{"POST", "/r", "multipart/form-data; boundary=x", multipart}, false, 400, false},
		{"json too deep", eng.waf, 1 << 20, req{"POST", "/r", "application/json", deep}, false, 400, false},
	}
	for _, m := range members {
		for _, detectOnly := range []bool{false, true} {
			if detectOnly && !m.detectOnly {
				continue
			}
			name := fmt.Sprintf("%s (detect only %v)", m.name, detectOnly)
			in := &Inspector{waf: m.waf, enabled: true, detectOnly: detectOnly, sink: audit.Discard{}, logger: slog.New(slog.DiscardHandler)}
			srv, seen := serve(t, in, &config.Route{ID: "r", MaxBodyBytes: m.limit})
			resp, body := m.q.send(t, srv, m.chunked)
			if resp.StatusCode != m.want {
				t.Errorf("%s: status %d, want %d", name, resp.StatusCode, m.want)
			}
			if body == "" || !strings.Contains(body, "req-t1") {
				t.Errorf("%s: body %q lacks the error page with the request id", name, body)
			}
			if seen.calls != 0 {
				t.Errorf("%s: forwarded to the upstream", name)
			}
		}
	}
}
