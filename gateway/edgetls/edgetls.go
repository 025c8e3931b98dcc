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
// Certificates and ACME state live in certmagic file storage under
// <data_dir>/certmagic.
package edgetls

import (
	"context"
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
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/mholt/acmez/v3"
	"go.uber.org/zap"

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
	// Logger receives telegate's and certmagic's messages. Default
	// slog.Default().
	Logger *slog.Logger
	// HTTPClient is optional. certmagic builds its own client for the ACME
	// CA; from this one it takes the trusted roots
	// (Transport.(*http.Transport).TLSClientConfig.RootCAs) and the proxy
	// function, which lets tests trust a private test CA. When both this
	// and tls.acme.ca_root_file give roots, the file wins.
	HTTPClient *http.Client

	// pollInterval overrides defaultPollInterval (tests).
	pollInterval time.Duration
}

// Manager serves the public listener's certificates. Its methods are safe
// for concurrent use.
type Manager struct {
	log       *slog.Logger
	plan      *plan
	httpsPort string // ":port" for redirects, "" for 443

	storage    certmagic.Storage
	acmeCache  *certmagic.Cache
	acmeCfg    *certmagic.Config
	acmeIssuer *certmagic.ACMEIssuer
	localCache *certmagic.Cache
	localCfg   *certmagic.Config
	localRoot  string

	clientCAs  map[string]*x509.CertPool
	clientPool *x509.CertPool

	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
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
	m := &Manager{log: log, plan: p}
	if _, port, ok := listenHostPort(c.Server.Listen); ok && port != 443 {
		m.httpsPort = ":" + strconv.Itoa(port)
	}
	if m.clientCAs, m.clientPool, err = loadClientCAs(c.ClientCAs); err != nil {
		return nil, fmt.Errorf("client certificate CAs: %w", err)
	}
	var ferrs []error
	now := time.Now()
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
		return nil, fmt.Errorf("tls certificate files: %w", err)
	}

	ctx, m.cancel = context.WithCancel(ctx)
	// The end of ctx ends everything Close ends.
	context.AfterFunc(ctx, func() { m.Close() })
	m.storage = &certmagic.FileStorage{Path: filepath.Join(c.DataDir, "certmagic")}
	zl := zapToSlog(log)

	if len(p.localNames) > 0 {
		if err := m.startLocal(ctx, c, zl); err != nil {
			m.Close()
			return nil, err
		}
	}
	if len(p.acmeNames) > 0 {
		if err := m.startACME(ctx, c, o, zl); err != nil {
			m.Close()
			return nil, err
		}
	}
	interval := o.pollInterval
	if interval <= 0 {
		interval = defaultPollInterval
	}
	for _, f := range p.files {
		m.wg.Go(func() { f.watch(ctx, log, interval) })
	}
	return m, nil
}

