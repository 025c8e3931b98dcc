package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/demo/demoapp"
)

// loadResult is one request of the load.
type loadResult struct {
	worker     int
	slow       bool
	proto      string
	start, end time.Time
	status     int
	err        error
}

// refused reports whether err means the request never reached the
// gateway: the connection to a closed listener was refused.
func refused(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial" && errors.Is(err, syscall.ECONNREFUSED)
}

// TestRegression_SIGTERMUnderLoadLosesNoAcceptedRequest: SIGTERM in the
// middle of a steady load drains the node. Every request the gateway
// accepted gets its upstream's answer (200), over HTTP/1.1 and HTTP/2,
// the slow ones in flight at the signal included; what comes after is
// refused at connect, never reset or answered 5xx. /readyz answers 503
// right after the signal, an open signaling WebSocket is closed with 1001
// and the restart reason, the process exits 0 well within
// server.shutdown_timeout, and the audit trail ends with node.stop and
// verifies.
func TestRegression_SIGTERMUnderLoadLosesNoAcceptedRequest(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	d := startDemo(t, dataDir, freePort(t), freePort(t))
	base := d.Base()
	pool := rootPool(t, d)

	// An open call: the clinician's signaling socket of a fresh visit.
	dr := newBrowser(t, d)
	if resp, body := dr.signIn(base, "/", "clinician@demo.test", "demo"); resp.StatusCode != http.StatusOK {
		t.Fatalf("sign-in: %d %.300s", resp.StatusCode, body)
	}
	visitID := createVisit(t, dr, base)
	wsCtx, wsCancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer wsCancel()
	ws, _, err := websocket.Dial(wsCtx, strings.Replace(base, "https:", "wss:", 1)+"/.telegate/visits/"+visitID+"/signal", &websocket.DialOptions{
		HTTPClient: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, NextProtos: []string{"http/1.1"}}}},
		HTTPHeader: http.Header{
			"Origin": {base},
			"Cookie": {sessionCookie + "=" + dr.cookie(base, sessionCookie).Value},
		},
	})
	if err != nil {
		t.Fatalf("signaling socket: %v", err)
	}
	defer ws.CloseNow()
	if _, b, err := ws.Read(wsCtx); err != nil || !strings.Contains(string(b), `"welcome"`) {
		t.Fatalf("signaling socket: %q %v", b, err)
	}
	type wsEnd struct {
		at  time.Time
		err error
	}
	wsDone := make(chan wsEnd, 1)
	go func() {
		for {
			if _, _, err := ws.Read(wsCtx); err != nil {
				wsDone <- wsEnd{time.Now(), err}
				return
			}
		}
	}()

	// The load: four clients (two HTTP/1.1, two HTTP/2) with keep-alive,
	// every third request to the demo app's slow path (300 ms), at most
	// maxRequests in all; SIGTERM once signalAfter have been answered
	// while a slow one is in flight.
	const (
		workers     = 4
		maxRequests = 400
		signalAfter = 200
	)
	var (
		issued, answered, slowInFlight atomic.Int64
		mu                             sync.Mutex
		results                        []loadResult
		signalled                      = make(chan time.Time, 1)
		signalOnce                     sync.Once
	)
	sigterm := func() {
		signalOnce.Do(func() {
			if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Errorf("SIGTERM: %v", err)
			}
			signalled <- time.Now()
		})
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tr := &http.Transport{
				TLSClientConfig:     &tls.Config{RootCAs: pool},
				ForceAttemptHTTP2:   w%2 == 1,
				MaxIdleConnsPerHost: 2,
			}
			if w%2 == 0 {
				tr.TLSClientConfig.NextProtos = []string{"http/1.1"}
			}
			defer tr.CloseIdleConnections()
			hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}
			for {
				n := issued.Add(1)
				if n > maxRequests {
					return
				}
				r := loadResult{worker: w, slow: n%3 == 0, start: time.Now()}
				u := base + "/public/info?n=" + fmt.Sprint(n)
				if r.slow {
					u = base + demoapp.SlowPath + "?ms=300"
					slowInFlight.Add(1)
				}
				req, _ := http.NewRequest(http.MethodGet, u, nil)
				req.Header.Set("Accept", "application/json")
				resp, err := hc.Do(req)
				if err == nil {
					r.proto, r.status = resp.Proto, resp.StatusCode
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				if r.slow {
					slowInFlight.Add(-1)
				}
				r.end, r.err = time.Now(), err
				mu.Lock()
				results = append(results, r)
				mu.Unlock()
				if err != nil {
					return // refused (checked below): the node stopped accepting
				}
				if answered.Add(1) >= signalAfter && slowInFlight.Load() > 0 {
					sigterm()
				}
			}
		}()
	}

	var sigAt time.Time
	select {
	case sigAt = <-signalled:
	case <-time.After(60 * time.Second):
		t.Fatalf("the load did not reach %d answers in time (%d so far)", signalAfter, answered.Load())
	}
	// /readyz turns 503 as soon as the signal is handled, so a load
	// balancer stops sending, and keeps answering while the node drains.
	readyStatus, readyAt := 0, time.Duration(0)
	for hc := (&http.Client{Timeout: 2 * time.Second}); time.Since(sigAt) < time.Second; time.Sleep(2 * time.Millisecond) {
		resp, err := hc.Get(d.AdminURL() + "/readyz")
		if err != nil {
			break
		}
		resp.Body.Close()
		readyStatus, readyAt = resp.StatusCode, time.Since(sigAt)
		if readyStatus == http.StatusServiceUnavailable {
			break
		}
	}

	timeout := config.DefaultShutdownTimeout
	select {
	case <-d.done:
	case <-time.After(timeout + 5*time.Second):
		t.Fatalf("still running %v after SIGTERM (shutdown_timeout %v):\n%s", timeout+5*time.Second, timeout, logLines(d))
	}
	exitAfter := time.Since(sigAt)
	wg.Wait()

	if readyStatus != http.StatusServiceUnavailable || readyAt > 500*time.Millisecond {
		t.Errorf("/readyz %v after SIGTERM: %d, want 503 at once", readyAt, readyStatus)
	}
	if code := d.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("exit status %d after SIGTERM, want 0:\n%s", code, logLines(d))
	}
	if exitAfter > timeout {
		t.Errorf("exited %v after SIGTERM, past shutdown_timeout %v", exitAfter, timeout)
	}

	// Every request: a 200, or refused at connect after the signal.
	var ok, refusedN, slowAcross int
	protos := map[string]int{}
	for _, r := range results {
		switch {
		case r.err == nil && r.status == http.StatusOK:
			ok++
			protos[r.proto]++
			if r.slow && r.start.Before(sigAt) && r.end.After(sigAt) {
				slowAcross++
			}
		case r.err == nil:
			t.Errorf("worker %d: %s answered %d", r.worker, r.proto, r.status)
		case refused(r.err) && r.end.After(sigAt):
			refusedN++
		default:
			t.Errorf("worker %d: request started %v after SIGTERM (slow %v) failed: %v",
				r.worker, r.start.Sub(sigAt).Round(time.Millisecond), r.slow, r.err)
		}
	}
	if slowAcross == 0 {
		t.Error("no slow request was in flight across the signal")
	}
	if protos["HTTP/1.1"] == 0 || protos["HTTP/2.0"] == 0 {
		t.Errorf("protocols answered: %v, want HTTP/1.1 and HTTP/2.0", protos)
	}

	// The signaling socket was told, with a reason the page shows.
	select {
	case e := <-wsDone:
		var ce websocket.CloseError
		if !errors.As(e.err, &ce) || ce.Code != websocket.StatusGoingAway || !strings.Contains(ce.Reason, "restarting") {
			t.Errorf("the signaling socket ended with %v, want close 1001 saying the node is restarting", e.err)
		} else {
			t.Logf("signaling socket closed %v after SIGTERM: %d %q", e.at.Sub(sigAt).Round(time.Millisecond), ce.Code, ce.Reason)
		}
	default:
		t.Error("the process exited and the signaling socket saw no close")
	}

	// The audit trail records the stop last, and verifies.
	last := lastAuditRecord(t, filepath.Join(dataDir, "audit", "audit.log"))
	if last.Type != "node.stop" || last.Reason != "shutdown" {
		t.Errorf("last audit record %+v, want node.stop (shutdown)", last)
	}
	out, err := runBinary(t, "audit", "verify", "--data-dir", dataDir)
	if err != nil || !strings.Contains(out, ": ok,") {
		t.Errorf("audit verify: %v\n%s", err, out)
	}
	t.Logf("%d requests: %d answered 200 (%v), %d slow ones across the signal, %d refused after it; /readyz %d %v after SIGTERM; exit 0 after %v; %s",
		len(results), ok, protos, slowAcross, refusedN, readyStatus, readyAt.Round(time.Millisecond), exitAfter.Round(time.Millisecond), strings.TrimSpace(out))
	for _, l := range strings.Split(logLines(d), "\n") {
		if strings.Contains(l, "drain") || strings.Contains(l, "stopped") {
			t.Log(l)
		}
	}
}

