package gateway

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/scope"
)

// draining is a gateway on the real Serve path whose Serve result the test
// waits for.
type draining struct {
	*served
	cancel context.CancelFunc
	done   chan struct{} // closed when Serve returned
	err    error         // what it returned
}

// serveDraining serves a test gateway (edited by edit) and returns it with
// the means to stop it and to see what Serve returned.
func serveDraining(t *testing.T, edit func(*config.Config, *Options)) *draining {
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
	d := &draining{served: &served{testGateway: tg, addr: ln.Addr().String(), admin: adm.Addr().String()},
		cancel: cancel, done: make(chan struct{})}
	go func() {
		d.err = tg.g.serve(ctx, listeners{public: ln, admin: adm}, testCerts{tg.cert}.TLSConfig)
		close(d.done)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-d.done:
		case <-time.After(30 * time.Second):
			t.Error("Serve did not return")
		}
	})
	return d
}

// wait returns what Serve returned, failing the test when it has not
// returned within limit.
func (d *draining) wait(t *testing.T, limit time.Duration) error {
	t.Helper()
	select {
	case <-d.done:
		return d.err
	case <-time.After(limit):
		t.Fatalf("Serve did not return within %v", limit)
		return nil
	}
}

// slowUpstream answers every request after delay (or when the request is
// cancelled), telling started about each request it received.
func slowUpstream(t *testing.T, delay time.Duration) (url string, started chan string) {
	t.Helper()
	started = make(chan string, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- r.URL.Path
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
		_, _ = io.WriteString(w, "slow ok")
	}))
	t.Cleanup(srv.Close)
	return srv.URL, started
}

