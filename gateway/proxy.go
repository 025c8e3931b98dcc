package gateway

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/page"
	"github.com/telegate/telegate/scope"
)

// upstream is one route's target and its own transport.
type upstream struct {
	url       *url.URL
	transport *http.Transport
	proxy     *httputil.ReverseProxy
}

// newUpstream builds the transport of one route: dial, TLS-handshake and
// response-header timeouts (Route.Timeout, default 30s), and for https
// upstreams the route's CA, client certificate and server name. A problem
// with a file the route names is a config.FieldError at that field
// (relative to the route); any other problem is the upstream's.
func newUpstream(r *config.Route) (*upstream, error) {
	u, err := upstreamURL(r.Upstream)
	if err != nil {
		return nil, err
	}
	timeout := r.Timeout
	dialer := &net.Dialer{Timeout: min(timeout, 10*time.Second), KeepAlive: 30 * time.Second}
	t := &http.Transport{
		Proxy:                  nil, // never an environment proxy
		DialContext:            dialer.DialContext,
		TLSHandshakeTimeout:    min(timeout, 10*time.Second),
		ResponseHeaderTimeout:  timeout,
		ExpectContinueTimeout:  time.Second,
		IdleConnTimeout:        90 * time.Second,
		MaxIdleConnsPerHost:    64,
		MaxResponseHeaderBytes: 1 << 20,
		ForceAttemptHTTP2:      u.Scheme == "https",
	}
	ut := r.UpstreamTLS
	if u.Scheme == "https" {
		tc, err := config.ClientTLSConfig("upstream_tls", ut.CAFile, ut.CertFile, ut.KeyFile, ut.ServerName)
		if err != nil {
			return nil, err
		}
		t.TLSClientConfig = tc
	} else if ut != (config.UpstreamTLS{}) {
		return nil, errors.New("upstream_tls is set but the upstream is not https")
	}
	return &upstream{url: u, transport: t}, nil
}

func (u *upstream) close() { u.transport.CloseIdleConnections() }

// proxyHandler is the reverse proxy: the route's httputil.ReverseProxy
// (built with Rewrite, never Director, in reverseProxy).
func (g *generation) proxyHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := scope.From(r.Context())
		up := g.upstreams[s.RouteID]
		if up == nil || up.proxy == nil {
			page.Error(w, r, http.StatusBadGateway, "The service is not available.", "")
			return
		}
		up.proxy.ServeHTTP(w, r)
	})
}

// reverseProxy builds a route's proxy. Rewrite sets the upstream request
// from the canonical form in the scope (path and query byte for byte), then
// adds telegate's own headers after ReverseProxy has removed the hop-by-hop
// ones: the assertion, X-Forwarded-For/Host/Proto, Forwarded (RFC 7239),
// X-Request-Id and, where the route asks, X-Telegate-Subject and
// X-Telegate-Roles.
func (g *generation) reverseProxy(up *upstream) *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite:   g.rewrite(up),
		Transport: up.transport,
		// 0: a response of known length is written in one go when it
		// ends; server-sent events (text/event-stream) and responses of
		// unknown length are still flushed after every write (ReverseProxy
		// flushes those immediately whatever FlushInterval says).
		FlushInterval:  0,
		ErrorHandler:   g.proxyError,
		ModifyResponse: g.modifyResponse,
		ErrorLog:       g.errorLog(),
		BufferPool:     copyBuffers,
	}
}

// copyBuffers lends the reverse proxy its 32 KiB body copy buffers, so that
// a request does not allocate (and the collector reclaim) one of its own.
var copyBuffers httputil.BufferPool = &bufferPool{}

type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte {
	if v, ok := b.p.Get().(*[]byte); ok {
		return *v
	}
	return make([]byte, 32<<10)
}

func (b *bufferPool) Put(buf []byte) {
	if cap(buf) != 32<<10 {
		return
	}
	buf = buf[:cap(buf)]
	b.p.Put(&buf)
}