// lastAuditRecord reads the last line of the audit trail at path.
func lastAuditRecord(t *testing.T, path string) struct{ Type, Reason string } {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var last string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		last = sc.Text()
	}
	var rec struct{ Type, Reason string }
	if err := json.Unmarshal([]byte(last), &rec); err != nil {
		t.Fatalf("last audit record %q: %v", last, err)
	}
	return rec
}

// deadlineConfig is `telegate run -c` with a route to a slow upstream
// (%[8]s) and a one-second drain.
var deadlineConfig = runConfig{
	Server:    "  shutdown_timeout: 1s\n",
	Providers: devOP,
	Routes: `  - id: hang
    path: /hang/
    upstream: %[8]s
    timeout: 60s
    policy:
      public: true
`,
}.String()

// TestRegression_SIGTERMDrainDeadlineClosesWhatIsLeft: a request that
// outlasts server.shutdown_timeout does not keep the node up: at the
// deadline its connection is closed, and `telegate run` still exits 0
// with an audit trail that ends with node.stop and verifies.
func TestRegression_SIGTERMDrainDeadlineClosesWhatIsLeft(t *testing.T) {
	started := make(chan struct{}, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		select {
		case <-r.Context().Done():
		case <-time.After(30 * time.Second):
		}
	}))
	defer up.Close()
	d := runWithDevOP(t, deadlineConfig, up.URL)

	hung := make(chan error, 1)
	go func() {
		hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: rootPool(t, d)}}}
		resp, err := hc.Get(d.Base() + "/hang/x")
		if err == nil {
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err == nil {
				err = fmt.Errorf("answered %s", resp.Status)
			}
		}
		hung <- err
	}()
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatalf("the request did not reach the upstream:\n%s", logLines(d))
	}
	sigAt := time.Now()
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	const timeout = time.Second
	select {
	case <-d.done:
	case <-time.After(timeout + 10*time.Second):
		t.Fatalf("still running %v after SIGTERM (shutdown_timeout %v):\n%s", timeout+10*time.Second, timeout, logLines(d))
	}
	exitAfter := time.Since(sigAt)
	if code := d.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("exit status %d after a drain cut short at its deadline, want 0:\n%s", code, logLines(d))
	}
	if exitAfter < timeout || exitAfter > timeout+4*time.Second {
		t.Errorf("exited %v after SIGTERM, want just after the %v deadline", exitAfter, timeout)
	}
	if !strings.Contains(logLines(d), "drain deadline reached") {
		t.Errorf("the cut-short drain is not logged:\n%s", logLines(d))
	}
	var hungErr error
	select {
	case hungErr = <-hung:
	case <-time.After(5 * time.Second):
		t.Fatal("the request outlasting the deadline is still open after the process exited")
	}
	last := lastAuditRecord(t, filepath.Join(d.dataDir, "audit", "audit.log"))
	if last.Type != "node.stop" || last.Reason != "shutdown" {
		t.Errorf("last audit record %+v, want node.stop (shutdown)", last)
	}
	out, err := runBinary(t, "audit", "verify", "--data-dir", d.dataDir)
	if err != nil || !strings.Contains(out, ": ok,") {
		t.Errorf("audit verify: %v\n%s", err, out)
	}
	t.Logf("exit 0 %v after SIGTERM (shutdown_timeout %v); the request outlasting it ended with: %v; %s",
		exitAfter.Round(time.Millisecond), timeout, hungErr, strings.TrimSpace(out))
}

