package config

import (
	"errors"
	"net"
	"net/netip"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"time"
)

// The defaults, in one place. Each is the safe choice; docs/config.md and
// the comments in config.go name them.
const (
	DefaultDataDir                = "./telegate-data"
	DefaultListen                 = ":443"
	DefaultHTTPListen             = ":80"
	DefaultAdmin                  = "127.0.0.1:9090"
	DefaultReadHeaderTimeout      = 5 * time.Second
	DefaultReadTimeout            = 30 * time.Second
	DefaultIdleTimeout            = 120 * time.Second
	DefaultSendTimeout            = 60 * time.Second
	DefaultMaxHeaderBytes         = 64 << 10
	DefaultMaxQueryParams         = 100
	DefaultH2MaxRequestsPerSecond = 200
	DefaultH2MaxConcurrentStreams = 100
	DefaultHSTSMaxAge             = 365 * 24 * time.Hour
	DefaultShutdownTimeout        = 20 * time.Second
	DefaultTLSMinVersion          = "1.2"
	// DefaultACMECA is Let's Encrypt's production directory (RFC 8555 §7.1.1).
	DefaultACMECA             = "https://acme-v02.api.letsencrypt.org/directory"
	DefaultCookieName         = "__Host-telegate"
	DefaultSessionIdle        = 15 * time.Minute
	DefaultSessionAbsolute    = 12 * time.Hour
	DefaultSessionStore       = "file"
	DefaultMaxSessions        = 100000
	DefaultAssertionTTL       = 60 * time.Second
	DefaultAssertionHeader    = "X-Telegate-Assertion"
	DefaultRoleClaim          = "groups"
	DefaultProviderTimeout    = 10 * time.Second
	DefaultMaxTokenAge        = 10 * time.Minute
	DefaultMaxIDTokenBytes    = 16 << 10
	DefaultRouteMaxBodyBytes  = 10 << 20
	DefaultRouteTimeout       = 30 * time.Second
	DefaultMaxClients         = 100000
	DefaultParanoiaLevel      = 1
	DefaultAnomalyThreshold   = 5
	DefaultBreakGlassDuration = time.Hour
	DefaultLogFormat          = "json"
	DefaultLogLevel           = "info"
	callbackPathPrefix        = "/.telegate/callback/"
	defaultAuditFileInDataDir = "audit/audit.log"
	// DefaultAuditCheckpointEvery and DefaultAuditCheckpointInterval:
	// a signed checkpoint of the trail at the latest after this many
	// records or this long after a record.
	DefaultAuditCheckpointEvery    = 1000
	DefaultAuditCheckpointInterval = 10 * time.Second
	// DefaultAuditFsyncInterval is the longest a written record waits for
	// fsync.
	DefaultAuditFsyncInterval = 100 * time.Millisecond
	// DefaultAuditRotateSize and DefaultAuditRotateAge: the trail's open
	// file is rotated into a segment file at this size or age.
	DefaultAuditRotateSize int64 = 64 << 20
	DefaultAuditRotateAge        = 24 * time.Hour
	// DefaultAuditOnFailure (routes that need an identity, and
	// telegate's own endpoints) and DefaultAuditOnFailurePublic (public
	// routes): what a request gets when its record cannot be written.
	DefaultAuditOnFailure       = AuditRefuse
	DefaultAuditOnFailurePublic = AuditDegrade
	defaultAuditCheckpointDir   = "audit-checkpoints"
)

// The values of audit.on_failure and audit.on_failure_public.
const (
	// AuditRefuse answers 503 when the request's record cannot be written.
	AuditRefuse = "refuse"
	// AuditDegrade serves the request unrecorded, and counts it.
	AuditDegrade = "degrade"
)

// The development provider (providers[].development: true): telegate
// starts the development OpenID Provider on loopback and registers itself
// there as DevelopmentClientID.
const (
	DevelopmentClientID    = "telegate"
	DevelopmentDisplayName = "Development sign-in — not for patients"
)

// DevelopmentScopes are the scopes of a development provider that names
// none.
var DevelopmentScopes = []string{"openid", "profile", "email", "groups"}

// DevelopmentRoles is the role mapping of a development provider that sets
// neither roles.map nor roles.always: the groups of the demo users
// (clinicians, admins, patients) to the roles clinician, admin and patient.
func DevelopmentRoles() RoleMapping {
	return RoleMapping{
		Claim: "groups",
		Map: map[string][]string{
			"clinicians": {"clinician"},
			"admins":     {"admin"},
			"patients":   {"patient"},
		},
	}
}

