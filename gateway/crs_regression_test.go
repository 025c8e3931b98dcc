package gateway

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	crstests "github.com/corazawaf/coraza-coreruleset/v4/tests"
	ftwconfig "github.com/coreruleset/go-ftw/v2/config"
	"github.com/coreruleset/go-ftw/v2/output"
	"github.com/coreruleset/go-ftw/v2/runner"
	ftwtest "github.com/coreruleset/go-ftw/v2/test"
	"github.com/rs/zerolog"

	"github.com/telegate/telegate/audit"
	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/policies"
	"github.com/telegate/telegate/scope"
)

// crsMarkerHeader carries go-ftw's stage markers (its default header).
const crsMarkerHeader = "X-CRS-Test"

// crsLogIDs finds the rule ids in telegate's inspection log lines (JSON):
// the blocking rule ("rule_id":949110) and each id of matched_rules
// ("matched_rules":"920100,942100"). No other field of a line holds a
// number after a comma or after these keys.
const crsLogIDs = `(?:"rule_id":|"matched_rules":"|,)(\d+)`

// crsOverrides is the file of changed expectations, each with its reason
// (go-ftw's platform overrides format); crsIgnored lists the tests not run,
// each with its reason (go-ftw's configuration format, testoverride.ignore).
const (
	crsOverrides = "testdata/crs/overrides.yaml"
	crsIgnored   = "testdata/crs/ftw.yaml"
)

// markedInspector writes go-ftw's marker requests into the inspection log,
// in order with the Inspector's own lines, so that go-ftw can cut out the
// lines of one test stage.
// It also notes which requests reached inspection.
type markedInspector struct {
	in        Inspector
	log       *slog.Logger
	inspected *sync.Map // request id → true
}

func (m markedInspector) Inspect(next http.Handler) http.Handler {
	h := m.in.Inspect(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := ""
		if s := scope.From(r.Context()); s != nil {
			id = s.RequestID
			m.inspected.Store(id, true)
		}
		if v := r.Header.Get(crsMarkerHeader); v != "" {
			m.log.Info("marker", strings.ToLower(crsMarkerHeader), v, "marker_request_id", id)
		}
		h.ServeHTTP(w, r)
	})
}

// crsRefusedMsg marks, in the inspection log, a request telegate refused
// before it reached inspection (canonicaliser, framing scanner, router).
const crsRefusedMsg = "refused before inspection"

// refusalLog is the audit sink of the CRS run: it writes a line into the
// inspection log for every request refused before inspection, with the
// status and reason, and hands every event on.
type refusalLog struct {
	next      audit.Sink
	log       *slog.Logger
	inspected *sync.Map
}

func (a refusalLog) Record(ctx context.Context, e audit.Event) {
	if e.Type == "request" && e.Status >= 400 {
		if _, ok := a.inspected.Load(e.RequestID); !ok {
			a.log.Info(crsRefusedMsg, "status", e.Status, "reason", e.Reason)
		}
	}
	a.next.Record(ctx, e)
}

