package media

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/telegate/telegate/audit"
	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/internal/webhook"
	"github.com/telegate/telegate/media/relay"
	"github.com/telegate/telegate/scope"
)

// spyRelay is the real relay (media/relay, serving on loopback) with a
// record of the calls media made, so tests can see the decisions reach it.
type spyRelay struct {
	*relay.Server
	addr     *net.UDPAddr
	mu       sync.Mutex
	admitted map[string]bool // visit/participant
	removed  []string
	ended    []string
}

var relayPorts atomic.Int32

// newSpyRelay starts a relay on 127.0.0.1 with a port range of its own.
func newSpyRelay(t testing.TB) *spyRelay {
	t.Helper()
	lo := uint16(30000 + 100*(relayPorts.Add(1)%300))
	srv, err := relay.New(relay.Options{
		Config: config.Relay{
			Enabled:             true,
			Listen:              "127.0.0.1:0",
			UDPSockets:          1,
			RelayAddresses:      []netip.Addr{netip.MustParseAddr("127.0.0.1")},
			PortMin:             lo,
			PortMax:             lo + 99,
			Secrets:             []string{"media-test-secret-0123456789"},
			AllocationRate:      config.RateLimit{Rate: 1000, Burst: 1000},
			UnauthenticatedRate: config.RateLimit{Rate: 1000, Burst: 1000},
		},
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	ua := srv.LocalAddr().(*net.UDPAddr)
	return &spyRelay{Server: srv, addr: &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: ua.Port}, admitted: map[string]bool{}}
}

func (r *spyRelay) Admit(v, p string) {
	r.Server.Admit(v, p)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.admitted[v+"/"+p] = true
}

func (r *spyRelay) Remove(v, p string) {
	r.Server.Remove(v, p)
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.admitted, v+"/"+p)
	r.removed = append(r.removed, v+"/"+p)
}

func (r *spyRelay) EndVisit(v string) {
	r.Server.EndVisit(v)
	r.mu.Lock()
	defer r.mu.Unlock()
	for k := range r.admitted {
		if strings.HasPrefix(k, v+"/") {
			delete(r.admitted, k)
		}
	}
	r.ended = append(r.ended, v)
}

func (r *spyRelay) isAdmitted(v, p string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.admitted[v+"/"+p]
}

func (r *spyRelay) wasEnded(v string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.ended {
		if e == v {
			return true
		}
	}
	return false
}

// recordSink keeps audit events.
type recordSink struct {
	mu     sync.Mutex
	events []audit.Event
}

func (s *recordSink) Record(_ context.Context, e audit.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, e)
}

func (s *recordSink) all() []audit.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]audit.Event(nil), s.events...)
}

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// users are the test identities, chosen per request by the X-Test-User
// header that the test middleware (standing in for the gateway's
// authentication stage) turns into scope.Identity.
var users = map[string]*scope.Identity{
	"dr":      {Kind: "session", Issuer: "https://staff-idp", Subject: "dr-1", Roles: []string{"clinician"}, Claims: map[string]any{"name": "Dr. Ada Owner"}, SessionID: "sess-dr"},
	"dr2":     {Kind: "session", Issuer: "https://staff-idp", Subject: "dr-2", Roles: []string{"clinician"}, Claims: map[string]any{"name": "Dr. Other"}, SessionID: "sess-dr2"},
	"pat":     {Kind: "session", Issuer: "https://patient-idp", Subject: "p-1", Roles: []string{"patient"}, Claims: map[string]any{"name": "Pat Patient"}, SessionID: "sess-pat"},
	"pat2":    {Kind: "session", Issuer: "https://patient-idp", Subject: "p-2", Roles: []string{"patient"}, Claims: map[string]any{"name": "Second Patient"}, SessionID: "sess-pat2"},
	"pat3":    {Kind: "session", Issuer: "https://patient-idp", Subject: "p-3", Roles: []string{"patient"}, Claims: map[string]any{"name": "Third Patient"}, SessionID: "sess-pat3"},
	"svc":     {Kind: "bearer", Issuer: "https://scheduler", Subject: "scheduler", Roles: []string{"service"}},
	"mark":    {Kind: "session", Issuer: "https://patient-idp", Subject: "p-4", Roles: []string{"patient"}, Claims: map[string]any{"name": `<img src=x onerror=alert(1)> & "Co"`}, SessionID: "sess-mark"},
	"mail":    {Kind: "session", Issuer: "https://staff-idp", Subject: "dr-3", Roles: []string{"clinician"}, Claims: map[string]any{"email": "dr.mail@hospital.test"}, SessionID: "sess-mail"},
	"anon":    {Kind: "session", Issuer: "https://patient-idp", Subject: "p-5", Roles: []string{"patient"}, SessionID: "sess-anon"},
	"blank":   {Kind: "session", Issuer: "https://patient-idp", Subject: "p-6", Roles: []string{"patient"}, Claims: map[string]any{"name": " \u200b\t "}, SessionID: "sess-blank"},
	"numeric": {Kind: "session", Issuer: "https://patient-idp", Subject: "p-7", Roles: []string{"patient"}, Claims: map[string]any{"name": 42}, SessionID: "sess-numeric"},
}