// Rate-limit defaults (rate_limits): token buckets per route, in requests
// per second (rate) and bucket size (burst).
const (
	// DefaultPerClientRate and DefaultPerClientBurst are rate_limits.per_client:
	// per route and client network (IPv4 address, IPv6 /64).
	DefaultPerClientRate  = 50.0
	DefaultPerClientBurst = 100
	// DefaultPerSubjectRate and DefaultPerSubjectBurst are
	// rate_limits.per_subject: per route and signed-in identity (issuer,
	// subject).
	DefaultPerSubjectRate  = 20.0
	DefaultPerSubjectBurst = 40
	// DefaultBackchannelLogoutRate and DefaultBackchannelLogoutBurst are
	// rate_limits.backchannel_logout: per client network on the
	// back-channel logout endpoints.
	DefaultBackchannelLogoutRate  = 5.0
	DefaultBackchannelLogoutBurst = 50
	// RateLimitIPv6PrefixLen groups IPv6 clients into one per-client
	// bucket per /64, the smallest block an end site is usually given
	// (RFC 6177), so that one host cannot escape its limit by rotating
	// addresses within its own network. IPv4 clients (and IPv4-mapped IPv6,
	// RFC 4291 §2.5.5.2) are limited per address.
	RateLimitIPv6PrefixLen = 64
)

// DefaultRateLimits returns rate_limits as ApplyDefaults fills it when the
// file leaves it out: DefaultPerClientRate/Burst, DefaultPerSubjectRate/Burst,
// DefaultBackchannelLogoutRate/Burst
// and DefaultMaxClients.
func DefaultRateLimits() RateLimits {
	return RateLimits{
		PerClient:         RateLimit{Rate: DefaultPerClientRate, Burst: DefaultPerClientBurst},
		PerSubject:        RateLimit{Rate: DefaultPerSubjectRate, Burst: DefaultPerSubjectBurst},
		BackchannelLogout: RateLimit{Rate: DefaultBackchannelLogoutRate, Burst: DefaultBackchannelLogoutBurst},
		MaxClients:        DefaultMaxClients,
	}
}

// Connection admission defaults (connections): per listener; a source is
// an IPv4 address or an IPv6 /64.
const (
	DefaultMaxPending          = 1024
	DefaultMaxPendingPerSource = 32
	DefaultMaxConns            = 16384
	DefaultMaxConnsPerSource   = 512
	DefaultFirstByteTimeout    = 2 * time.Second
	DefaultHandshakeTimeout    = 10 * time.Second
)

// DefaultConnections returns connections as ApplyDefaults fills it when
// the file leaves it out.
func DefaultConnections() Connections {
	return Connections{
		MaxPending: DefaultMaxPending, MaxPendingPerSource: DefaultMaxPendingPerSource,
		MaxConns: DefaultMaxConns, MaxConnsPerSource: DefaultMaxConnsPerSource,
		FirstByteTimeout: DefaultFirstByteTimeout, HandshakeTimeout: DefaultHandshakeTimeout,
	}
}

// Readiness (/readyz on the admin listener); not settings of the file.
const (
	// DefaultReadyCheckTimeout bounds each dependency check behind /readyz.
	DefaultReadyCheckTimeout = time.Second
	// DefaultReadyCacheFor is how long /readyz reuses the dependency
	// checks' results, so that frequent probes cost each dependency at most
	// one check per period.
	DefaultReadyCacheFor = time.Second
)

// DefaultSigningAlgs are the ID token and access token algorithms accepted
// when a provider or bearer issuer names none (RFC 7518 §3.1).
var DefaultSigningAlgs = []string{"RS256", "ES256"}

// DefaultACMEChallenges are the ACME challenge types enabled by default
// (RFC 8555 §8.3, RFC 8737).
var DefaultACMEChallenges = []string{"http-01", "tls-alpn-01"}

// SectionDefaulter is implemented (on the pointer) by a section of Config,
// such as Relay or Visits, that fills its own defaults. ApplyDefaults calls
// it after the common defaults, with the whole configuration for context.
type SectionDefaulter interface {
	ApplyDefaults(c *Config)
}

// DemoDefaulter is implemented (on the pointer) by a section of Config that
// has settings of its own in demo mode (e.g. the relay on loopback). Demo
// calls it before ApplyDefaults.
type DemoDefaulter interface {
	DemoDefaults(c *Config, o DemoOptions)
}

// ApplyDefaults fills every field left at its zero value with its default
// (see the constants above). It is idempotent. A zero value that is
// meaningful is kept only when the file set it explicitly, which only Load
// can know: an explicit `http_listen: ""` disables the redirect listener,
// while ApplyDefaults on a Config built in code sets ":80".
func (c *Config) ApplyDefaults() {
	c.applyDefaults(nil)
}