func (g *generation) rewrite(up *upstream) func(*httputil.ProxyRequest) {
	return func(pr *httputil.ProxyRequest) {
		ctx := pr.In.Context()
		s := scope.From(ctx)
		rs := stateFrom(ctx)
		st := g
		out := pr.Out
		out.URL.Scheme, out.URL.Host = up.url.Scheme, up.url.Host
		out.URL.Path, out.URL.RawPath = unescapedPath(s.Path), s.Path
		out.URL.RawQuery = s.RawQuery
		out.URL.Opaque, out.URL.User, out.URL.Fragment = "", nil, ""
		out.Host = ""
		h := out.Header
		// ReverseProxy copied the inbound header; the reserved ones were
		// removed by forwardHeaders. Set ours now, after hop-by-hop removal.
		st.stripClientHeaders(h, s.RouteID)
		client := s.ClientAddr.String()
		xff := client
		if rs.forwardedFor != "" {
			xff = rs.forwardedFor + ", " + peerAddr(pr.In.RemoteAddr).String()
		}
		setHeaders(h,
			"X-Forwarded-For", xff,
			"X-Forwarded-Host", s.Host,
			"X-Forwarded-Proto", rs.forwardedProto,
			"Forwarded", "for="+forwardedNode(client)+";host="+strconv.Quote(s.Host)+";proto="+rs.forwardedProto,
			RequestIDHeader, s.RequestID)
		if s.Identity != nil && rs.assertion != "" {
			h.Set(st.assertionHeader, rs.assertion)
			if s.Route.IdentityHeaders {
				h.Set("X-Telegate-Subject", s.Identity.Subject)
				h.Set("X-Telegate-Roles", strings.Join(s.Identity.Roles, ","))
			}
		}
	}
}

// setHeaders sets each field of kv (pairs of canonical name and value) to
// its one value, like http.Header.Set, with a single allocation for all the
// values. Each value slice has its own capacity, so an Add reallocates.
func setHeaders(h http.Header, kv ...string) {
	vals := make([]string, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		j := i / 2
		vals[j] = kv[i+1]
		h[kv[i]] = vals[j : j+1 : j+1]
	}
}

// forwardedNode quotes IPv6 nodes as RFC 7239 §6 requires.
func forwardedNode(ip string) string {
	if strings.Contains(ip, ":") {
		return `"[` + ip + `]"`
	}
	return ip
}

// modifyResponse marks the response as proxied, so that securityHeaders
// applies the proxied-response set (HSTS, nosniff, Route.ResponseHeaders).
//
// An upstream may not set telegate's own cookies: Set-Cookie fields naming
// the session cookie (Sessions.CookieName, default "__Host-telegate") or
// any cookie starting with "__Host-telegate" are dropped, so a compromised
// app cannot fix or overwrite a user's gateway session.
func (g *generation) modifyResponse(resp *http.Response) error {
	if rs := stateFrom(resp.Request.Context()); rs != nil {
		rs.proxied.Store(true)
	}
	own := g.ownCookie
	if sc := resp.Header.Values("Set-Cookie"); len(sc) > 0 {
		keep := sc[:0:0]
		for _, c := range sc {
			if strings.HasPrefix(cookieStem(setCookieName(c)), own) {
				continue // the session cookie or its sign-in companion
			}
			keep = append(keep, c)
		}
		resp.Header["Set-Cookie"] = keep
		if len(keep) == 0 {
			resp.Header.Del("Set-Cookie")
		}
	}
	return nil
}

// setCookieName is the name a browser stores for a Set-Cookie field
// value: the part before "=" of the first pair, trimmed; a nameless
// cookie ("=x=y", RFC 6265bis §5.6) is sent back as "x=y", so it counts
// as named by what precedes its value's "=".
func setCookieName(v string) string {
	pair, _, _ := strings.Cut(v, ";")
	name, value, _ := strings.Cut(pair, "=")
	name = strings.TrimSpace(name)
	if name == "" {
		name, _, _ = strings.Cut(strings.TrimSpace(value), "=")
		name = strings.TrimSpace(name)
	}
	return name
}

