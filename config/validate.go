package config

import (
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"math"
	"net"
	"net/netip"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/telegate/telegate/internal/pathtext"
)

// Validator is implemented (on the pointer) by a section of Config, such as
// Relay or Visits, that checks its own fields. Validate calls it with the
// whole configuration (defaults applied) and a Report scoped to the
// section's key, so that r.Errorf("listen", …) is reported as
// "relay.listen" with its file:line.
type Validator interface {
	Validate(c *Config, r *Report)
}

// Report collects the problems of one configuration. Field paths given to
// its methods are relative to the report's scope: "listen",
// "ports[0]", "allow[2].roles"; "" means the scope itself.
type Report struct {
	prefix string
	errs   *Errors
	warns  *Errors
}

func newReport() *Report {
	return &Report{errs: &Errors{}, warns: &Errors{}}
}

// Path returns the full field path of field within the report's scope.
func (r *Report) Path(field string) string {
	switch {
	case field == "":
		return r.prefix
	case r.prefix == "":
		return field
	case strings.HasPrefix(field, "["):
		return r.prefix + field
	}
	return r.prefix + "." + field
}

// Sub returns a report scoped to field (e.g. "routes[2]").
func (r *Report) Sub(field string) *Report {
	return &Report{prefix: r.Path(field), errs: r.errs, warns: r.warns}
}

// Errorf records an error at field: the configuration is refused.
func (r *Report) Errorf(field, format string, args ...any) {
	*r.errs = append(*r.errs, FieldError{Field: r.Path(field), Message: fmt.Sprintf(format, args...)})
}

// Warnf records a warning at field: the configuration is accepted but
// probably not what was meant.
func (r *Report) Warnf(field, format string, args ...any) {
	*r.warns = append(*r.warns, FieldError{Field: r.Path(field), Message: fmt.Sprintf(format, args...)})
}

// check records err (if any) as an error at field.
func (r *Report) check(field string, err error) {
	if err != nil {
		r.Errorf(field, "%s", err.Error())
	}
}

// Validate checks the whole configuration (with defaults applied) and
// returns every problem at once as Errors (nil when valid). Warnings are
// stored in c.Warnings. Problems carry c.Source as the file name but no
// line; Load adds lines.
func (c *Config) Validate() error {
	errs, warns := c.check(nil)
	for i := range errs {
		errs[i].File = c.Source
	}
	for i := range warns {
		warns[i].File = c.Source
	}
	c.Warnings = warns
	if len(errs) > 0 {
		return errs
	}
	return nil
}

// check runs every rule. fromEnv holds the field paths whose value came
// from ${ENV} or a *_file (not inline).
func (c *Config) check(fromEnv map[string]bool) (Errors, Errors) {
	r := newReport()
	if c.DataDir == "" {
		r.Errorf("data_dir", "must not be empty")
	}
	c.checkServer(r.Sub("server"))
	c.checkConnections(r.Sub("connections"))
	c.checkTLS(r.Sub("tls"))
	c.checkSessions(r.Sub("sessions"), fromEnv)
	c.checkAssertion(r.Sub("assertion"))
	c.checkProviders(r, fromEnv)
	c.checkBearer(r)
	c.checkClientCAs(r)
	c.checkRoutes(r)
	c.checkRateLimits(r.Sub("rate_limits"))
	c.checkInspection(r.Sub("inspection"))
	c.checkAudit(r.Sub("audit"), fromEnv)
	c.checkRedis(r.Sub("redis"), fromEnv)
	c.checkLog(r.Sub("log"))
	c.checkGeneratedSecrets(r)
	checkDurations(reflect.ValueOf(c).Elem(), "", r)
	forEachSection(c, func(key string, sec reflect.Value) {
		if v, ok := sec.Addr().Interface().(Validator); ok {
			v.Validate(c, r.Sub(key))
		}
	})
	return *r.errs, *r.warns
}

// ---- reusable checks (sections may use them in their Validate) ----

// CheckListenAddr requires "host:port" where host is empty (every
// interface), an IP address or a host name, and port is 0–65535 (0 picks a
// free port).
func CheckListenAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("must be host:port, e.g. \":443\" or \"127.0.0.1:9090\"")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("port %q is not a number from 0 to 65535", port)
	}
	if host == "" {
		return nil
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return nil
	}
	if !validHostname(host, false) {
		return fmt.Errorf("host %q is neither an IP address nor a host name", host)
	}
	return nil
}

// CheckPrivateListenAddr requires a listen address (see CheckListenAddr)
// whose host is a loopback or private address (RFC 1918, RFC 4193) or
// "localhost": never every interface.
func CheckPrivateListenAddr(addr string) error {
	if err := CheckListenAddr(addr); err != nil {
		return err
	}
	host, _, _ := net.SplitHostPort(addr)
	if strings.EqualFold(host, "localhost") {
		return nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !(ip.IsLoopback() || ip.IsPrivate()) {
		return fmt.Errorf("must listen on a loopback or private address such as 127.0.0.1:9090, not %q", host)
	}
	return nil
}

// IsLoopbackListenAddr reports whether addr is "host:port" whose host is
// "localhost" or a loopback IP literal; never an empty host, which means
// every interface.
func IsLoopbackListenAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Zone() == "" && ip.Unmap().IsLoopback()
}

// IsLoopbackHost reports whether host (no port) is "localhost", a name
// under ".localhost" (RFC 6761 §6.3) or a loopback IP address.
func IsLoopbackHost(host string) bool {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip, err := netip.ParseAddr(strings.Trim(host, "[]"))
	return err == nil && ip.IsLoopback()
}

// CheckHTTPSURL requires an absolute https URL with a host, no user
// information and no fragment; http is accepted only when allowLoopbackHTTP
// is set and the host is a loopback host.
func CheckHTTPSURL(raw string, allowLoopbackHTTP bool) error {
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" {
		return fmt.Errorf("must be an absolute https URL")
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !allowLoopbackHTTP || !IsLoopbackHost(u.Hostname()) {
			if allowLoopbackHTTP {
				return fmt.Errorf("must use https (http is allowed only for loopback hosts)")
			}
			return fmt.Errorf("must use https")
		}
	default:
		return fmt.Errorf("must be an absolute https URL")
	}
	if u.User != nil {
		return fmt.Errorf("must not carry user information (user:password@); secrets belong in ${ENV} or *_file")
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return fmt.Errorf("must not have a fragment")
	}
	return nil
}

