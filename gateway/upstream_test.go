package gateway

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/telegate/telegate/config"
)

func writePEM(t *testing.T, dir, name, typ string, der []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestUpstreamMutualTLS: a route's upstream over TLS with its own CA,
// server name and client certificate; without the client certificate the
// upstream refuses and the client gets 502.
func TestUpstreamMutualTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	srvCert, _ := testCert(t, "app.internal.test")
	cliCert, cliPool := testCert(t, "telegate-client")
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "mtls ok "+r.TLS.PeerCertificates[0].Subject.CommonName)
	}))
	up.Config.ErrorLog = log.New(io.Discard, "", 0)
	up.TLS = &tls.Config{Certificates: []tls.Certificate{srvCert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: cliPool}
	up.StartTLS()
	t.Cleanup(up.Close)
	caFile := writePEM(t, dir, "ca.pem", "CERTIFICATE", srvCert.Certificate[0])
	certFile := writePEM(t, dir, "client.pem", "CERTIFICATE", cliCert.Certificate[0])
	keyDER, _ := x509.MarshalPKCS8PrivateKey(cliCert.PrivateKey)
	keyFile := writePEM(t, dir, "client.key", "PRIVATE KEY", keyDER)
	upURL := "https://" + up.Listener.Addr().String()
	tg := newTestGateway(t, func(c *config.Config, _ *Options) {
		pub := &config.Policy{Public: true}
		c.Routes = append(c.Routes,
			config.Route{ID: "mtls", Hosts: []string{appHost}, Path: "/mtls/", Upstream: upURL, Policy: pub,
				UpstreamTLS: config.UpstreamTLS{CAFile: caFile, CertFile: certFile, KeyFile: keyFile, ServerName: "app.internal.test"}},
			config.Route{ID: "nocert", Hosts: []string{appHost}, Path: "/nocert/", Upstream: upURL, Policy: pub,
				UpstreamTLS: config.UpstreamTLS{CAFile: caFile, ServerName: "app.internal.test"}},
			config.Route{ID: "noca", Hosts: []string{appHost}, Path: "/noca/", Upstream: upURL, Policy: pub,
				UpstreamTLS: config.UpstreamTLS{CertFile: certFile, KeyFile: keyFile, ServerName: "app.internal.test"}},
		)
	})
	for _, tc := range []struct {
		path   string
		status int
		body   string
	}{
		{"/mtls/x", 200, "mtls ok telegate-client"},
		{"/nocert/x", 502, ""},
		{"/noca/x", 502, ""},
	} {
		resp, body := get(t, tg, tc.path, nil)
		if resp.StatusCode != tc.status || !strings.Contains(body, tc.body) {
			t.Errorf("%s: %d %q", tc.path, resp.StatusCode, body)
		}
	}
}

// TestRequestLogHasNoPHI: one line per request, no query, no raw client
// address, no cookie or token.
func TestRequestLogHasNoPHI(t *testing.T) {
	t.Parallel()
	var buf syncBuffer
	tg := newTestGateway(t, func(_ *config.Config, o *Options) {
		o.Logger = slog.New(slog.NewJSONHandler(&buf, nil))
	})
	req := httptest.NewRequest("GET", "https://"+appHost+"/admin/x?patient=Jane+Doe", nil)
	req.RemoteAddr = "192.0.2.55:4444"
	req.AddCookie(&http.Cookie{Name: "tg-test", Value: "root"})
	req.Header.Set("Authorization", "Bearer secret-token")
	w := httptest.NewRecorder()
	tg.g.Handler().ServeHTTP(w, req)
	if w.Code != 200 {
		t.Fatalf("status %d", w.Code)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	var reqLines []map[string]any
	for _, l := range lines {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m["msg"] == "request" {
			reqLines = append(reqLines, m)
		}
	}
	if len(reqLines) != 1 {
		t.Fatalf("%d request lines: %q", len(reqLines), lines)
	}
	for _, bad := range []string{"Jane", "patient=", "192.0.2.55", "secret-token", "tg-test", "Root Admin"} {
		if strings.Contains(buf.String(), bad) {
			t.Errorf("log contains %q: %s", bad, buf.String())
		}
	}
	if reqLines[0]["client"] == "" || reqLines[0]["status"] != float64(200) || reqLines[0]["route"] != "admin" {
		t.Errorf("log line %v", reqLines[0])
	}
	// The audit trail keeps the address.
	e, _ := tg.audit.find(w.Header().Get(RequestIDHeader))
	if e.Client != "192.0.2.55" || e.Path != "/admin/x" || e.Subject != "root" || e.Decision != "allow" {
		t.Errorf("audit %+v", e)
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent log writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestServeBindsConfiguredListeners runs Serve itself on loopback ports
// and shuts it down with the context.
func TestServeBindsConfiguredListeners(t *testing.T) {
	t.Parallel()
	rec := newRecorder(t)
	cfg := testConfig(t, rec.srv.URL)
	cfg.Server.Listen = "127.0.0.1:0"
	cfg.Server.Admin = "127.0.0.1:0"
	cfg.Server.HTTPListen = ""
	cert, pool := testCert(t, appHost)
	g, err := New(Options{Config: cfg, Certs: testCerts{cert}, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Serve(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for g.PublicAddr() == nil && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if g.PublicAddr() == nil {
		t.Fatal("not listening")
	}
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool},
		DialContext: func(ctx context.Context, n, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, n, g.PublicAddr().String())
		},
	}}
	resp, err := hc.Get("https://" + appHost + "/public/x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("status %d", resp.StatusCode)
	}
	resp, err = http.Get("http://" + g.AdminAddr().String() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("readyz %d", resp.StatusCode)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Serve did not stop")
	}
}
