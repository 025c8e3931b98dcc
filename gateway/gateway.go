// Package gateway is telegate's edge plane: listeners, HTTP hardening, the
// request chain (request id → canonicalise → route → rate limit →
// authenticate → authorise → rate limit by subject → inspect → reserved
// headers and assertion → reverse proxy → security headers → audit), the
// identity assertion and its JWKS, and the admin listener (docs/architecture.md
// "Request path (HTTP)").
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
	"github.com/telegate/telegate/internal/admission"
	"github.com/telegate/telegate/page"
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
	// Limiter holds rate-limit buckets; nil means policies.NewLimiter, the
	// in-memory limiter, with Config.RateLimits.MaxClients buckets per
	// table and the gateway's clock (Now). The limits come from each
	// configuration generation either way.
	Limiter Limiter
	// Certs supplies TLS for Serve; nil when tests serve TLS themselves
	// via Handler().
	Certs Certificates
	// Audit receives one "request" event per request; nil means discard.
	Audit audit.Sink
	// PseudonymKey keys the pseudonym (audit.Pseudonym) that stands for
	// the client address in ordinary logs; nil means
	// audit.PseudonymKey(<data_dir>). Never the audit chain key.
	PseudonymKey []byte
	Logger       *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Endpoints are telegate's own endpoints under /.telegate/ besides the
	// auth endpoints (visits API, visit pages, signaling).
	Endpoints []Endpoint
	// Registry receives the gateway's metrics; nil means a new one.
	Registry *prometheus.Registry
	// ConnMetrics counts what the listeners' connection admission closes
	// or refuses (telegate_edge_connections_closed_total); nil means new
	// counters registered in Registry. The node shares one with the
	// relay's dedicated TLS listener.
	ConnMetrics *admission.Metrics
	// ConnHandlers maps a TLS server name (SNI) to a handler that takes
	// the TLS connection after the handshake (TURN over TLS on the HTTPS
	// port); such connections are not served as HTTP.
	ConnHandlers map[string]func(net.Conn)
	// BreakGlass holds emergency-access grants for routes whose policy has
	// a break_glass section; nil disables break-glass.
	BreakGlass *policies.BreakGlass
	// Reload, when set, is run by POST /reload on the admin listener: it
	// reads and applies the configuration again and returns the running
	// generation's ID and hash, or why the configuration was refused.
	Reload func() (generation uint64, hash string, err error)
	// First, when its Config is set, is the first generation (its ID,
	// Hash, Auth and Inspector); otherwise the first generation is
	// Config with Auth and Inspector.
	First Generation
	// STUNConn, when set, takes TLS connections without ALPN (or with
	// "http/1.1" or "stun.turn") whose first bytes are a STUN message
	// (magic cookie 0x2112A442 at bytes 4..8, RFC 8489 §5).
	STUNConn func(net.Conn)
	// Dependencies are checked by /readyz on the admin listener, which
	// answers 503 while any is not ready. Nil: only the listeners count.
	Dependencies []Dependency
	// OnDrain, when set, is run once when the drain begins (BeginShutdown:
	// SIGTERM, or POST /drain on the admin listener), before the
	// listeners stop; a node marks itself draining in Redis with it.
	OnDrain func()
	// Drained, when set, returns a channel closed once what OnDrain began
	// is over (a node's calls moved off it): after the public side has
	// drained, the gateway waits for it, up to Server.ShutdownTimeout from
	// the start of the drain, before the admin listener stops — so
	// /readyz and /metrics answer while the calls move.
	Drained func() <-chan struct{}
}

// Endpoint is one of telegate's own endpoints. It is reached after
// canonicalise → rate limit → Authenticate; the handler authorises itself.
type Endpoint struct {
	// Prefix is a path under /.telegate/, e.g. "/.telegate/visits/".
	Prefix  string
	Handler http.Handler
}

// Gateway is the edge plane. Everything a request needs that comes from the
// configuration is one generation (generation): Swap replaces it whole, and
// every request runs start to end on the generation it started with
// (docs/architecture.md "Generations").
type Gateway struct {
	o       Options
	log     *slog.Logger
	now     func() time.Time
	audit   audit.Sink
	limiter Limiter
	signer  *assertionSigner
	metrics *metrics
	// connMetrics: Options.ConnMetrics.
	connMetrics *admission.Metrics
	reg         *prometheus.Registry
	pseudoKey   []byte

	readiness *readiness

	gen      atomic.Pointer[generation]
	upgrades upgrades
	ready    atomic.Bool
	addrs    atomic.Pointer[boundAddrs]
	reload   sync.Mutex

	// draining is closed by BeginShutdown (once).
	draining  chan struct{}
	drainOnce sync.Once
}