// CheckIssuer is CheckHTTPSURL for an issuer identifier, which also has no
// query (OpenID Connect Discovery 1.0 §2, RFC 8414 §2): a query there is
// a mistake, and often a secret that would then be shown wherever the
// issuer is (logs, /readyz).
func CheckIssuer(raw string) error {
	if err := CheckHTTPSURL(raw, true); err != nil {
		return err
	}
	if u, _ := url.Parse(raw); u.RawQuery != "" || u.ForceQuery {
		return fmt.Errorf("must not have a query (an issuer is https://host[/path], OpenID Connect Discovery 1.0 §2)")
	}
	return nil
}

// checkFile is the check for a path that must name a readable file.
func checkFile(r *Report, field, path string) {
	if path != "" {
		r.check(field, checkReadableFile(path))
	}
}

// checkKeyPair checks cert_file (a readable file) and key_file (the rule
// for secret files), and, when both pass, that they form a certificate
// and key pair as the TLS loaders at start require (tls.X509KeyPair; its
// errors never contain the key).
func checkKeyPair(r *Report, certFile, keyFile string) {
	certErr, keyErr := error(nil), error(nil)
	if certFile != "" {
		certErr = checkReadableFile(certFile)
		r.check("cert_file", certErr)
	}
	if keyFile != "" {
		keyErr = CheckSecretFile(keyFile)
		r.check("key_file", keyErr)
	}
	if certFile == "" || keyFile == "" || certErr != nil || keyErr != nil {
		return
	}
	if _, err := tls.LoadX509KeyPair(certFile, keyFile); err != nil {
		r.Errorf("key_file", "%s and cert_file %s are not a certificate and key pair: %v", keyFile, certFile, err)
	}
}

var (
	idPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
	// tokenPattern is an RFC 9110 §5.6.2 token (header names, methods).
	tokenPattern = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
)

// validHostname reports whether h is a DNS host name (RFC 1123 §2.1),
// optionally with a leading "*." wildcard label.
func validHostname(h string, wildcard bool) bool {
	h = strings.TrimSuffix(h, ".")
	if wildcard {
		h = strings.TrimPrefix(h, "*.")
	}
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := range len(label) {
			ch := label[i]
			if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '-') {
				return false
			}
		}
	}
	return true
}

// checkID checks an id and its uniqueness in seen.
func checkID(r *Report, id string, seen map[string]bool, what string) {
	r.check("id", CheckID(id, seen, what))
}

// CheckID is the rule for the ids of routes, providers, bearer issuers and
// client CAs (what names which): required, lower-case letters, digits and
// '-' (at most 63), and not already in seen, to which it adds id. It is
// the one rule for ids: the builders that key their parts by id call it.
func CheckID(id string, seen map[string]bool, what string) error {
	defer func() { seen[id] = true }()
	switch {
	case id == "":
		return errors.New("is required")
	case !idPattern.MatchString(id):
		return fmt.Errorf("%q must be lower-case letters, digits and '-' (at most 63)", id)
	case seen[id]:
		return fmt.Errorf("%s id %q is used twice", what, id)
	}
	return nil
}

// ListenersOverlap reports whether two TCP listen addresses ("host:port")
// would bind the same socket: the same port (not 0, an ephemeral one)
// with the same host, or either host empty or unspecified (every
// interface), or both on loopback ("localhost" is loopback: 127.0.0.1
// and ::1). It answers without resolving names: other host names are
// compared as written.
func ListenersOverlap(a, b string) bool {
	ha, pa, errA := net.SplitHostPort(a)
	hb, pb, errB := net.SplitHostPort(b)
	if errA != nil || errB != nil || pa != pb || pa == "0" {
		return false
	}
	every := func(h string) bool {
		ip, err := netip.ParseAddr(h)
		return h == "" || (err == nil && ip.IsUnspecified())
	}
	loop := func(h string) bool {
		ip, err := netip.ParseAddr(h)
		return strings.EqualFold(h, "localhost") || (err == nil && ip.IsLoopback())
	}
	return every(ha) || every(hb) || strings.EqualFold(ha, hb) || (loop(ha) && loop(hb))
}

// ---- sections ----

