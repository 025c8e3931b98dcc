package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/telegate/telegate/internal/admission"
	"github.com/telegate/telegate/page"
)

// Timeouts of the listeners' own (docs/architecture.md principle 7: every
// read has a timeout). The public listener's come from the configuration
// (server.read_header_timeout, …), defaulted by config.
const (
	// ownReadHeaderTimeout and ownReadTimeout bound reads on the
	// plain-HTTP and admin listeners, which serve only telegate's own
	// small requests.
	ownReadHeaderTimeout = 5 * time.Second
	ownReadTimeout       = 10 * time.Second
	// adminGrace is how long the admin listener may take to finish its
	// own requests once the public listeners have drained.
	adminGrace = time.Second
	// afterDeadline is how long handlers whose connections were closed at
	// the drain deadline get to return.
	afterDeadline = time.Second
	// handshakeGrace is how long the drain lets connections accepted
	// before it began finish their TLS handshake.
	handshakeGrace = time.Second
)

// listeners are the sockets Serve runs on (tests pass their own).
type listeners struct {
	public, http, admin net.Listener
}

// Serve runs the public HTTPS listener (Server.Listen), the plain-HTTP
// listener (Server.HTTPListen; Certs.HTTPHandler: ACME HTTP-01 and
// redirects; "" disables it) and the admin listener (Server.Admin) until ctx ends or BeginShutdown
// is called, then drains. /readyz turns ready once all listen.
//
// The drain: /readyz answers 503 at once and the public and plain-HTTP
// listeners stop accepting (a new connection is refused). Requests in
// flight get Server.ShutdownTimeout to finish: connections
// already accepted complete their TLS handshake; HTTP/1.1 ones serve the
// exchange they are in and close after it (Connection: close; idle ones,
// and those that send nothing within a second of their handshake, are
// closed); HTTP/2 ones are sent GOAWAY and finish their streams.
// Long-lived handlers see scope.Scope.Draining closed so they can end
// their connections themselves (signaling WebSockets close with 1001).
// Whatever is still open at the deadline is closed, hijacked connections
// included. The admin listener answers until the public side has
// drained. Serve returns nil after a drain, even one cut short by the
// deadline (which is logged); an error only when a listener failed.
func (g *Gateway) Serve(ctx context.Context) error {
	if g.o.Certs == nil {
		return errors.New("gateway: no certificates (Options.Certs) to serve TLS")
	}
	sc := g.current().cfg.Server
	var ls listeners
	var err error
	closeAll := func() {
		for _, l := range []net.Listener{ls.public, ls.http, ls.admin} {
			if l != nil {
				l.Close()
			}
		}
	}
	if ls.public, err = net.Listen("tcp", sc.Listen); err != nil {
		return fmt.Errorf("public listener: %w", err)
	}
	if sc.HTTPListen != "" {
		if ls.http, err = net.Listen("tcp", sc.HTTPListen); err != nil {
			closeAll()
			return fmt.Errorf("http listener: %w", err)
		}
	}
	if ls.admin, err = net.Listen("tcp", sc.Admin); err != nil {
		closeAll()
		return fmt.Errorf("admin listener: %w", err)
	}
	return g.serve(ctx, ls, g.o.Certs.TLSConfig)
}

// Admit wraps ln in an admission controller built from the running
// configuration's connections block (internal/admission): the one
// admission mechanism of every listener. Connections it closes or refuses
// are counted by Options.ConnMetrics under name ("public", "http",
// "admin"). The error is the limits' (admission.Limits.Check).
func (g *Gateway) Admit(name string, ln net.Listener) (*admission.Listener, error) {
	ctl, err := admission.New(admission.Options{
		Limits:  admission.LimitsOf(g.current().cfg.Connections),
		OnEvent: g.connMetrics.Events(name),
	})
	if err != nil {
		return nil, fmt.Errorf("%s listener: %w", name, err)
	}
	return ctl.Listen(ln), nil
}

// PublicAddr is the public listener's address once Serve listens (nil
// before).
func (g *Gateway) PublicAddr() net.Addr {
	if a := g.addrs.Load(); a != nil {
		return a.public
	}
	return nil
}

// AdminAddr is the admin listener's address once Serve listens (nil
// before).
func (g *Gateway) AdminAddr() net.Addr {
	if a := g.addrs.Load(); a != nil {
		return a.admin
	}
	return nil
}

type boundAddrs struct{ public, admin net.Addr }

