package gateway

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/time/rate"

	"github.com/telegate/telegate/internal/admission"
	"github.com/telegate/telegate/scope"
)

// stunMagicCookie is the fixed value at bytes 4..8 of every STUN message
// (RFC 8489 §5).
const stunMagicCookie = 0x2112A442

// IsSTUN reports whether b starts like a STUN message: the two top bits
// zero (RFC 8489 §5, RFC 7983 §7) and the magic cookie at bytes 4..8.
func IsSTUN(b []byte) bool {
	return len(b) >= 8 && b[0]&0xC0 == 0 && binary.BigEndian.Uint32(b[4:8]) == stunMagicCookie
}

// muxListener accepts TCP connections through the listener's admission
// controller (internal/admission: per-source and listener-wide caps on
// connections in their handshake and established, first-byte and
// handshake deadlines), completes the TLS handshake itself and
// dispatches each connection:
// a server name in Options.ConnHandlers → that handler; ALPN "h2" →
// net/http's HTTP/2 server through the frame budget (h2FrameBudget); ALPN "acme-tls/1" →
// closed after the handshake (the challenge is answered in it); a STUN
// message first (Options.STUNConn set; no ALPN, "http/1.1" or "stun.turn")
// → Options.STUNConn; everything else → HTTP/1 through the framing scanner
// (h1Conn).
type muxListener struct {
	ln        net.Listener
	g         *Gateway
	tlsCfg    *tls.Config
	handlers  map[string]func(net.Conn)
	stun      func(net.Conn)
	peek      time.Duration
	handshake time.Duration
	maxHead   int
	// An HTTP/2 connection's stream budget (new streams a second, burst)
	// and header block limits (h2Guard, h2FrameBudget).
	h2PerSec rate.Limit
	h2Burst  int
	h2Limits h2BlockLimits

	conns     chan net.Conn
	done      chan struct{}
	closeOnce sync.Once
	// stopping is set by stopAccepting; ran is closed when run returns.
	stopping atomic.Bool
	ran      chan struct{}
	// pending counts the connections accepted and not yet handed on
	// (TLS handshake, first bytes).
	pending inFlight
	wg      sync.WaitGroup

	// live are the HTTP/1 connections handed to net/http and not yet
	// closed, hijacked ones included (closeLive), with their state as
	// net/http last reported it (observe).
	liveMu sync.Mutex
	live   map[*h1Conn]*h1State
}

// h1State is what the drain knows of an HTTP/1 connection.
type h1State struct {
	state     http.ConnState
	delivered time.Time
}

// quietGrace is how long the drain lets a connection that has completed
// its TLS handshake take to send its first byte before closing it as
// unused (a browser's preconnect).
const quietGrace = time.Second

// newMuxListener serves ln, which is an admission listener
// (admission.Controller.Listen): its connections are counted from accept,
// and the TLS handshake is bounded by connections.handshake_timeout.
func newMuxListener(g *Gateway, ln net.Listener, tlsCfg *tls.Config) *muxListener {
	cfg := g.current().cfg
	sc := cfg.Server
	m := &muxListener{
		ln: ln, g: g, tlsCfg: tlsCfg, stun: g.o.STUNConn,
		handlers:  map[string]func(net.Conn){},
		peek:      2 * time.Second,
		handshake: cfg.Connections.HandshakeTimeout,
		maxHead:   sc.MaxHeaderBytes,
		h2PerSec:  rate.Limit(sc.H2MaxRequestsPerSecond),
		h2Burst:   max(int(sc.H2MaxRequestsPerSecond), 2*int(sc.H2MaxConcurrentStreams)),
		h2Limits:  h2BlockLimits{timeout: sc.ReadHeaderTimeout, maxBytes: sc.MaxHeaderBytes},
		conns:     make(chan net.Conn),
		done:      make(chan struct{}),
		ran:       make(chan struct{}),
		live:      map[*h1Conn]*h1State{},
	}
	if rht := sc.ReadHeaderTimeout; rht > 0 && rht < m.peek {
		m.peek = rht
	}
	for name, h := range g.o.ConnHandlers {
		if c, err := CanonicalHost(name); err == nil {
			m.handlers[c] = h
		}
	}
	return m
}

