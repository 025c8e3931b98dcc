package gateway

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/telegate/telegate/audit"
	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/scope"
)

const appHost = "app.example.test"

// seenRequest is what the upstream received.
type seenRequest struct {
	Method     string
	RequestURI string
	Host       string
	Header     http.Header
	Body       string
}

// recorder is a real upstream on loopback that records every request.
type recorder struct {
	mu   sync.Mutex
	reqs []seenRequest
	srv  *httptest.Server
}

func newRecorder(t testing.TB) *recorder {
	rec := &recorder{}
	rec.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rec.mu.Lock()
		rec.reqs = append(rec.reqs, seenRequest{r.Method, r.RequestURI, r.Host, r.Header.Clone(), string(body)})
		rec.mu.Unlock()
		if strings.HasPrefix(r.URL.Path, "/slow/") {
			select {
			case <-time.After(2 * time.Second):
			case <-r.Context().Done():
			}
		}
		w.Header().Set("X-Upstream", "yes")
		w.Header().Set("X-Request-Id", "upstream-chosen")
		w.Header().Add("Set-Cookie", "__Host-telegate=fixated; Path=/; Secure")
		w.Header().Add("Set-Cookie", "app=1; Path=/")
		_, _ = io.WriteString(w, "upstream ok")
	}))
	t.Cleanup(rec.srv.Close)
	return rec
}

func (rec *recorder) all() []seenRequest {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]seenRequest(nil), rec.reqs...)
}

func (rec *recorder) last() (seenRequest, bool) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.reqs) == 0 {
		return seenRequest{}, false
	}
	return rec.reqs[len(rec.reqs)-1], true
}

// auditLog collects audit events.
type auditLog struct {
	mu sync.Mutex
	ev []audit.Event
}

func (a *auditLog) Record(_ context.Context, e audit.Event) {
	a.mu.Lock()
	a.ev = append(a.ev, e)
	a.mu.Unlock()
}

// find waits up to two seconds for the event of requestID (the record is
// written once the response is done, which may be after the client has
// read it).
func (a *auditLog) find(requestID string) (audit.Event, bool) {
	deadline := time.Now().Add(2 * time.Second)
	for {
		a.mu.Lock()
		for _, e := range a.ev {
			if e.RequestID == requestID {
				a.mu.Unlock()
				return e, true
			}
		}
		a.mu.Unlock()
		if time.Now().After(deadline) {
			return audit.Event{}, false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// testIdentities are what the test authenticator attaches, by cookie value.
var testIdentities = map[string]*scope.Identity{
	"alice": {Kind: "session", Provider: "staff", Issuer: "https://idp.example.test", Subject: "alice",
		Roles: []string{"clinician"}, AMR: []string{"pwd", "otp"}, SessionID: "sess-alice",
		Claims: map[string]any{"name": "Alice Example", "email": "alice@example.test"}},
	"root": {Kind: "session", Provider: "staff", Issuer: "https://idp.example.test", Subject: "root",
		Roles: []string{"admin"}, AMR: []string{"mfa"}, SessionID: "sess-root",
		Claims: map[string]any{"name": "Root Admin"}},
}

// expiringIdentity is the clinician identity of a cookie value
// "expiring:<kind>:<unix nanoseconds>": a bearer token or device
// certificate (kind; of bearer "staff-api" or client CA "ward-ca") whose
// NotAfter is that time; nil otherwise.
func expiringIdentity(v string) *scope.Identity {
	kind, at, ok := strings.Cut(strings.TrimPrefix(v, "expiring:"), ":")
	if !strings.HasPrefix(v, "expiring:") || !ok {
		return nil
	}
	n, err := strconv.ParseInt(at, 10, 64)
	if err != nil {
		return nil
	}
	id := &scope.Identity{Kind: kind, Provider: "staff-api", Issuer: "https://idp.example.test", Subject: "carol",
		Roles: []string{"clinician"}, AMR: []string{"pwd", "otp"}, NotAfter: time.Unix(0, n)}
	if kind == "device" {
		id.Provider, id.Issuer, id.Subject = "ward-ca", "device:ward-ca", "monitor-7"
	}
	return id
}

// testAuth is a small Authenticator: the cookie "tg-test" names an
// identity of testIdentities.
type testAuth struct{}

func (testAuth) Authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c, err := r.Cookie("tg-test"); err == nil {
			if id := testIdentities[c.Value]; id != nil {
				scope.From(r.Context()).Identity = id
			} else if id := expiringIdentity(c.Value); id != nil {
				scope.From(r.Context()).Identity = id
			}
		}
		next.ServeHTTP(w, r)
	})
}

func (testAuth) Challenge(w http.ResponseWriter, r *http.Request) {
	http.Redirect(w, r, "/.telegate/login", http.StatusFound)
}

func (testAuth) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/.telegate/login", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "login page")
	})
	return mux
}

