package node

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/telegate/telegate/audit"
	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/demo/devop"
	"github.com/telegate/telegate/e2e/webclient"
	"github.com/telegate/telegate/internal/freeport"
)

// dropHook is a log handler that runs onDrop when the trail logs that it
// dropped a record.
type dropHook struct{ onDrop func() }

func (h dropHook) Enabled(context.Context, slog.Level) bool { return true }
func (h dropHook) Handle(_ context.Context, r slog.Record) error {
	if r.Message == "audit record dropped" {
		h.onDrop()
	}
	return nil
}
func (h dropHook) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h dropHook) WithGroup(string) slog.Handler      { return h }

// TestRegression_ServedWithARecordMissing: a record a request makes on
// its way (the sign-in, an inspection finding) and loses
// because the trail's queue stayed full must keep that request from
// being answered as served, even when the trail has room again by the
// time the request's own record is written. Each member makes the trail
// stall (its writer blocked, its queue full) just before the request,
// and opens it again the moment the request's record is dropped: with
// audit.on_failure refuse the answer is a 503 page with the request id
// and nothing of what was asked (no session cookie, no block page); with
// degrade it is served and counted as unconfirmed.
func TestRegression_ServedWithARecordMissing(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{config.AuditRefuse, config.AuditDegrade} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			n := startStallableNode(t, mode)
			// Sign-in: the callback records the sign-in, then its own record.
			t.Run("sign-in", func(t *testing.T) {
				c := n.client(t)
				callback := n.untilCallback(t, c, "/app/")
				resp, body := n.stalled(t, func() (*http.Response, string) { return n.do(t, c, http.MethodGet, callback, nil) })
				session := c.Cookie(n.base, "__Host-telegate")
				if mode == config.AuditRefuse {
					n.wantRefused(t, resp, body)
					if session != nil || len(resp.Header.Values("Set-Cookie")) > 0 {
						t.Errorf("refused sign-in set cookies %q", resp.Header.Values("Set-Cookie"))
					}
					if resp, _ := n.do(t, c, http.MethodGet, n.base+"/app/", nil); resp.StatusCode != http.StatusFound {
						t.Errorf("after the refused sign-in /app/ answers %d, want 302 to sign in again", resp.StatusCode)
					}
					return
				}
				if resp.StatusCode != http.StatusFound || len(resp.Header.Values("Set-Cookie")) == 0 {
					t.Errorf("degrade: sign-in answered %d with cookies %q, want it served", resp.StatusCode, resp.Header.Values("Set-Cookie"))
				}
			})
			// Inspection: a blocked request records the finding, then its own record.
			t.Run("inspection finding", func(t *testing.T) {
				c := n.client(t)
				for _, q := range []string{"q=%3Cscript%3Ealert(1)%3C%2Fscript%3E", "id=1%27%20OR%20%271%27%3D%271"} {
					resp, body := n.stalled(t, func() (*http.Response, string) {
						return n.do(t, c, http.MethodGet, n.base+"/waf/?"+q, nil)
					})
					if mode == config.AuditRefuse {
						n.wantRefused(t, resp, body)
					} else if resp.StatusCode != http.StatusForbidden {
						t.Errorf("degrade: %s answered %d, want the block (403)", q, resp.StatusCode)
					}
				}
			})
			// What was lost is counted, whatever the mode.
			if got := n.metric(t, "telegate_edge_audit_dropped_records_total"); got < 3 {
				t.Errorf("dropped records counted %v, want at least 3", got)
			}
			if got := n.metric(t, "telegate_edge_audit_unconfirmed_records_total"); got < 3 {
				t.Errorf("unconfirmed request records counted %v, want at least 3", got)
			}
		})
	}
}

// stallableNode is a node whose audit writer a test can stall.
type stallableNode struct {
	base, admin, root string
	gate              *sync.RWMutex
	armed             atomic.Bool // the next drop opens the gate
	filler            *webclient.Client
}

