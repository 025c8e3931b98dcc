// Package relay is telegate's embedded TURN relay (RFC 8656) for visits,
// built on github.com/pion/turn/v5.
//
// It relays the DTLS-SRTP packets of a visit between the participants'
// browsers and nothing else: packets are forwarded unchanged, no key is
// ever held here (docs/architecture.md principle 4). An allocation reaches only the
// relayed transport addresses of the other admitted participants of its
// visit (principle 5); every other peer, and every address in the deny
// list in any IPv6 form that embeds an IPv4 address, is refused with 403.
//
// Credentials follow the TURN REST convention (see Credential) so an
// external coturn fleet can serve the same ones. A credential admits new
// allocations until it expires; an allocation lives while its participant
// stays admitted (Admit) and is closed at once on Remove or EndVisit.
//
// What the relay refuses: TCP allocations (RFC 6062; 442), DTLS
// listeners, mobility (RFC 8016; MOBILITY-TICKET is ignored), OAuth
// third-party authorization (RFC 7635; a request with ACCESS-TOKEN is
// challenged 401 like one without credentials).
//
// Pion/turn answers the protocol; this package stands in front of it on
// every listening socket (guard.go) and owns the long-term credential
// challenge (unique nonces), the 437/441/442/403/440 answers pion does not
// give, 401 for the stale credential of an ended visit or removed
// participant, Binding answers, the per-source limit on unauthenticated
// answers and their size bound (sourcelimit.go), the TURN-over-TLS
// connections with their send queues and allocate deadline (tlsmux.go),
// and the relay sockets (alloc.go): quotas, port pool, peer filter and
// bandwidth caps.
package relay

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/pion/turn/v5"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/telegate/telegate/audit"
	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/internal/admission"
)

// Options configures New.
type Options struct {
	// Config is the relay section; zero fields take config.Relay defaults.
	Config config.Relay
	// Audit receives "relay.allocation" events (created, closed, denied)
	// and "relay.permission" denials. Client addresses appear only here.
	// Default audit.Discard.
	Audit audit.Sink
	// Logger for ordinary logs; client and peer addresses are replaced by
	// a keyed hash. Default slog.Default().
	Logger *slog.Logger
	// Registry receives the relay's metrics:
	// telegate_media_relay_allocations_active,
	// telegate_media_relay_allocations_total{outcome},
	// telegate_media_relay_permission_denials_total{reason},
	// telegate_media_relay_dropped_datagrams_total{reason},
	// telegate_media_relay_packets_total,
	// telegate_media_relay_bytes_total and
	// telegate_media_relay_tls_connections_closed_total{reason}. Nil: not
	// registered.
	Registry prometheus.Registerer
	// Now is the clock. Default time.Now.
	Now func() time.Time

	// TLSConfig serves the dedicated TLS listener (Config.TLSListen).
	// Required only when that listener is configured.
	TLSConfig *tls.Config
	// Admission admits the dedicated TLS listener's connections
	// (internal/admission, the node's connections block). Nil: a
	// controller with config.DefaultConnections.
	Admission *admission.Controller
	// DataDir is where a relay secret is generated when the configuration
	// names none (DataDir/relay/secret). "" with no configured secret: an
	// ephemeral secret for this process only.
	DataDir string
	// PseudonymKey keys the pseudonym (audit.Pseudonym) that stands for a
	// client address in logs: the node's one pseudonym key, so the relay
	// and the gateway log an address alike. Never the audit chain key.
	// Default: random per process.
	PseudonymKey []byte
}