func (m *muxListener) run() {
	defer close(m.ran)
	var delay time.Duration
	for {
		c, err := m.ln.Accept()
		if err != nil {
			select {
			case <-m.done:
				return
			default:
			}
			if m.stopping.Load() {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			m.Close()
			return
		}
		delay = 0
		m.pending.add()
		m.wg.Add(1)
		go m.handle(c)
	}
}

// stopAccepting closes the TCP listener: new connections are refused,
// while those accepted go on through their handshake to Accept (until
// Close). It returns once the accept loop has ended, so pending counts
// every connection that will ever be accepted.
func (m *muxListener) stopAccepting() {
	m.stopping.Store(true)
	_ = m.ln.Close()
	<-m.ran
}

// looksLikeHTTP reports whether the first five bytes of a connection that
// is not TLS are the start of an HTTP/1 request line.
func looksLikeHTTP(hdr [5]byte) bool {
	switch string(hdr[:]) {
	case "GET /", "HEAD ", "POST ", "PUT /", "OPTIO", "DELET", "PATCH", "CONNE", "TRACE", "PRI *":
		return true
	}
	return false
}

// handle completes the handshake and dispatches one connection.
func (m *muxListener) handle(raw net.Conn) {
	defer m.wg.Done()
	handedOn := false
	handOn := func() { // before a handler that may keep the connection long
		if !handedOn {
			handedOn = true
			m.pending.done()
		}
	}
	defer handOn()
	// Nothing is built for a connection before its first byte: one that
	// never sends any (an idle-TCP flood) costs this wait alone until the
	// admission's first-byte deadline or eviction closes it. The
	// admission's handshake deadline bounds the handshake from accept;
	// this one bounds the exchange from the first byte on.
	if admission.AwaitFirstByte(raw) != nil {
		raw.Close()
		return
	}
	_ = raw.SetDeadline(time.Now().Add(m.handshake))
	first := &firstBytesConn{Conn: raw}
	tc := tls.Server(first, m.tlsCfg)
	ctx, cancel := context.WithTimeout(context.Background(), m.handshake)
	err := tc.HandshakeContext(ctx)
	cancel()
	if err != nil {
		var re tls.RecordHeaderError
		if errors.As(err, &re) && re.Conn != nil && looksLikeHTTP(re.RecordHeader) {
			// Plain HTTP on the HTTPS port (a typed http:// URL, a
			// misconfigured probe): its first request goes through the
			// chain like a refused head (scope.ReasonPlainHTTP), so it
			// is answered 400 with the page and request id, and audited;
			// the connection closes after that answer. The handshake
			// deadline still bounds the whole exchange.
			info := &connInfo{h1: true}
			info.poison(1, scope.ReasonPlainHTTP)
			m.deliver(newH1Conn(raw, info, m.maxHead, first.head))
			return
		}
		raw.Close()
		return
	}
	_ = raw.SetDeadline(time.Time{})
	if !admission.HandshakeDone(raw) {
		return // its source holds as many connections as it may
	}
	cs := tc.ConnectionState()
	if sni, err := CanonicalHost(cs.ServerName); err == nil {
		if h := m.handlers[sni]; h != nil {
			handOn()
			h(tc)
			return
		}
	}
	switch cs.NegotiatedProtocol {
	case "h2":
		guard := &h2Guard{conn: tc, lim: rate.NewLimiter(m.h2PerSec, m.h2Burst),
			control: rate.NewLimiter(h2ControlFramesPerSecond, h2ControlFrameBurst)}
		m.deliver(newH2Conn(tc, &connInfo{tls: &cs}, guard, m.h2Limits))
		return
	case "acme-tls/1":
		tc.Close()
		return
	case "stun.turn":
		if m.stun != nil {
			handOn()
			m.stun(tc)
		} else {
			tc.Close()
		}
		return
	}
	var prefix []byte
	if m.stun != nil {
		buf := make([]byte, 8)
		_ = tc.SetReadDeadline(time.Now().Add(m.peek))
		n, err := io.ReadFull(tc, buf)
		_ = tc.SetReadDeadline(time.Time{})
		if err != nil && !isTimeout(err) && n < 8 {
			tc.Close()
			return
		}
		prefix = buf[:n]
		if IsSTUN(prefix) {
			handOn()
			m.stun(&replayConn{Conn: tc, prefix: prefix})
			return
		}
	}
	info := &connInfo{tls: &cs, h1: true}
	hc := newH1Conn(tc, info, m.maxHead, prefix)
	m.liveMu.Lock()
	m.live[hc] = &h1State{state: http.StateNew, delivered: time.Now()}
	m.liveMu.Unlock()
	hc.onClose = func() {
		m.liveMu.Lock()
		delete(m.live, hc)
		m.liveMu.Unlock()
	}
	m.deliver(hc)
}

// observe is the public server's ConnState hook: it follows the state of
// the HTTP/1 connections.
func (m *muxListener) observe(c net.Conn, st http.ConnState) {
	hc, ok := c.(*h1Conn)
	if !ok {
		return
	}
	m.liveMu.Lock()
	defer m.liveMu.Unlock()
	if s := m.live[hc]; s != nil {
		s.state = st
	}
}

// settleH1 returns once no HTTP/1 connection is left in an exchange, or
// when ctx ends: net/http's Shutdown drops a request whose head it reads
// after Shutdown began. With keep-alive off each connection ends after
// its response; those idle, or that have sent nothing for quietGrace
// since their handshake, are closed (a client must expect that of an
// unused connection). Hijacked connections are not waited for.
func (m *muxListener) settleH1(ctx context.Context) {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		var unused []*h1Conn
		busy := 0
		m.liveMu.Lock()
		for c, s := range m.live {
			switch {
			case s.state == http.StateHijacked || s.state == http.StateClosed:
			case s.state == http.StateIdle,
				s.state == http.StateNew && !c.heard.Load() && time.Since(s.delivered) > quietGrace:
				unused = append(unused, c)
			default:
				busy++
			}
		}
		m.liveMu.Unlock()
		for _, c := range unused {
			_ = c.Close()
		}
		if busy == 0 {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// closeLive closes every HTTP/1 connection still open, hijacked ones
// (WebSockets) included: net/http's Server.Close does not know those.
func (m *muxListener) closeLive() {
	m.liveMu.Lock()
	all := make([]*h1Conn, 0, len(m.live))
	for c := range m.live {
		all = append(all, c)
	}
	m.liveMu.Unlock()
	for _, c := range all {
		_ = c.Close()
	}
}

func (m *muxListener) deliver(c net.Conn) {
	select {
	case m.conns <- c:
	case <-m.done:
		c.Close()
	}
}

// Accept implements net.Listener.
func (m *muxListener) Accept() (net.Conn, error) {
	select {
	case c := <-m.conns:
		return c, nil
	case <-m.done:
		return nil, net.ErrClosed
	}
}

// Close implements net.Listener.
func (m *muxListener) Close() error {
	var err error
	m.closeOnce.Do(func() {
		close(m.done)
		err = m.ln.Close()
	})
	return err
}

// Addr implements net.Listener.
func (m *muxListener) Addr() net.Addr { return m.ln.Addr() }

// firstBytesConn keeps the bytes of its first reads, up to the five of a
// TLS record header (RFC 8446 §5.1): all that crypto/tls consumed when it
// refuses a connection at its first record header, so that a plain HTTP
// request can still be read whole. Only the handshake reads it while it
// records; later reads pass through.
type firstBytesConn struct {
	net.Conn
	head []byte
}

func (f *firstBytesConn) Read(p []byte) (int, error) {
	n, err := f.Conn.Read(p)
	if len(f.head) < 5 {
		f.head = append(f.head, p[:n]...)
	}
	return n, err
}

// NetConn returns the wrapped connection (admission.Of follows it).
func (f *firstBytesConn) NetConn() net.Conn { return f.Conn }

// replayConn returns prefix before reading on from Conn.
type replayConn struct {
	net.Conn
	mu     sync.Mutex
	prefix []byte
}

func (r *replayConn) Read(p []byte) (int, error) {
	r.mu.Lock()
	if len(r.prefix) > 0 {
		n := copy(p, r.prefix)
		r.prefix = r.prefix[n:]
		r.mu.Unlock()
		return n, nil
	}
	r.mu.Unlock()
	return r.Conn.Read(p)
}

// NetConn returns the wrapped connection (admission.Of follows it).
func (r *replayConn) NetConn() net.Conn { return r.Conn }

// NetConn returns the connection under the scanner (admission.Of follows
// it).
func (h *h1Conn) NetConn() net.Conn { return h.Conn }

// ConnectionState reports the TLS state of the wrapped connection.
func (r *replayConn) ConnectionState() tls.ConnectionState {
	if tc, ok := r.Conn.(*tls.Conn); ok {
		return tc.ConnectionState()
	}
	return tls.ConnectionState{}
}

// ConnectionState reports the TLS state (net/http sets Request.TLS from
// it for HTTP/1 connections that are not a *tls.Conn).
func (h *h1Conn) ConnectionState() tls.ConnectionState {
	if h.info.tls != nil {
		return *h.info.tls
	}
	return tls.ConnectionState{}
}

// h2Guard bounds new streams per HTTP/2 connection (CVE-2023-44487 "rapid
// reset"): every HEADERS frame the client sends takes a token
// (h2FrameBudget); past the bucket the connection is told to go away
// (GOAWAY, ENHANCE_YOUR_CALM) and closed a moment later.
//
// It bounds the connection's control frames too: PING and SETTINGS that
// ask for an acknowledgement, PRIORITY, and empty DATA frames that do
// not end their stream each take a token of control, so that a client
// cannot keep the server writing acknowledgements or walking its
// priority tree as fast as it can send (CVE-2019-9512 ping flood,
// CVE-2019-9515 settings flood, CVE-2019-9518 empty frames) and slow
// every other connection down; past the bucket the connection goes away
// the same way.
type h2Guard struct {
	conn    net.Conn
	lim     *rate.Limiter
	control *rate.Limiter // nil: control frames are not counted
	mu      sync.Mutex
	closing bool
}

// h2ControlFramesPerSecond and h2ControlFrameBurst are the control-frame
// budget of an HTTP/2 connection (h2Guard.control). A browser sends a
// handful of such frames on a connection (its SETTINGS, a few PRIORITY
// frames, a liveness PING now and then); a client sending more than 100
// a second, after a burst of 500, is flooding.
const (
	h2ControlFramesPerSecond = 100
	h2ControlFrameBurst      = 500
)

// takeControl spends one token for a control frame; false once the
// control budget is spent, and the connection is then closed like take's.
func (h *h2Guard) takeControl() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closing {
		return false
	}
	if h.control == nil || h.control.Allow() {
		return true
	}
	h.closeSoonLocked()
	return false
}

// take spends one token for a new stream (a HEADERS frame, counted by
// h2FrameBudget); false once the budget is spent, and the connection is
// then closed within 500 ms whatever the HTTP/2 server does.
func (h *h2Guard) take() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closing {
		return false
	}
	if h.lim.Allow() {
		return true
	}
	h.closeSoonLocked()
	return false
}

// closeSoon closes the connection within 500 ms (the HTTP/2 server's
// GOAWAY goes out first), once: the frame scanner refused it.
func (h *h2Guard) closeSoon() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closeSoonLocked()
}

func (h *h2Guard) closeSoonLocked() {
	if h.closing {
		return
	}
	h.closing = true
	if h.conn != nil {
		time.AfterFunc(500*time.Millisecond, func() { h.conn.Close() })
	}
}