// publicTLS prepares the HTTPS listener's TLS configuration: TLS 1.2 or
// later, ALPN h2 and http/1.1 (and stun.turn for TURN over TLS). The
// protocols are asked of tlsFor (Certificates.TLSConfig), so that each
// handshake, configured for the generation in force, offers them too; the
// clone's own fields hold them for configurations read as they are.
func (g *Gateway) publicTLS(tlsFor func(protos ...string) *tls.Config) *tls.Config {
	protos := []string{"h2", "http/1.1"}
	if g.o.STUNConn != nil {
		protos = append(protos, "stun.turn")
	}
	c := tlsFor(protos...).Clone()
	if c.MinVersion < tls.VersionTLS12 {
		c.MinVersion = tls.VersionTLS12
	}
	for _, p := range protos {
		if !slices.Contains(c.NextProtos, p) {
			c.NextProtos = append(c.NextProtos, p)
		}
	}
	return c
}

// publicServer is the hardened http.Server of the HTTPS listener: header,
// read and idle timeouts, a header size cap, HTTP/1.1 and HTTP/2 over TLS
// only (no h2c), MaxConcurrentStreams per HTTP/2 connection. The
// listener (muxListener) hands it every connection with its connInfo:
// HTTP/1 ones through the framing scanner (h1Conn), HTTP/2 ones through
// the frame budget (h2FrameBudget), which net/http's HTTP/2 server reads
// like the *tls.Conn it wraps (it serves any connection that reports a
// TLS state with ALPN "h2").
func (g *Gateway) publicServer(tlsCfg *tls.Config) (*http.Server, error) {
	sc := g.current().cfg.Server
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetHTTP2(true)
	srv := &http.Server{
		Handler:           g,
		TLSConfig:         tlsCfg,
		ReadHeaderTimeout: sc.ReadHeaderTimeout,
		ReadTimeout:       sc.ReadTimeout,
		WriteTimeout:      sc.WriteTimeout,
		IdleTimeout:       sc.IdleTimeout,
		MaxHeaderBytes:    sc.MaxHeaderBytes,
		ErrorLog:          g.errorLog(),
		Protocols:         &protos,
		HTTP2: &http.HTTP2Config{
			MaxConcurrentStreams:      int(sc.H2MaxConcurrentStreams),
			MaxReadFrameSize:          h2MaxFrameSize,
			MaxDecoderHeaderTableSize: h2DecoderTableSize,
		},
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			switch cc := c.(type) {
			case *h1Conn:
				return context.WithValue(ctx, connInfoKey{}, cc.info)
			case *h2FrameBudget:
				return context.WithValue(ctx, connInfoKey{}, cc.info)
			}
			return ctx
		},
	}
	return srv, nil
}

// BeginShutdown starts the drain (see Serve): /readyz answers 503 from
// now on, Serve stops accepting connections, and scope.Scope.Draining of
// every request is closed. It is safe to call more than once and from any
// goroutine; Serve calls it when its context ends.
func (g *Gateway) BeginShutdown() {
	g.drainOnce.Do(func() {
		g.ready.Store(false)
		if g.o.OnDrain != nil {
			g.o.OnDrain()
		}
		close(g.draining)
	})
}

// Ready reports whether /readyz answers 200: the listeners are up, a
// configuration is loaded and no shutdown has begun.
func (g *Gateway) Ready() bool {
	return g.ready.Load() && g.current() != nil && !g.shuttingDown()
}

func (g *Gateway) shuttingDown() bool {
	select {
	case <-g.draining:
		return true
	default:
		return false
	}
}