// Server is the TURN relay. Create it with New, then Start.
type Server struct {
	cfg       config.Relay
	audit     audit.Sink
	log       *slog.Logger
	now       func() time.Time
	tlsConfig *tls.Config
	admission *admission.Controller
	secrets   [][]byte
	deny      denyList
	pseudoKey []byte
	m         *metrics
	nonces    *nonceSource
	relay4    *relayAddr
	relay6    *relayAddr
	lim       atomic.Pointer[Limits]       // SetLimits
	redirect  atomic.Pointer[RedirectFunc] // SetRedirect

	mu      sync.Mutex
	visits  map[string]*visitState
	ended   *lru.Cache[string, struct{}]
	removed *lru.Cache[string, struct{}] // participantKey of participants removed and not admitted again
	byTuple map[tupleKey]*allocation
	tickets map[string]*ticket
	total   int // live allocations + reservations
	checks  int // connection checks running (StartCheck)

	// tp is Throughput's moving average: the counter and time of its
	// last update and the average then (bits/s).
	tp struct {
		sync.Mutex
		at    time.Time
		bytes uint64
		bps   float64
	}

	inflight  sync.Map // inflightKey → *inflight
	pionNonce atomic.Pointer[harvestedNonce]
	allocRate *lru.Cache[string, *rate.Limiter] // by participantKey
	unauth    *sourceLimiter
	logLimit  *rate.Limiter

	started  atomic.Bool
	serving  atomic.Bool // Start completed: guards and listeners are set
	closed   atomic.Bool
	tlsErr   atomic.Pointer[error] // why the dedicated TLS listener stopped accepting
	turn     *turn.Server
	guards   []*guardConn
	mux      *streamMux
	muxID    int
	tlsLn    net.Listener
	udpPort  int
	stop     chan struct{}
	stopOnce sync.Once

	// wrapRelay, when set (tests), wraps every relay socket.
	wrapRelay func(net.PacketConn) net.PacketConn
}

// relayAddr is one relay interface: the local address sockets bind to and
// the address announced to clients (XOR-RELAYED-ADDRESS).
type relayAddr struct {
	local, advertised netip.Addr
	pool              *portPool
}

const (
	maxVisits          = 100000
	maxParticipants    = 64
	nonceLifetime      = 10 * time.Minute
	pionNonceRefresh   = 15 * time.Minute
	ticketLifetime     = 5 * time.Second
	tlsHandshakeTimout = 10 * time.Second
)

