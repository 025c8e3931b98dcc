package edgetls

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/telegate/telegate/config"
)

// Host entry modes (config.TLSHost.Mode).
const (
	ModeACME  = "acme"
	ModeFiles = "files"
	ModeLocal = "local"
)

// ACME challenge names (config.ACME.Challenges), RFC 8555 §8.3 and
// RFC 8737 §3.
const (
	ChallengeHTTP01    = "http-01"
	ChallengeTLSALPN01 = "tls-alpn-01"
)

// plan is the checked form of config.TLS.
type plan struct {
	minVersion uint16
	hosts      map[string]*hostState // normalized name or "*.suffix" → entry
	files      []*fileCert
	acmeNames  []string
	localNames []string
	http01     bool
	tlsalpn01  bool
}

// hostState is one configured name's entry.
type hostState struct {
	mode  string
	entry string
	files *fileCert
}

func entryLabel(i int, h config.TLSHost) string {
	return fmt.Sprintf("tls.hosts[%d] (%s)", i, strings.Join(h.Names, ", "))
}

// checkConfig validates the TLS section as a whole and returns every
// problem at once, each naming its host entry. Files are not read here.
func checkConfig(c *config.Config) (*plan, error) {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	p := &plan{hosts: map[string]*hostState{}}

	switch c.TLS.MinVersion {
	case "", "1.2":
		p.minVersion = tls.VersionTLS12
	case "1.3":
		p.minVersion = tls.VersionTLS13
	default:
		add("tls.min_version %q: use \"1.2\" or \"1.3\"", c.TLS.MinVersion)
	}
	if len(c.TLS.Hosts) == 0 {
		add("tls.hosts is empty: name at least one host with mode acme, files or local")
	}
	if c.DataDir == "" {
		add("data_dir is empty: set a directory for certificates and the local CA")
	}
	for i, h := range c.TLS.Hosts {
		label := entryLabel(i, h)
		if len(h.Names) == 0 {
			add("%s: names is empty", label)
		}
		st := &hostState{mode: h.Mode, entry: label}
		var names []string
		for _, raw := range h.Names {
			n, ok := normalizeName(raw, h.Mode != ModeACME)
			if !ok {
				if strings.HasPrefix(raw, "*.") && h.Mode == ModeACME {
					add("%s: wildcard name %q needs the DNS-01 challenge, which telegate does not run; use mode files", label, raw)
				} else {
					add("%s: %q is not a valid host name (letters, digits, hyphens; IDNs in punycode)", label, raw)
				}
				continue
			}
			if prev, dup := p.hosts[n]; dup {
				add("%s: %s is also named by %s", label, n, prev.entry)
				continue
			}
			p.hosts[n] = st
			names = append(names, n)
		}
		switch h.Mode {
		case ModeACME:
			if h.CertFile != "" || h.KeyFile != "" {
				add("%s: cert_file and key_file are for mode files, not acme", label)
			}
			p.acmeNames = append(p.acmeNames, names...)
		case ModeFiles:
			if h.CertFile == "" || h.KeyFile == "" {
				add("%s: mode files needs cert_file and key_file", label)
				continue
			}
			fc := &fileCert{entry: label, names: names, certFile: h.CertFile, keyFile: h.KeyFile}
			st.files = fc
			p.files = append(p.files, fc)
		case ModeLocal:
			if h.CertFile != "" || h.KeyFile != "" {
				add("%s: cert_file and key_file are for mode files, not local", label)
			}
			for _, n := range names {
				if !localNameAllowed(n) {
					add("%s: the local CA only certifies local names (localhost, *.localhost, .local, .internal, .home.arpa, .test, loopback and private addresses), not %s; use acme or files", label, n)
				}
			}
			p.localNames = append(p.localNames, names...)
		case "":
			add("%s: mode is empty: use acme, files or local", label)
		default:
			add("%s: unknown mode %q: use acme, files or local", label, h.Mode)
		}
	}
	if len(p.acmeNames) > 0 {
		errs = append(errs, checkACME(c, p)...)
	}
	for i, ca := range c.ClientCAs {
		if ca.ID == "" {
			add("client_cas[%d]: id is empty", i)
		}
		if ca.CAFile == "" {
			add("client_cas[%d] (%s): ca_file is empty", i, ca.ID)
		}
		for j := range i {
			if c.ClientCAs[j].ID == ca.ID && ca.ID != "" {
				add("client_cas[%d]: id %q is also used by client_cas[%d]", i, ca.ID, j)
			}
		}
	}
	return p, errors.Join(errs...)
}