// serve runs the servers on ls until ctx ends or BeginShutdown is called,
// then drains them (see Serve).
func (g *Gateway) serve(ctx context.Context, ls listeners, tlsFor func(protos ...string) *tls.Config) error {
	tlsCfg := g.publicTLS(tlsFor)
	pub, err := g.publicServer(tlsCfg)
	if err != nil {
		return err
	}
	// Every listener admits its connections through its own admission
	// controller (connections: in the configuration).
	if ls.public, err = g.Admit("public", ls.public); err != nil {
		return err
	}
	if ls.http != nil {
		if ls.http, err = g.Admit("http", ls.http); err != nil {
			return err
		}
	}
	if ls.admin, err = g.Admit("admin", ls.admin); err != nil {
		return err
	}
	// Every handler is counted while it runs, including those that
	// hijacked their connection (WebSockets), which http.Server.Shutdown
	// does not wait for.
	var active inFlight
	pub.Handler = active.track(pub.Handler)
	mux := newMuxListener(g, ls.public, tlsCfg)
	pub.ConnState = admission.ConnState(mux.observe)
	go mux.run()
	var httpSrv *http.Server
	if ls.http != nil {
		var h http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			page.Error(w, r, http.StatusNotFound, "Not found.", "")
		})
		if g.o.Certs != nil {
			h = g.o.Certs.HTTPHandler()
		}
		httpSrv = &http.Server{Handler: active.track(h), ReadHeaderTimeout: ownReadHeaderTimeout, ReadTimeout: ownReadTimeout,
			WriteTimeout: 10 * time.Second, IdleTimeout: 30 * time.Second, MaxHeaderBytes: 16 << 10, ErrorLog: g.errorLog(),
			ConnState: admission.ConnState(nil)}
	}
	adminSrv := &http.Server{Handler: g.AdminHandler(), ReadHeaderTimeout: ownReadHeaderTimeout, ReadTimeout: ownReadTimeout,
		WriteTimeout: 30 * time.Second, IdleTimeout: 60 * time.Second, MaxHeaderBytes: 16 << 10, ErrorLog: g.errorLog(),
		ConnState: admission.ConnState(nil)}

	errc := make(chan error, 3)
	var wg sync.WaitGroup
	start := func(s *http.Server, l net.Listener) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		}()
	}
	public := []*http.Server{pub}
	start(pub, mux)
	if httpSrv != nil {
		public = append(public, httpSrv)
		start(httpSrv, ls.http)
	}
	start(adminSrv, ls.admin)
	g.addrs.Store(&boundAddrs{public: ls.public.Addr(), admin: ls.admin.Addr()})
	g.ready.Store(true)
	g.log.Info("listening", "public", ls.public.Addr().String(), "admin", ls.admin.Addr().String())

	select {
	case <-ctx.Done():
	case <-g.draining:
	case err = <-errc:
	}
	g.BeginShutdown()
	began := time.Now()
	g.drain(public, mux, &active)
	if g.o.Drained != nil {
		select {
		case <-g.o.Drained():
		case <-time.After(time.Until(began.Add(g.current().cfg.Server.ShutdownTimeout))):
			g.log.Warn("drain deadline reached with calls still on the node")
		}
	}
	actx, cancel := context.WithTimeout(context.Background(), adminGrace)
	defer cancel()
	if adminSrv.Shutdown(actx) != nil {
		adminSrv.Close()
	}
	wg.Wait()
	return err
}

// drain stops the public servers accepting, waits for their requests
// (hijacked connections included) until Server.ShutdownTimeout, then
// closes whatever is left. servers[0] is the HTTPS server behind mux.
func (g *Gateway) drain(servers []*http.Server, mux *muxListener, active *inFlight) {
	timeout := g.current().cfg.Server.ShutdownTimeout
	began := time.Now()
	g.log.Info("draining", "requests", active.count(), "timeout", timeout.String())
	dctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	// Every HTTP/1.1 response from here on says Connection: close, and
	// idle connections are closed.
	for _, s := range servers {
		s.SetKeepAlivesEnabled(false)
	}
	// No new connection is accepted. On the HTTPS listener those already
	// accepted finish their TLS handshake and are served first.
	mux.stopAccepting()
	var swg sync.WaitGroup
	for i, s := range servers {
		swg.Add(1)
		go func() {
			defer swg.Done()
			if i == 0 {
				select {
				case <-mux.pending.idle():
				case <-time.After(min(handshakeGrace, timeout)):
				}
				// net/http's Shutdown drops a request whose head it
				// reads after Shutdown began: let every HTTP/1
				// connection finish its exchange first (keep-alive is
				// off, so each ends after its response).
				mux.settleH1(dctx)
			}
			_ = s.Shutdown(dctx) // HTTP/2: GOAWAY, then the streams in flight
		}()
	}
	swg.Wait()
	select {
	case <-active.idle():
		g.log.Info("drained", "took", time.Since(began).Round(time.Millisecond).String())
		return
	case <-dctx.Done():
	}
	left := active.count()
	for _, s := range servers {
		_ = s.Close()
	}
	mux.closeLive() // hijacked HTTP/1 connections
	select {
	case <-active.idle():
	case <-time.After(afterDeadline):
	}
	g.log.Warn("drain deadline reached; closed the connections still open",
		"requests", left, "timeout", timeout.String())
}

// inFlight counts things under way (handlers running, connections in
// their TLS handshake), for the drain to wait on.
type inFlight struct {
	mu     sync.Mutex
	n      int
	idleCh chan struct{} // closed when n drops to 0; nil when nobody waits
}

// track counts h's calls while they run.
func (c *inFlight) track(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.add()
		defer c.done()
		h.ServeHTTP(w, r)
	})
}

func (c *inFlight) add() {
	c.mu.Lock()
	c.n++
	c.mu.Unlock()
}

func (c *inFlight) done() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n--
	if c.n == 0 && c.idleCh != nil {
		close(c.idleCh)
		c.idleCh = nil
	}
}

func (c *inFlight) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// idle returns a channel closed once no handler runs.
func (c *inFlight) idle() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == 0 {
		ch := make(chan struct{})
		close(ch)
		return ch
	}
	if c.idleCh == nil {
		c.idleCh = make(chan struct{})
	}
	return c.idleCh
}
