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

	"golang.org/x/net/http2"

	"golang.org/x/time/rate"

	"github.com/telegate/telegate/page"
)

// Listener defaults (docs/architecture.md principle 7: every read has a timeout).
const (
	DefaultReadHeaderTimeout = 5 * time.Second
	DefaultReadTimeout       = 30 * time.Second
	DefaultIdleTimeout       = 120 * time.Second
	DefaultMaxHeaderBytes    = 64 << 10
	shutdownGrace            = 10 * time.Second
)

// listeners are the sockets Serve runs on (tests pass their own).
type listeners struct {
	public, http, admin net.Listener
}

// Serve runs the public HTTPS listener (Server.Listen, default ":443"),
// the plain-HTTP listener (Server.HTTPListen; Certs.HTTPHandler: ACME
// HTTP-01 and redirects; "" disables it) and the admin listener
// (Server.Admin, default 127.0.0.1:9090) until ctx ends, then shuts them
// down gracefully (10s). /readyz turns ready once all listen.
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
	listen := sc.Listen
	if listen == "" {
		listen = ":443"
	}
	if ls.public, err = net.Listen("tcp", listen); err != nil {
		return fmt.Errorf("public listener: %w", err)
	}
	if sc.HTTPListen != "" {
		if ls.http, err = net.Listen("tcp", sc.HTTPListen); err != nil {
			closeAll()
			return fmt.Errorf("http listener: %w", err)
		}
	}
	admin := sc.Admin
	if admin == "" {
		admin = DefaultAdminAddr
	}
	if ls.admin, err = net.Listen("tcp", admin); err != nil {
		closeAll()
		return fmt.Errorf("admin listener: %w", err)
	}
	return g.serve(ctx, ls, g.o.Certs.TLSConfig())
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
// later, ALPN h2 and http/1.1 (and stun.turn for TURN over TLS).
func (g *Gateway) publicTLS(base *tls.Config) *tls.Config {
	c := base.Clone()
	if c.MinVersion < tls.VersionTLS12 {
		c.MinVersion = tls.VersionTLS12
	}
	for _, p := range []string{"h2", "http/1.1"} {
		if !slices.Contains(c.NextProtos, p) {
			c.NextProtos = append(c.NextProtos, p)
		}
	}
	if g.o.STUNConn != nil && !slices.Contains(c.NextProtos, "stun.turn") {
		c.NextProtos = append(c.NextProtos, "stun.turn")
	}
	return c
}

// publicServer is the hardened http.Server of the HTTPS listener: header,
// read and idle timeouts, a header size cap, HTTP/1.1 and HTTP/2 over TLS
// only (no h2c), MaxConcurrentStreams per HTTP/2 connection, and a
// per-connection stream budget (h2Guard).
func (g *Gateway) publicServer(tlsCfg *tls.Config) (*http.Server, error) {
	sc := g.current().cfg.Server
	streams := sc.H2MaxConcurrentStreams
	if streams == 0 {
		streams = 100
	}
	perSec := sc.H2MaxRequestsPerSecond
	if perSec <= 0 {
		perSec = 200
	}
	burst := max(int(perSec), 2*int(streams))
	srv := &http.Server{
		Handler:           g,
		TLSConfig:         tlsCfg,
		ReadHeaderTimeout: orDur(sc.ReadHeaderTimeout, DefaultReadHeaderTimeout),
		ReadTimeout:       orDur(sc.ReadTimeout, DefaultReadTimeout),
		WriteTimeout:      sc.WriteTimeout,
		IdleTimeout:       orDur(sc.IdleTimeout, DefaultIdleTimeout),
		MaxHeaderBytes:    orInt(sc.MaxHeaderBytes, DefaultMaxHeaderBytes),
		ErrorLog:          slogErrorLog(g.log),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			switch cc := c.(type) {
			case *h1Conn:
				return context.WithValue(ctx, connInfoKey{}, cc.info)
			case *tls.Conn:
				cs := cc.ConnectionState()
				ci := &connInfo{tls: &cs}
				if cs.NegotiatedProtocol == "h2" {
					ci.h2 = &h2Guard{conn: cc, lim: rate.NewLimiter(rate.Limit(perSec), burst)}
				}
				return context.WithValue(ctx, connInfoKey{}, ci)
			}
			return ctx
		},
	}
	// HTTP/2 over TLS only (no h2c): connections that negotiated h2 go to
	// the HTTP/2 server through their stream budget (h2frames.go).
	// x/net/http2's Server is deprecated in favour of net/http's own, but
	// only it serves an HTTP/2 connection given as a net.Conn, which the
	// frame-level stream budget needs; net/http has no hook for it.
	//lint:ignore SA1019 see above
	h2s := &http2.Server{MaxConcurrentStreams: streams}
	//lint:ignore SA1019 see above
	if err := http2.ConfigureServer(srv, h2s); err != nil {
		return nil, fmt.Errorf("gateway: HTTP/2: %w", err)
	}
	srv.TLSNextProto["h2"] = serveH2(h2s)
	return srv, nil
}

// serve runs the servers on ls until ctx ends.
func (g *Gateway) serve(ctx context.Context, ls listeners, base *tls.Config) error {
	tlsCfg := g.publicTLS(base)
	pub, err := g.publicServer(tlsCfg)
	if err != nil {
		return err
	}
	mux := newMuxListener(g, ls.public, tlsCfg)
	go mux.run()
	servers := []*http.Server{pub}
	var httpSrv, adminSrv *http.Server
	if ls.http != nil {
		var h http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			page.Error(w, r, http.StatusNotFound, "Not found.", "")
		})
		if g.o.Certs != nil {
			h = g.o.Certs.HTTPHandler()
		}
		httpSrv = &http.Server{Handler: h, ReadHeaderTimeout: DefaultReadHeaderTimeout, ReadTimeout: 10 * time.Second,
			WriteTimeout: 10 * time.Second, IdleTimeout: 30 * time.Second, MaxHeaderBytes: 16 << 10, ErrorLog: slogErrorLog(g.log)}
		servers = append(servers, httpSrv)
	}
	adminSrv = &http.Server{Handler: g.AdminHandler(), ReadHeaderTimeout: DefaultReadHeaderTimeout, ReadTimeout: 10 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 60 * time.Second, MaxHeaderBytes: 16 << 10, ErrorLog: slogErrorLog(g.log)}
	servers = append(servers, adminSrv)

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
	start(pub, mux)
	if httpSrv != nil {
		start(httpSrv, ls.http)
	}
	start(adminSrv, ls.admin)
	g.addrs.Store(&boundAddrs{public: ls.public.Addr(), admin: ls.admin.Addr()})
	g.ready.Store(true)
	g.log.Info("listening", "public", ls.public.Addr().String(), "admin", ls.admin.Addr().String())

	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	g.ready.Store(false)
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	for _, s := range servers {
		_ = s.Shutdown(sctx)
	}
	mux.Close()
	wg.Wait()
	return err
}