func (c *Config) applyDefaults(present func(path string) bool) {
	set := func(path string) bool { return present != nil && present(path) }
	str := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
	}
	dur := func(p *time.Duration, v time.Duration) {
		if *p == 0 {
			*p = v
		}
	}
	num := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}

	str(&c.DataDir, DefaultDataDir)

	s := &c.Server
	str(&s.Listen, DefaultListen)
	if !set("server.http_listen") {
		str(&s.HTTPListen, DefaultHTTPListen)
	}
	str(&s.Admin, DefaultAdmin)
	dur(&s.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	dur(&s.ReadTimeout, DefaultReadTimeout)
	dur(&s.IdleTimeout, DefaultIdleTimeout)
	dur(&s.SendTimeout, DefaultSendTimeout)
	num(&s.MaxHeaderBytes, DefaultMaxHeaderBytes)
	num(&s.MaxQueryParams, DefaultMaxQueryParams)
	if s.H2MaxRequestsPerSecond == 0 {
		s.H2MaxRequestsPerSecond = DefaultH2MaxRequestsPerSecond
	}
	if s.H2MaxConcurrentStreams == 0 {
		s.H2MaxConcurrentStreams = DefaultH2MaxConcurrentStreams
	}
	dur(&s.HSTSMaxAge, DefaultHSTSMaxAge)
	dur(&s.ShutdownTimeout, DefaultShutdownTimeout)
	if s.PublicURL == "" {
		s.PublicURL = derivePublicURL(c)
	}
	s.PublicURL = strings.TrimSuffix(s.PublicURL, "/")

	// A cap the file lowers lowers the defaults that must not exceed it.
	cn, dc := &c.Connections, DefaultConnections()
	num(&cn.MaxPending, dc.MaxPending)
	num(&cn.MaxPendingPerSource, min(dc.MaxPendingPerSource, cn.MaxPending))
	num(&cn.MaxConns, max(dc.MaxConns, cn.MaxPending))
	num(&cn.MaxConnsPerSource, min(dc.MaxConnsPerSource, cn.MaxConns))
	dur(&cn.HandshakeTimeout, dc.HandshakeTimeout)
	dur(&cn.FirstByteTimeout, min(dc.FirstByteTimeout, cn.HandshakeTimeout))

	str(&c.TLS.MinVersion, DefaultTLSMinVersion)
	str(&c.TLS.ACME.CA, DefaultACMECA)
	if len(c.TLS.ACME.Challenges) == 0 {
		c.TLS.ACME.Challenges = slices.Clone(DefaultACMEChallenges)
	}

	ss := &c.Sessions
	str(&ss.CookieName, DefaultCookieName)
	dur(&ss.IdleTimeout, DefaultSessionIdle)
	dur(&ss.AbsoluteTimeout, DefaultSessionAbsolute)
	str(&ss.Store, DefaultSessionStore)
	if c.TLS.Storage == "" {
		c.TLS.Storage = "file"
		if ss.Store == "redis" {
			c.TLS.Storage = "redis"
		}
	}
	num(&ss.MaxSessions, DefaultMaxSessions)

	str(&c.Assertion.Issuer, s.PublicURL)
	dur(&c.Assertion.TTL, DefaultAssertionTTL)
	str(&c.Assertion.Header, DefaultAssertionHeader)

	for i := range c.Providers {
		p := &c.Providers[i]
		if p.Development {
			str(&p.DisplayName, DevelopmentDisplayName)
			if len(p.Scopes) == 0 {
				p.Scopes = slices.Clone(DevelopmentScopes)
			}
			if p.Roles.Map == nil && len(p.Roles.Always) == 0 {
				p.Roles.Map = DevelopmentRoles().Map
			}
		}
		if p.RedirectURL == "" && s.PublicURL != "" && p.ID != "" {
			p.RedirectURL = s.PublicURL + callbackPathPrefix + p.ID
		}
		if !slices.Contains(p.Scopes, "openid") {
			p.Scopes = append([]string{"openid"}, p.Scopes...)
		}
		if len(p.SigningAlgs) == 0 {
			p.SigningAlgs = slices.Clone(DefaultSigningAlgs)
		}
		str(&p.Roles.Claim, DefaultRoleClaim)
		dur(&p.Timeout, DefaultProviderTimeout)
		dur(&p.MaxTokenAge, DefaultMaxTokenAge)
		num(&p.MaxIDTokenBytes, DefaultMaxIDTokenBytes)
	}
	for i := range c.Bearer {
		b := &c.Bearer[i]
		if len(b.SigningAlgs) == 0 {
			b.SigningAlgs = slices.Clone(DefaultSigningAlgs)
		}
		str(&b.Roles.Claim, DefaultRoleClaim)
	}
	for i := range c.Routes {
		r := &c.Routes[i]
		if r.MaxBodyBytes == 0 {
			r.MaxBodyBytes = DefaultRouteMaxBodyBytes
		}
		dur(&r.Timeout, DefaultRouteTimeout)
	}

	rl, drl := &c.RateLimits, DefaultRateLimits()
	// A limit the file sets, even to zeros, is kept for Validate to refuse
	// (rate 0 is not "no limit"); only a limit left out takes the default.
	if rl.PerClient == (RateLimit{}) && !set("rate_limits.per_client") {
		rl.PerClient = drl.PerClient
	}
	if rl.PerSubject == (RateLimit{}) && !set("rate_limits.per_subject") {
		rl.PerSubject = drl.PerSubject
	}
	if rl.BackchannelLogout == (RateLimit{}) && !set("rate_limits.backchannel_logout") {
		rl.BackchannelLogout = drl.BackchannelLogout
	}
	num(&rl.MaxClients, drl.MaxClients)
	num(&c.Inspection.ParanoiaLevel, DefaultParanoiaLevel)
	num(&c.Inspection.AnomalyThreshold, DefaultAnomalyThreshold)

	for i := range c.Routes {
		if p := c.Routes[i].Policy; p != nil && p.BreakGlass != nil {
			dur(&p.BreakGlass.Duration, DefaultBreakGlassDuration)
		}
	}

	str(&c.Audit.File, AuditFileIn(c.DataDir))
	str(&c.Audit.CheckpointDir, AuditCheckpointDirIn(c.DataDir))
	num(&c.Audit.CheckpointEvery, DefaultAuditCheckpointEvery)
	dur(&c.Audit.CheckpointInterval, DefaultAuditCheckpointInterval)
	dur(&c.Audit.FsyncInterval, DefaultAuditFsyncInterval)
	if c.Audit.RotateSize == 0 {
		c.Audit.RotateSize = DefaultAuditRotateSize
	}
	dur(&c.Audit.RotateAge, DefaultAuditRotateAge)
	str(&c.Audit.OnFailure, DefaultAuditOnFailure)
	str(&c.Audit.OnFailurePublic, DefaultAuditOnFailurePublic)
	c.Audit.Ship.applyDefaults()
	c.Audit.Witness.applyDefaults()

	str(&c.Log.Format, DefaultLogFormat)
	str(&c.Log.Level, DefaultLogLevel)

	forEachSection(c, func(_ string, sec reflect.Value) {
		if d, ok := sec.Addr().Interface().(SectionDefaulter); ok {
			d.ApplyDefaults(c)
		}
	})
	c.defaulted = true
}

