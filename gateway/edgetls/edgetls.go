// Package edgetls supplies the certificates of telegate's public listener
// with certmagic. Each tls.hosts entry names its host names and one mode:
//
//   - "acme": certificates from an ACME CA (RFC 8555) through the HTTP-01
//     (RFC 8555 §8.3) and TLS-ALPN-01 (RFC 8737) challenges, obtained in the
//     background and renewed by certmagic when RenewalWindowRatio of their
//     lifetime is left (ACME Renewal Information, RFC 9773, where the CA
//     offers it).
//   - "files": the operator's PEM certificate chain and key (e.g. the
//     hospital PKI), read again when their content changes; a bad new pair
//     keeps the old certificate and is logged with the reason.
//   - "local": a local CA kept in <data_dir>/ca (root.pem, root.key 0600)
//     issues 7-day leaves for local names (localhost, .test, .internal,
//     private addresses; the root is name-constrained to them), renewed by
//     certmagic. Meant for development and the demo.
//
// Only configured names get a certificate: there is no on-demand issuance,
// and a ClientHello whose SNI (RFC 6066 §3) names no configured host, or
// that carries no SNI while the listener's address is not a configured
// name, fails the handshake. No default certificate is served, so a scan
// by IP address learns no host name.
//
// Certificates and ACME state live in certmagic storage, sealed with
// AES-256-GCM (storage.go): file storage under <data_dir>/certmagic, or
// with tls.storage "redis" (ACME certificates only) a RedisStorage every
// node shares, with a lock so that one node at a time obtains or renews a
// certificate.
//
// A configuration reload changes the host table (Manager.Reload, or
// Prepare then Apply): names, their modes and certificate files, the
// device CA pools (client_cas) and the lowest TLS version
// (tls.min_version). Each listener keeps its tls.Config (TLSConfig, one per
// listener and its ALPN protocols); each handshake reads the table in
// force through GetConfigForClient. What belongs to the process —
// tls.acme (account, CA directory, challenges), tls.storage,
// tls.storage_key_file and data_dir — is refused, and so is the first
// acme host when none was configured at start.
package edgetls

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/mholt/acmez/v3"
	"go.uber.org/zap"

	"github.com/telegate/telegate/audit"
	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/page"
)

// defaultPollInterval is how often operator certificate files are checked.
const defaultPollInterval = 3 * time.Second

// Options configures New.
type Options struct {
	// Config is read for TLS, DataDir, ClientCAs and the listener
	// addresses in Server (Listen, HTTPListen). Required.
	Config *config.Config
	// ClientTrust is the device CA pools of Config's client_cas, already
	// read (LoadClientTrust): the first generation's, so that the
	// handshake and auth verify with one reading of the files. nil reads
	// them from Config.
	ClientTrust *ClientTrust
	// Logger receives telegate's and certmagic's messages. Default
	// slog.Default().
	Logger *slog.Logger
	// HTTPClient is optional. certmagic builds its own client for the ACME
	// CA; from this one it takes the trusted roots
	// (Transport.(*http.Transport).TLSClientConfig.RootCAs) and the proxy
	// function, which lets tests trust a private test CA. When both this
	// and tls.acme.ca_root_file give roots, the file wins.
	HTTPClient *http.Client
	// PseudonymKey keys the pseudonym (audit.Pseudonym) that stands for
	// an IP address in certmagic's log lines: the node's one pseudonym
	// key. Default: random per process.
	PseudonymKey []byte

	// StorageKey is the 32-byte key that seals certificate storage: the
	// file storage with tls.storage "file", the Redis storage with
	// "redis" (the node's own file storage, which then keeps only local
	// leaves, is sealed under tls.storage_key_file or
	// <data_dir>/keys/tls-storage.key). Default: the file
	// tls.storage_key_file, else (tls.storage "file")
	// <data_dir>/keys/tls-storage.key, generated once. A node with
	// tls.storage "redis" and no key file is given a key derived from the
	// session key, the same on every node.
	StorageKey []byte
	// Redis is the connection of tls.storage "redis". Required with it.
	Redis *RedisStorageOptions

	// pollInterval overrides defaultPollInterval (tests).
	pollInterval time.Duration
}