func (c *Config) checkServer(r *Report) {
	s := &c.Server
	if s.Listen == "" {
		r.Errorf("listen", "is required")
	} else {
		r.check("listen", CheckListenAddr(s.Listen))
	}
	if s.HTTPListen != "" {
		r.check("http_listen", CheckListenAddr(s.HTTPListen))
	}
	if s.Admin == "" {
		r.Errorf("admin", "is required")
	} else {
		r.check("admin", CheckPrivateListenAddr(s.Admin))
		if ListenersOverlap(s.Admin, s.Listen) {
			r.Errorf("admin", "must differ from server.listen (%s): health and metrics never share the public listener", s.Listen)
		}
	}
	if s.HTTPListen != "" && ListenersOverlap(s.HTTPListen, s.Listen) {
		r.Errorf("http_listen", "must differ from server.listen (%s): both would bind the same port", s.Listen)
	}
	if s.HTTPListen != "" && s.Admin != "" && ListenersOverlap(s.HTTPListen, s.Admin) {
		r.Errorf("http_listen", "must differ from server.admin (%s): both would bind the same port", s.Admin)
	}
	if s.PublicURL == "" {
		r.Errorf("public_url", "is required (or name a host in tls.hosts to derive it)")
	} else if err := CheckHTTPSURL(s.PublicURL, false); err != nil {
		r.check("public_url", err)
	} else if u, _ := url.Parse(s.PublicURL); (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.ForceQuery {
		r.Errorf("public_url", "must be a base URL without a path or query, e.g. https://gw.hospital.example")
	}
	for i, p := range s.TrustedProxies {
		if !p.IsValid() {
			r.Errorf(fmt.Sprintf("trusted_proxies[%d]", i), "is not a CIDR prefix")
		} else if p.Bits() == 0 {
			r.Errorf(fmt.Sprintf("trusted_proxies[%d]", i), "%s trusts every address: any client could forge X-Forwarded-For; list your proxies' prefixes", p)
		} else if p.Masked() != p {
			r.Errorf(fmt.Sprintf("trusted_proxies[%d]", i), "%s has host bits set; did you mean %s?", p, p.Masked())
		}
	}
	if s.SendTimeout < time.Second {
		r.Errorf("send_timeout", "(%s) must be at least 1s", s.SendTimeout)
	}
	if s.MaxHeaderBytes <= 0 {
		r.Errorf("max_header_bytes", "must be positive")
	}
	if s.MaxQueryParams <= 0 {
		r.Errorf("max_query_params", "must be positive")
	}
	if s.H2MaxRequestsPerSecond <= 0 {
		r.Errorf("h2_max_requests_per_second", "must be positive")
	}
	if s.H2MaxConcurrentStreams == 0 {
		r.Errorf("h2_max_concurrent_streams", "must be positive")
	}
	if s.ShutdownTimeout < 0 {
		r.Errorf("shutdown_timeout", "must not be negative")
	}
}

func (c *Config) checkConnections(r *Report) {
	cn := &c.Connections
	for _, f := range []struct {
		name string
		v    int
	}{{"max_pending", cn.MaxPending}, {"max_pending_per_source", cn.MaxPendingPerSource}, {"max_conns", cn.MaxConns}, {"max_conns_per_source", cn.MaxConnsPerSource}} {
		if f.v <= 0 {
			r.Errorf(f.name, "must be positive")
		}
	}
	if cn.MaxPendingPerSource > cn.MaxPending {
		r.Errorf("max_pending_per_source", "must not exceed max_pending (%d)", cn.MaxPending)
	}
	if cn.MaxConnsPerSource > cn.MaxConns {
		r.Errorf("max_conns_per_source", "must not exceed max_conns (%d)", cn.MaxConns)
	}
	if cn.MaxPending > cn.MaxConns {
		r.Errorf("max_pending", "must not exceed max_conns (%d)", cn.MaxConns)
	}
	// Negative durations are refused by checkDurations; zero is the
	// default.
	if cn.FirstByteTimeout > cn.HandshakeTimeout {
		r.Errorf("first_byte_timeout", "must not exceed handshake_timeout (%s)", cn.HandshakeTimeout)
	}
}

var tlsModes = []string{"acme", "files", "local"}

func (c *Config) checkTLS(r *Report) {
	t := &c.TLS
	if t.MinVersion != "1.2" && t.MinVersion != "1.3" {
		r.Errorf("min_version", "must be \"1.2\" or \"1.3\", not %q", t.MinVersion)
	}
	if len(t.Hosts) == 0 {
		r.Errorf("hosts", "at least one host is required: the public listener serves HTTPS only")
	}
	seen := map[string]bool{}
	usesACME := false
	for i, h := range t.Hosts {
		hr := r.Sub(fmt.Sprintf("hosts[%d]", i))
		if len(h.Names) == 0 {
			hr.Errorf("names", "at least one host name is required")
		}
		for j, n := range h.Names {
			n = strings.ToLower(strings.TrimSuffix(n, "."))
			field := fmt.Sprintf("names[%d]", j)
			switch {
			case !validHostname(n, true):
				hr.Errorf(field, "%q is not a host name", n)
			case strings.HasPrefix(n, "*.") && h.Mode == "acme":
				hr.Errorf(field, "wildcard names need the ACME DNS challenge, which telegate does not offer; use mode \"files\"")
			case seen[n]:
				hr.Errorf(field, "%q is named by two tls hosts", n)
			}
			seen[n] = true
		}
		switch h.Mode {
		case "acme", "local":
			usesACME = usesACME || h.Mode == "acme"
			if h.CertFile != "" || h.KeyFile != "" {
				hr.Errorf("mode", "cert_file and key_file are used only with mode \"files\"")
			}
		case "files":
			if h.CertFile == "" {
				hr.Errorf("cert_file", "is required with mode \"files\"")
			}
			if h.KeyFile == "" {
				hr.Errorf("key_file", "is required with mode \"files\"")
			}
			checkKeyPair(hr, h.CertFile, h.KeyFile)
		case "":
			hr.Errorf("mode", "is required: one of %s", strings.Join(tlsModes, ", "))
		default:
			hr.Errorf("mode", "%q is not one of %s", h.Mode, strings.Join(tlsModes, ", "))
		}
	}
	a := &t.ACME
	ar := r.Sub("acme")
	if usesACME {
		ar.check("ca", CheckHTTPSURL(a.CA, true))
		if a.Email != "" && !strings.Contains(a.Email, "@") {
			ar.Errorf("email", "is not an e-mail address")
		}
		onlyHTTP01 := true
		for _, ch := range a.Challenges {
			if ch != "http-01" {
				onlyHTTP01 = false
			}
		}
		if onlyHTTP01 && c.Server.HTTPListen == "" {
			ar.Errorf("challenges", "http-01 needs server.http_listen; enable it or add tls-alpn-01")
		}
	}
	for i, ch := range a.Challenges {
		if ch != "http-01" && ch != "tls-alpn-01" {
			ar.Errorf(fmt.Sprintf("challenges[%d]", i), "%q is not one of http-01, tls-alpn-01", ch)
		}
	}
	if a.RenewalWindowRatio < 0 || a.RenewalWindowRatio >= 1 {
		ar.Errorf("renewal_window_ratio", "must be between 0 and 1")
	}
	checkFile(ar, "ca_root_file", a.CARootFile)
	switch t.Storage {
	case "file":
	case "redis":
		if c.Redis.Addr == "" {
			r.Errorf("storage", "\"redis\" needs redis.addr")
		}
		if t.StorageKeyFile == "" && c.Sessions.EncryptionKey == "" && c.Sessions.EncryptionKeyFile == "" {
			r.Errorf("storage", "\"redis\" needs storage_key_file (or sessions.encryption_key_file to derive it from): every node must seal certificates with the same key")
		}
	default:
		r.Errorf("storage", "%q is not one of file, redis", t.Storage)
	}
	if t.StorageKeyFile != "" {
		_, err := ReadTLSStorageKeyFile(t.StorageKeyFile)
		r.check("storage_key_file", err)
	}
}

// cookieNamePattern is an RFC 6265 §4.1.1 cookie-name (a token).
var cookieNamePattern = tokenPattern

// CheckCookieName is the rule for sessions.cookie_name: a cookie token
// that starts with "__Host-". auth builds its cookies by it.
func CheckCookieName(name string) error {
	switch {
	case !strings.HasPrefix(name, "__Host-"):
		return errors.New("must start with \"__Host-\" so browsers bind it to this host over HTTPS (RFC 6265bis §4.1.3.2)")
	case !cookieNamePattern.MatchString(name):
		return errors.New("must be a cookie token (letters, digits, and !#$%&'*+-.^_`|~)")
	}
	return nil
}

func (c *Config) checkSessions(r *Report, fromEnv map[string]bool) {
	s := &c.Sessions
	r.check("cookie_name", CheckCookieName(s.CookieName))
	if s.IdleTimeout > 0 && s.IdleTimeout < time.Second {
		r.Errorf("idle_timeout", "(%s) must be at least 1s; use is recorded every quarter of it", s.IdleTimeout)
	}
	if s.IdleTimeout > 0 && s.AbsoluteTimeout > 0 && s.IdleTimeout > s.AbsoluteTimeout {
		r.Errorf("idle_timeout", "(%s) must not exceed absolute_timeout (%s)", s.IdleTimeout, s.AbsoluteTimeout)
	}
	switch s.Store {
	case "file":
	case "redis":
		if c.Redis.Addr == "" {
			r.Errorf("store", "\"redis\" needs redis.addr")
		}
		if s.EncryptionKey == "" && s.EncryptionKeyFile == "" {
			r.Errorf("store", "\"redis\" needs encryption_key or encryption_key_file: every node must seal sessions with the same key")
		}
	default:
		r.Errorf("store", "%q is not one of file, redis", s.Store)
	}
	if s.MaxSessions <= 0 {
		r.Errorf("max_sessions", "must be positive")
	}
	if s.EncryptionKey != "" {
		if _, err := DecodeSessionKey([]byte(s.EncryptionKey)); err != nil {
			r.check("encryption_key", err)
		}
		inlineSecret(r, "encryption_key", fromEnv)
	}
	if s.EncryptionKeyFile != "" { // a configuration built in code; Load reads it into encryption_key
		_, err := ReadSessionKeyFile(s.EncryptionKeyFile)
		r.check("encryption_key_file", err)
	}
}

// inlineSecret warns when a secret was written in the file itself.
func inlineSecret(r *Report, field string, fromEnv map[string]bool) {
	if fromEnv != nil && !fromEnv[r.Path(field)] {
		r.Warnf(field, "secret written inline; use \"${NAME}\" or %s_file so it stays out of the file", field)
	}
}

func decodeBase64(s string) ([]byte, bool) {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, true
		}
	}
	return nil, false
}