// AuditFileIn is the default audit trail in dataDir:
// <dataDir>/audit/audit.log.
func AuditFileIn(dataDir string) string {
	return filepath.Join(dataDir, filepath.FromSlash(defaultAuditFileInDataDir))
}

// AuditCheckpointDirIn is the default checkpoint directory in dataDir:
// <dataDir>/audit-checkpoints. Put it on another volume than the trail.
func AuditCheckpointDirIn(dataDir string) string {
	return filepath.Join(dataDir, defaultAuditCheckpointDir)
}

// ErrNoDefaults is returned by the builders (node.Build, gateway.New,
// auth.NewView, …) for a configuration whose defaults were never applied:
// they read every setting from the configuration and fill in none.
var ErrNoDefaults = errors.New("configuration without defaults: load it with config.Load or call its ApplyDefaults method first")

// Defaulted reports whether ApplyDefaults (or Load, which calls it) has
// run on c. CheckDefaulted is the same as an error.
func (c *Config) Defaulted() bool { return c != nil && c.defaulted }

// CheckDefaulted returns ErrNoDefaults unless c's defaults are applied.
func (c *Config) CheckDefaulted() error {
	if !c.Defaulted() {
		return ErrNoDefaults
	}
	return nil
}

// derivePublicURL is https:// + the first TLS host name, with the listen
// port when it is not 443.
func derivePublicURL(c *Config) string {
	if len(c.TLS.Hosts) == 0 || len(c.TLS.Hosts[0].Names) == 0 {
		return ""
	}
	host := strings.TrimSuffix(strings.ToLower(c.TLS.Hosts[0].Names[0]), ".")
	if host == "" || strings.HasPrefix(host, "*") {
		return ""
	}
	if _, port, err := net.SplitHostPort(c.Server.Listen); err == nil && port != "443" && port != "" {
		return "https://" + net.JoinHostPort(host, port)
	}
	return "https://" + host
}