func readyzStatus(t *testing.T, admin string) int {
	t.Helper()
	hc := &http.Client{Timeout: 2 * time.Second}
	resp, err := hc.Get("http://" + admin + "/readyz")
	if err != nil {
		t.Fatalf("readyz: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestShutdownDrainsInFlightRequests: requests that reached the gateway
// before the shutdown began finish with their upstream's answer, over
// HTTP/1.1 and HTTP/2, and so does a connection accepted before it that
// was in its TLS handshake; from the moment it begins /readyz answers 503
// and a new connection is refused; Serve then returns nil without waiting
// for the deadline, or for a connection that never sends a request.
func TestShutdownDrainsInFlightRequests(t *testing.T) {
	t.Parallel()
	const delay = 300 * time.Millisecond
	up, started := slowUpstream(t, delay)
	d := serveDraining(t, func(c *config.Config, _ *Options) {
		c.Routes = append(c.Routes, config.Route{ID: "drain", Hosts: []string{appHost}, Path: "/drain/",
			Upstream: up, Policy: &config.Policy{Public: true}})
		c.Server.ShutdownTimeout = 10 * time.Second
		// Longer than the drain may take: the unused connection must be
		// closed by the drain, not by the header timeout.
		c.Server.ReadHeaderTimeout = 8 * time.Second
	})
	if st := readyzStatus(t, d.admin); st != http.StatusOK {
		t.Fatalf("readyz before the shutdown: %d", st)
	}

	type result struct {
		proto  string
		status int
		body   string
		err    error
	}
	h1 := d.client(d.addr)
	h1.Transport.(*http.Transport).ForceAttemptHTTP2 = false
	h1.Transport.(*http.Transport).TLSClientConfig.NextProtos = []string{"http/1.1"}
	h2 := d.client(d.addr)
	results := make(chan result, 2)
	for _, c := range []*http.Client{h1, h2} {
		go func() {
			resp, err := c.Get("https://" + appHost + "/drain/slow")
			if err != nil {
				results <- result{err: err}
				return
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			results <- result{proto: resp.Proto, status: resp.StatusCode, body: string(b), err: err}
		}()
	}
	for range 2 {
		select {
		case <-started:
		case <-time.After(5 * time.Second):
			t.Fatal("the slow requests did not reach the upstream")
		}
	}

	// A connection accepted before the shutdown, in its TLS handshake: the
	// gateway has answered its ClientHello, the client has not read it yet.
	raw, err := net.Dial("tcp", d.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	early := &gatedConn{Conn: raw, answered: make(chan struct{}), gate: make(chan struct{})}
	tc := tls.Client(early, &tls.Config{ServerName: appHost, RootCAs: d.pool, NextProtos: []string{"http/1.1"}})
	_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
	handshake := make(chan error, 1)
	go func() { handshake <- tc.Handshake() }()
	<-early.answered

	// A connection that completed its handshake and sends nothing (a
	// browser's preconnect) does not hold the drain up.
	pre := d.dialTLS(t, appHost, "http/1.1")

	began := time.Now()
	d.cancel() // what SIGTERM does through node.Run
	// /readyz turns 503 as soon as Serve sees its context end, while the
	// slow requests are still in flight.
	var readyzAt time.Duration
	for readyzAt == 0 && time.Since(began) < delay {
		if readyzStatus(t, d.admin) == http.StatusServiceUnavailable {
			readyzAt = time.Since(began)
		}
	}
	if readyzAt == 0 {
		t.Errorf("readyz still 200 %v after the shutdown began", delay)
	}
	if d.g.Ready() {
		t.Error("Ready() after the shutdown began")
	}
	// The listener is closed as soon: a new connection is refused.
	var refusedAt time.Duration
	for time.Since(began) < delay {
		c, err := net.DialTimeout("tcp", d.addr, time.Second)
		if err != nil {
			refusedAt = time.Since(began)
			break
		}
		c.Close()
		time.Sleep(5 * time.Millisecond)
	}
	if refusedAt == 0 {
		t.Errorf("new connections still accepted %v after the shutdown began", delay)
	}

	// The early connection completes its handshake and is served.
	close(early.gate)
	if err := <-handshake; err != nil {
		t.Fatalf("the connection accepted before the shutdown: handshake: %v", err)
	}
	if _, err := io.WriteString(tc, "GET /public/early HTTP/1.1\r\nHost: "+appHost+"\r\n\r\n"); err != nil {
		t.Fatalf("the connection accepted before the shutdown: %v", err)
	}
	if resp, err := http.ReadResponse(bufio.NewReader(tc), nil); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("the connection accepted before the shutdown: %v %v", resp, err)
	} else if !resp.Close {
		t.Error("a response while draining does not close its HTTP/1.1 connection")
	}

	protos := map[string]bool{}
	for range 2 {
		r := <-results
		if r.err != nil {
			t.Fatalf("in-flight request: %v", r.err)
		}
		if r.status != http.StatusOK || r.body != "slow ok" {
			t.Errorf("in-flight %s request: %d %q, want 200 \"slow ok\"", r.proto, r.status, r.body)
		}
		protos[r.proto] = true
	}
	if !protos["HTTP/1.1"] || !protos["HTTP/2.0"] {
		t.Errorf("protocols served: %v, want HTTP/1.1 and HTTP/2.0", protos)
	}
	if err := d.wait(t, 5*time.Second); err != nil {
		t.Errorf("Serve after the drain: %v", err)
	}
	took := time.Since(began)
	if took > 4*time.Second {
		t.Errorf("the drain took %v for requests of %v", took, delay)
	}
	_ = pre.SetReadDeadline(time.Now().Add(time.Second))
	if _, err := pre.Read(make([]byte, 1)); isTimeout(err) {
		t.Error("the unused connection is still open after the drain")
	}
	t.Logf("readyz 503 after %v, new connection refused after %v, drained and returned after %v",
		readyzAt.Round(time.Millisecond), refusedAt.Round(time.Millisecond), took.Round(time.Millisecond))
}

// TestShutdownDeadlineClosesWhatIsLeft: a handler that watches
// scope.Scope.Draining ends its hijacked connection as soon as the drain
// begins; a request and a hijacked connection that outlast
// server.shutdown_timeout are closed at it, and Serve still returns nil.
func TestShutdownDeadlineClosesWhatIsLeft(t *testing.T) {
	t.Parallel()
	const timeout = 400 * time.Millisecond
	up, started := slowUpstream(t, time.Minute)
	hijack := func(polite bool) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			conn, brw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				t.Errorf("hijack: %v", err)
				return
			}
			defer conn.Close()
			_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: test\r\nConnection: Upgrade\r\n\r\nhello\n")
			_ = brw.Flush()
			if polite {
				<-scope.From(r.Context()).Draining
				_, _ = io.WriteString(conn, "going away\n")
				return
			}
			_, _ = io.Copy(io.Discard, conn) // until the gateway closes it
		})
	}
	d := serveDraining(t, func(c *config.Config, o *Options) {
		c.Routes = append(c.Routes, config.Route{ID: "hang", Hosts: []string{appHost}, Path: "/hang/",
			Upstream: up, Policy: &config.Policy{Public: true}})
		c.Server.ShutdownTimeout = timeout
		o.Endpoints = []Endpoint{
			{Prefix: "/.telegate/polite/", Handler: hijack(true)},
			{Prefix: "/.telegate/stubborn/", Handler: hijack(false)},
		}
	})
	upgrade := func(path string) *bufio.Reader {
		c := d.dialTLS(t, appHost, "http/1.1")
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: "+appHost+"\r\nConnection: Upgrade\r\nUpgrade: test\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("upgrade %s: %v %v", path, resp, err)
		}
		if l, err := br.ReadString('\n'); err != nil || l != "hello\n" {
			t.Fatalf("upgrade %s: %q %v", path, l, err)
		}
		return br
	}
	polite, stubborn := upgrade("/.telegate/polite/x"), upgrade("/.telegate/stubborn/x")
	hung := make(chan error, 1)
	go func() {
		hc := d.client(d.addr)
		resp, err := hc.Get("https://" + appHost + "/hang/x")
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil {
				err = errors.New(resp.Status)
			}
		}
		hung <- err
	}()
	<-started

	began := time.Now()
	d.g.BeginShutdown()
	var wg sync.WaitGroup
	wg.Add(2)
	var politeAt, stubbornAt time.Duration
	go func() {
		defer wg.Done()
		if l, err := polite.ReadString('\n'); err != nil || l != "going away\n" {
			t.Errorf("the handler watching Draining: %q %v", l, err)
		}
		politeAt = time.Since(began)
	}()
	go func() {
		defer wg.Done()
		_, err := stubborn.ReadByte()
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Errorf("the hijacked connection is still open: %v", err)
		}
		stubbornAt = time.Since(began)
	}()
	wg.Wait()
	if politeAt > timeout/2 {
		t.Errorf("the handler watching Draining ended after %v, want at once", politeAt)
	}
	if stubbornAt < timeout || stubbornAt > timeout+2*time.Second {
		t.Errorf("the hijacked connection was closed after %v, want at the %v deadline", stubbornAt, timeout)
	}
	select {
	case err := <-hung:
		if err == nil {
			t.Error("the request outlasting the deadline got an answer")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the request outlasting the deadline is still open")
	}
	if err := d.wait(t, 5*time.Second); err != nil {
		t.Errorf("Serve after a drain cut short: %v", err)
	}
	t.Logf("Draining seen after %v; deadline %v: hijacked connection closed after %v, Serve returned after %v",
		politeAt.Round(time.Millisecond), timeout, stubbornAt.Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
}

// gatedConn holds back what the server sent first until gate is closed,
// and closes answered once the server has sent it.
type gatedConn struct {
	net.Conn
	answered, gate chan struct{}
	once           sync.Once
}

func (c *gatedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.once.Do(func() {
		close(c.answered)
		<-c.gate
	})
	return n, err
}