func checkACME(c *config.Config, p *plan) []error {
	var errs []error
	a := c.TLS.ACME
	if a.CA != "" {
		u, err := url.Parse(a.CA)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			errs = append(errs, fmt.Errorf("tls.acme.ca %q: the directory URL must be https://…", a.CA))
		}
	}
	if a.Email != "" {
		if addr, err := mail.ParseAddress(a.Email); err != nil || addr.Address != a.Email {
			errs = append(errs, fmt.Errorf("tls.acme.email %q is not a plain e-mail address", a.Email))
		}
	}
	if a.RenewalWindowRatio != 0 && (a.RenewalWindowRatio <= 0 || a.RenewalWindowRatio >= 1) {
		errs = append(errs, fmt.Errorf("tls.acme.renewal_window_ratio %v: use a fraction between 0 and 1 (e.g. 0.33)", a.RenewalWindowRatio))
	}
	chals := a.Challenges
	if len(chals) == 0 {
		chals = []string{ChallengeHTTP01, ChallengeTLSALPN01}
	}
	for _, ch := range chals {
		switch ch {
		case ChallengeHTTP01:
			p.http01 = true
		case ChallengeTLSALPN01:
			p.tlsalpn01 = true
		default:
			errs = append(errs, fmt.Errorf("tls.acme.challenges: unknown challenge %q: use http-01 or tls-alpn-01", ch))
		}
	}
	if p.http01 && c.Server.HTTPListen == "" {
		if slices.Contains(a.Challenges, ChallengeHTTP01) {
			errs = append(errs, errors.New("tls.acme.challenges names http-01 but server.http_listen is empty"))
		}
		p.http01 = false
	}
	if !p.http01 && !p.tlsalpn01 && len(errs) == 0 {
		errs = append(errs, errors.New("tls.acme: no usable challenge: enable tls-alpn-01 or set server.http_listen for http-01"))
	}
	return errs
}

// listenHostPort splits "host:port"; ok is false when addr has no numeric
// port.
func listenHostPort(addr string) (host string, port int, ok bool) {
	h, ps, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, false
	}
	n, err := strconv.Atoi(ps)
	if err != nil || n <= 0 || n > 65535 {
		return "", 0, false
	}
	return h, n, true
}

// ClientTrust is one configuration generation's device CA pools
// (client_cas): each config.ClientCA's pool by id, which auth checks a
// route's client_cert against, and their union, which the TLS handshake
// verifies a client certificate against (tls.VerifyClientCertIfGiven) and
// names in its CertificateRequest (RFC 8446 §4.3.2 certificate_authorities).
// Both come from one reading of the files, so what the handshake accepts
// and which CA a device's identity is mapped from never differ in
// generation. A ClientTrust is immutable.
type ClientTrust struct {
	byID map[string]*x509.CertPool
	all  *x509.CertPool // nil when no client CA is configured
}

// LoadClientTrust reads every client_cas entry of c: a PEM bundle of CA
// certificates (BasicConstraints cA true, RFC 5280 §4.2.1.9;
// config.ReadCACertificates). Every problem is reported at once as
// config.Errors at the entry's ca_file, with c's file and line.
func LoadClientTrust(c *config.Config) (*ClientTrust, error) {
	t := &ClientTrust{byID: make(map[string]*x509.CertPool, len(c.ClientCAs))}
	if len(c.ClientCAs) == 0 {
		return t, nil
	}
	t.all = x509.NewCertPool()
	var errs config.Errors
	for i, ca := range c.ClientCAs {
		certs, err := readCAFile(ca.CAFile)
		if err != nil {
			errs = append(errs, c.Problem(fmt.Sprintf("client_cas[%d].ca_file", i), "client CA %q: %s", ca.ID, err.Error()))
			continue
		}
		pool := x509.NewCertPool()
		for _, c := range certs {
			pool.AddCert(c)
			t.all.AddCert(c)
		}
		t.byID[ca.ID] = pool
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return t, nil
}

// Pools returns the device CA pools by config.ClientCA id, for the
// route-level client certificate check (auth.NewView). The map and pools
// must not be modified.
func (t *ClientTrust) Pools() map[string]*x509.CertPool { return t.byID }

// readCAFile is config.ReadCACertificates: the one rule for a device CA
// bundle, applied by check (through auth) and by the TLS listener alike.
func readCAFile(path string) ([]*x509.Certificate, error) { return config.ReadCACertificates(path) }

// readRoots reads a PEM bundle of trust anchors (config.ReadCertPool).
func readRoots(path string) (*x509.CertPool, error) { return config.ReadCertPool(path) }
