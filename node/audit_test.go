package node

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/telegate/telegate/audit"
	"github.com/telegate/telegate/config"
)

// failingWriter fails every write once fail is set, as a full or broken
// disk would.
type failingWriter struct {
	w    io.Writer
	fail *atomic.Bool
}

func (f failingWriter) Write(b []byte) (int, error) {
	if f.fail.Load() {
		return 0, errors.New("injected: no space left on device")
	}
	return f.w.Write(b)
}

// auditNode runs a node on loopback with a public route and a route that
// admits nobody, both to a real upstream, and the trail's writes going
// through failingWriter.
func auditNode(t *testing.T, onFailurePublic string) (get func(path string) (*http.Response, string), fail *atomic.Bool, stop func() error, cfg *config.Config) {
	t.Helper()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "upstream says hello")
	}))
	t.Cleanup(up.Close)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "telegate.yaml"), []byte(fmt.Sprintf(`data_dir: %s
server:
  listen: 127.0.0.1:0
  http_listen: ""
  admin: 127.0.0.1:0
  public_url: https://localhost
tls:
  hosts:
    - names: [localhost]
      mode: local
routes:
  - id: public
    path: /pub/
    upstream: %s
    policy:
      public: true
  - id: closed
    path: /closed/
    upstream: %s
    policy:
      allow: [{authenticated: true}]
audit:
  on_failure_public: %s
log:
  level: error
`, filepath.Join(dir, "data"), up.URL, up.URL, onFailurePublic)), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(filepath.Join(dir, "telegate.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	fail = new(atomic.Bool)
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan Ready, 1)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, cfg, Options{Logger: quietLogger(), Ready: func(r Ready) { ready <- r },
			TuneAudit: func(o *audit.Options) { o.Writer = func(w io.Writer) io.Writer { return failingWriter{w, fail} } }})
	}()
	var once atomic.Bool
	var runErr error
	stop = func() error {
		if once.CompareAndSwap(false, true) {
			cancel()
			runErr = <-done
		}
		return runErr
	}
	t.Cleanup(func() { _ = stop() })
	var r Ready
	select {
	case r = <-ready:
	case err := <-done:
		once.Store(true)
		t.Fatal(err)
	case <-time.After(30 * time.Second):
		t.Fatal("node did not start")
	}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, ServerName: "localhost"}}} // loopback only, the node's local CA
	t.Cleanup(hc.CloseIdleConnections)
	get = func(path string) (*http.Response, string) {
		req, _ := http.NewRequest(http.MethodGet, "https://"+r.ListenAddr+path, nil)
		req.Host = "localhost"
		req.Header.Set("Accept", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b)
	}
	return get, fail, stop, cfg
}

// TestRegression_ServedWithoutRecord: a request used to be served when
// its audit record was dropped. Now its record is written before the
// response; when the trail cannot be written, a route that needs an
// identity (and telegate's own endpoints) answers 503 with the request
// id, and a public route follows audit.on_failure_public.
func TestRegression_ServedWithoutRecord(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{config.AuditDegrade, config.AuditRefuse} {
		t.Run("public "+mode, func(t *testing.T) {
			t.Parallel()
			get, fail, stop, cfg := auditNode(t, mode)
			served := map[string]int{} // request id → status the client got
			for _, p := range []string{"/pub/a", "/closed/a", "/.telegate/jwks.json"} {
				resp, _ := get(p)
				if resp.StatusCode >= 500 {
					t.Fatalf("GET %s before the failure: %d", p, resp.StatusCode)
				}
				served[resp.Header.Get("X-Request-Id")] = resp.StatusCode
			}
			fail.Store(true)
			for _, p := range []string{"/closed/b", "/.telegate/jwks.json", "/nowhere"} {
				resp, body := get(p)
				rid := resp.Header.Get("X-Request-Id")
				if resp.StatusCode != http.StatusServiceUnavailable || rid == "" || !strings.Contains(body, rid) || strings.Contains(body, "upstream says") {
					t.Fatalf("GET %s with the trail failing: %d %q, want 503 with the request id", p, resp.StatusCode, body)
				}
			}
			resp, body := get("/pub/b")
			switch mode {
			case config.AuditDegrade:
				if resp.StatusCode != http.StatusOK || body != "upstream says hello" {
					t.Fatalf("public route, degrade: %d %q", resp.StatusCode, body)
				}
			case config.AuditRefuse:
				if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, resp.Header.Get("X-Request-Id")) {
					t.Fatalf("public route, refuse: %d %q", resp.StatusCode, body)
				}
			}
			if err := stop(); err == nil || !strings.Contains(err.Error(), "injected") {
				t.Errorf("Run after a failed trail = %v, want the write error", err)
			}
			// Every response served before the failure has its record,
			// and the trail verifies with its checkpoints.
			b, err := os.ReadFile(cfg.Audit.File)
			if err != nil {
				t.Fatal(err)
			}
			for rid, status := range served {
				if !strings.Contains(string(b), fmt.Sprintf(`"request_id":%q`, rid)) || !strings.Contains(string(b), fmt.Sprintf(`"status":%d`, status)) {
					t.Errorf("no record of %s (%d)", rid, status)
				}
			}
			v, err := audit.ReadVerifierKey(filepath.Join(cfg.Audit.CheckpointDir, audit.VerifierKeyFile))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := audit.VerifyTrail(strings.NewReader(string(b)), audit.VerifyOptions{Verifier: v, CheckpointDir: cfg.Audit.CheckpointDir}); err != nil {
				t.Errorf("trail after the failure: %v", err)
			}
		})
	}
}