// TestRegression_CallRejoinsAfterNodeRestart: a call in two browsers
// survives restarts of its node, whichever page's signaling comes back
// first. SIGTERM closes both signaling sockets with 1001, both call pages
// say telegate is restarting, the process exits 0; once the node is back
// on the same ports and data directory the pages reconnect by themselves,
// with fresh relay credentials, and video flows again both ways. The kind
// is a negotiation half lost while the other page is away: one page back
// first restarts ICE toward a peer whose socket is still closed, and its
// offer goes nowhere, or an offer and an answer cross a restart. Members:
// both back together, the polite side of the pair back last, the impolite
// side back last (whose unanswered offer would otherwise make it ignore the
// other's offer for good); a page whose restart did not bring the
// connection up tries again.
func TestRegression_CallRejoinsAfterNodeRestart(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	port, admin := freePort(t), freePort(t)
	d := startDemo(t, dataDir, port, admin)
	d.logVisitOnFailure()
	newCtx := chromium(t)
	dr := newPage(t, newCtx, "clinician")
	pat := newPage(t, newCtx, "patient")
	visitID, _ := startCall(t, d.Base(), dr, pat, t.TempDir())
	selfID := func(p *page) string {
		return eval[string](p, fmt.Sprintf(`fetch('/.telegate/visits/%s').then(r => r.json()).then(v => v.self.id)`, visitID))
	}
	ids := map[*page]string{dr: selfID(dr), pat: selfID(pat)}
	polite, impolite := dr, pat
	if ids[dr] < ids[pat] {
		polite, impolite = pat, dr
	}
	// Both orders, named by side rather than by role: which role is the
	// impolite one follows from the ids, drawn afresh each run.
	for _, held := range []*page{nil, polite, impolite} {
		d = restartDuringCall(t, d, dr, pat, held, ids)
	}
}

