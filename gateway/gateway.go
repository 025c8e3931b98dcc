// Package gateway is telegate's edge plane: listeners, HTTP hardening, the
// request chain (request id → canonicalise → route → rate limit →
// authenticate → authorise → rate limit by subject → inspect → reserved
// headers and assertion → reverse proxy → security headers → audit), the
// identity assertion and its JWKS, and the admin listener (docs/architecture.md
// "Request path").
package gateway

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/telegate/telegate/audit"
	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/policies"
)

// Options configure a Gateway.
type Options struct {
	Config *config.Config
	// Auth authenticates requests and serves the sign-in endpoints; nil
	// only in tests of public routes.
	Auth Authenticator
	// Inspector is the WAF stage; nil means no inspection.
	Inspector Inspector
	// Limiter holds rate-limit buckets; nil means a built-in bounded
	// in-memory limiter configured from Config.RateLimits.
	Limiter Limiter
	// Certs supplies TLS for Serve; nil when tests serve TLS themselves
	// via Handler().
	Certs Certificates
	// Audit receives one "request" event per request; nil means discard.
	Audit  audit.Sink
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Endpoints are telegate's own endpoints under /.telegate/ besides the
	// auth endpoints (visits API, visit pages, signaling).
	Endpoints []Endpoint
	// Registry receives the gateway's metrics; nil means a new one.
	Registry *prometheus.Registry
	// ConnHandlers maps a TLS server name (SNI) to a handler that takes
	// the TLS connection after the handshake (TURN over TLS on the HTTPS
	// port); such connections are not served as HTTP.
	ConnHandlers map[string]func(net.Conn)
	// BreakGlass holds emergency-access grants for routes whose policy has
	// a break_glass section; nil disables break-glass.
	BreakGlass *policies.BreakGlass
	// STUNConn, when set, takes TLS connections without ALPN (or with
	// "http/1.1" or "stun.turn") whose first bytes are a STUN message
	// (magic cookie 0x2112A442 at bytes 4..8, RFC 8489 §5).
	STUNConn func(net.Conn)
}

// Endpoint is one of telegate's own endpoints. It is reached after
// canonicalise → rate limit → Authenticate; the handler authorises itself.
type Endpoint struct {
	// Prefix is a path under /.telegate/, e.g. "/.telegate/visits/".
	Prefix  string
	Handler http.Handler
}

// Gateway is the edge plane. Its configuration can be swapped atomically
// with Reload.
type Gateway struct {
	o       Options
	log     *slog.Logger
	now     func() time.Time
	audit   audit.Sink
	limiter Limiter
	signer  *assertionSigner
	metrics *metrics
	reg     *prometheus.Registry
	ipKey   []byte
	handler http.Handler
	own     http.Handler

	state  atomic.Pointer[state]
	gen    atomic.Uint64
	ready  atomic.Bool
	addrs  atomic.Pointer[boundAddrs]
	reload sync.Mutex

	// draining is closed by BeginShutdown (once).
	draining  chan struct{}
	drainOnce sync.Once
}

// state is one configuration generation: swapped whole by Reload.
type state struct {
	cfg             *config.Config
	gen             uint64
	router          *router
	trusted         []netip.Prefix
	assertionHeader string
	issuer          string
	ttl             time.Duration
	upstreams       map[string]*upstream // route id → upstream
}