// cookieStem folds a cookie name the way telegate reads its own cookies
// (case-insensitively) and drops the __Host- and __Secure- prefixes
// (RFC 6265bis §4.1.3), which browsers match case-insensitively too:
// "__HOST-Telegate" and "__Secure-telegate" are the same stem as
// "__Host-telegate".
func cookieStem(name string) string {
	n := strings.ToLower(strings.TrimSpace(name))
	for {
		switch {
		case strings.HasPrefix(n, "__host-"):
			n = n[len("__host-"):]
		case strings.HasPrefix(n, "__secure-"):
			n = n[len("__secure-"):]
		default:
			return n
		}
	}
}

// proxyError maps proxy failures to pages with the request id and nothing
// internal: a form body that names a method override, or a multipart
// body that cannot be read unambiguously → 400 (see
// refuseMethodOverride); a request body over the route's limit → 413; a
// malformed request body (client fault) → 400; an upstream timeout → 504; anything
// else (unreachable, refused, reset) → 502.
func (g *generation) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	rs := stateFrom(r.Context())
	var mbe *http.MaxBytesError
	switch {
	case g.shuttingDown() && (errors.Is(err, context.Canceled) || rs != nil && rs.body != nil && rs.body.failed()):
		// The drain deadline closed the connection: not the client's
		// fault, and the record says so.
		rs.reason = scope.ReasonShutdown
		w.Header().Set("Connection", "close")
		page.Error(w, r, http.StatusServiceUnavailable, "telegate is restarting; send the request again.", "")
	case rs != nil && rs.form.refusal() == scope.ReasonBodyMethodOverride:
		rs.reason = scope.ReasonBodyMethodOverride
		w.Header().Set("Connection", "close")
		page.Error(w, r, http.StatusBadRequest, "The request names a method override (_method); send the method itself.", "")
	case rs != nil && rs.form.refusal() == scope.ReasonBodyMultipart:
		rs.reason = scope.ReasonBodyMultipart
		w.Header().Set("Connection", "close")
		page.Error(w, r, http.StatusBadRequest, "The multipart request body cannot be read unambiguously.", "")
	case errors.As(err, &mbe) || rs != nil && rs.body != nil && rs.body.tooLarge():
		rs.reason = scope.ReasonBodyTooLarge
		w.Header().Set("Connection", "close")
		page.Error(w, r, http.StatusRequestEntityTooLarge, "The request body is too large.", "")
	case rs != nil && rs.body != nil && rs.body.failed():
		rs.reason = scope.ReasonBodyMalformed
		w.Header().Set("Connection", "close")
		page.Error(w, r, http.StatusBadRequest, "The request body could not be read.", "")
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		rs.reason = scope.ReasonClientGone
		w.WriteHeader(499) // nginx's "client closed request"; never seen by the client
	case isTimeout(err):
		rs.reason = scope.ReasonUpstreamTimeout
		page.Error(w, r, http.StatusGatewayTimeout, "The service did not answer in time.", "")
	default:
		rs.reason = scope.ReasonUpstreamUnavailable
		page.Error(w, r, http.StatusBadGateway, "The service is not available.", "")
	}
}

func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// bodyReader wraps the request body to bound it (Route.MaxBodyBytes,
// default 10 MiB) and to tell a client's malformed body from an upstream
// failure.
type bodyReader struct {
	mu   sync.Mutex
	rc   io.ReadCloser
	left int64
	big  bool
	err  error
}