// forEachSection calls fn with every top-level section of c (each exported
// struct field with a YAML key), addressable.
func forEachSection(c *Config, fn func(key string, sec reflect.Value)) {
	v := reflect.ValueOf(c).Elem()
	fields, names := yamlFields(v.Type())
	for _, key := range names {
		f := v.Field(fields[key])
		if f.Kind() == reflect.Struct {
			fn(key, f)
		}
	}
}

// DemoSource is Config.Source for the built-in demo configuration.
const DemoSource = "(built-in demo)"

// Demo defaults.
const (
	DemoListen = "localhost:8443"
	DemoAdmin  = "127.0.0.1:9090"
	// DemoRelay is the demo relay's UDP listener and relay address.
	DemoRelay = "127.0.0.1:3478"
)

// DemoOptions are the runtime facts the demo configuration needs.
type DemoOptions struct {
	// Listen is the public HTTPS listener. Default DemoListen.
	Listen string
	// Admin is the admin listener. Default DemoAdmin.
	Admin string
	// Relay is the TURN relay's UDP listener, a loopback IP and port; it
	// is also the relay address. Default DemoRelay.
	Relay string
	// DataDir default DefaultDataDir; made absolute against the working
	// directory.
	DataDir string
	// Upstream is the URL of the demo upstream app.
	Upstream string
}

// Demo returns the built-in demo configuration: the whole product on
// localhost with a local CA, the development provider "demo" (node.Run
// starts it and fills in its issuer and client), and four routes to the
// demo app — "/" (any signed-in user), "/clinic/" (role clinician),
// "/admin/" (role admin with MFA) and "/public/" (public).
// Defaults are applied; the plain-HTTP redirect listener is off.
// Source is DemoSource. Call Validate on the result before use.
func Demo(o DemoOptions) *Config {
	if o.Listen == "" {
		o.Listen = DemoListen
	}
	if o.Admin == "" {
		o.Admin = DemoAdmin
	}
	if o.DataDir == "" {
		o.DataDir = DefaultDataDir
	}
	if abs, err := filepath.Abs(o.DataDir); err == nil {
		o.DataDir = abs
	}
	publicURL := "https://localhost"
	if _, port, err := net.SplitHostPort(o.Listen); err == nil && port != "443" {
		publicURL = "https://" + net.JoinHostPort("localhost", port)
	}
	claims := []string{"name", "email"}
	route := func(id, path string, p *Policy) Route {
		return Route{
			ID:              id,
			Path:            path,
			Upstream:        o.Upstream,
			Providers:       []string{"demo"},
			Policy:          p,
			AssertionClaims: slices.Clone(claims),
		}
	}
	c := &Config{
		DataDir: o.DataDir,
		Server: Server{
			Listen:    o.Listen,
			Admin:     o.Admin,
			PublicURL: publicURL,
		},
		TLS:       TLS{Hosts: []TLSHost{{Names: []string{"localhost"}, Mode: "local"}}},
		Providers: []Provider{{ID: "demo", Development: true}},
		Routes: []Route{
			route("home", "/", &Policy{Allow: []Rule{{Authenticated: true}}}),
			route("clinic", "/clinic/", &Policy{Allow: []Rule{{Roles: []string{"clinician"}}}}),
			route("admin", "/admin/", &Policy{Allow: []Rule{{Roles: []string{"admin"}}}, RequireMFA: true}),
			route("public", "/public/", &Policy{Public: true}),
		},
		Log:    Log{Format: "text", Level: "info"},
		Source: DemoSource,
	}

	// Relay and visits in demo mode, on loopback only. Sections that
	// implement DemoDefaulter (Relay, Visits, …) set their own demo
	// settings here, before the common defaults.
	c.Relay.Enabled = true
	if o.Relay == "" {
		o.Relay = DemoRelay
	}
	c.Relay.Listen = o.Relay
	c.Relay.RelayAddresses = []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	if ap, err := netip.ParseAddrPort(o.Relay); err == nil {
		c.Relay.RelayAddresses = []netip.Addr{ap.Addr()}
	}
	c.Visits.Enabled = true
	// The WAF (Coraza + OWASP CRS) inspects every demo route.
	c.Inspection.Enabled = true
	forEachSection(c, func(_ string, sec reflect.Value) {
		if d, ok := sec.Addr().Interface().(DemoDefaulter); ok {
			d.DemoDefaults(c, o)
		}
	})

	c.ApplyDefaults()
	c.Server.HTTPListen = "" // no plain-HTTP listener in demo mode
	return c
}