// New validates o.Config and builds a Gateway. It loads (or creates once)
// the assertion signing key and the log-hash key in the data directory,
// and refuses an admin address that is neither loopback nor private.
func New(o Options) (*Gateway, error) {
	if o.Config == nil {
		return nil, errors.New("gateway: no configuration")
	}
	g := &Gateway{o: o, log: o.Logger, now: o.Now, audit: o.Audit, reg: o.Registry, limiter: o.Limiter,
		draining: make(chan struct{})}
	if g.log == nil {
		g.log = slog.Default()
	}
	if g.now == nil {
		g.now = time.Now
	}
	if g.audit == nil {
		g.audit = audit.Discard{}
	}
	if g.reg == nil {
		g.reg = prometheus.NewRegistry()
	}
	if err := checkAdminAddr(o.Config.Server.Admin); err != nil {
		return nil, err
	}
	st, err := g.build(o.Config)
	if err != nil {
		return nil, err
	}
	key, err := loadSigningKey(o.Config.Assertion.SigningKeyFile, o.Config.DataDir)
	if err != nil {
		return nil, err
	}
	if g.signer, err = newAssertionSigner(key); err != nil {
		return nil, err
	}
	if g.ipKey, err = logKey(o.Config.Audit.Key, o.Config.Audit.KeyFile, o.Config.DataDir); err != nil {
		return nil, err
	}
	if g.metrics, err = newMetrics(g.reg); err != nil {
		return nil, err
	}
	if g.limiter == nil {
		g.limiter = newMemLimiter(o.Config)
	}
	for _, e := range o.Endpoints {
		if !strings.HasPrefix(e.Prefix, OwnPrefix) || e.Handler == nil {
			return nil, fmt.Errorf("gateway: endpoint %q must be under %s and have a handler", e.Prefix, OwnPrefix)
		}
	}
	g.state.Store(st)
	g.own = g.ownEndpoints()
	g.handler = g.chain()
	return g, nil
}

// chain writes the request path once (docs/architecture.md "Request path"). The first
// stage listed is the outermost.
func (g *Gateway) chain() http.Handler {
	own := stages(g.own, g.limitClient, g.authenticate)
	routed := stages(g.proxyHandler(),
		g.limitClient, g.authenticate, g.authorise, g.limitSubject,
		g.limitBody, g.inspect, g.websocketGate, g.forwardHeaders)
	return stages(g.route(own, routed),
		g.requestID, g.record, g.securityHeaders, g.canonicalise)
}

// stages wraps h so that the first stage runs first.
func stages(h http.Handler, s ...func(http.Handler) http.Handler) http.Handler {
	for i := len(s) - 1; i >= 0; i-- {
		h = s[i](h)
	}
	return h
}

// inspect runs the Inspector (WAF), when there is one.
func (g *Gateway) inspect(next http.Handler) http.Handler {
	if g.o.Inspector == nil {
		return next
	}
	return g.o.Inspector.Inspect(next)
}

func (g *Gateway) current() *state { return g.state.Load() }

// build validates cfg and prepares a configuration generation: router,
// upstream transports, assertion settings. It changes nothing.
func (g *Gateway) build(cfg *config.Config) (*state, error) {
	var errs []error
	rt, err := newRouter(cfg)
	if err != nil {
		errs = append(errs, err)
	}
	st := &state{
		cfg: cfg, gen: g.gen.Add(1), router: rt, trusted: cfg.Server.TrustedProxies,
		assertionHeader: cfg.Assertion.Header, issuer: cfg.Assertion.Issuer, ttl: cfg.Assertion.TTL,
		upstreams: map[string]*upstream{},
	}
	if st.assertionHeader == "" {
		st.assertionHeader = DefaultAssertionHeader
	}
	if st.issuer == "" {
		st.issuer = cfg.Server.PublicURL
	}
	if st.ttl <= 0 {
		st.ttl = 60 * time.Second
	}
	if !IsReservedHeader(st.assertionHeader, DefaultAssertionHeader) && !strings.HasPrefix(FoldHeaderName(st.assertionHeader), "x-") {
		errs = append(errs, fmt.Errorf("assertion.header %q: use an X- name", st.assertionHeader))
	}
	ids := map[string]bool{}
	for i := range cfg.Routes {
		r := &cfg.Routes[i]
		if r.ID == "" || r.ID == ownRouteID {
			errs = append(errs, fmt.Errorf("route %d: id is required", i))
			continue
		}
		if ids[r.ID] {
			errs = append(errs, fmt.Errorf("route %q: duplicate id", r.ID))
		}
		ids[r.ID] = true
		if !strings.HasPrefix(r.Path, "/") {
			errs = append(errs, fmt.Errorf("route %q: path %q must start with /", r.ID, r.Path))
		} else if c, _, err := CanonicalPath(r.Path); err != nil || c != r.Path {
			errs = append(errs, fmt.Errorf("route %q: path %q is not canonical", r.ID, r.Path))
		} else if strings.HasPrefix(r.Path, OwnPrefix) || r.Path+"/" == OwnPrefix {
			errs = append(errs, fmt.Errorf("route %q: path %q is reserved for telegate", r.ID, r.Path))
		}
		up, err := newUpstream(r)
		if err != nil {
			errs = append(errs, fmt.Errorf("route %q: %w", r.ID, err))
			continue
		}
		up.proxy = g.reverseProxy(up)
		st.upstreams[r.ID] = up
	}
	if err := errors.Join(errs...); err != nil {
		for _, up := range st.upstreams {
			up.close()
		}
		return nil, fmt.Errorf("gateway configuration: %w", err)
	}
	return st, nil
}