func (b *bodyReader) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.big {
		return 0, &http.MaxBytesError{}
	}
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.rc.Read(p)
	if int64(n) > b.left {
		b.big = true
		return int(b.left), &http.MaxBytesError{}
	}
	b.left -= int64(n)
	if err != nil && err != io.EOF {
		b.err = err
	}
	return n, err
}

func (b *bodyReader) Close() error { return b.rc.Close() }

func (b *bodyReader) tooLarge() bool { b.mu.Lock(); defer b.mu.Unlock(); return b.big }
func (b *bodyReader) failed() bool   { b.mu.Lock(); defer b.mu.Unlock(); return b.err != nil }

// limitBody refuses a declared Content-Length over the route's limit with
// 413 before anything is read, and bounds every other body while it is
// streamed.
func (g *generation) limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := scope.From(r.Context())
		limit := s.Route.MaxBodyBytes
		if r.ContentLength > limit {
			w.Header().Set("Connection", "close")
			refuse(w, r, http.StatusRequestEntityTooLarge, scope.ReasonBodyTooLarge)
			return
		}
		if r.ContentLength == 0 {
			// Known empty: HTTP/1.1 gives NoBody already; the HTTP/2
			// server gives 0 only when HEADERS ended the stream or
			// content-length was 0, and refuses a DATA byte past a
			// declared length (RFC 9113 §8.1.1). Every later step then
			// sees the same NoBody on both protocols, and reads nothing.
			r.Body = http.NoBody
		}
		if r.Body != nil && r.Body != http.NoBody {
			br := &bodyReader{rc: r.Body, left: limit}
			stateFrom(r.Context()).body = br
			r.Body = br
		}
		next.ServeHTTP(w, r)
	})
}

// websocketGate admits protocol upgrades (RFC 9110 §7.8) only as WebSocket
// (RFC 6455) on routes with WebSocket: true, after authentication and
// policy, and only from an Origin in Route.Origins (default
// "https://<route host>" for each of the route's hosts and the request's
// host); every other upgrade attempt (h2c included) is 403.
func (g *generation) websocketGate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.Header.Values("Upgrade")) == 0 && r.Method != http.MethodConnect {
			next.ServeHTTP(w, r)
			return
		}
		s := scope.From(r.Context())
		if r.Method == http.MethodConnect || !s.Route.WebSocket ||
			!strings.EqualFold(strings.TrimSpace(r.Header.Get("Upgrade")), "websocket") {
			refuse(w, r, http.StatusForbidden, scope.ReasonUpgradeNotAllowed)
			return
		}
		if !originAllowed(r.Header.Values("Origin"), s, r.Host) {
			refuse(w, r, http.StatusForbidden, scope.ReasonUpgradeOrigin)
			return
		}
		// The upgraded connection outlives the request: the server's
		// read and write deadlines (Server.ReadTimeout, WriteTimeout) must
		// not cut a visit's signaling socket.
		rc := http.NewResponseController(w)
		_ = rc.SetReadDeadline(time.Time{})
		_ = rc.SetWriteDeadline(time.Time{})
		g.upgrades.track(w, r, s, next)
	})
}

func originAllowed(origins []string, s *scope.Scope, requestHost string) bool {
	if len(origins) != 1 {
		return false
	}
	o := strings.ToLower(strings.TrimSuffix(origins[0], "/"))
	allowed := s.Route.Origins
	if len(allowed) == 0 {
		// The page's own origin (RFC 6454 §4): scheme, host and the port
		// the browser addressed, which Host carries unless it is 443.
		port := ""
		if _, p, err := net.SplitHostPort(requestHost); err == nil && p != "443" {
			port = ":" + p
		}
		allowed = []string{"https://" + s.Host + port}
		for _, h := range s.Route.Hosts {
			allowed = append(allowed, "https://"+strings.ToLower(strings.TrimSuffix(h, "."))+port)
		}
	}
	for _, a := range allowed {
		if strings.ToLower(strings.TrimSuffix(a, "/")) == o {
			return true
		}
	}
	return false
}