func (m *Manager) startLocal(ctx context.Context, c *config.Config, zl *zap.Logger) error {
	dir := filepath.Join(c.DataDir, "ca")
	ca, err := loadOrCreateLocalCA(dir, m.plan.localNames)
	if err != nil {
		return err
	}
	ca.allowed = make(map[string]bool, len(m.plan.localNames))
	for _, n := range m.plan.localNames {
		ca.allowed[n] = true
	}
	m.localRoot = filepath.Join(dir, "root.pem")
	var cfg *certmagic.Config
	m.localCache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert: func(certmagic.Certificate) (*certmagic.Config, error) { return cfg, nil },
		Logger:           zl,
	})
	cfg = certmagic.New(m.localCache, certmagic.Config{
		RenewalWindowRatio: c.TLS.ACME.RenewalWindowRatio,
		Issuers:            []certmagic.Issuer{ca},
		Storage:            m.storage,
		OCSP:               certmagic.OCSPConfig{DisableStapling: true},
		DisableARI:         true,
		Logger:             zl,
	})
	m.localCfg = cfg
	if err := cfg.ManageSync(ctx, m.plan.localNames); err != nil {
		return fmt.Errorf("local CA: issuing certificates for %s: %w", strings.Join(m.plan.localNames, ", "), err)
	}
	m.log.Info("local CA ready", "root", m.localRoot, "names", m.plan.localNames)
	return nil
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
		DisableHTTPChallenge:    !m.plan.http01,
		DisableTLSALPNChallenge: !m.plan.tlsalpn01,
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
	for _, n := range m.plan.acmeNames {
		if _, err := cfg.CacheManagedCertificate(ctx, n); err == nil {
			m.log.Info("acme certificate loaded from storage", "name", n)
		}
	}
	// Obtaining waits until the gateway's listeners accept connections:
	// certmagic binds a challenge port itself when nobody listens on it,
	// which would keep the gateway from binding it a moment later.
	var wait []string
	if m.plan.http01 {
		wait = append(wait, c.Server.HTTPListen)
	}
	if m.plan.tlsalpn01 {
		wait = append(wait, c.Server.Listen)
	}
	m.wg.Go(func() {
		waitListening(ctx, m.log, wait, listenerWait)
		if ctx.Err() != nil {
			return
		}
		if err := cfg.ManageAsync(ctx, m.plan.acmeNames); err != nil {
			m.log.Error("acme certificate management failed to start", "names", m.plan.acmeNames, "error", err.Error())
			return
		}
		m.log.Info("acme certificate management started", "ca", tmpl.CA, "names", m.plan.acmeNames,
			"http-01", m.plan.http01, "tls-alpn-01", m.plan.tlsalpn01)
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

// TLSConfig returns a new tls.Config for the HTTPS listener (it implements
// gateway.Certificates):
//
//   - certificates chosen by SNI among the configured names only;
//   - MinVersion TLS 1.2 (or 1.3 per tls.min_version), ECDHE+AEAD suites;
//   - ALPN (RFC 7301) "h2", "http/1.1", and "acme-tls/1" when TLS-ALPN-01
//     is enabled for acme hosts; a ClientHello offering only "acme-tls/1"
//     gets a challenge certificate during a pending challenge and a failed
//     handshake otherwise. The HTTP server should close connections that
//     negotiated "acme-tls/1" (http.Server.TLSNextProto);
//   - when client_cas are configured, tls.VerifyClientCertIfGiven against
//     all of them: a client certificate that does not chain to one of them
//     fails the handshake, none at all is allowed here. Which CA a route
//     requires (routes[].client_cert) is checked later by auth against
//     ClientCAs().
func (m *Manager) TLSConfig() *tls.Config {
	protos := []string{"h2", "http/1.1"}
	if len(m.plan.acmeNames) > 0 && m.plan.tlsalpn01 {
		protos = append(protos, acmez.ACMETLS1Protocol)
	}
	tc := &tls.Config{
		MinVersion:     m.plan.minVersion,
		CipherSuites:   tls12Suites,
		NextProtos:     protos,
		GetCertificate: m.getCertificate,
	}
	if m.clientPool != nil {
		tc.ClientAuth = tls.VerifyClientCertIfGiven
		tc.ClientCAs = m.clientPool
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
	_, h, ok := lookupName(m.plan.hosts, name)
	if !ok {
		return nil, errUnknownServerName
	}
	challenge := len(hello.SupportedProtos) == 1 && hello.SupportedProtos[0] == acmez.ACMETLS1Protocol
	switch h.mode {
	case ModeACME:
		if challenge && !m.plan.tlsalpn01 {
			return nil, errUnknownServerName
		}
		return m.acmeCfg.GetCertificate(hello)
	case ModeLocal:
		if challenge {
			return nil, errUnknownServerName
		}
		return m.localCfg.GetCertificate(hello)
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
		name, st, ok := lookupName(m.plan.hosts, host)
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
// certificate (PEM), when any host uses mode local, else "".
func (m *Manager) LocalRootPath() string { return m.localRoot }

// ClientCAs returns the configured client CAs (config.ClientCAs), id →
// pool, for the route-level client certificate check. The map and pools
// must not be modified.
func (m *Manager) ClientCAs() map[string]*x509.CertPool { return m.clientCAs }

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
		if m.localCache != nil {
			m.localCache.Stop()
		}
	})
	return nil
}