// Manager serves the public listener's certificates. Its methods are safe
// for concurrent use.
//
// What a Manager serves comes in two layers. The process keeps the
// certmagic caches and storage, the ACME account and its challenge
// solvers, and the local CA; those follow the configuration New was
// given. The host table — which names are served, in which mode, from
// which certificate files — with the device CA pools (ClientTrust) and the
// lowest TLS version is a selection swapped atomically by Reload (Prepare,
// then Apply), which every handshake and every plain-HTTP request reads.
type Manager struct {
	log       *slog.Logger
	start     *plan           // the plan of New: the settings that stay (challenges, whether acme-tls/1 is offered)
	fixed     fixedTLS        // New's settings that Prepare refuses to change
	httpsPort string          // ":port" for redirects, "" for 443
	ctx       context.Context // background work; ends with Close
	interval  time.Duration   // file polling

	storage    certmagic.Storage // ACME certificates: fileStore or Redis
	fileStore  certmagic.Storage // sealed <data_dir>/certmagic: local leaves
	closeStore func() error
	acmeCache  *certmagic.Cache
	acmeCfg    *certmagic.Config
	acmeIssuer *certmagic.ACMEIssuer
	localDir   string
	zl         *zap.Logger

	mu          sync.Mutex                 // Prepare, Apply, Discard, one at a time
	acmeStarted bool                       // under mu: ACME management began (see startACME)
	local       atomic.Pointer[localState] // started with the first local host
	cur         atomic.Pointer[selection]  // what is served

	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// fixedTLS are the settings a Manager takes from New's configuration for
// the life of the process; Prepare refuses a configuration that changes
// one, naming it.
type fixedTLS struct {
	dataDir string
	acme    config.ACME
	// storage and storageKeyFile are tls.storage and tls.storage_key_file.
	storage, storageKeyFile string
}

// localState is the local CA and the certmagic cache of its leaves.
type localState struct {
	ca    *localCA
	cache *certmagic.Cache
	cfg   *certmagic.Config
	root  string // <data_dir>/ca/root.pem
}

// selection is one generation's host table: the checked plan (hosts,
// modes, loaded certificate files, lowest TLS version), the device CA
// pools and the file watchers' cancel.
type selection struct {
	plan      *plan
	trust     *ClientTrust
	local     *localState // nil when no host uses mode local
	stopFiles context.CancelFunc
}

// errUnknownServerName fails a handshake for a name that is not configured.
var errUnknownServerName = errors.New("edgetls: no certificate for this server name")

// New checks the configuration, loads client CAs and operator files,
// creates or loads the local CA and issues its leaves (synchronously), and
// starts obtaining and renewing ACME certificates in the background
// (certmagic ManageAsync). ctx bounds the Manager's background work; Close
// ends it too.
//
// Every configuration problem is reported at once, each naming its host
// entry ("tls.hosts[1] (api.example): mode files needs cert_file and
// key_file").
//
// ACME challenges are answered by the gateway's own listeners: HTTP-01
// through HTTPHandler on server.http_listen, TLS-ALPN-01 through
// TLSConfig on server.listen. ACME certificates already in storage are
// loaded before New returns; obtaining and renewal start once those
// listeners accept TCP connections (at most a minute later), because
// certmagic binds a challenge port itself when nobody listens on it.
func New(ctx context.Context, o Options) (*Manager, error) {
	if o.Config == nil {
		return nil, errors.New("edgetls: no configuration")
	}
	c := o.Config
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "edgetls")
	p, err := checkConfig(c)
	if err != nil {
		return nil, fmt.Errorf("tls configuration: %w", err)
	}
	m := &Manager{log: log, start: p, interval: o.pollInterval,
		fixed: fixedTLS{dataDir: c.DataDir, acme: c.TLS.ACME, storage: c.TLS.Storage, storageKeyFile: c.TLS.StorageKeyFile}}
	if m.interval <= 0 {
		m.interval = defaultPollInterval
	}
	if _, port, ok := listenHostPort(c.Server.Listen); ok && port != 443 {
		m.httpsPort = ":" + strconv.Itoa(port)
	}
	trust := o.ClientTrust
	if trust == nil {
		if trust, err = LoadClientTrust(c); err != nil {
			return nil, fmt.Errorf("client certificate CAs: %w", err)
		}
	}
	if err := loadFiles(p, time.Now()); err != nil {
		return nil, err
	}

	ctx, m.cancel = context.WithCancel(ctx)
	m.ctx = ctx
	// The end of ctx ends everything Close ends.
	context.AfterFunc(ctx, func() { m.Close() })
	if m.fileStore, m.storage, m.closeStore, err = openStorage(ctx, c, o, log); err != nil {
		m.Close()
		return nil, err
	}
	m.localDir = filepath.Join(c.DataDir, "ca")
	key := o.PseudonymKey
	if len(key) == 0 {
		key = make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
	}
	m.zl = zapToSlog(log, func(a netip.Addr) string { return audit.Pseudonym(key, a) })

	sel := &selection{plan: p, trust: trust}
	if len(p.localNames) > 0 {
		ls, err := m.startLocal(p.localNames)
		if err != nil {
			m.Close()
			return nil, err
		}
		ls.ca.allow(p.localNames)
		if err := ls.cfg.ManageSync(ctx, p.localNames); err != nil {
			m.Close()
			return nil, fmt.Errorf("local CA: issuing certificates for %s: %w", strings.Join(p.localNames, ", "), err)
		}
		m.log.Info("local CA ready", "root", ls.root, "names", p.localNames)
		sel.local = ls
	}
	if len(p.acmeNames) > 0 {
		if err := m.startACME(ctx, c, o, m.zl); err != nil {
			m.Close()
			return nil, err
		}
	}
	m.watchFiles(sel)
	m.cur.Store(sel)
	return m, nil
}

