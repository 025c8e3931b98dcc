package gateway

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/telegate/telegate/config"
)

func TestSlowHeadersClosedAtHeaderTimeout(t *testing.T) {
	t.Parallel()
	s := serveTestGateway(t, func(c *config.Config, _ *Options) { c.Server.ReadHeaderTimeout = 300 * time.Millisecond })
	c := s.dialTLS(t, appHost, "http/1.1")
	start := time.Now()
	if _, err := io.WriteString(c, "GET /public/a HTTP/1.1\r\nHost: "+appHost+"\r\nX-Slow: "); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := io.ReadAll(c)
	elapsed := time.Since(start)
	if isTimeout(err) {
		t.Fatalf("connection still open after %v", elapsed)
	}
	if elapsed > 3*time.Second {
		t.Errorf("closed after %v, want about the 300ms header timeout", elapsed)
	}
}

func TestHTTP2Works(t *testing.T) {
	t.Parallel()
	s := serveTestGateway(t, nil)
	hc := s.client(s.addr)
	resp, err := hc.Get("https://" + appHost + "/public/h2")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.StatusCode != 200 {
		t.Fatalf("%s %d", resp.Proto, resp.StatusCode)
	}
	if resp.Header.Get("Strict-Transport-Security") == "" {
		t.Error("no HSTS over TLS")
	}
	// SNI ≠ :authority over HTTP/2 as well.
	req, _ := http.NewRequest("GET", "https://"+appHost+"/public/h2", nil)
	req.Host = "other.example.test"
	resp, err = hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMisdirectedRequest {
		t.Errorf("SNI mismatch over h2: %d, want 421", resp.StatusCode)
	}
}

// TestHTTP2RapidResetClosesConnection is the regression test for
// CVE-2023-44487: HEADERS immediately followed by RST_STREAM, again and
// again, gets the connection closed.
func TestHTTP2RapidResetClosesConnection(t *testing.T) {
	t.Parallel()
	s := serveTestGateway(t, func(c *config.Config, _ *Options) {
		// Budget: burst 200 (2 × streams), then 20 per second. 300 resets
		// stay below net/http's own early-reset limit (4 × streams
		// queued), so only the budget can close the connection.
		c.Server.H2MaxRequestsPerSecond = 20
		c.Server.H2MaxConcurrentStreams = 100
	})
	c := s.dialTLS(t, appHost, "h2")
	if c.ConnectionState().NegotiatedProtocol != "h2" {
		t.Fatal("h2 not negotiated")
	}
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(c, c)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", appHost}, {":path", "/public/rr"}} {
		_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	block := hb.Bytes()
	// Read in the background: GOAWAY, then the end of the connection.
	type result struct {
		goaway bool
		err    error
	}
	done := make(chan result, 1)
	go func() {
		var r result
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				r.err = err
				done <- r
				return
			}
			if _, ok := f.(*http2.GoAwayFrame); ok {
				r.goaway = true
			}
		}
	}()
	start := time.Now()
	var werr error
	for i := uint32(0); i < 300 && werr == nil; i++ {
		id := 2*i + 1
		werr = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block, EndStream: true, EndHeaders: true})
		if werr == nil {
			werr = fr.WriteRSTStream(id, http2.ErrCodeCancel)
		}
	}
	var r result
	select {
	case r = <-done:
	case <-time.After(4 * time.Second):
		t.Fatal("connection still open after rapid reset")
	}
	if isTimeout(r.err) {
		t.Fatalf("connection not closed: %v", r.err)
	}
	if !r.goaway {
		t.Errorf("connection closed without GOAWAY")
	}
	t.Logf("closed after %v (write error %v, read %v)", time.Since(start), werr, r.err)
}

// TestConnDispatch: a TLS server name in ConnHandlers goes to its handler;
// a STUN message on an HTTP/1 connection goes to STUNConn; HTTP still
// works on the same port.
func TestConnDispatch(t *testing.T) {
	t.Parallel()
	// echo reads exactly n bytes and answers them after prefix.
	echo := func(prefix string, n int) func(net.Conn) {
		return func(c net.Conn) {
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			buf := make([]byte, n)
			if _, err := io.ReadFull(c, buf); err != nil {
				return
			}
			_, _ = c.Write(append([]byte(prefix), buf...))
		}
	}
	s := serveTestGateway(t, func(_ *config.Config, o *Options) {
		o.ConnHandlers = map[string]func(net.Conn){"TURN.example.test.": echo("turn:", 4)}
		o.STUNConn = echo("stun:", 20)
	})
	// 1. SNI → handler.
	c := s.dialTLS(t, "turn.example.test")
	io.WriteString(c, "ping")
	if got := readAll(t, c); got != "turn:ping" {
		t.Errorf("SNI handler answered %q", got)
	}
	// 2. STUN binding request (RFC 8489 §5) with no ALPN → STUNConn,
	// first bytes replayed.
	msg := make([]byte, 20)
	binary.BigEndian.PutUint16(msg[0:], 0x0001)
	binary.BigEndian.PutUint32(msg[4:], stunMagicCookie)
	copy(msg[8:], "txid-123456x")
	c = s.dialTLS(t, appHost)
	c.Write(msg)
	if got := readAll(t, c); got != "stun:"+string(msg) {
		t.Errorf("STUN handler answered %q", got)
	}
	// 3. HTTP/1.1 on the same port.
	res := s.raw(t, "GET /public/a HTTP/1.1\r\nHost: "+appHost+"\r\n\r\n", false)
	if res.status != 200 || res.body != "upstream ok" {
		t.Errorf("HTTP after dispatch: %d %q", res.status, res.body)
	}
	// 4. HTTP/2 on the same port.
	resp, err := s.client(s.addr).Get("https://" + appHost + "/public/b")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.StatusCode != 200 {
		t.Errorf("h2 after dispatch: %s %d", resp.Proto, resp.StatusCode)
	}
}