// benchUser is a patient identity with subject name.
func benchUser(name string) *scope.Identity {
	return &scope.Identity{Kind: "session", Issuer: "https://patient-idp", Subject: name, Roles: []string{"patient"}, Claims: map[string]any{"name": name}, SessionID: "sess-" + name}
}

func withTestIdentity(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sc := &scope.Scope{RequestID: "req-test", ClientAddr: netip.MustParseAddr("127.0.0.1"), Host: "127.0.0.1", Path: r.URL.Path}
		if u := r.Header.Get("X-Test-User"); strings.HasPrefix(u, "bench-") {
			sc.Identity = benchUser(u)
		} else if u != "" {
			sc.Identity = users[u]
		}
		next.ServeHTTP(w, r.WithContext(scope.With(r.Context(), sc)))
	})
}

type harness struct {
	t     *testing.T
	svc   *Service
	srv   *httptest.Server
	relay *spyRelay
	sink  *recordSink
	clock *clock
	dir   string
	cfg   config.Visits
	key   []byte
	// sessions, when set before start, is told of calls in progress.
	sessions Sessions
	// draining is every request's scope.Scope.Draining: the gateway
	// closes it when the node begins to shut down.
	draining chan struct{}
	// redis, when set before start, keeps the visits in that Redis.
	redis *RedisOptions
	// limiter is Options.Limiter (nil: the service's own).
	limiter Limiter
	// alert, set before start, is the arrival webhooks' schedule and
	// transport.
	alert webhook.Options
	// hooks, when set before start, keeps the arrival webhooks'
	// deliveries (Options.WebhookStore).
	hooks webhook.Store
	// sndbuf, when above zero, is the send buffer (SO_SNDBUF) of the
	// server's connections: a client that stops reading stops the
	// server's writes after a few kilobytes instead of megabytes.
	sndbuf int
}

func newHarness(t *testing.T, cfg config.Visits) *harness {
	t.Helper()
	return newHarnessSndbuf(t, cfg, 0)
}

// newHarnessSndbuf is newHarness with the server's send buffers set to
// sndbuf bytes (harness.sndbuf).
func newHarnessSndbuf(t *testing.T, cfg config.Visits, sndbuf int) *harness {
	t.Helper()
	return newHarnessWith(t, cfg, func(h *harness) { h.sndbuf = sndbuf })
}

// newHarnessWith is newHarness with set applied to the harness before its
// service starts.
func newHarnessWith(t *testing.T, cfg config.Visits, set func(*harness)) *harness {
	t.Helper()
	h := &harness{t: t, relay: newSpyRelay(t), sink: &recordSink{}, clock: &clock{t: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)}, dir: t.TempDir(), cfg: cfg,
		draining: make(chan struct{})}
	set(h)
	h.start()
	t.Cleanup(func() {
		h.srv.Close()
		_ = h.svc.Close()
	})
	return h
}