// loadFiles reads and checks every files entry of p and installs each
// pair in its entry; every problem is reported at once.
func loadFiles(p *plan, now time.Time) error {
	var ferrs []error
	for _, f := range p.files {
		cert, sum, err := f.load(now)
		if err != nil {
			ferrs = append(ferrs, fmt.Errorf("%s: %w", f.entry, err))
			continue
		}
		f.cur.Store(cert)
		f.lastSum = sum
	}
	if err := errors.Join(ferrs...); err != nil {
		return fmt.Errorf("tls certificate files: %w", err)
	}
	return nil
}

// watchFiles starts polling sel's certificate files until sel is replaced
// or the Manager closes.
func (m *Manager) watchFiles(sel *selection) {
	ctx, cancel := context.WithCancel(m.ctx)
	sel.stopFiles = cancel
	for _, f := range sel.plan.files {
		m.wg.Go(func() { f.watch(ctx, m.log, m.interval) })
	}
}

// startLocal loads or creates the local CA (its name constraints must
// cover names) and its certmagic cache, once per process; later calls
// check names against the root and return the same state.
func (m *Manager) startLocal(names []string) (*localState, error) {
	if ls := m.local.Load(); ls != nil {
		for _, n := range names {
			if !rootPermits(ls.ca.root, n) {
				return nil, fmt.Errorf("local CA in %s may not vouch for %q (its name constraints cover only the names configured when it was made); remove root.pem and root.key there to make a new root, trust the new one, and restart telegate", m.localDir, n)
			}
		}
		return ls, nil
	}
	ca, err := loadOrCreateLocalCA(m.localDir, names, sealedOf(m.fileStore))
	if err != nil {
		return nil, err
	}
	ls := &localState{ca: ca, root: filepath.Join(m.localDir, "root.pem")}
	var cfg *certmagic.Config
	ls.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert: func(certmagic.Certificate) (*certmagic.Config, error) { return cfg, nil },
		Logger:           m.zl,
	})
	cfg = certmagic.New(ls.cache, certmagic.Config{
		RenewalWindowRatio: m.fixed.acme.RenewalWindowRatio,
		Issuers:            []certmagic.Issuer{ca},
		Storage:            m.fileStore, // the leaves of this node's own CA
		OCSP:               certmagic.OCSPConfig{DisableStapling: true},
		DisableARI:         true,
		Logger:             m.zl,
	})
	ls.cfg = cfg
	m.local.Store(ls)
	return ls, nil
}