// Generation is what a configuration generation hands the edge: the
// configuration and the stages other planes built from it. It is never
// changed after it is handed over.
type Generation struct {
	// ID numbers generations from 1 at start; it goes into every audit
	// record and the assertion cache key.
	ID uint64
	// Hash identifies the effective configuration (hex SHA-256).
	Hash   string
	Config *config.Config
	// Auth authenticates requests and serves the sign-in endpoints; nil
	// only in tests of public routes.
	Auth Authenticator
	// Inspector is the WAF stage; nil means no inspection.
	Inspector Inspector
	// Dependencies are /readyz checks that belong to this generation (its
	// identity providers), after Options.Dependencies.
	Dependencies []Dependency
}

// generation is one configuration generation of the edge: router, upstream
// transports, assertion settings and the request chain built from them.
// It embeds the Gateway for what lives as long as the node (logger,
// metrics, signing key, audit sink). A request reads the current
// generation once, in ServeHTTP, and every stage is a closure over it.
type generation struct {
	*Gateway
	Generation
	cfg             *config.Config
	router          *router
	trusted         []netip.Prefix
	assertionHeader string
	issuer          string
	ttl             time.Duration
	upstreams       map[string]*upstream // route id → upstream
	strip           map[string]headerSet // route id → clientHeaderSet (reserved, assertion, routes[].strip_request_headers)
	ownCookie       string               // cookieStem(sessions.cookie_name)
	hsts            string               // Strict-Transport-Security value
	handler         http.Handler

	// inflight counts requests running on this generation; retired is set
	// once a newer one has replaced it. The last request out of a retired
	// generation closes what only it used.
	inflight atomic.Int64
	retired  atomic.Bool
	closed   sync.Once
	limits   *policies.RouteLimits
}

// New validates o.Config and builds a Gateway whose first generation is
// o.Config with o.Auth and o.Inspector. It loads (or creates once) the
// assertion signing key and the log-hash key in the data directory, and
// refuses an admin address that is neither loopback nor private.
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
	if err := o.Config.CheckDefaulted(); err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	if err := checkAdminAddr(o.Config); err != nil {
		return nil, err
	}
	key, err := loadSigningKey(o.Config)
	if err != nil {
		return nil, err
	}
	if g.signer, err = newAssertionSigner(key); err != nil {
		return nil, err
	}
	if g.pseudoKey = o.PseudonymKey; g.pseudoKey == nil {
		if g.pseudoKey, err = audit.PseudonymKey(o.Config.DataDir); err != nil {
			return nil, err
		}
	}
	if g.connMetrics = o.ConnMetrics; g.connMetrics == nil {
		g.connMetrics = admission.NewMetrics()
		if err := g.reg.Register(g.connMetrics); err != nil {
			return nil, err
		}
	}
	if g.metrics, err = newMetrics(g.reg); err != nil {
		return nil, err
	}
	if g.limiter == nil {
		g.limiter = policies.NewLimiter(o.Config.RateLimits.MaxClients, g.now)
	}
	for _, e := range o.Endpoints {
		if !strings.HasPrefix(e.Prefix, OwnPrefix) || e.Handler == nil {
			return nil, fmt.Errorf("gateway: endpoint %q must be under %s and have a handler", e.Prefix, OwnPrefix)
		}
	}
	g.readiness = newReadiness(o.Dependencies, func() (uint64, []Dependency) {
		st := g.current()
		return st.ID, st.Dependencies
	}, g.now, g.log)
	first := o.First
	if first.Config == nil {
		first = Generation{ID: 1, Config: o.Config, Auth: o.Auth, Inspector: o.Inspector}
	}
	st, err := g.build(first)
	if err != nil {
		return nil, err
	}
	g.gen.Store(st)
	return g, nil
}