// restartDuringCall restarts d's node under a call between dr and pat and
// returns the new node once video flows again both ways. With held set,
// that page's signaling stays away (its sockets go to a closed port) until
// the other page is back, has restarted ICE toward it (an allocation on the
// new relay shows it) and has seen that connection fail.
func restartDuringCall(t *testing.T, d *demo, dr, pat, held *page, ids map[*page]string) *demo {
	t.Helper()
	round := "both back together"
	if held != nil {
		side := "impolite"
		if ids[held] == max(ids[dr], ids[pat]) {
			side = "polite"
		}
		round = "the " + held.name + " (the " + side + " side) back last"
		_ = eval[bool](held, fmt.Sprintf(`(() => {
  if (!window.__WebSocket) {
    window.__WebSocket = WebSocket;
    window.WebSocket = class extends window.__WebSocket {
      constructor(url, protocols) { super(window.__holdSignal ? 'wss://127.0.0.1:%d/' : url, protocols); }
    };
  }
  return window.__holdSignal = true;
})()`, freePort(t)))
	}
	// Every status each page shows from now on, so that the restart
	// notice counts once shown, even if a later status (Reconnecting…)
	// took its place before the check looked.
	for _, p := range []*page{dr, pat} {
		_ = eval[bool](p, `(() => {
  const el = document.querySelector('#call-status');
  window.__statuses = [el.textContent];
  new MutationObserver(() => window.__statuses.push(el.textContent)).observe(el, { childList: true, characterData: true, subtree: true });
  return true;
})()`)
	}
	sigAt := time.Now()
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-d.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s: still running 30s after SIGTERM:\n%s", round, logLines(d))
	}
	if code := d.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("%s: exit status %d after SIGTERM during a call:\n%s", round, code, logLines(d))
	}
	t.Logf("%s: exit 0 %v after SIGTERM during the call", round, time.Since(sigAt).Round(time.Millisecond))
	for _, p := range []*page{dr, pat} {
		p.waitFor("the restart notice", `(window.__statuses || []).concat(document.querySelector('#call-status').textContent).some(s => s.includes('restarting'))`, 10*time.Second)
	}

	restarted := time.Now()
	d2 := startDemo(t, d.dataDir, d.port, d.admin)
	d2.logVisitOnFailure()
	if held != nil {
		first := dr
		if held == dr {
			first = pat
		}
		first.waitFor("the call page back", `!document.querySelector('#call-status').textContent.includes('restarting')`, 30*time.Second)
		deadline := time.Now().Add(30 * time.Second)
		for !allocatedSince(t, d.dataDir, ids[first], restarted) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: the %s restarted no ICE toward the page still away", round, first.name)
			}
			time.Sleep(250 * time.Millisecond)
		}
		// Away until the page back first has given up on its own restarts
		// (its connection failed), so that only the return itself can
		// bring the call back.
		first.waitFor("the connection failed", `document.querySelector('#connection-state').dataset.state === 'failed'`, 60*time.Second)
		_ = eval[bool](held, `!(window.__holdSignal = false)`)
	}
	// The old relay is gone with the old process: video that flows now
	// flows through the new one, so it is enough to see it grow.
	for _, p := range []*page{dr, pat} {
		p.waitFor("the call rejoined", `!document.querySelector('#call-status').textContent.includes('restarting')`, 30*time.Second)
		grown, prev := 0.0, -1.0
		deadline := time.Now().Add(45 * time.Second)
		for grown < 50000 {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %s: video has not flowed again %v after the restart (grew %.0f bytes): %s", round, p.name,
					time.Since(restarted).Round(time.Second), grown, eval[string](p, `document.querySelector('#call-status').textContent`))
			}
			v := eval[float64](p, `Number(document.querySelector('#stats').dataset.inboundVideoBytes || 0)`)
			if prev >= 0 && v > prev {
				grown += v - prev
			}
			prev = v
			time.Sleep(250 * time.Millisecond)
		}
		t.Logf("%s: %s: video flowing again %v after the node was started again", round, p.name, time.Since(restarted).Round(100*time.Millisecond))
	}
	return d2
}

// allocatedSince reports whether the audit trail in dataDir holds a relay
// allocation created for participant pid at or after since.
func allocatedSince(t *testing.T, dataDir, pid string, since time.Time) bool {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dataDir, "audit", "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		var rec struct {
			Type  string
			Time  time.Time
			Attrs map[string]string
		}
		if json.Unmarshal([]byte(l), &rec) == nil && rec.Type == "relay.allocation" &&
			rec.Attrs["event"] == "created" && rec.Attrs["participant"] == pid && !rec.Time.Before(since) {
			return true
		}
	}
	return false
}