func (h *harness) start() {
	h.t.Helper()
	svc, err := New(Options{Config: h.cfg, DataDir: h.dir, Relay: h.relay, Sessions: h.sessions, Audit: h.sink, Now: h.clock.Now, InviteKey: h.key, Redis: h.redis, AlertWebhook: h.alert, WebhookStore: h.hooks, Limiter: h.limiter})
	if err != nil {
		h.t.Fatal(err)
	}
	h.svc = svc
	draining := h.draining
	h.srv = httptest.NewUnstartedServer(withTestIdentity(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scope.From(r.Context()).Draining = draining
		svc.Handler().ServeHTTP(w, r)
	})))
	if h.sndbuf > 0 {
		// Accepted connections inherit the listening socket's buffer.
		lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
			var serr error
			if err := rc.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF, h.sndbuf)
			}); err != nil {
				return err
			}
			return serr
		}}
		ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
		if err != nil {
			h.t.Fatal(err)
		}
		h.srv.Listener.Close()
		h.srv.Listener = ln
	}
	h.srv.Start()
}

// restart closes the service and opens a new one on the same data dir.
func (h *harness) restart() {
	h.t.Helper()
	h.srv.Close()
	if err := h.svc.Close(); err != nil {
		h.t.Fatal(err)
	}
	h.start()
}

// do sends a same-origin request as user ("" for anonymous) and decodes a
// JSON answer into a map.
func (h *harness) do(user, method, path string, body any) (int, map[string]any) {
	h.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, h.srv.URL+path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if user != "" {
		req.Header.Set("X-Test-User", user)
	}
	req.Header.Set("Origin", h.srv.URL)
	req.Header.Set("X-Telegate-CSRF", "1")
	return h.send(req)
}

func (h *harness) send(req *http.Request) (int, map[string]any) {
	h.t.Helper()
	st, m, _ := h.sendResp(req)
	return st, m
}

// sendResp is send that also returns the response (its body read).
func (h *harness) sendResp(req *http.Request) (int, map[string]any, *http.Response) {
	h.t.Helper()
	c := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &m)
	return resp.StatusCode, m, resp
}

// createVisit creates a visit as user and returns its id and invite token.
func (h *harness) createVisit(user string, body map[string]any) (string, string) {
	h.t.Helper()
	if body == nil {
		body = map[string]any{"title": "Secret diagnosis follow-up"}
	}
	st, m := h.do(user, "POST", "/.telegate/visits", body)
	if st != http.StatusCreated {
		h.t.Fatalf("create: %d %v", st, m)
	}
	inv := m["invite"].(map[string]any)["url"].(string)
	i := strings.Index(inv, "invite=")
	return m["id"].(string), inv[i+len("invite="):]
}

// join joins the waiting room as user and returns the participant id.
func (h *harness) join(user, invite string) string {
	h.t.Helper()
	st, m := h.do(user, "POST", "/.telegate/visits/join", map[string]any{"invite": unescape(invite)})
	if st != http.StatusOK {
		h.t.Fatalf("join as %s: %d %v", user, st, m)
	}
	return m["self"].(map[string]any)["id"].(string)
}

func unescape(s string) string {
	return strings.NewReplacer("%2E", ".", "%2e", ".").Replace(s)
}

// admitted creates a visit as dr, joins pat and admits pat.
func (h *harness) admitted() (visitID, hostPID, patPID string) {
	h.t.Helper()
	vid, inv := h.createVisit("dr", nil)
	pid := h.join("pat", inv)
	if st, m := h.do("dr", "POST", "/.telegate/visits/"+vid+"/admit", map[string]any{"participant": pid}); st != http.StatusNoContent {
		h.t.Fatalf("admit: %d %v", st, m)
	}
	_, m := h.do("dr", "GET", "/.telegate/visits/"+vid, nil)
	host := m["self"].(map[string]any)["id"].(string)
	return vid, host, pid
}