// chain writes the request path once (docs/architecture.md "Request path (HTTP)").
// The first stage listed is the outermost.
func (g *generation) chain() http.Handler {
	limitClient := policies.LimitClient(g.limiter, g.limits)
	own := stages(g.ownEndpoints(), limitClient, g.authenticate)
	routed := stages(g.proxyHandler(),
		limitClient, g.authenticate, g.authorise, policies.LimitSubject(g.limiter, g.limits),
		g.limitBody, g.refuseMethodOverride, g.inspect, g.websocketGate, g.forwardHeaders)
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

// inspect runs the generation's Inspector (WAF), when there is one.
func (g *generation) inspect(next http.Handler) http.Handler {
	if g.Inspector == nil {
		return next
	}
	return g.Inspector.Inspect(next)
}

// current is the generation new requests start on.
func (g *Gateway) current() *generation { return g.gen.Load() }

// Current returns the running generation's ID and Hash.
func (g *Gateway) Current() (id uint64, hash string) {
	st := g.current()
	return st.ID, st.Hash
}

// build validates gen.Config and prepares a generation: router, upstream
// transports, assertion settings and the chain. It changes nothing.
func (g *Gateway) build(in Generation) (*generation, error) {
	cfg := in.Config
	if cfg == nil {
		return nil, errors.New("gateway: no configuration")
	}
	if err := cfg.CheckDefaulted(); err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	var errs config.Errors
	rt, err := newRouter(cfg)
	if err != nil {
		errs = append(errs, cfg.ProblemOf("", err))
	}
	st := &generation{
		Gateway: g, Generation: in,
		cfg: cfg, router: rt, trusted: cfg.Server.TrustedProxies,
		assertionHeader: cfg.Assertion.Header, issuer: cfg.Assertion.Issuer, ttl: cfg.Assertion.TTL,
		upstreams: map[string]*upstream{}, strip: map[string]headerSet{}, limits: policies.NewRouteLimits(cfg), hsts: hstsValue(cfg.Server.HSTSMaxAge),
		ownCookie: cookieStem(cfg.Sessions.CookieName),
	}
	// The rules for these settings are config's (one rule each, reported
	// by Load with file:line); a configuration built in code meets them
	// here.
	if err := config.CheckAssertionHeader(st.assertionHeader); err != nil {
		errs = append(errs, cfg.Problem("assertion.header", "%s", err.Error()))
	}
	ids := map[string]bool{}
	for i := range cfg.Routes {
		r := &cfg.Routes[i]
		at := func(field string) string { return fmt.Sprintf("routes[%d].%s", i, field) }
		if err := config.CheckID(r.ID, ids, "route"); err != nil {
			errs = append(errs, cfg.Problem(at("id"), "%s", err.Error()))
			continue
		}
		if err := config.CheckRoutePath(r.Path); err != nil {
			errs = append(errs, cfg.Problem(at("path"), "%s", err.Error()))
		}
		for j, h := range r.StripRequestHeaders {
			if err := config.CheckHeaderPattern(h); err != nil {
				errs = append(errs, cfg.Problem(at(fmt.Sprintf("strip_request_headers[%d]", j)), "%s", err.Error()))
			}
		}
		st.strip[r.ID] = clientHeaderSet(st.assertionHeader, r.StripRequestHeaders)
		up, err := newUpstream(r)
		if err != nil {
			if fe := (config.FieldError{}); !errors.As(err, &fe) {
				err = config.FieldError{Field: "upstream", Message: err.Error()}
			}
			errs = append(errs, cfg.ProblemOf(fmt.Sprintf("routes[%d]", i), err))
			continue
		}
		up.proxy = st.reverseProxy(up)
		st.upstreams[r.ID] = up
	}
	if len(errs) > 0 {
		st.closeUpstreams()
		return nil, errs
	}
	st.handler = st.chain()
	return st, nil
}

// Check builds gen as Swap would and throws it away: nil exactly when
// Swap (or New, with an admin address that New accepts) would take it. It
// opens no connection.
func Check(gen Generation) error {
	if gen.Config == nil {
		return errors.New("gateway: no configuration")
	}
	if err := gen.Config.CheckDefaulted(); err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	if err := checkAdminAddr(gen.Config); err != nil {
		return err
	}
	g := &Gateway{log: slog.New(slog.DiscardHandler)}
	st, err := g.build(gen)
	if err != nil {
		return err
	}
	st.closeUpstreams()
	return nil
}

// closeUpstreams closes the idle connections of the generation's upstream
// transports (requests still running keep theirs until they end).
func (g *generation) closeUpstreams() {
	g.closed.Do(func() {
		for _, up := range g.upstreams {
			up.close()
		}
	})
}

// leave ends one request on g; the last request out of a retired
// generation closes its upstreams.
func (g *generation) leave() {
	if g.inflight.Add(-1) == 0 && g.retired.Load() {
		g.closeUpstreams()
	}
}

// ServeHTTP is the whole public chain: it reads the current generation
// once and runs the request on it to the end.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.ProtoMajor == 2 {
		reserveStack()
	}
	st := g.current()
	st.inflight.Add(1)
	defer st.leave()
	st.handler.ServeHTTP(w, r)
}

// chainStack is about the stack the public chain uses down to the
// upstream round trip of a public or signed-in route, in bytes (under
// h2load no stack grows past it; inspection may grow it once more).
const chainStack = 24 << 10

// reserveStack grows the calling goroutine's stack at once to hold
// chainStack more bytes. The HTTP/2 server runs each stream's handler on
// a goroutine of its own (RFC 9113 §5.1), started with a small stack that
// the chain would otherwise grow by doubling, copying every frame on it
// each time (7 % of the node's CPU under h2load, against 1 % for the same
// load over HTTP/1.1, whose connection goroutine keeps its stack from one
// request to the next). Grown here, with a few frames on it, the stack is
// copied once; a stack that is already large enough costs the zeroing of
// the frame (about 0.5 µs).
//
//go:noinline
func reserveStack() {
	var frame [chainStack]byte
	holdFrame(&frame)
}

