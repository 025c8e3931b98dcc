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

// trailNode runs a node on loopback with a public route and a route that
// admits nobody, both to a real upstream; its trail is auditFile ("" the
// default) and tune adjusts the trail's options.
func trailNode(t *testing.T, onFailurePublic, auditFile string, tune func(*audit.Options)) (get func(path string) (*http.Response, string), stop func() error, cfg *config.Config) {
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
%s
log:
  level: error
`, filepath.Join(dir, "data"), up.URL, up.URL, onFailurePublic, fileLine(auditFile))), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(filepath.Join(dir, "telegate.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan Ready, 1)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, cfg, Options{Logger: quietLogger(), Ready: func(r Ready) { ready <- r }, TuneAudit: tune})
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
	return get, stop, cfg
}

// fileLine is the audit.file setting for file, "" for the default.
func fileLine(file string) string {
	if file == "" {
		return ""
	}
	return "  file: " + file
}