func startStallableNode(t *testing.T, mode string) *stallableNode {
	t.Helper()
	up := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "upstream says hello") }), ReadHeaderTimeout: 5 * time.Second}
	upLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = up.Serve(upLn) }()
	t.Cleanup(func() { _ = up.Close() })
	port := freeport.TCP(t)
	opLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	opAddr := opLn.Addr().String()
	opLn.Close()
	op, err := devop.Start(context.Background(), devop.Options{Addr: opAddr, Logger: quietLogger(),
		Clients: []devop.Client{{ID: "telegate", Secret: "s3cret-for-the-test-provider", RedirectURIs: []string{fmt.Sprintf("https://localhost:%d/.telegate/callback/staff", port)}}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = op.Close() })
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "client-secret"), []byte("s3cret-for-the-test-provider\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	upURL := "http://" + upLn.Addr().String()
	if err := os.WriteFile(filepath.Join(dir, "telegate.yaml"), []byte(fmt.Sprintf(`data_dir: ./data
server:
  listen: 127.0.0.1:%d
  http_listen: ""
  admin: 127.0.0.1:0
  public_url: https://localhost:%d
tls:
  hosts:
    - names: [localhost]
      mode: local
providers:
  - id: staff
    issuer: http://%s
    client_id: telegate
    client_secret_file: client-secret
routes:
  - id: pub
    path: /pub/
    upstream: %s
    policy:
      public: true
  - id: waf
    path: /waf/
    upstream: %s
    inspect: true
    policy:
      public: true
  - id: app
    path: /app/
    upstream: %s
    policy:
      allow: [{authenticated: true}]
audit:
  on_failure: %s
  on_failure_public: %s
log:
  level: error
`, port, port, opAddr, upURL, upURL, upURL, mode, mode)), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(filepath.Join(dir, "telegate.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	n := &stallableNode{gate: new(sync.RWMutex)}
	tune := func(o *audit.Options) {
		o.QueueSize = 1
		o.Writer = func(w io.Writer) io.Writer { return gateWriter{w, n.gate} }
		o.Logger = slog.New(dropHook{onDrop: func() {
			if n.armed.CompareAndSwap(true, false) {
				n.gate.Unlock()
			}
		}})
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan Ready, 1)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, cfg, Options{Logger: quietLogger(), Ready: func(r Ready) { ready <- r }, TuneAudit: tune})
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	select {
	case r := <-ready:
		n.base, n.admin, n.root = fmt.Sprintf("https://localhost:%d", port), r.AdminAddr, r.LocalRoot
	case err := <-done:
		t.Fatal(err)
	case <-time.After(60 * time.Second):
		t.Fatal("node did not start")
	}
	n.filler = n.client(t)
	return n
}

func (n *stallableNode) client(t *testing.T) *webclient.Client {
	t.Helper()
	c, err := webclient.New(n.root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	c.Accept = "text/html"
	return c
}

// do sends one request without following redirects; a non-nil form is
// POSTed with the headers a same-origin page form sends.
func (n *stallableNode) do(t *testing.T, c *webclient.Client, method, u string, form url.Values) (*http.Response, string) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", n.base)
		req.Header.Set("Sec-Fetch-Site", "same-origin")
	}
	resp, b, err := c.Do(c.NoRedirect(), req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	return resp, string(b)
}

// untilCallback signs in at the provider for path and returns the
// callback URL the provider sends the browser to, without following it.
func (n *stallableNode) untilCallback(t *testing.T, c *webclient.Client, path string) string {
	t.Helper()
	loc, err := c.SignInUntil(n.base+path, "clinician@demo.test", "demo", func(u *url.URL) bool {
		return strings.HasPrefix(u.Path, "/.telegate/callback/")
	})
	if err != nil {
		t.Fatal(err)
	}
	return loc.String()
}

// stalled runs send while the trail is stalled: its writer blocked on a
// record and its queue full, so the first record send's request makes is
// dropped; that drop opens the trail again at once.
func (n *stallableNode) stalled(t *testing.T, send func() (*http.Response, string)) (*http.Response, string) {
	t.Helper()
	n.gate.Lock()
	n.armed.Store(true)
	var fill sync.WaitGroup
	t.Cleanup(fill.Wait)
	// Two requests of their own: one record in the blocked write, one
	// waiting in the queue of one.
	for range 2 {
		fill.Add(1)
		go func() {
			defer fill.Done()
			_, _, _ = n.filler.Get(n.base + "/pub/fill")
		}()
	}
	deadline := time.Now().Add(10 * time.Second)
	for n.metric(t, "telegate_edge_audit_queued_records") < 1 {
		if time.Now().After(deadline) {
			n.release()
			t.Fatal("the trail's queue never filled")
		}
		time.Sleep(5 * time.Millisecond)
	}
	resp, body := send()
	if n.release() {
		t.Errorf("no record of the request was dropped: the stall did not reach it (%d)", resp.StatusCode)
	}
	return resp, body
}

// release opens the gate if no drop opened it; it reports whether it did.
func (n *stallableNode) release() bool {
	if n.armed.CompareAndSwap(true, false) {
		n.gate.Unlock()
		return true
	}
	return false
}

// wantRefused checks the answer of a request refused for its lost
// record: 503, the request id on the page.
func (n *stallableNode) wantRefused(t *testing.T, resp *http.Response, body string) {
	t.Helper()
	rid := resp.Header.Get("X-Request-Id")
	if resp.StatusCode != http.StatusServiceUnavailable || rid == "" || !strings.Contains(body, rid) {
		t.Errorf("answered %d (request id %q), want 503 naming the request id; %.300s", resp.StatusCode, rid, body)
	}
	if !strings.Contains(body, "could not be recorded") {
		t.Errorf("the page does not say why: %.300s", body)
	}
}

// metric reads one unlabelled metric from the admin listener.
func (n *stallableNode) metric(t *testing.T, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + n.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	t.Fatalf("metric %s not served", name)
	return 0
}