func testConfig(t testing.TB, upstream string) *config.Config {
	app := []string{appHost}
	pub := &config.Policy{Public: true}
	cfg := &config.Config{
		DataDir: t.TempDir(),
		Server: config.Server{
			PublicURL: "https://" + appHost, MaxQueryParams: 5,
		},
		Assertion: config.Assertion{TTL: time.Minute},
		Routes: []config.Route{
			{ID: "public", Hosts: app, Path: "/public/", Upstream: upstream, Policy: pub},
			{ID: "admin", Hosts: app, Path: "/admin/", Upstream: upstream, IdentityHeaders: true,
				AssertionClaims: []string{"name"},
				Policy:          &config.Policy{Allow: []config.Rule{{Roles: []string{"admin"}}}}},
			{ID: "clinic", Hosts: app, Path: "/clinic/", Upstream: upstream,
				Policy: &config.Policy{Allow: []config.Rule{{Roles: []string{"clinician"}}}}},
			{ID: "nopolicy", Hosts: app, Path: "/nopolicy/", Upstream: upstream},
			{ID: "matrix", Hosts: app, Path: "/matrix/", Upstream: upstream, AllowSemicolon: true, Policy: pub},
			{ID: "ws", Hosts: app, Path: "/ws/", Upstream: upstream, WebSocket: true, Policy: pub},
			{ID: "slow", Hosts: app, Path: "/slow/", Upstream: upstream, Timeout: 300 * time.Millisecond, Policy: pub},
			{ID: "down", Hosts: app, Path: "/down/", Upstream: "http://127.0.0.1:1", Policy: pub},
			{ID: "api", Hosts: app, Path: "/api/", Upstream: upstream, API: true, MaxBodyBytes: 16, Policy: pub,
				ResponseHeaders: map[string]string{"Content-Security-Policy": "default-src 'self'"}},
		},
	}
	cfg.ApplyDefaults()
	cfg.Server.HTTPListen = "" // no plain-HTTP listener
	return cfg
}

type testGateway struct {
	g     *Gateway
	rec   *recorder
	audit *auditLog
	ts    *httptest.Server // TLS server of g.Handler()
	cert  tls.Certificate
	pool  *x509.CertPool
}

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// newTestGateway builds a gateway with the test config (edited by edit)
// served by an httptest TLS server on loopback.
func newTestGateway(t testing.TB, edit func(*config.Config, *Options)) *testGateway {
	t.Helper()
	rec := newRecorder(t)
	cfg := testConfig(t, rec.srv.URL)
	al := &auditLog{}
	o := Options{Config: cfg, Auth: testAuth{}, Audit: al, Logger: quietLogger()}
	if edit != nil {
		edit(cfg, &o)
		o.Config.ApplyDefaults() // for what edit added
	}
	g, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	cert, pool := testCert(t, appHost, "other.example.test", "turn.example.test")
	ts := httptest.NewUnstartedServer(g.Handler())
	ts.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	ts.StartTLS()
	t.Cleanup(ts.Close)
	return &testGateway{g: g, rec: rec, audit: al, ts: ts, cert: cert, pool: pool}
}

// client returns an HTTP client that dials the test server for every host
// and verifies its certificate against the test CA, with SNI = URL host.
func (tg *testGateway) client(addr string) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, network, addr)
			},
			TLSClientConfig:   &tls.Config{RootCAs: tg.pool},
			ForceAttemptHTTP2: true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       10 * time.Second,
	}
}

// testCert returns a self-signed certificate for names and a pool that
// trusts it.
func testCert(t testing.TB, names ...string) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		NotBefore:   time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, IsCA: true, BasicConstraintsValid: true,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(c)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: c}, pool
}

// served is a gateway running on the real Serve path (muxListener, framing
// scanner, hardened server) on loopback.
type served struct {
	*testGateway
	addr  string
	admin string
}

// testCerts implements Certificates for served gateways.
type testCerts struct{ cert tls.Certificate }

func (c testCerts) TLSConfig(protos ...string) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{c.cert}, NextProtos: protos}
}
func (testCerts) HTTPHandler() http.Handler { return http.NotFoundHandler() }

func serveTestGateway(t testing.TB, edit func(*config.Config, *Options)) *served {
	t.Helper()
	tg := newTestGateway(t, edit)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	adm, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = tg.g.serve(ctx, listeners{public: ln, admin: adm}, testCerts{tg.cert}.TLSConfig)
	}()
	t.Cleanup(func() { cancel(); <-done })
	return &served{testGateway: tg, addr: ln.Addr().String(), admin: adm.Addr().String()}
}

// dialTLS opens a TLS connection to the served gateway with SNI and ALPN.
func (s *served) dialTLS(t testing.TB, sni string, alpn ...string) *tls.Conn {
	t.Helper()
	c, err := tls.Dial("tcp", s.addr, &tls.Config{ServerName: sni, RootCAs: s.pool, NextProtos: alpn})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// rawResult is the answer to a raw request.
type rawResult struct {
	status int
	body   string
	header http.Header
	closed bool // the server closed the connection after the response
}

// raw writes req on a fresh TLS connection and reads one response; it then
// checks whether the server closes the connection within a second.
func (s *served) raw(t testing.TB, req string, waitClose bool) rawResult {
	t.Helper()
	c := s.dialTLS(t, appHost, "http/1.1")
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatalf("write: %v", err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("read response to %q: %v", req, err)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	resp.Body.Close()
	res := rawResult{status: resp.StatusCode, body: string(body), header: resp.Header}
	if waitClose {
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, err = br.ReadByte()
		res.closed = err != nil && !isTimeout(err)
	}
	return res
}

// defaulted applies config's defaults to a configuration built in code,
// as Load does for a file.
func defaulted(cfg *config.Config) *config.Config {
	cfg.ApplyDefaults()
	return cfg
}