// New validates o and returns a Server that is not yet listening. Errors
// name the configuration key at fault.
func New(o Options) (*Server, error) {
	cfg := o.Config.Defaults()
	s := &Server{
		cfg:       cfg,
		audit:     o.Audit,
		log:       o.Logger,
		now:       o.Now,
		tlsConfig: o.TLSConfig,
		admission: o.Admission,
		deny:      denyList(cfg.DenyPeers),
		pseudoKey: o.PseudonymKey,
		nonces:    newNonceSource(),
		visits:    make(map[string]*visitState),
		byTuple:   make(map[tupleKey]*allocation),
		tickets:   make(map[string]*ticket),
		logLimit:  rate.NewLimiter(1, 10),
		stop:      make(chan struct{}),
	}
	if s.audit == nil {
		s.audit = audit.Discard{}
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.log = s.log.With("component", "relay")
	if s.now == nil {
		s.now = time.Now
	}
	if s.admission == nil {
		ctl, err := admission.New(admission.Options{Limits: admission.LimitsOf(config.DefaultConnections())})
		if err != nil {
			return nil, err
		}
		s.admission = ctl
	}
	if len(s.pseudoKey) == 0 {
		s.pseudoKey = make([]byte, 32)
		_, _ = rand.Read(s.pseudoKey)
	}
	var errs []error
	bad := func(key, format string, a ...any) {
		errs = append(errs, fmt.Errorf("relay.%s: %s", key, fmt.Sprintf(format, a...)))
	}
	if _, _, err := net.SplitHostPort(cfg.Listen); err != nil {
		bad("listen", "%q is not host:port", cfg.Listen)
	}
	if cfg.TLSListen != "" {
		if _, _, err := net.SplitHostPort(cfg.TLSListen); err != nil {
			bad("tls_listen", "%q is not host:port", cfg.TLSListen)
		}
		if o.TLSConfig == nil {
			bad("tls_listen", "needs the gateway's TLS configuration")
		}
	}
	if cfg.PortMin > cfg.PortMax {
		bad("port_min", "%d is above port_max %d", cfg.PortMin, cfg.PortMax)
	}
	if len(cfg.RelayAddresses) == 0 {
		bad("relay_addresses", "set the address relay sockets bind to (the public-facing interface; 127.0.0.1 for a demo)")
	}
	if len(cfg.ExternalAddresses) != 0 && len(cfg.ExternalAddresses) != len(cfg.RelayAddresses) {
		bad("external_addresses", "must pair one to one with relay_addresses")
	}
	for i, a := range cfg.RelayAddresses {
		adv := a
		if len(cfg.ExternalAddresses) == len(cfg.RelayAddresses) {
			adv = cfg.ExternalAddresses[i].Unmap()
			if adv.Is4() != a.Unmap().Is4() {
				bad("external_addresses", "entry %d is not of the family of relay address %d", i, i)
			}
		}
		a = a.Unmap()
		if !a.IsValid() || a.IsUnspecified() || a.IsMulticast() {
			bad("relay_addresses", "%v is not a unicast address", a)
			continue
		}
		ra := &relayAddr{local: a, advertised: adv, pool: newPortPool(cfg.PortMin, cfg.PortMax)}
		switch {
		case a.Is4() && s.relay4 == nil:
			s.relay4 = ra
		case a.Is6() && s.relay6 == nil:
			s.relay6 = ra
		default:
			bad("relay_addresses", "at most one IPv4 and one IPv6 address")
		}
	}
	lim, err := NewLimits(cfg)
	if err != nil {
		errs = append(errs, err)
	}
	s.lim.Store(lim)
	if cfg.UDPSockets < 0 {
		bad("udp_sockets", "must be positive")
	}
	secrets, err := loadSecrets(cfg, o.DataDir)
	if err != nil {
		errs = append(errs, err)
	}
	s.secrets = secrets
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	s.ended, _ = lru.New[string, struct{}](maxVisits)
	s.removed, _ = lru.New[string, struct{}](maxVisits)
	s.allocRate, _ = lru.New[string, *rate.Limiter](cfg.MaxCredentials)
	s.unauth = newSourceLimiter(cfg.MaxSources, lim.unauthRate)
	s.m, err = newMetrics(o.Registry)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// loadSecrets returns the configured secrets, those of SecretsFile, or the
// one generated in dataDir (or an ephemeral one). Files are read, and
// secrets checked, by config's rule for secret files
// (config.ReadRelaySecretsFile, config.CheckRelaySecret).
func loadSecrets(cfg config.Relay, dataDir string) ([][]byte, error) {
	var list []string
	switch {
	case len(cfg.Secrets) > 0:
		list = cfg.Secrets
	case cfg.SecretsFile != "":
		l, err := config.ReadRelaySecretsFile(cfg.SecretsFile)
		if err != nil {
			return nil, fmt.Errorf("relay.secrets_file: %w", err)
		}
		list = l
	case dataDir != "":
		p := config.InDataDir(dataDir, config.RelaySecretInDataDir)
		l, err := config.ReadRelaySecretsFile(p)
		if errors.Is(err, os.ErrNotExist) {
			raw := make([]byte, 32)
			_, _ = rand.Read(raw)
			b := []byte(base64.RawURLEncoding.EncodeToString(raw))
			if err = os.MkdirAll(filepath.Dir(p), 0o700); err == nil {
				err = os.WriteFile(p, b, 0o600)
			}
			l = []string{string(b)}
		}
		if err != nil {
			return nil, fmt.Errorf("relay secret in data directory: %w", err)
		}
		list = l
	default:
		raw := make([]byte, 32)
		_, _ = rand.Read(raw)
		list = []string{base64.RawURLEncoding.EncodeToString(raw)}
	}
	out := make([][]byte, 0, len(list))
	for i, sec := range list {
		if err := config.CheckRelaySecret(sec); err != nil {
			return nil, fmt.Errorf("relay.secrets[%d]: %w", i, err)
		}
		out = append(out, []byte(sec))
	}
	return out, nil
}

// Start opens the UDP listener(s) and, when configured, the dedicated TLS
// listener, and begins serving. Cancelling ctx closes the server.
func (s *Server) Start(ctx context.Context) error {
	if !s.started.CompareAndSwap(false, true) {
		return errors.New("relay: already started")
	}
	n := s.cfg.UDPSockets
	if n == 0 {
		n = runtime.NumCPU()
	}
	var pcs []turn.PacketConnConfig
	addr := s.cfg.Listen
	if n > 1 {
		// SO_REUSEPORT would let the group join a port another relay
		// already holds (same user), and the kernel would then split
		// clients between two relays with different secrets. A plain
		// bind first proves the port free.
		probe, err := net.ListenPacket("udp", addr)
		if err != nil {
			return fmt.Errorf("relay.listen: %s is in use (another relay?): %w", addr, err)
		}
		addr = probe.LocalAddr().String()
		_ = probe.Close()
	}
	for i := range n {
		pc, err := listenUDP(ctx, addr, n > 1)
		if err != nil {
			s.closeGuards()
			return fmt.Errorf("relay.listen: %w", err)
		}
		if i == 0 && n > 1 {
			// Bind every other socket to the port the first one got.
			addr = pc.LocalAddr().String()
		}
		if i == 0 {
			s.udpPort = pc.LocalAddr().(*net.UDPAddr).Port
		}
		g := &guardConn{PacketConn: pc, s: s, id: i, transport: "udp", batch: newBatchReader(pc), out: newBatchWriter(pc)}
		s.guards = append(s.guards, g)
		pcs = append(pcs, turn.PacketConnConfig{PacketConn: g, RelayAddressGenerator: relayGen{s}, PermissionHandler: s.permissionHandler(i)})
	}
	s.muxID = n
	s.mux = newStreamMux(s)
	mg := &guardConn{PacketConn: s.mux, s: s, id: n, transport: "tls"}
	s.guards = append(s.guards, mg)
	pcs = append(pcs, turn.PacketConnConfig{PacketConn: mg, RelayAddressGenerator: relayGen{s}, PermissionHandler: s.permissionHandler(n)})

	ts, err := turn.NewServer(turn.ServerConfig{
		PacketConnConfigs:  pcs,
		LoggerFactory:      pionLoggerFactory{s},
		Realm:              s.cfg.Realm,
		AuthHandler:        s.authHandler,
		QuotaHandler:       s.quotaHandler,
		AllocationLifetime: s.cfg.AllocationLifetime,
	})
	if err != nil {
		s.closeGuards()
		return fmt.Errorf("relay: %w", err)
	}
	s.turn = ts
	if s.cfg.TLSListen != "" {
		tcp, err := net.Listen("tcp", s.cfg.TLSListen)
		if err != nil {
			_ = s.Close()
			return fmt.Errorf("relay.tls_listen: %w", err)
		}
		ln := tls.NewListener(s.admission.Listen(tcp), s.tlsConfig)
		s.tlsLn = ln
		go s.acceptTLS(ln)
	}
	go s.sweep()
	go func() {
		select {
		case <-ctx.Done():
			_ = s.Close()
		case <-s.stop:
		}
	}()
	s.serving.Store(true)
	tlsAt := "the HTTPS listener"
	if s.cfg.TLSListen != "" {
		tlsAt = s.cfg.TLSListen + " and the HTTPS listener"
	}
	s.log.Info("relay listening", "udp", s.guards[0].LocalAddr().String(), "sockets", n, "tls", tlsAt)
	return nil
}

func (s *Server) closeGuards() {
	for _, g := range s.guards {
		_ = g.Close()
	}
}

func (s *Server) acceptTLS(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			if !s.closed.Load() {
				s.tlsErr.Store(&err)
			}
			return
		}
		go func() {
			if tc, ok := c.(*tls.Conn); ok {
				ctx, cancel := context.WithTimeout(context.Background(), tlsHandshakeTimout)
				err := tc.HandshakeContext(ctx)
				cancel()
				if err != nil || !admission.HandshakeDone(c) {
					_ = c.Close()
					return
				}
			}
			s.ServeTLSConn(c)
		}()
	}
}