func readAll(t *testing.T, c *tls.Conn) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil && !errors.Is(err, io.EOF) {
		t.Logf("read: %v", err)
	}
	return string(b)
}

func TestIsSTUN(t *testing.T) {
	t.Parallel()
	good := []byte{0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42}
	cases := map[string]bool{
		string(good):                       true,
		"GET / HT":                         false,
		"\x16\x03\x01\x00\x00\x21\x12\xa4": false,
		"\xc0\x01\x00\x00\x21\x12\xa4\x42": false, // top bits set: not STUN (RFC 7983)
		"\x00\x01":                         false,
	}
	for in, want := range cases {
		if IsSTUN([]byte(in)) != want {
			t.Errorf("IsSTUN(%q) != %v", in, want)
		}
	}
}

func TestAdminListener(t *testing.T) {
	t.Parallel()
	s := serveTestGateway(t, nil)
	// Produce some traffic for the metrics.
	s.raw(t, "GET /public/a HTTP/1.1\r\nHost: "+appHost+"\r\n\r\n", false)
	s.raw(t, "GET //x HTTP/1.1\r\nHost: "+appHost+"\r\n\r\n", false)
	hc := &http.Client{Timeout: 5 * time.Second}
	for path, want := range map[string]string{"/healthz": "ok", "/readyz": `{"ready":true,"listening":true,"generation":1,"config_hash":"","dependencies":[],"draining":false}`} {
		resp, err := hc.Get("http://" + s.admin + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(string(b), want+"\n") {
			t.Errorf("%s: %d %q", path, resp.StatusCode, b)
		}
	}
	deadline := time.Now().Add(3 * time.Second)
	var text string
	for time.Now().Before(deadline) {
		resp, err := hc.Get("http://" + s.admin + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		text = string(b)
		if strings.Contains(text, `telegate_edge_denials_total{reason="path"}`) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, want := range []string{
		`telegate_edge_requests_total{code="200",route="public"} 1`,
		`telegate_edge_requests_total{code="400",route="none"} 1`,
		`telegate_edge_request_duration_seconds_bucket{route="public"`,
		`telegate_edge_denials_total{reason="path"} 1`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestReadyzBeforeServe(t *testing.T) {
	t.Parallel()
	tg := newTestGateway(t, nil)
	req, _ := http.NewRequest("GET", "/readyz", nil)
	w := &responseRecorder{header: http.Header{}}
	tg.g.AdminHandler().ServeHTTP(w, req)
	if w.code != http.StatusServiceUnavailable {
		t.Errorf("readyz before listening: %d", w.code)
	}
}

type responseRecorder struct {
	header http.Header
	code   int
}

func (r *responseRecorder) Header() http.Header         { return r.header }
func (r *responseRecorder) Write(b []byte) (int, error) { return len(b), nil }
func (r *responseRecorder) WriteHeader(c int)           { r.code = c }

// TestQuietStartThenFirstBytes: a connection that waits before its first
// bytes (the listener puts off its TLS handshake until then) is served
// as any other: HTTP/1.1 and HTTP/2 over TLS, and plain HTTP on the
// HTTPS port told to use https.
func TestQuietStartThenFirstBytes(t *testing.T) {
	t.Parallel()
	s := serveTestGateway(t, nil)
	quiet := func(t *testing.T) net.Conn {
		t.Helper()
		c, err := net.DialTimeout("tcp", s.addr, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		time.Sleep(100 * time.Millisecond) // the server waits for the first byte
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		return c
	}
	for _, proto := range []string{"http/1.1", "h2"} {
		t.Run(proto, func(t *testing.T) {
			t.Parallel()
			tc := tls.Client(quiet(t), &tls.Config{ServerName: appHost, RootCAs: s.pool, NextProtos: []string{proto}})
			tr := &http.Transport{DialTLSContext: func(context.Context, string, string) (net.Conn, error) { return tc, nil }, ForceAttemptHTTP2: true}
			defer tr.CloseIdleConnections()
			resp, err := (&http.Client{Transport: tr}).Get("https://" + appHost + "/public/q")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(body) != "upstream ok" || (proto == "h2") != (resp.ProtoMajor == 2) {
				t.Errorf("%s %d %q", resp.Proto, resp.StatusCode, body)
			}
		})
	}
	t.Run("plain HTTP", func(t *testing.T) {
		t.Parallel()
		c := quiet(t)
		_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: "+appHost+"\r\n\r\n")
		b, _ := io.ReadAll(c)
		if got := string(b); !strings.HasPrefix(got, "HTTP/1.1 400 ") || !strings.Contains(got, "https://") {
			t.Errorf("answer %q", got)
		}
	})
}