func (m *Manager) startACME(ctx context.Context, c *config.Config, o Options, zl *zap.Logger) error {
	a := c.TLS.ACME
	var roots *x509.CertPool
	var proxy func(*http.Request) (*url.URL, error)
	if o.HTTPClient != nil {
		if t, ok := o.HTTPClient.Transport.(*http.Transport); ok {
			if t.TLSClientConfig != nil {
				roots = t.TLSClientConfig.RootCAs
			}
			proxy = t.Proxy
		}
	}
	if a.CARootFile != "" {
		var err error
		if roots, err = readRoots(a.CARootFile); err != nil {
			return fmt.Errorf("tls.acme.ca_root_file: %w", err)
		}
	}
	var cfg *certmagic.Config
	m.acmeCache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert: func(certmagic.Certificate) (*certmagic.Config, error) { return cfg, nil },
		Logger:           zl,
	})
	cfg = certmagic.New(m.acmeCache, certmagic.Config{
		RenewalWindowRatio: a.RenewalWindowRatio,
		Storage:            m.storage,
		Logger:             zl,
	})
	tmpl := certmagic.ACMEIssuer{
		CA:     a.CA,
		Email:  a.Email,
		Agreed: true, // configuring mode acme accepts the CA's subscriber agreement
		// Challenge ports: the gateway's own listeners answer (see New).
		DisableHTTPChallenge:    !m.start.http01,
		DisableTLSALPNChallenge: !m.start.tlsalpn01,
		TrustedRoots:            roots,
		HTTPProxy:               proxy,
		Logger:                  zl,
	}
	if tmpl.CA == "" {
		tmpl.CA = certmagic.LetsEncryptProductionCA
	}
	if h, port, ok := listenHostPort(c.Server.Listen); ok {
		tmpl.ListenHost, tmpl.AltTLSALPNPort = h, port
	}
	if _, port, ok := listenHostPort(c.Server.HTTPListen); ok {
		tmpl.AltHTTPPort = port
	}
	m.acmeIssuer = certmagic.NewACMEIssuer(cfg, tmpl)
	cfg.Issuers = []certmagic.Issuer{m.acmeIssuer}
	m.acmeCfg = cfg

	// Certificates already in storage are served at once.
	for _, n := range m.start.acmeNames {
		if _, err := cfg.CacheManagedCertificate(ctx, n); err == nil {
			m.log.Info("acme certificate loaded from storage", "name", n)
		}
	}
	// Obtaining waits until the gateway's listeners accept connections:
	// certmagic binds a challenge port itself when nobody listens on it,
	// which would keep the gateway from binding it a moment later.
	var wait []string
	if m.start.http01 {
		wait = append(wait, c.Server.HTTPListen)
	}
	if m.start.tlsalpn01 {
		wait = append(wait, c.Server.Listen)
	}
	m.wg.Go(func() {
		waitListening(ctx, m.log, wait, listenerWait)
		if ctx.Err() != nil {
			return
		}
		// The names of the selection served now: a reload may have
		// changed them while this waited.
		m.mu.Lock()
		defer m.mu.Unlock()
		names := m.start.acmeNames
		if cur := m.cur.Load(); cur != nil {
			names = cur.plan.acmeNames
		}
		m.acmeStarted = true
		if len(names) == 0 {
			return
		}
		if err := cfg.ManageAsync(ctx, names); err != nil {
			m.log.Error("acme certificate management failed to start", "names", names, "error", err.Error())
			return
		}
		m.log.Info("acme certificate management started", "ca", tmpl.CA, "names", names,
			"http-01", m.start.http01, "tls-alpn-01", m.start.tlsalpn01)
	})
	return nil
}

// listenerWait bounds how long ACME management waits for the gateway's
// listeners before it starts anyway.
const listenerWait = time.Minute