// ServeTLSConn serves TURN over one TLS connection (RFC 8656 §3.1) that
// the HTTPS listener has already terminated and handed over (SNI equal to
// the relay name, or a STUN magic cookie in the first bytes). It blocks
// until the connection ends, then closes c and every allocation made on
// it. A connection without an authenticated allocation within
// relay.tls_allocate_timeout is closed, and so is one whose allocation
// ended (Refresh with LIFETIME 0 or expiry) that timeout after the end
// unless it allocates again; one whose allocation is revoked (Remove,
// EndVisit) is closed at once. At relay.max_tls_conns the oldest
// connection without an allocation is closed to make room, and with none
// the new one is; before Start it is closed at once. Writes to the
// connection never hold up other clients (see streamMux).
func (s *Server) ServeTLSConn(c net.Conn) {
	if !s.started.Load() || s.closed.Load() || s.mux == nil {
		_ = c.Close()
		return
	}
	s.mux.serve(c)
}

// Healthy returns nil while the relay serves, and otherwise why not (for a
// readiness check): not started yet, closed, or a listening socket (UDP,
// or the dedicated TLS listener) failed and no longer receives.
func (s *Server) Healthy() error {
	switch {
	case s.closed.Load():
		return errors.New("relay: closed")
	case !s.serving.Load():
		return errors.New("relay: not started")
	}
	for _, g := range s.guards {
		if p := g.readErr.Load(); p != nil {
			return fmt.Errorf("relay: %s socket %d stopped receiving: %v", g.transport, g.id, *p)
		}
	}
	if p := s.tlsErr.Load(); p != nil {
		return fmt.Errorf("relay: TLS listener stopped accepting: %v", *p)
	}
	return nil
}