// Handler is the whole public chain, for tests that serve it themselves
// (httptest.NewUnstartedServer with TLS). Serve uses the same handler.
func (g *Gateway) Handler() http.Handler { return g.handler }

// Reload validates cfg and then swaps routes, upstreams and assertion
// settings atomically; on error the running configuration stays and the
// error says why. Listener addresses and the signing key are not
// reloaded.
func (g *Gateway) Reload(cfg *config.Config) error {
	if cfg == nil {
		return errors.New("gateway: reload: no configuration")
	}
	g.reload.Lock()
	defer g.reload.Unlock()
	st, err := g.build(cfg)
	if err != nil {
		return fmt.Errorf("reload refused, previous configuration kept: %w", err)
	}
	old := g.state.Swap(st)
	if m, ok := g.limiter.(*memLimiter); ok {
		m.configure(cfg)
	}
	if old != nil {
		go func() {
			time.Sleep(time.Second)
			for _, up := range old.upstreams {
				up.close()
			}
		}()
	}
	return nil
}

// JWKS returns the JSON Web Key Set (RFC 7517 §5) with the assertion's
// public key: one EC P-256 key with "kid" (RFC 7638 thumbprint), "alg":
// "ES256" and "use": "sig". It is served at /.telegate/jwks.json.
func (g *Gateway) JWKS() []byte { return append([]byte(nil), g.signer.jwks...) }

// ownEndpoints serves /.telegate/: the JWKS, Options.Endpoints (longest
// prefix first) and the auth handler; anything else is 404.
func (g *Gateway) ownEndpoints() http.Handler {
	eps := append([]Endpoint(nil), g.o.Endpoints...)
	for i := range eps {
		for j := i + 1; j < len(eps); j++ {
			if len(eps[j].Prefix) > len(eps[i].Prefix) {
				eps[i], eps[j] = eps[j], eps[i]
			}
		}
	}
	breakGlass := g.breakGlassHandler()
	var authH http.Handler
	if g.o.Auth != nil {
		authH = g.o.Auth.Handler()
	}
	return ownErrors(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.EscapedPath()
		if p == OwnPrefix+"jwks.json" {
			if r.Method != http.MethodGet && r.Method != http.MethodHead {
				w.Header().Set("Allow", "GET, HEAD")
				writeError(w, r, http.StatusMethodNotAllowed, "Method not allowed.")
				return
			}
			w.Header().Set("Content-Type", "application/jwk-set+json")
			w.Header().Set("Cache-Control", "public, max-age=300")
			_, _ = w.Write(g.signer.jwks)
			return
		}
		if p == BreakGlassPath {
			breakGlass.ServeHTTP(w, r)
			return
		}
		for _, e := range eps {
			if prefixMatch(e.Prefix, p) {
				e.Handler.ServeHTTP(w, r)
				return
			}
		}
		if authH != nil {
			authH.ServeHTTP(w, r)
			return
		}
		writeError(w, r, http.StatusNotFound, "Not found.")
	}))
}

// checkAdminAddr refuses an admin listener that is not on a loopback or
// private (RFC 1918, RFC 4193) address; "" means the default
// 127.0.0.1:9090.
func checkAdminAddr(addr string) error {
	if addr == "" {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("server.admin %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !(ip.IsLoopback() || ip.IsPrivate()) {
		return fmt.Errorf("server.admin %q: must be a loopback or private IP address (health and metrics are never public)", addr)
	}
	return nil
}

// upstreamURL parses a route's upstream: http or https, a host, no path
// (the canonical path is forwarded as it is), no query, no user info.
func upstreamURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("upstream %q: %w", s, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("upstream %q: want http(s)://host[:port] without path", s)
	}
	u.Path = ""
	return u, nil
}
