package gateway

import (
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
	"testing"
	"time"

	crstests "github.com/corazawaf/coraza-coreruleset/v4/tests"
	ftwconfig "github.com/coreruleset/go-ftw/v2/config"
	"github.com/coreruleset/go-ftw/v2/output"
	"github.com/coreruleset/go-ftw/v2/runner"
	ftwtest "github.com/coreruleset/go-ftw/v2/test"
	"github.com/rs/zerolog"

	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/policies"
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
type markedInspector struct {
	in  Inspector
	log *slog.Logger
}

func (m markedInspector) Inspect(next http.Handler) http.Handler {
	h := m.in.Inspect(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if v := r.Header.Get(crsMarkerHeader); v != "" {
			m.log.Info("marker", strings.ToLower(crsMarkerHeader), v)
		}
		h.ServeHTTP(w, r)
	})
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

// TestCRSRegression runs the Core Rule Set's own regression suite (the
// YAML tests of the embedded CRS release) with go-ftw against a whole
// telegate listener on loopback: the HTTP/1 framing scanner and
// canonicaliser, inspection at paranoia level 4 with the default anomaly
// threshold, and the proxy to an echo upstream. go-ftw reads telegate's
// inspection log (JSON, Debug level) to see which rules matched. Every
// test passes except those in testdata/crs, each listed with its reason;
// they stay under 2 % of the suite.
func TestCRSRegression(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole CRS regression suite")
	}
	tests, cases, responseCases := loadCRSTests(t)
	logPath := filepath.Join(t.TempDir(), "inspection.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logFile.Close() })
	logger := slog.New(slog.NewJSONHandler(logFile, &slog.HandlerOptions{Level: slog.LevelDebug}))
	in, err := policies.NewInspector(config.Inspection{Enabled: true, ParanoiaLevel: 4, AnomalyThreshold: config.DefaultAnomalyThreshold}, nil, logger)
	if err != nil {
		t.Fatal(err)
	}
	up := crsUpstream(t)
	yes := true
	gw := serveTestGateway(t, func(cfg *config.Config, o *Options) {
		cfg.Server.MaxQueryParams = 0 // the default
		// The suite sends thousands of requests from one address.
		cfg.RateLimits.PerClient = config.RateLimit{Rate: 1e6, Burst: 1e6}
		cfg.Routes = []config.Route{{ID: "crs", Hosts: []string{"localhost"}, Path: "/", Upstream: up.URL,
			Policy: &config.Policy{Public: true}, Inspect: &yes}}
		o.Inspector = markedInspector{in: in, log: logger}
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
	rc := ftwconfig.NewRunnerConfiguration(fc)
	rc.ShowOnlyFailed = true
	rc.ReadTimeout = 5 * time.Second
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
		t.Fatalf("go-ftw: %v\n%s", err, out.String())
	}
	st := res.Stats
	skipped := len(st.Skipped) + len(st.Ignored) + len(st.ForcedPass)
	failed := len(st.Failed) + len(st.ForcedFail)
	passed := len(st.Success)
	fmt.Printf("CRS regression: %d passed, %d failed, %d skipped\n", passed, failed, skipped)
	t.Logf("%d request-phase tests (%d response-phase tests not applicable: no response rules loaded), %d changed by overrides, %d ignored; %s",
		cases, responseCases, overridden, skipped, time.Since(start).Round(time.Second))
	if failed > 0 {
		t.Errorf("failed CRS tests: %s", strings.Join(append(st.Failed, st.ForcedFail...), " "))
	}
	if passed+failed+skipped != cases {
		t.Errorf("%d results for %d tests", passed+failed+skipped, cases)
	}
	if limit := cases * 2 / 100; overridden+skipped >= limit {
		t.Errorf("%d tests overridden or skipped, want under 2 %% of %d (%d)", overridden+skipped, cases, limit)
	}
}