// LocalAddr is the address of the first UDP socket (nil before Start).
func (s *Server) LocalAddr() net.Addr {
	if len(s.guards) == 0 {
		return nil
	}
	return s.guards[0].LocalAddr()
}

// TLSAddr is the address of the dedicated TLS listener, or nil.
func (s *Server) TLSAddr() net.Addr {
	if s.tlsLn == nil {
		return nil
	}
	return s.tlsLn.Addr()
}

// Credential returns a credential for (visitID, participantID) in the TURN
// REST form, valid for new allocations for relay.credential_ttl (as of
// the last SetLimits). Both ids
// must satisfy ValidID; otherwise the zero Credential is returned, which
// the relay never accepts.
func (s *Server) Credential(visitID, participantID string) Credential {
	if !ValidID(visitID) || !ValidID(participantID) {
		return Credential{}
	}
	exp := time.Unix(s.now().Add(s.limits().credentialTTL).Unix(), 0).UTC()
	u := FormatUsername(exp, visitID, participantID)
	return Credential{Username: u, Password: Password(s.secrets[0], u), Expires: exp}
}

// ICEURLs returns the ICE server URLs (RFC 7065) of this relay at
// publicHost (a host name or IP literal; a port is ignored):
// "turn:HOST:UDPPORT?transport=udp" and "turns:HOST:TLSPORT?transport=tcp",
// TLSPORT as config.Relay.AdvertisedTLSPort (relay.tls_port, defaulted
// by the configuration to the port TURN over TLS is served on).
func (s *Server) ICEURLs(publicHost string) []string {
	host := publicHost
	if h, _, err := net.SplitHostPort(publicHost); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	udp := s.cfg.UDPPort
	if udp == 0 {
		udp = s.udpPort
	}
	if udp == 0 {
		if _, p, err := net.SplitHostPort(s.cfg.Listen); err == nil {
			udp, _ = strconv.Atoi(p)
		}
	}
	tlsPort := s.cfg.AdvertisedTLSPort("")
	return []string{
		"turn:" + host + ":" + strconv.Itoa(udp) + "?transport=udp",
		"turns:" + host + ":" + strconv.Itoa(tlsPort) + "?transport=tcp",
	}
}

// Close stops every listener and closes every allocation. It is safe to
// call more than once.
func (s *Server) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	s.stopOnce.Do(func() { close(s.stop) })
	var err error
	if s.tlsLn != nil {
		_ = s.tlsLn.Close()
	}
	if s.turn != nil {
		err = s.turn.Close()
	} else {
		s.closeGuards()
	}
	s.mu.Lock()
	all := make([]*allocation, 0, len(s.byTuple))
	for _, a := range s.byTuple {
		all = append(all, a)
	}
	s.mu.Unlock()
	for _, a := range all {
		a.close("shutdown")
	}
	return err
}

// sweep expires stale reservations and in-flight authentication records.
func (s *Server) sweep() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		now := s.now()
		s.mu.Lock()
		s.expireTicketsLocked(now)
		s.mu.Unlock()
		s.inflight.Range(func(k, v any) bool {
			if now.Sub(v.(*inflight).at) > ticketLifetime {
				s.inflight.Delete(k)
			}
			return true
		})
	}
}

// pseudonym is the pseudonym (audit.Pseudonym) that stands for an address in ordinary logs.
func (s *Server) pseudonym(a netip.Addr) string { return audit.Pseudonym(s.pseudoKey, a) }

func (s *Server) record(e audit.Event) {
	e.Time = s.now()
	s.audit.Record(context.Background(), e)
}