// crsUpstream is the echo upstream the CRS tests expect (httpbin-like):
// /reflect answers with the status, headers and body a JSON request body
// asks for; /status/N answers N; anything else echoes the request body.
func crsUpstream(t testing.TB) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		switch {
		case r.URL.Path == "/reflect":
			var want struct {
				Status  int               `json:"status"`
				Headers map[string]string `json:"headers"`
				Body    string            `json:"body"`
				Encoded string            `json:"encodedBody"`
			}
			if err := json.Unmarshal(body, &want); err != nil {
				http.Error(w, "reflect: "+err.Error(), http.StatusBadRequest)
				return
			}
			for k, v := range want.Headers {
				w.Header().Set(k, v)
			}
			if want.Encoded != "" {
				if b, err := base64.StdEncoding.DecodeString(want.Encoded); err == nil {
					want.Body = string(b)
				}
			}
			if want.Status == 0 {
				want.Status = http.StatusOK
			}
			w.WriteHeader(want.Status)
			_, _ = io.WriteString(w, want.Body)
		case strings.HasPrefix(r.URL.Path, "/status/"):
			code, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/status/"))
			if err != nil || code < 200 || code > 599 {
				code = http.StatusOK
			}
			w.WriteHeader(code)
		default:
			w.Header().Set("Content-Type", "text/plain")
			_, _ = w.Write(body)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// loadCRSTests reads the request-phase regression tests shipped with the
// embedded rule set (REQUEST-*; telegate loads no response rules).
func loadCRSTests(t testing.TB) (tests []*ftwtest.FTWTest, cases, responseCases int) {
	t.Helper()
	err := fs.WalkDir(crstests.FS, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".yaml") {
			return err
		}
		data, err := fs.ReadFile(crstests.FS, path)
		if err != nil {
			return err
		}
		ft, err := ftwtest.GetTestFromYaml(data, path)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if !strings.HasPrefix(path, "REQUEST-") {
			responseCases += len(ft.Tests)
			return nil
		}
		cases += len(ft.Tests)
		tests = append(tests, ft)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return tests, cases, responseCases
}

// crsHosts lists the well-formed Host names the tests send, so that the
// route serves every one (a request for another host is refused before
// inspection, as telegate refuses unknown hosts).
func crsHosts(tests []*ftwtest.FTWTest) []string {
	seen := map[string]bool{"localhost": true}
	hosts := []string{"localhost"}
	add := func(name, value string) {
		if !strings.EqualFold(name, "Host") {
			return
		}
		if h, err := CanonicalHost(value); err == nil && !strings.Contains(h, ":") && !seen[h] {
			seen[h] = true
			hosts = append(hosts, h)
		}
	}
	for _, ft := range tests {
		for _, tc := range ft.Tests {
			for _, st := range tc.Stages {
				//lint:ignore SA1019 the CRS's own test files write headers as a map
				for k, v := range st.Input.Headers {
					add(k, v)
				}
				for _, h := range st.Input.OrderedHeaders {
					add(h.Name, h.Value)
				}
			}
		}
	}
	return hosts
}

// TestCRSRegression runs the Core Rule Set's own regression suite (the
// YAML tests of the embedded CRS release, request phases) with go-ftw
// against a whole telegate listener on loopback: the HTTP/1 framing scanner
// and canonicaliser, inspection at paranoia level 4 with the default
// anomaly threshold, and the proxy to an echo upstream. go-ftw reads
// telegate's inspection log (JSON, Debug level) to see which rules matched.
// A test whose request telegate refuses before inspection (a refusal line
// and no inspection line between its markers) where the CRS expects a
// detection counts as blocked; every other test passes as the CRS wrote it
// or as testdata/crs changes it, each change with its reason, and the
// changes stay under 2 % of the suite. It prints "CRS regression: N
// passed, N failed, N skipped" and logs the tests blocked before
// inspection and the tests the CRS lets pass that telegate refuses.
func TestCRSRegression(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole CRS regression suite")
	}
	tests, cases, responseCases := loadCRSTests(t)
	if raceEnabled {
		// With the race detector the suite would take many minutes: run
		// the first test of each rule's file, less those with bodies of
		// 16 KiB or more. The whole suite runs without it (scripts/test).
		tests, cases = crsSample(tests)
	}
	logPath := filepath.Join(t.TempDir(), "inspection.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logFile.Close() })
	logger := slog.New(slog.NewJSONHandler(logFile, &slog.HandlerOptions{Level: slog.LevelDebug}))
	in, err := policies.NewInspector(config.Inspection{Enabled: true, ParanoiaLevel: 4, AnomalyThreshold: config.DefaultAnomalyThreshold}, nil, nil, logger)
	if err != nil {
		t.Fatal(err)
	}
	up := crsUpstream(t)
	yes := true
	inspected := &sync.Map{}
	gw := serveTestGateway(t, func(cfg *config.Config, o *Options) {
		cfg.Server.MaxQueryParams = 0 // the default
		// The suite sends thousands of requests from one address.
		cfg.RateLimits.PerClient = config.RateLimit{Rate: 1e6, Burst: 1e6}
		cfg.Routes = []config.Route{{ID: "crs", Hosts: crsHosts(tests), Path: "/", Upstream: up.URL,
			Policy: &config.Policy{Public: true}, Inspect: &yes}}
		o.Inspector = markedInspector{in: in, log: logger, inspected: inspected}
		o.Audit = refusalLog{next: o.Audit, log: logger, inspected: inspected}
	})
	host, portStr, _ := net.SplitHostPort(gw.addr)
	port, _ := strconv.Atoi(portStr)
	https := "https"

	zerolog.SetGlobalLevel(zerolog.WarnLevel)
	fc, err := ftwconfig.NewConfigFromFile(crsIgnored)
	if err != nil {
		t.Fatal(err)
	}
	fc.LogFile = logPath
	fc.LogMarkerHeaderName = crsMarkerHeader
	fc.CustomLogIdRegex = crsLogIDs
	fc.SkipTlsVerification = true
	fc.TestOverride.Overrides.DestAddr = &host
	fc.TestOverride.Overrides.Port = &port
	fc.TestOverride.Overrides.Protocol = &https
	// TELEGATE_CRS_TESTS (a regular expression of "rule-test" ids) runs
	// only those tests, with go-ftw's trace output, to look into one.
	subset := os.Getenv("TELEGATE_CRS_TESTS")
	if subset != "" {
		re, err := ftwconfig.NewFTWRegexp(subset)
		if err != nil {
			t.Fatal(err)
		}
		fc.IncludeTests = re
		zerolog.SetGlobalLevel(zerolog.TraceLevel)
	}
	rc := ftwconfig.NewRunnerConfiguration(fc)
	rc.ShowOnlyFailed = false
	// Longer than the listener's own header and body timeouts, so that a
	// test that sends an incomplete request sees telegate's answer.
	rc.ReadTimeout = 40 * time.Second
	rc.ConnectTimeout = 3 * time.Second
	if err := rc.LoadPlatformOverrides(crsOverrides); err != nil {
		t.Fatal(err)
	}
	overridden := 0
	for _, o := range rc.PlatformOverrides.TestOverrides {
		if strings.TrimSpace(o.Reason) == "" {
			t.Errorf("override of rule %d tests %v has no reason", o.RuleId, o.TestIds)
		}
		overridden += len(o.TestIds)
	}
	for re, reason := range fc.TestOverride.Ignore {
		if strings.TrimSpace(reason) == "" {
			t.Errorf("ignored tests %s have no reason", (*regexp.Regexp)(re))
		}
	}

	var out strings.Builder
	start := time.Now()
	res, err := runner.Run(rc, tests, output.NewOutput("plain", &out))
	if err != nil {
		o := out.String()
		t.Fatalf("go-ftw: %v\n…%s", err, o[max(0, len(o)-400):])
	}
	st := res.Stats
	if subset != "" {
		data, _ := os.ReadFile(logPath)
		t.Logf("inspection log:\n%s", data)
	}
	refusedStages, err := crsRefusedStages(logPath)
	if err != nil {
		t.Fatal(err)
	}
	var failedIDs, refusedIDs []string
	for _, id := range append(append([]string(nil), st.Failed...), st.ForcedFail...) {
		if expectsDetection(tests, id) && refusedStages[id] {
			refusedIDs = append(refusedIDs, id)
			continue
		}
		failedIDs = append(failedIDs, id)
	}
	skipped := len(st.Skipped) + len(st.Ignored) + len(st.ForcedPass)
	failed := len(failedIDs)
	passed := len(st.Success) + len(refusedIDs)
	fmt.Printf("CRS regression: %d passed, %d failed, %d skipped\n", passed, failed, skipped)
	t.Logf("%d request-phase tests (%d response-phase tests not applicable: no response rules loaded); %d passed in inspection, "+
		"%d blocked before inspection (refused by the canonicaliser, framing scanner or router: %s), %d changed by overrides, %d ignored; %s",
		cases, responseCases, len(st.Success), len(refusedIDs), strings.Join(refusedIDs, " "), overridden, skipped, time.Since(start).Round(time.Second))
	var refusedClean []string
	for _, id := range st.Success {
		if refusedStages[id] && !expectsDetection(tests, id) {
			refusedClean = append(refusedClean, id)
		}
	}
	if len(refusedClean) > 0 {
		t.Logf("%d tests the CRS lets pass were refused before inspection: %s", len(refusedClean), strings.Join(refusedClean, " "))
	}
	if failed > 0 {
		t.Errorf("failed CRS tests: %s", strings.Join(failedIDs, " "))
	}
	if subset != "" {
		return
	}
	if passed+failed+skipped != cases {
		t.Errorf("%d results for %d tests", passed+failed+skipped, cases)
	}
	if limit := cases * 2 / 100; !raceEnabled && overridden+skipped >= limit {
		t.Errorf("%d tests overridden or skipped, want under 2 %% of %d (%d)", overridden+skipped, cases, limit)
	}
}

// crsSample keeps the first test of each file whose bodies are under
// 16 KiB, and returns them with their count.
func crsSample(tests []*ftwtest.FTWTest) ([]*ftwtest.FTWTest, int) {
	var out []*ftwtest.FTWTest
	for _, ft := range tests {
		for _, tc := range ft.Tests {
			small := true
			for _, st := range tc.Stages {
				if (st.Input.Data != nil && len(*st.Input.Data) >= 16<<10) || len(st.Input.EncodedRequest) >= 16<<10 {
					small = false
				}
			}
			if small {
				one := *ft
				one.Tests = append(one.Tests[:0:0], tc)
				out = append(out, &one)
				break
			}
		}
	}
	return out, len(out)
}

// crsRefusedStages reads the inspection log of a run and returns the tests
// ("rule-test", go-ftw's IdString) one of whose stages telegate refused
// before inspection: between the stage's start and end markers there is a
// refusal line and no line of the Inspector (other than for the markers).
func crsRefusedStages(logPath string) (map[string]bool, error) {
	data, err := os.ReadFile(logPath)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	open, refused, inspected := "", false, false
	markers := map[any]bool{}
	for _, line := range strings.Split(string(data), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) != nil {
			continue
		}
		if m, ok := rec[strings.ToLower(crsMarkerHeader)].(string); ok {
			markers[rec["marker_request_id"]] = true
			switch {
			case strings.HasSuffix(m, "-s"):
				open, refused, inspected = m, false, false
			case strings.HasSuffix(m, "-e") && open != "":
				if refused && !inspected {
					parts := strings.SplitN(open, "-", 3)
					out[parts[0]+"-"+parts[1]] = true
				}
				open = ""
			}
			continue
		}
		if open == "" || markers[rec["request_id"]] {
			continue
		}
		if rec["msg"] == crsRefusedMsg {
			refused = true
		} else {
			inspected = true
		}
	}
	return out, nil
}

// expectsDetection reports whether test id ("rule-test") expects rules
// to match (expect_ids or match_regex) in one of its stages.
func expectsDetection(tests []*ftwtest.FTWTest, id string) bool {
	for _, ft := range tests {
		for _, tc := range ft.Tests {
			if tc.IdString() != id {
				continue
			}
			for _, st := range tc.Stages {
				if len(st.Output.Log.ExpectIds) > 0 || st.Output.Log.MatchRegex != "" {
					return true
				}
			}
		}
	}
	return false
}