// dial opens a signaling socket as user with the given Origin.
func (h *harness) dial(user, visitID, origin string) (*websocket.Conn, *http.Response, error) {
	return h.dialAt(user, visitID, "signal", origin)
}

// dialAt opens the visit's WebSocket endpoint ("signal", "chat") as user
// with the given Origin.
func (h *harness) dialAt(user, visitID, endpoint, origin string) (*websocket.Conn, *http.Response, error) {
	hdr := http.Header{}
	if user != "" {
		hdr.Set("X-Test-User", user)
	}
	if origin != "" {
		hdr.Set("Origin", origin)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// visitID may carry the signal URL's query: "<id>?session=…".
	id, query, _ := strings.Cut(visitID, "?")
	if query != "" {
		query = "?" + query
	}
	u := "ws" + strings.TrimPrefix(h.srv.URL, "http") + "/.telegate/visits/" + id + "/" + endpoint + query
	return websocket.Dial(ctx, u, &websocket.DialOptions{HTTPHeader: hdr})
}

func (h *harness) mustDial(user, visitID string) *websocket.Conn {
	h.t.Helper()
	c, resp, err := h.dial(user, visitID, h.srv.URL)
	if err != nil {
		st := 0
		if resp != nil {
			st = resp.StatusCode
		}
		h.t.Fatalf("dial as %s: %v (status %d)", user, err, st)
	}
	c.SetReadLimit(1 << 20)
	h.t.Cleanup(func() { c.CloseNow() })
	return c
}

// readMsg reads one server message within 3 s.
func readMsg(t *testing.T, c *websocket.Conn) (serverMsg, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, b, err := c.Read(ctx)
	if err != nil {
		return serverMsg{}, err
	}
	var m serverMsg
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("server sent non-JSON %q", b)
	}
	return m, nil
}

// readType reads until a message of type typ arrives.
func readType(t *testing.T, c *websocket.Conn, typ string) serverMsg {
	t.Helper()
	for {
		m, err := readMsg(t, c)
		if err != nil {
			t.Fatalf("waiting for %q: %v", typ, err)
		}
		if m.Type == typ {
			return m
		}
	}
}

// closeStatus reads until the socket closes and returns its close code.
func closeStatus(t *testing.T, c *websocket.Conn) websocket.StatusCode {
	t.Helper()
	for {
		if _, err := readMsg(t, c); err != nil {
			return websocket.CloseStatus(err)
		}
	}
}

func sendJSON(t *testing.T, c *websocket.Conn, v any) {
	t.Helper()
	b, _ := json.Marshal(v)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, b); err != nil {
		t.Fatal(err)
	}
}

// testSDP is a minimal WebRTC-shaped SDP with fingerprint fp and ICE
// credentials ufrag/pwd.
func testSDP(fp, ufrag, pwd string) string {
	return "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n" +
		"m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=ice-ufrag:" + ufrag + "\r\na=ice-pwd:" + pwd +
		"\r\na=fingerprint:sha-256 " + fp + "\r\na=setup:actpass\r\na=mid:0\r\na=rtpmap:96 VP8/90000\r\n"
}

func fpOf(b byte) string {
	parts := make([]string, 32)
	for i := range parts {
		parts[i] = fmt.Sprintf("%02X", b+byte(i))
	}
	return strings.Join(parts, ":")
}

// writeMsg writes v on c, reporting the error.
func writeMsg(c *websocket.Conn, v any) error {
	b, _ := json.Marshal(v)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return c.Write(ctx, websocket.MessageText, b)
}

// stillOpen fails unless c answers a ping message with a pong.
func stillOpen(t *testing.T, who string, c *websocket.Conn) {
	t.Helper()
	if err := writeMsg(c, map[string]any{"type": "ping"}); err != nil {
		t.Fatalf("%s: %v", who, err)
	}
	for {
		m, err := readMsg(t, c)
		if err != nil {
			t.Fatalf("%s's socket was closed: %v", who, err)
		}
		if m.Type == "pong" {
			return
		}
	}
}