// holdFrame keeps reserveStack's frame from being optimised away.
//
//go:noinline
func holdFrame(*[chainStack]byte) {}

// Handler is the whole public chain, for tests that serve it themselves
// (httptest.NewUnstartedServer with TLS). Serve uses the same handler.
func (g *Gateway) Handler() http.Handler { return g }

// Reload swaps in a generation of cfg with the running generation's Auth
// and Inspector (see Swap). A changed rate limit applies to each bucket's
// next request; buckets keep what they have taken. Listener addresses, the
// signing key and the size of the in-memory limiter's tables
// (rate_limits.max_clients) are not reloaded.
func (g *Gateway) Reload(cfg *config.Config) error {
	cur := g.current()
	return g.Swap(Generation{ID: cur.ID + 1, Config: cfg, Auth: cur.Auth, Inspector: cur.Inspector})
}

// Swap builds next and makes it the generation new requests start on; on
// error the running generation stays and the error says why. Requests
// already running finish on the generation they started with; the old
// generation's upstream transports are closed when its last request ends.
// Listener addresses and the signing key belong to the node, not to a
// generation: the caller refuses changes to them.
func (g *Gateway) Swap(next Generation) error {
	if next.Config == nil {
		return errors.New("gateway: reload: no configuration")
	}
	g.reload.Lock()
	defer g.reload.Unlock()
	st, err := g.build(next)
	if err != nil {
		return fmt.Errorf("reload refused, previous configuration kept: %w", err)
	}
	old := g.gen.Swap(st)
	st.readmit()
	if old != nil {
		old.retired.Store(true)
		old.inflight.Add(1)
		old.leave() // closes now when nothing runs on it
	}
	return nil
}

// JWKS returns the JSON Web Key Set (RFC 7517 §5) with the assertion's
// public key: one EC P-256 key with "kid" (RFC 7638 thumbprint), "alg":
// "ES256" and "use": "sig". It is served at /.telegate/jwks.json.
func (g *Gateway) JWKS() []byte { return append([]byte(nil), g.signer.jwks...) }

// ownEndpoints serves /.telegate/: the JWKS, the stylesheet every page
// links (page.StylePath), the language switch (page.LangPath),
// Options.Endpoints (longest
// prefix first) and the auth handler; anything else is 404.
func (g *generation) ownEndpoints() http.Handler {
	eps := append([]Endpoint(nil), g.o.Endpoints...)
	for i := range eps {
		for j := i + 1; j < len(eps); j++ {
			if len(eps[j].Prefix) > len(eps[i].Prefix) {
				eps[i], eps[j] = eps[j], eps[i]
			}
		}
	}
	breakGlass := g.o.BreakGlass.Handler(g.routeByID, g.breakGlassReturn)
	breakGlassUses := g.o.BreakGlass.ReviewHandler()
	var authH http.Handler
	if g.Auth != nil {
		authH = g.Auth.Handler()
	}
	return ownErrors(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.EscapedPath()
		if p == OwnPrefix+"jwks.json" {
			if r.Method != http.MethodGet && r.Method != http.MethodHead {
				w.Header().Set("Allow", "GET, HEAD")
				page.Error(w, r, http.StatusMethodNotAllowed, "Method not allowed.", "")
				return
			}
			w.Header().Set("Content-Type", "application/jwk-set+json")
			w.Header().Set("Cache-Control", "public, max-age=300")
			_, _ = w.Write(g.signer.jwks)
			return
		}
		if p == page.StylePath {
			page.ServeStyle(w, r)
			return
		}
		if p == page.LangPath {
			page.ServeLang(w, r)
			return
		}
		if p == BreakGlassPath {
			breakGlass.ServeHTTP(w, r)
			return
		}
		if prefixMatch(BreakGlassUsesPath, p) {
			breakGlassUses.ServeHTTP(w, r)
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
		page.Error(w, r, http.StatusNotFound, "Not found.", "")
	}))
}

// checkAdminAddr refuses an admin listener that is not on a loopback or
// private (RFC 1918, RFC 4193) address, by config's rule for
// server.admin (config.CheckPrivateListenAddr), located at the field.
func checkAdminAddr(cfg *config.Config) error {
	if err := config.CheckPrivateListenAddr(cfg.Server.Admin); err != nil {
		return config.Errors{cfg.Problem("server.admin", "%s", err.Error())}
	}
	return nil
}

// upstreamURL parses a route's upstream by config's rule for
// routes[].upstream (config.CheckUpstream): http or https, a host, no
// path (the canonical path is forwarded as it is), no query, no user info.
func upstreamURL(s string) (*url.URL, error) {
	if err := config.CheckUpstream(s); err != nil {
		return nil, err
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, err
	}
	u.Path = ""
	return u, nil
}