// hopByHop headers (RFC 9110 §7.6.1) and others a proxy rewrites.
var reservedHeaders = []string{"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "host", "content-length", "cookie", "authorization", "forwarded"}

// CheckAssertionHeader is the rule for assertion.header: a header name
// (RFC 9110 §5.1) that starts with "X-" and is none of the headers the
// proxy manages. The gateway sends the assertion in it.
func CheckAssertionHeader(h string) error {
	switch {
	case !tokenPattern.MatchString(h):
		return fmt.Errorf("%q is not a header name", h)
	case slices.Contains(reservedHeaders, strings.ToLower(h)):
		return fmt.Errorf("%q is a header the proxy manages; choose another", h)
	case !strings.HasPrefix(strings.ToLower(h), "x-"):
		return fmt.Errorf("%q: use an X- name", h)
	}
	return nil
}

func (c *Config) checkAssertion(r *Report) {
	a := &c.Assertion
	if a.Issuer == "" {
		r.Errorf("issuer", "is required (defaults to server.public_url)")
	} else if u, err := url.Parse(a.Issuer); err != nil || !u.IsAbs() || u.Host == "" {
		r.Errorf("issuer", "must be an absolute URL")
	}
	if a.TTL > 5*time.Minute {
		r.Errorf("ttl", "(%s) must be at most 5m: assertions are short-lived", a.TTL)
	}
	r.check("header", CheckAssertionHeader(a.Header))
	if a.SigningKeyFile != "" {
		_, err := ReadSigningKeyFile(a.SigningKeyFile)
		r.check("signing_key_file", err)
	}
}

// SigningAlgs are the JWS algorithms accepted in signing_algs
// (RFC 7518 §3.1, RFC 8037 §3.1). "none" and the HMAC algorithms are never
// accepted.
var SigningAlgs = []string{"RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512", "EdDSA"}

func checkAlgs(r *Report, algs []string) {
	for i, a := range algs {
		r.check(fmt.Sprintf("signing_algs[%d]", i), CheckSigningAlg(a))
	}
}

// CheckSigningAlg is the rule for an entry of signing_algs: one of
// SigningAlgs. auth pins token verification to the list by it.
func CheckSigningAlg(a string) error {
	if !slices.Contains(SigningAlgs, a) {
		return fmt.Errorf("%q is not one of %s", a, strings.Join(SigningAlgs, ", "))
	}
	return nil
}

// knowledgeOnlyAMR are the amr values (RFC 8176 §2) of a knowledge factor:
// alone, none of them is a second factor.
var knowledgeOnlyAMR = []string{"pwd", "pin", "kba"}

// checkMFAValues checks the amr or acr values a provider names as
// multi-factor: not empty and, for amr, not a knowledge factor alone.
func checkMFAValues(r *Report, field string, values []string, amr bool) {
	for i, v := range values {
		f := fmt.Sprintf("%s[%d]", field, i)
		switch {
		case strings.TrimSpace(v) == "":
			r.Errorf(f, "must not be empty")
		case amr && slices.Contains(knowledgeOnlyAMR, v):
			r.Errorf(f, "%q is a knowledge factor alone and never makes a sign-in multi-factor; list what proves a second factor (mfa, hwk, otp, …)", v)
		}
	}
}

func checkRoleMapping(r *Report, m RoleMapping) {
	for k, roles := range m.Map {
		if len(roles) == 0 {
			r.Errorf("map."+k, "maps to no roles")
		}
		for i, role := range roles {
			if strings.TrimSpace(role) == "" {
				r.Errorf(fmt.Sprintf("map.%s[%d]", k, i), "role must not be empty")
			}
		}
	}
	for i, role := range m.Always {
		if strings.TrimSpace(role) == "" {
			r.Errorf(fmt.Sprintf("always[%d]", i), "role must not be empty")
		}
	}
}

func (c *Config) checkProviders(root *Report, fromEnv map[string]bool) {
	seen := map[string]bool{}
	for i := range c.Providers {
		p := &c.Providers[i]
		r := root.Sub(fmt.Sprintf("providers[%d]", i))
		checkID(r, p.ID, seen, "provider")
		if p.Development {
			c.checkDevelopmentProvider(r, p)
		} else {
			if p.Issuer == "" {
				r.Errorf("issuer", "is required")
			} else {
				r.check("issuer", CheckIssuer(p.Issuer))
			}
			if p.ClientID == "" {
				r.Errorf("client_id", "is required")
			}
			switch {
			case p.ClientSecret == "" && p.ClientSecretFile == "": // an unreadable file is reported on its own
				r.Errorf("client_secret", "is required: set \"${NAME}\" or client_secret_file")
			case p.ClientSecret != "":
				inlineSecret(r, "client_secret", fromEnv)
			default: // a configuration built in code; Load reads it into client_secret
				_, err := ReadSecretFile(p.ClientSecretFile)
				r.check("client_secret_file", err)
			}
		}
		if p.RedirectURL != "" && p.RedirectURL != c.Server.PublicURL+callbackPathPrefix+p.ID {
			r.check("redirect_url", CheckHTTPSURL(p.RedirectURL, true))
		}
		for j, s := range p.Scopes {
			if s == "" || strings.ContainsAny(s, " \t\r\n\"\\") {
				r.Errorf(fmt.Sprintf("scopes[%d]", j), "is not a scope token (RFC 6749 §3.3)")
			}
		}
		checkAlgs(r, p.SigningAlgs)
		if p.MaxTokenAge < time.Minute {
			r.Errorf("max_token_age", "must be at least 1m (got %v): a shorter one refuses tokens within ordinary clock skew", p.MaxTokenAge)
		}
		if p.MaxIDTokenBytes < 1024 || p.MaxIDTokenBytes > 1<<20 {
			r.Errorf("max_id_token_bytes", "must be between 1024 and 1048576 bytes (got %d)", p.MaxIDTokenBytes)
		}
		checkMFAValues(r, "mfa_amr", p.MFAAMR, true)
		checkMFAValues(r, "mfa_acr", p.MFAACR, false)
		checkRoleMapping(r.Sub("roles"), p.Roles)
		checkFile(r, "ca_root_file", p.CARootFile)
	}
}

// checkDevelopmentProvider checks a provider with development: true: no
// issuer, client id or secret (telegate fills them in when it starts the
// development OpenID Provider), and every listener on loopback. It always
// warns: anyone can sign in there with the demo passwords.
func (c *Config) checkDevelopmentProvider(r *Report, p *Provider) {
	const filled = "must be absent with development: true: telegate starts the development provider on loopback and fills it in"
	if p.Issuer != "" {
		r.Errorf("issuer", filled)
	}
	if p.ClientID != "" {
		r.Errorf("client_id", filled)
	}
	switch {
	case p.ClientSecretFile != "":
		r.Errorf("client_secret_file", filled)
	case p.ClientSecret != "":
		r.Errorf("client_secret", filled)
	}
	for _, problem := range c.developmentLoopbackProblems() {
		r.Errorf("development", "%s", problem)
	}
	r.Warnf("development", "development sign-in — not for patients: telegate runs its development OpenID Provider, where anyone signs in as the demo clinician, patient or admin with the password \"demo\"")
}

// CheckDevelopmentLoopback returns an error naming the first listener
// (server.listen, server.http_listen, server.admin and, with the relay
// enabled, relay.listen, relay.tls_listen and relay.relay_addresses) that
// is not on loopback, or server.public_url when its host is not a loopback
// host; nil when everything is on loopback. A development provider runs
// only then: Validate refuses it otherwise, and node.Run checks again
// before it starts one.
func (c *Config) CheckDevelopmentLoopback() error {
	if ps := c.developmentLoopbackProblems(); len(ps) > 0 {
		return errors.New(ps[0])
	}
	return nil
}

// developmentLoopbackProblems says, for each listener or public URL that
// is not on loopback, that the development provider needs it there.
// Listeners left empty are reported elsewhere (or are off).
func (c *Config) developmentLoopbackProblems() []string {
	const onLoopback = "the development provider runs only with loopback listeners"
	var out []string
	listener := func(field, addr, hint string) {
		if addr != "" && !IsLoopbackListenAddr(addr) {
			out = append(out, fmt.Sprintf("%s; %s is %s%s", onLoopback, field, addr, hint))
		}
	}
	listener("server.listen", c.Server.Listen, "")
	listener("server.http_listen", c.Server.HTTPListen, ` (set http_listen: "" to turn the redirect listener off, or give it a loopback address)`)
	listener("server.admin", c.Server.Admin, "")
	if c.Relay.Enabled {
		listener("relay.listen", c.Relay.Listen, "")
		listener("relay.tls_listen", c.Relay.TLSListen, "")
		for i, a := range c.Relay.RelayAddresses {
			if !a.Unmap().IsLoopback() {
				out = append(out, fmt.Sprintf("%s; relay.relay_addresses[%d] is %s", onLoopback, i, a))
			}
		}
	}
	if pu := c.Server.PublicURL; pu != "" {
		if u, err := url.Parse(pu); err != nil || !IsLoopbackHost(u.Hostname()) {
			out = append(out, fmt.Sprintf("the development provider runs only with a loopback public_url; server.public_url is %s", pu))
		}
	}
	return out
}

func (c *Config) checkBearer(root *Report) {
	seen := map[string]bool{}
	for i := range c.Bearer {
		b := &c.Bearer[i]
		r := root.Sub(fmt.Sprintf("bearer[%d]", i))
		checkID(r, b.ID, seen, "bearer")
		if b.Issuer == "" {
			r.Errorf("issuer", "is required")
		} else {
			r.check("issuer", CheckIssuer(b.Issuer))
		}
		if len(b.Audience) == 0 {
			r.Errorf("audience", "at least one audience is required (RFC 9068 §4)")
		}
		if b.JWKSURL != "" {
			r.check("jwks_url", CheckHTTPSURL(b.JWKSURL, true))
		}
		checkAlgs(r, b.SigningAlgs)
		checkRoleMapping(r.Sub("roles"), b.Roles)
		checkFile(r, "ca_root_file", b.CARootFile)
	}
}

func (c *Config) checkClientCAs(root *Report) {
	seen := map[string]bool{}
	for i := range c.ClientCAs {
		ca := &c.ClientCAs[i]
		r := root.Sub(fmt.Sprintf("client_cas[%d]", i))
		checkID(r, ca.ID, seen, "client CA")
		if ca.CAFile == "" {
			r.Errorf("ca_file", "is required")
		}
		checkFile(r, "ca_file", ca.CAFile)
	}
}

// OwnPathPrefix is where telegate's own endpoints live on every host; no
// route may claim it.
const OwnPathPrefix = "/.telegate/"

// BackchannelLogoutPrefix is the path of the back-channel logout endpoints
// (OIDC Back-Channel Logout 1.0 §2.5), one per provider id after it. The
// endpoint is auth's; the rate-limit stage gives it its own bucket
// (rate_limits.backchannel_logout).
const BackchannelLogoutPrefix = OwnPathPrefix + "backchannel-logout/"

// CheckRoutePath requires a canonical path prefix: it starts with "/" and
// ends with "/" (or is "/"), has no empty, "." or ".." segments, no
// percent-encoding, backslash, ';', '?', '#' or control characters, and is
// not under OwnPathPrefix.
func CheckRoutePath(p string) error {
	if p == "" {
		return fmt.Errorf("is required, e.g. \"/\" or \"/clinic/\"")
	}
	if !strings.HasPrefix(p, "/") || !strings.HasSuffix(p, "/") {
		return fmt.Errorf("%q must start and end with \"/\", e.g. \"/clinic/\"", p)
	}
	if strings.HasPrefix(strings.ToLower(p), OwnPathPrefix) {
		return fmt.Errorf("%q is under %s, which telegate keeps for its own endpoints", p, OwnPathPrefix)
	}
	if p != "/" {
		for _, seg := range strings.Split(p[1:len(p)-1], "/") {
			if seg == "" || seg == "." || seg == ".." {
				return fmt.Errorf("%q is not canonical: no empty, \".\" or \"..\" segments", p)
			}
		}
	}
	for _, ch := range p {
		if ch < 0x21 || ch == 0x7f || strings.ContainsRune(`%\;?#`, ch) {
			return fmt.Errorf("%q is not canonical: write it decoded, without %%, \\, ;, ?, # or spaces", p)
		}
	}
	if p != "/" {
		for _, seg := range strings.Split(p[1:len(p)-1], "/") {
			if strings.HasSuffix(seg, ".") {
				return fmt.Errorf("%q is not canonical: no segment may end in \".\" (servers trim it)", p)
			}
		}
	}
	if err := pathtext.Check(p); err != nil {
		return fmt.Errorf("%q: %w: write the text valid, visible and in NFKC", p, err)
	}
	return nil
}

// CheckUpstream requires an absolute http or https URL with a host and no
// user information, path (other than "/": the canonical request path is
// forwarded as it is), query or fragment. It is the one rule for
// routes[].upstream: the gateway parses upstreams by it.
func CheckUpstream(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return fmt.Errorf("must be an absolute http or https URL, e.g. http://10.0.0.5:8080")
	}
	if u.User != nil {
		return fmt.Errorf("must not carry user information (user:password@)")
	}
	if (u.Path != "" && u.Path != "/") || u.RawPath != "" {
		return fmt.Errorf("%q must not have a path: the request path is forwarded as it is, write http(s)://host[:port]", raw)
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(raw, "#") {
		return fmt.Errorf("must not have a query or fragment")
	}
	return nil
}

func (c *Config) checkRoutes(root *Report) {
	if len(c.Routes) == 0 {
		root.Errorf("routes", "at least one route is required")
	}
	ids := map[string]bool{}
	providers := map[string]bool{}
	for _, p := range c.Providers {
		providers[p.ID] = true
	}
	bearers := map[string]bool{}
	for _, b := range c.Bearer {
		bearers[b.ID] = true
	}
	cas := map[string]bool{}
	for _, ca := range c.ClientCAs {
		cas[ca.ID] = true
	}
	tlsNames := map[string]bool{}
	var wildcards []string
	for _, h := range c.TLS.Hosts {
		for _, n := range h.Names {
			n = strings.ToLower(strings.TrimSuffix(n, "."))
			if s, ok := strings.CutPrefix(n, "*."); ok {
				wildcards = append(wildcards, s)
			}
			tlsNames[n] = true
		}
	}
	covered := func(h string) bool {
		if tlsNames[h] {
			return true
		}
		if i := strings.IndexByte(h, '.'); i > 0 {
			return slices.Contains(wildcards, h[i+1:])
		}
		return false
	}
	seenPrefix := map[string]int{} // host + path → route index
	for i := range c.Routes {
		rt := &c.Routes[i]
		r := root.Sub(fmt.Sprintf("routes[%d]", i))
		checkID(r, rt.ID, ids, "route")
		r.check("path", CheckRoutePath(rt.Path))
		if rt.Upstream == "" {
			r.Errorf("upstream", "is required")
		} else {
			r.check("upstream", CheckUpstream(rt.Upstream))
		}
		hosts := rt.Hosts
		if len(hosts) == 0 {
			hosts = []string{"*"}
		}
		for j, h := range rt.Hosts {
			h = strings.ToLower(strings.TrimSuffix(h, "."))
			field := fmt.Sprintf("hosts[%d]", j)
			switch {
			case !validHostname(h, false):
				r.Errorf(field, "%q is not a host name", h)
			case len(c.TLS.Hosts) > 0 && !covered(h):
				r.Errorf(field, "%q is not named in tls.hosts: no certificate would be served for it", h)
			}
		}
		for j, h := range hosts {
			// Paths that differ only in letter case collide: a path in
			// any case must name one route (routes[].upstream_case_insensitive).
			k := strings.ToLower(strings.TrimSuffix(h, ".")) + " " + pathtext.FoldText(rt.Path)
			if prev, ok := seenPrefix[k]; ok && rt.Path != "" {
				if prev == i {
					// The route's own list names one host twice, in
					// any spelling: a fault of that entry, not of the path.
					r.Errorf(fmt.Sprintf("hosts[%d]", j), "%q names a host already listed for this route", h)
				} else if c.Routes[prev].Path == rt.Path {
					r.Errorf("path", "%q on the same hosts as routes[%d]: the router could not choose", rt.Path, prev)
				} else {
					r.Errorf("path", "%q differs only in letter case from routes[%d] %q on the same hosts: the router could not choose", rt.Path, prev, c.Routes[prev].Path)
				}
				break
			}
			seenPrefix[k] = i
		}
		for j, id := range rt.Providers {
			if !providers[id] {
				r.Errorf(fmt.Sprintf("providers[%d]", j), "no provider has id %q", id)
			}
		}
		for j, id := range rt.Bearer {
			if !bearers[id] {
				r.Errorf(fmt.Sprintf("bearer[%d]", j), "no bearer issuer has id %q", id)
			}
		}
		if len(rt.Bearer) > 0 && !rt.API {
			r.Errorf("bearer", "bearer tokens are accepted only on API routes; set api: true")
		}
		for j, id := range rt.ClientCert {
			if !cas[id] {
				r.Errorf(fmt.Sprintf("client_cert[%d]", j), "no client CA has id %q", id)
			}
		}
		if rt.UpstreamTLS != (UpstreamTLS{}) {
			ur := r.Sub("upstream_tls")
			if u, err := url.Parse(rt.Upstream); err == nil && u.Scheme == "http" {
				ur.Errorf("", "is used only with an https upstream")
			}
			if (rt.UpstreamTLS.CertFile == "") != (rt.UpstreamTLS.KeyFile == "") {
				ur.Errorf("cert_file", "cert_file and key_file go together")
			}
			checkFile(ur, "ca_file", rt.UpstreamTLS.CAFile)
			checkKeyPair(ur, rt.UpstreamTLS.CertFile, rt.UpstreamTLS.KeyFile)
		}
		if rt.MaxBodyBytes < 0 {
			r.Errorf("max_body_bytes", "must not be negative")
		}
		for j, o := range rt.Origins {
			if u, err := url.Parse(o); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || (u.Path != "" && u.Path != "/") {
				r.Errorf(fmt.Sprintf("origins[%d]", j), "must be an origin such as https://app.hospital.example")
			}
		}
		if len(rt.Origins) > 0 && !rt.WebSocket {
			r.Errorf("origins", "applies only with websocket: true")
		}
		for name := range rt.ResponseHeaders {
			if !tokenPattern.MatchString(name) {
				r.Errorf("response_headers."+name, "is not a header name")
			}
		}
		for j, h := range rt.StripRequestHeaders {
			if err := CheckHeaderPattern(h); err != nil {
				r.Errorf(fmt.Sprintf("strip_request_headers[%d]", j), "%s", err.Error())
			}
		}
		for j, claim := range rt.AssertionClaims {
			if strings.TrimSpace(claim) == "" {
				r.Errorf(fmt.Sprintf("assertion_claims[%d]", j), "must not be empty")
			}
		}
		if rt.RateLimit != nil {
			CheckRateLimit(r.Sub("rate_limit"), *rt.RateLimit)
		}
		checkInspectExclusions(r, rt.InspectExclusions)
		c.checkPolicy(r, rt, providers, bearers, cas)
	}
}

// checkPolicy checks what of a route's policy refers to the rest of the
// file: the provider, bearer and client CA ids its rules name, and the
// break_glass section. What a policy means (public with allow rules, a
// policy that admits nobody, methods, empty rules) is the rule of the
// policy engine, policies.Validate, which node.Build runs for check and
// run alike.
func (c *Config) checkPolicy(r *Report, rt *Route, providers, bearers, cas map[string]bool) {
	p := rt.Policy
	if p == nil {
		r.Warnf("policy", "route %q has no policy and admits nobody (deny by default); add policy.allow or policy.public", rt.ID)
		return
	}
	pr := r.Sub("policy")
	checkRuleRefs(pr, "allow", p.Allow, providers, bearers, cas)
	if bg := p.BreakGlass; bg != nil {
		br := pr.Sub("break_glass")
		if p.Public {
			br.Errorf("", "a public route needs no break-glass")
		}
		if len(bg.Allow) == 0 {
			br.Errorf("allow", "is required: who may break the glass")
		}
		checkRuleRefs(br, "allow", bg.Allow, providers, bearers, cas)
		if bg.Duration < 0 || bg.Duration > 12*time.Hour {
			br.Errorf("duration", "must be between 0 (default 1h) and 12h")
		}
	}
}

// checkRuleRefs checks that the ids a list of policy rules
// (policy.allow, policy.break_glass.allow) names under field exist.
func checkRuleRefs(pr *Report, field string, rules []Rule, providers, bearers, cas map[string]bool) {
	for i, rule := range rules {
		rr := pr.Sub(fmt.Sprintf("%s[%d]", field, i))
		for j, id := range rule.Providers {
			if id != "" && !providers[id] && !bearers[id] && !cas[id] {
				rr.Errorf(fmt.Sprintf("providers[%d]", j), "no provider, bearer issuer or client CA has id %q", id)
			}
		}
	}
}

// CheckRateLimit requires a finite rate above 0 and a burst of at least 1.
// Rate 0 is refused rather than read as "no limit": a limit left blank or
// templated to zero must not switch protection off silently.
func CheckRateLimit(r *Report, l RateLimit) {
	if !(l.Rate > 0) || math.IsInf(l.Rate, 0) {
		r.Errorf("rate", "must be a number of requests per second above 0 (got %v); there is no unlimited rate, set a higher one to allow more", l.Rate)
	}
	if l.Burst < 1 {
		r.Errorf("burst", "must be at least 1 (got %d), the requests admitted at once", l.Burst)
	}
}

func (c *Config) checkRateLimits(r *Report) {
	CheckRateLimit(r.Sub("per_client"), c.RateLimits.PerClient)
	CheckRateLimit(r.Sub("per_subject"), c.RateLimits.PerSubject)
	CheckRateLimit(r.Sub("backchannel_logout"), c.RateLimits.BackchannelLogout)
	if c.RateLimits.MaxClients <= 0 {
		r.Errorf("max_clients", "must be positive")
	}
}

// inspectArgName is an argument name of routes[].inspect_exclusions: no
// space, quote, '|', '/' or ',' (they delimit the engine's target list).
var inspectArgName = regexp.MustCompile(`^[^\s"'|/,:!]+$`)

func checkInspectExclusions(r *Report, exs []InspectExclusion) {
	for i, ex := range exs {
		er := r.Sub(fmt.Sprintf("inspect_exclusions[%d]", i))
		if len(ex.Args) == 0 {
			er.Errorf("args", "name at least one argument")
		}
		for j, a := range ex.Args {
			if !inspectArgName.MatchString(a) {
				er.Errorf(fmt.Sprintf("args[%d]", j), "%q: an argument name has no spaces, quotes or any of | / , : !", a)
			}
		}
		if len(ex.Groups) == 0 {
			er.Errorf("groups", "name at least one rule group")
		}
		for j, g := range ex.Groups {
			if _, ok := InspectRuleGroups[g]; !ok {
				er.Errorf(fmt.Sprintf("groups[%d]", j), "%q: not a rule group (%s)", g, strings.Join(slices.Sorted(maps.Keys(InspectRuleGroups)), ", "))
			}
		}
	}
}

func (c *Config) checkInspection(r *Report) {
	if l := c.Inspection.ParanoiaLevel; l < 1 || l > 4 {
		r.Errorf("paranoia_level", "must be 1 to 4")
	}
	if c.Inspection.AnomalyThreshold < 1 {
		r.Errorf("anomaly_threshold", "must be at least 1")
	}
}

func (c *Config) checkAudit(r *Report, fromEnv map[string]bool) {
	if c.Audit.File == "" {
		r.Errorf("file", "is required")
	}
	if c.Audit.Key != "" {
		if _, err := DecodeAuditKey(c.Audit.Key); err != nil {
			r.check("key", err)
		}
		inlineSecret(r, "key", fromEnv)
	}
	if c.Audit.KeyFile != "" { // a configuration built in code; Load reads it into key
		_, err := ReadAuditKeyFile(c.Audit.KeyFile)
		r.check("key_file", err)
	}
	if c.Audit.CheckpointDir == "" {
		r.Errorf("checkpoint_dir", "is required")
	}
	if c.Audit.CheckpointEvery < 1 {
		r.Errorf("checkpoint_every", "must be at least 1")
	}
	if c.Audit.CheckpointInterval < 100*time.Millisecond {
		r.Errorf("checkpoint_interval", "must be at least 100ms")
	}
	if c.Audit.FsyncInterval <= 0 || c.Audit.FsyncInterval > time.Second {
		r.Errorf("fsync_interval", "must be more than 0 and at most 1s")
	}
	for _, f := range []struct{ key, v string }{{"on_failure", c.Audit.OnFailure}, {"on_failure_public", c.Audit.OnFailurePublic}} {
		if f.v != AuditRefuse && f.v != AuditDegrade {
			r.Errorf(f.key, "must be %q or %q", AuditRefuse, AuditDegrade)
		}
	}
	c.Audit.Ship.validate(r.Sub("ship"))
	c.Audit.Witness.validate(r.Sub("witness"), false)
	if c.Audit.RotateSize < 64<<10 {
		r.Errorf("rotate_size", "must be at least 65536 (bytes)")
	}
	if c.Audit.RotateAge < time.Minute {
		r.Errorf("rotate_age", "must be at least 1m")
	}
	if c.Audit.EncryptionKeyFile != "" {
		_, err := ReadAuditEncryptionKeyFile(c.Audit.EncryptionKeyFile)
		r.check("encryption_key_file", err)
	}
}

func (c *Config) checkRedis(r *Report, fromEnv map[string]bool) {
	rd := &c.Redis
	if rd.Addr != "" {
		if _, _, err := net.SplitHostPort(rd.Addr); err != nil {
			r.Errorf("addr", "must be host:port, e.g. 127.0.0.1:6379")
		}
	}
	if rd.Password != "" {
		inlineSecret(r, "password", fromEnv)
	} else if rd.PasswordFile != "" { // a configuration built in code; Load reads it into password
		_, err := ReadSecretFile(rd.PasswordFile)
		r.check("password_file", err)
	}
	if rd.DB < 0 {
		r.Errorf("db", "must not be negative")
	}
	if rd.Username != "" && !tokenPattern.MatchString(rd.Username) {
		r.Errorf("username", "must be a Redis ACL user name: letters, digits and -._ without spaces")
	}
	if rd.Addr != "" {
		// What `telegate check` can tell without Redis (docs/deployment.md).
		if host, _, err := net.SplitHostPort(rd.Addr); err == nil && !rd.TLS.Enabled && !IsLoopbackHost(host) {
			r.Warnf("tls", "Redis at %s is reached over plain TCP: sealed sessions, visits and the password cross the network readable and unauthenticated; set redis.tls.enabled (docs/deployment.md, \"Redis\")", rd.Addr)
		}
		if rd.Username == "" {
			r.Warnf("username", "no ACL user: telegate signs in as Redis's default user, who may run every command on every key; create a user with only telegate's commands and keys (docs/deployment.md, \"Redis\") and name it here")
		}
		if rd.Password == "" && rd.PasswordFile == "" {
			r.Warnf("password_file", "Redis without a password: anyone who reaches it reads and ends every session; set password_file")
		}
	}
	t := rd.TLS
	if t != (RedisTLS{}) {
		tr := r.Sub("tls")
		if !t.Enabled {
			tr.Errorf("", "ca_file, cert_file, key_file and server_name apply only with enabled: true")
		}
		if (t.CertFile == "") != (t.KeyFile == "") {
			tr.Errorf("cert_file", "cert_file and key_file go together")
		}
		if t.CAFile != "" {
			_, err := ReadCertPool(t.CAFile)
			tr.check("ca_file", err)
		}
		checkKeyPair(tr, t.CertFile, t.KeyFile)
		if t.ServerName != "" && !validHostname(t.ServerName, false) && net.ParseIP(t.ServerName) == nil {
			tr.Errorf("server_name", "must be a DNS name or an IP address")
		}
	}
}

// checkGeneratedSecrets applies the rule for secret files to the keys
// telegate generated in the data directory on an earlier start, where the
// configuration names none: absent they are fine (the next start creates
// them), present they must pass as they will be read.
func (c *Config) checkGeneratedSecrets(r *Report) {
	if c.DataDir == "" {
		return
	}
	type generated struct {
		name string
		used bool
		read func(path string) error
	}
	list := []generated{
		{SessionKeyInDataDir, c.Sessions.Store == "file" && c.Sessions.EncryptionKey == "" && c.Sessions.EncryptionKeyFile == "",
			func(p string) error { _, err := ReadSessionKeyFile(p); return err }},
		{AuditKeyInDataDir, c.Audit.Key == "" && c.Audit.KeyFile == "",
			func(p string) error { _, err := ReadAuditKeyFile(p); return err }},
		{AuditCheckpointKeyInDataDir, true,
			func(p string) error { _, err := ReadSecretFile(p); return err }},
		{SigningKeyInDataDir, c.Assertion.SigningKeyFile == "",
			func(string) error { _, _, err := ReadGeneratedSigningKey(c); return err }},
		{TLSStorageKeyInDataDir, c.TLS.StorageKeyFile == "",
			func(p string) error { _, err := ReadTLSStorageKeyFile(p); return err }},
		{RelaySecretInDataDir, c.Relay.Enabled && len(c.Relay.Secrets) == 0 && c.Relay.SecretsFile == "",
			func(p string) error { _, err := ReadRelaySecretsFile(p); return err }},
	}
	for _, g := range list {
		p := InDataDir(c.DataDir, g.name)
		if !g.used {
			continue
		}
		if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err := g.read(p); err != nil {
			r.Errorf("data_dir", "%v (a key telegate generated on an earlier start)", err)
		}
	}
}

func (c *Config) checkLog(r *Report) {
	if c.Log.Format != "json" && c.Log.Format != "text" {
		r.Errorf("format", "%q is not one of json, text", c.Log.Format)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		r.Errorf("level", "%q is not one of debug, info, warn, error", c.Log.Level)
	}
}

// checkDurations refuses every negative duration anywhere in the
// configuration.
func checkDurations(v reflect.Value, path string, r *Report) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			checkDurations(v.Elem(), path, r)
		}
	case reflect.Slice:
		if !isLeaf(v.Type().Elem()) {
			for i := range v.Len() {
				checkDurations(v.Index(i), indexPath(path, i), r)
			}
		}
	case reflect.Struct:
		if isLeaf(v.Type()) {
			return
		}
		fields, names := yamlFields(v.Type())
		for _, key := range names {
			f := v.Field(fields[key])
			fp := joinPath(path, key)
			if f.Type() == durationType {
				if f.Int() < 0 {
					r.Errorf(fp, "must be positive")
				}
				continue
			}
			checkDurations(f, fp, r)
		}
	}
}