// waitListening returns once a TCP connection to every listen address
// succeeds (an unspecified host is dialled on loopback), when ctx ends, or
// after max.
func waitListening(ctx context.Context, log *slog.Logger, addrs []string, max time.Duration) {
	deadline := time.Now().Add(max)
	d := &net.Dialer{Timeout: time.Second}
	for _, a := range addrs {
		h, port, ok := listenHostPort(a)
		if !ok {
			continue
		}
		if ip, err := netip.ParseAddr(h); h == "" || (err == nil && ip.IsUnspecified()) {
			h = "127.0.0.1"
			if err == nil && ip.Is6() {
				h = "::1"
			}
		}
		target := net.JoinHostPort(h, strconv.Itoa(port))
		for {
			conn, err := d.DialContext(ctx, "tcp", target)
			if err == nil {
				conn.Close()
				break
			}
			if ctx.Err() != nil {
				return
			}
			if time.Now().After(deadline) {
				log.Warn("listener not accepting connections; starting acme management anyway", "listen", a)
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
}

// tls12Suites are the TLS 1.2 cipher suites offered: ECDHE key exchange
// with AEAD ciphers only (Mozilla "intermediate"; RFC 9325 §4.2). TLS 1.3
// suites are not configurable in crypto/tls and are all AEAD.
var tls12Suites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// TLSConfig returns a new tls.Config for a listener that offers protos by
// ALPN (RFC 7301), in order of preference; none: "h2", "http/1.1". It
// implements gateway.Certificates. Every handshake takes its settings from
// the selection in force when its ClientHello arrives (GetConfigForClient),
// built for this listener's protos, so a reload reaches listeners that
// cloned their config at start without losing their protocols:
//
//   - certificates chosen by SNI among the configured names only;
//   - MinVersion TLS 1.2 (or 1.3 per tls.min_version), ECDHE+AEAD suites;
//   - ALPN protos, and "acme-tls/1" when TLS-ALPN-01 is enabled for acme
//     hosts; a ClientHello offering only "acme-tls/1" gets a challenge
//     certificate during a pending challenge and a failed handshake
//     otherwise. The HTTP server should close connections that negotiated
//     "acme-tls/1" (http.Server.TLSNextProto);
//   - when client_cas are configured, tls.VerifyClientCertIfGiven against
//     all of them: a client certificate that does not chain to one of them
//     fails the handshake, none at all is allowed here. A session ticket
//     (RFC 8446 §2.2) whose certificate no longer chains to one of them
//     is not resumed, so a CA a reload removed admits nobody from the
//     next handshake. Which CA a route requires (routes[].client_cert) is
//     checked later by auth against the same generation's ClientTrust.
//
// The fields of the returned config are those of the selection served
// when it was made; the handshake does not read them (a listener's own
// additions to a clone of it, NextProtos included, have no effect: pass
// them as protos).
func (m *Manager) TLSConfig(protos ...string) *tls.Config {
	if len(protos) == 0 {
		protos = []string{"h2", "http/1.1"}
	}
	protos = slices.Clone(protos)
	if len(m.start.acmeNames) > 0 && m.start.tlsalpn01 && !slices.Contains(protos, acmez.ACMETLS1Protocol) {
		protos = append(protos, acmez.ACMETLS1Protocol)
	}
	l := &listenerTLS{m: m, protos: protos}
	tc := l.build(m.cur.Load())
	tc.GetConfigForClient = l.forHello
	return tc
}

// listenerTLS is one listener's per-handshake configuration: its ALPN
// protocols and the tls.Config built for them from the selection served
// (built again once per selection).
type listenerTLS struct {
	m      *Manager
	protos []string
	built  atomic.Pointer[builtTLS]
}

// builtTLS is a tls.Config made from sel.
type builtTLS struct {
	sel *selection
	cfg *tls.Config
}

// forHello is GetConfigForClient: the config of the selection in force.
func (l *listenerTLS) forHello(*tls.ClientHelloInfo) (*tls.Config, error) {
	sel := l.m.cur.Load()
	if b := l.built.Load(); b != nil && b.sel == sel {
		return b.cfg, nil
	}
	b := &builtTLS{sel: sel, cfg: l.build(sel)}
	l.built.Store(b)
	return b.cfg, nil
}

// build is the listener's tls.Config for sel. Its session ticket keys are
// the listener's own (crypto/tls uses the first config's keys when the one
// from GetConfigForClient sets none), so tickets survive a reload; a
// ticket whose client certificate no longer chains to sel's ClientCAs is
// not resumed (crypto/tls verifies its chains again against the config
// of the handshake), and the full handshake that follows refuses it.
func (l *listenerTLS) build(sel *selection) *tls.Config {
	tc := &tls.Config{
		MinVersion:     sel.plan.minVersion,
		CipherSuites:   tls12Suites,
		NextProtos:     l.protos,
		GetCertificate: l.m.getCertificate,
	}
	if sel.trust.all != nil {
		tc.ClientAuth = tls.VerifyClientCertIfGiven
		tc.ClientCAs = sel.trust.all
	}
	return tc
}

// getCertificate picks the certificate for a ClientHello.
func (m *Manager) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	name := hello.ServerName
	if name == "" && hello.Conn != nil {
		// No SNI (clients never send it for IP literals, RFC 6066 §3):
		// the local address is the name the client dialled.
		if ap, err := netip.ParseAddrPort(hello.Conn.LocalAddr().String()); err == nil {
			name = ap.Addr().Unmap().String()
		}
	}
	sel := m.cur.Load()
	_, h, ok := lookupName(sel.plan.hosts, name)
	if !ok {
		return nil, errUnknownServerName
	}
	challenge := len(hello.SupportedProtos) == 1 && hello.SupportedProtos[0] == acmez.ACMETLS1Protocol
	switch h.mode {
	case ModeACME:
		if challenge && !m.start.tlsalpn01 {
			return nil, errUnknownServerName
		}
		return m.acmeCfg.GetCertificate(hello)
	case ModeLocal:
		if challenge {
			return nil, errUnknownServerName
		}
		if sel.local == nil {
			return nil, errUnknownServerName
		}
		return sel.local.cfg.GetCertificate(hello)
	case ModeFiles:
		if challenge {
			return nil, errUnknownServerName
		}
		return h.files.cur.Load(), nil
	}
	return nil, errUnknownServerName
}

// HTTPHandler returns the handler for the plain-HTTP listener: it answers
// ACME HTTP-01 challenges (RFC 8555 §8.3, GET
// /.well-known/acme-challenge/{token}) for acme hosts and redirects
// everything else with 308 Permanent Redirect (RFC 9110 §15.4.9) to
// https://{host}{:port}{path}?{query}. Only configured host names are
// redirected (no open redirect); any other Host gets 404.
func (m *Manager) HTTPHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
		name, st, ok := lookupName(m.cur.Load().plan.hosts, host)
		if !ok {
			page.Error(w, r, http.StatusNotFound, "Not found.", "")
			return
		}
		if st.mode == ModeACME && m.acmeIssuer != nil && m.acmeIssuer.HandleHTTPChallenge(w, r) {
			return
		}
		if strings.HasPrefix(r.URL.Path, "/.well-known/acme-challenge/") {
			page.Error(w, r, http.StatusNotFound, "Not found.", "")
			return
		}
		if ip, err := netip.ParseAddr(name); err == nil && ip.Is6() {
			name = "[" + name + "]"
		}
		path := r.URL.EscapedPath()
		if !strings.HasPrefix(path, "/") {
			path = "/"
		}
		target := "https://" + name + m.httpsPort + path
		if r.URL.RawQuery != "" {
			target += "?" + r.URL.RawQuery
		}
		w.Header().Set("Location", target)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusPermanentRedirect)
	})
}

// LocalRootPath returns "<data_dir>/ca/root.pem", the local CA's root
// certificate (PEM), once a host used mode local (at start or in a
// reload), else "".
func (m *Manager) LocalRootPath() string {
	if ls := m.local.Load(); ls != nil {
		return ls.root
	}
	return ""
}

// ClientTrust returns the device CA pools served now: those of the
// configuration New was given, or of the last Apply.
func (m *Manager) ClientTrust() *ClientTrust { return m.cur.Load().trust }

// Close stops background work: ACME obtaining and renewal, local leaf
// renewal and file polling. Certificates already issued keep being served
// by TLSConfig. Close is idempotent and returns nil.
func (m *Manager) Close() error {
	m.closeOnce.Do(func() {
		if m.cancel != nil {
			m.cancel()
		}
		m.wg.Wait()
		if m.acmeCache != nil {
			m.acmeCache.Stop()
		}
		if ls := m.local.Load(); ls != nil {
			ls.cache.Stop()
		}
		if m.closeStore != nil {
			_ = m.closeStore()
		}
	})
	return nil
}
