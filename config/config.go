// Package config holds telegate's configuration: the schema of its one YAML
// file, the safe defaults, and (in load.go) strict decoding and whole-file
// validation with file:line for every error.
//
// The types here are the contract between the planes: gateway, auth,
// policies and media each read their own section and nothing else.
package config

import (
	"net/netip"
	"time"
)

// Config is the whole configuration file. Field names follow the YAML keys.
type Config struct {
	// DataDir holds the session store, the local CA, certmagic storage, the
	// gateway signing key and the audit trail. Default "./telegate-data".
	DataDir string `yaml:"data_dir"`

	Server      Server      `yaml:"server"`
	Connections Connections `yaml:"connections"`
	TLS         TLS         `yaml:"tls"`
	Sessions    Sessions    `yaml:"sessions"`
	Assertion   Assertion   `yaml:"assertion"`
	Providers   []Provider  `yaml:"providers"`
	Bearer      []Bearer    `yaml:"bearer"`
	ClientCAs   []ClientCA  `yaml:"client_cas"`
	Routes      []Route     `yaml:"routes"`
	RateLimits  RateLimits  `yaml:"rate_limits"`
	Inspection  Inspection  `yaml:"inspection"`
	Audit       Audit       `yaml:"audit"`
	Relay       Relay       `yaml:"relay"`
	Visits      Visits      `yaml:"visits"`
	Redis       Redis       `yaml:"redis"`
	Log         Log         `yaml:"log"`
	// BreakGlass configures the review of emergency access and who is
	// told of it.
	BreakGlass BreakGlassSettings `yaml:"break_glass"`
	// Webhooks bounds the outbox of the webhooks (how many deliveries
	// wait, for how long, how far apart their attempts).
	Webhooks Webhooks `yaml:"webhooks"`

	// Source is the file the configuration was read from ("" for built-in
	// configurations such as the demo). Not part of the YAML.
	Source string `yaml:"-"`
	// Warnings are settings that are valid but probably not what was meant
	// (a route without a policy, an inline secret), found by Load or
	// Validate. Not part of the YAML.
	Warnings []FieldError `yaml:"-"`

	// positions are the file positions of the fields (see Problem).
	positions *decoder
	// defaulted is set by ApplyDefaults (and Load): the builders read
	// every setting from the configuration and have no defaults of their
	// own, so they refuse a configuration built in code without it.
	defaulted bool
}

// Server configures the listeners and HTTP hardening.
type Server struct {
	// Listen is the public HTTPS listener, "host:port". Default ":443".
	Listen string `yaml:"listen"`
	// HTTPListen is the plain-HTTP listener that only redirects to HTTPS and
	// answers ACME HTTP-01 challenges. "" disables it. Default ":80".
	HTTPListen string `yaml:"http_listen"`
	// Admin is the admin listener (/healthz, /readyz, /metrics). It must be a
	// loopback or private address. Default "127.0.0.1:9090".
	Admin string `yaml:"admin"`
	// PublicURL is the external base URL of the gateway, e.g.
	// "https://gw.hospital.example". It is the assertion issuer and the base
	// of every redirect URI. Default derived from the first TLS host.
	PublicURL string `yaml:"public_url"`
	// TrustedProxies are the CIDRs whose X-Forwarded-For / Forwarded are
	// honoured. Default none.
	TrustedProxies []netip.Prefix `yaml:"trusted_proxies"`

	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"` // default 5s
	ReadTimeout       time.Duration `yaml:"read_timeout"`        // default 30s
	WriteTimeout      time.Duration `yaml:"write_timeout"`       // default 0 (streaming); per-route timeouts apply
	IdleTimeout       time.Duration `yaml:"idle_timeout"`        // default 120s
	// SendTimeout bounds each write of a response to the client, not the
	// whole response (nginx's send_timeout): a write that makes no
	// progress this long — a client that stops reading, or keeps an
	// HTTP/2 flow-control window at zero — ends the response (HTTP/1.1:
	// the connection; HTTP/2: the stream, RST_STREAM). Idle time between
	// writes (server-sent events, long polls) does not count. At least
	// 1s; default 60s.
	SendTimeout    time.Duration `yaml:"send_timeout"`
	MaxHeaderBytes int           `yaml:"max_header_bytes"` // default 65536
	// MaxQueryParams is the cap on query parameters per request (400 past it).
	// Default 100.
	MaxQueryParams int `yaml:"max_query_params"`
	// H2MaxRequestsPerSecond bounds new streams per HTTP/2 connection; a
	// connection past it is closed (CVE-2023-44487 rapid reset). Default 200.
	H2MaxRequestsPerSecond float64 `yaml:"h2_max_requests_per_second"`
	// H2MaxConcurrentStreams per HTTP/2 connection. Default 100.
	H2MaxConcurrentStreams uint32 `yaml:"h2_max_concurrent_streams"`
	// HSTSMaxAge for Strict-Transport-Security on telegate's own pages.
	// Default 365 days.
	HSTSMaxAge time.Duration `yaml:"hsts_max_age"`
	// ShutdownTimeout bounds the drain on SIGTERM or SIGINT: /readyz answers
	// 503 at once, the listeners stop accepting, and requests in flight get
	// this long to finish while signaling WebSockets are closed with 1001
	// (going away) so their pages rejoin — at once, or after
	// visits.drain_timeout, when the calls are moved; connections still
	// open after it are closed. Default 20s.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
}

// Connections bounds the TCP connections of every listener — the HTTPS
// listener (TURN over TLS on it included), the relay's dedicated TLS
// listener, the plain-HTTP listener and the admin listener — each
// listener with its own counts (internal/admission). A source is an IPv4
// address or an IPv6 /64. A connection is pending until its handshake is
// done (TLS; on plain HTTP, the first bytes of a request), then
// established: active or idle (keep-alive). A newcomer is not refused
// while something older can make room: past a source's pending cap its
// oldest pending connection is closed; past the listener's pending cap,
// the oldest pending connection of the source holding the most; past a
// source's or the listener's connection cap, an idle connection first.
// Fixed while telegate runs (restart to apply a change).
type Connections struct {
	// MaxPending caps connections whose handshake is not done, per
	// listener. Default 1024.
	MaxPending int `yaml:"max_pending"`
	// MaxPendingPerSource caps them per source; at most max_pending.
	// Default 32.
	MaxPendingPerSource int `yaml:"max_pending_per_source"`
	// MaxConns caps every connection of a listener (pending and
	// established); at least max_pending. Default 16384.
	MaxConns int `yaml:"max_conns"`
	// MaxConnsPerSource caps established connections (active and idle
	// keep-alive ones) per source; at most max_conns. Raise it for a site
	// whose clients share one address (NAT). Default 512.
	MaxConnsPerSource int `yaml:"max_conns_per_source"`
	// FirstByteTimeout is how long a new connection may take to send its
	// first byte (of the TLS ClientHello, RFC 8446 §4.1.2, or of a
	// plain-HTTP request); at most handshake_timeout. Default 2s.
	FirstByteTimeout time.Duration `yaml:"first_byte_timeout"`
	// HandshakeTimeout is how long a new connection may take, from
	// accept, to finish its TLS handshake (on plain HTTP, to send its
	// first bytes). Default 10s.
	HandshakeTimeout time.Duration `yaml:"handshake_timeout"`
}

// TLS configures certificates: one entry per set of host names.
type TLS struct {
	// MinVersion is "1.2" (default) or "1.3"; a reload applies it from the
	// next handshake on every TLS listener.
	MinVersion string    `yaml:"min_version"`
	Hosts      []TLSHost `yaml:"hosts"`
	ACME       ACME      `yaml:"acme"`
	// Storage is where ACME certificates, their private keys and the ACME
	// account live: "file" (certmagic file storage in
	// <data_dir>/certmagic, this node only) or "redis" (the Redis of
	// redis.addr, shared by every node: one node obtains or renews a
	// certificate at a time, under a lock that expires when its holder
	// dies, and every node serves it). Every value is sealed with
	// AES-256-GCM under StorageKeyFile's key either way; plaintext files
	// a file storage holds from an earlier version are sealed at the first
	// start. Default "redis" with sessions.store "redis" (several nodes),
	// else "file". Leaves of mode "local" stay in the file storage of
	// their node, as its local CA does.
	Storage string `yaml:"storage"`
	// StorageKeyFile names a file holding the 32-byte key (base64, e.g.
	// openssl rand -base64 32) that seals Storage, the same on every
	// node. Default: with tls.storage "redis", a key derived from the
	// session encryption key (sessions.encryption_key or
	// sessions.encryption_key_file, then required), the same on every
	// node given the same session key; with "file",
	// <data_dir>/keys/tls-storage.key, generated once (mode 0600). The
	// node's own file storage (and the local CA's root.key) is sealed
	// under this file's key, or the generated one, in either mode. A wrong key makes telegate refuse to
	// start rather than obtain new certificates over the ones it cannot
	// open.
	StorageKeyFile string `yaml:"storage_key_file"`
}

// TLSHost says how certificates for Names are obtained.
type TLSHost struct {
	// Names are the host names (RFC 1123) this entry covers; "*.example"
	// wildcards only with mode "files" or "local".
	Names []string `yaml:"names"`
	// Mode is "acme", "files" or "local".
	Mode string `yaml:"mode"`
	// CertFile and KeyFile (PEM) for mode "files"; picked up again when
	// they change.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// ACME configures the ACME issuer (RFC 8555) used by hosts in mode "acme".
type ACME struct {
	// CA is the directory URL. Default Let's Encrypt production.
	CA string `yaml:"ca"`
	// Email is the ACME account contact (RFC 8555 §7.3). Optional.
	Email string `yaml:"email"`
	// CARootFile is a PEM bundle to trust for the CA's own HTTPS (a private
	// ACME CA). Optional.
	CARootFile string `yaml:"ca_root_file"`
	// Challenges enabled: "http-01", "tls-alpn-01". Default both.
	Challenges []string `yaml:"challenges"`
	// RenewBefore is the fraction of the lifetime left at which certificates
	// are renewed. Default certmagic's (1/3).
	RenewalWindowRatio float64 `yaml:"renewal_window_ratio"`
}

// Sessions configures server-side sessions.
type Sessions struct {
	// CookieName must start with "__Host-". Default "__Host-telegate".
	CookieName string `yaml:"cookie_name"`
	// IdleTimeout: a session unused this long ends. Use is a request
	// (not one marked X-Telegate-Background: 1) or an open video call;
	// it is recorded every quarter of this (at most every minute).
	// Default 15m.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// AbsoluteTimeout: a session ends this long after sign-in. Default 12h.
	AbsoluteTimeout time.Duration `yaml:"absolute_timeout"`
	// Store is "file" (default; encrypted embedded store in the data
	// directory) or "redis". Visits follow it: with "redis" they live in
	// the same Redis (shared by every node), their records sealed and
	// their invite links signed with keys derived from the session
	// encryption key, which must then be given, the same on every node.
	Store string `yaml:"store"`
	// EncryptionKey (base64, 32 bytes) encrypts sessions at rest; from
	// ${ENV} or EncryptionKeyFile. Default: generated once in the data
	// directory.
	EncryptionKey     string `yaml:"encryption_key"`
	EncryptionKeyFile string `yaml:"encryption_key_file"`
	// MaxSessions caps the store; the least recently used are evicted.
	// Default 100000.
	MaxSessions int `yaml:"max_sessions"`
}

// Assertion configures the identity assertion minted for upstreams.
type Assertion struct {
	// Issuer of the assertion JWT. Default Server.PublicURL.
	Issuer string `yaml:"issuer"`
	// TTL of each assertion. Default 60s.
	TTL time.Duration `yaml:"ttl"`
	// SigningKeyFile is a PEM EC P-256 private key. Default: generated once
	// in the data directory (keys/assertion.pem, sealed with AES-256-GCM
	// under the key that seals the node's certificate file storage, as
	// tls.storage_key_file says; one an earlier version left in clear is
	// sealed at the next start).
	SigningKeyFile string `yaml:"signing_key_file"`
	// Header carrying the assertion: an X- header name that the proxy does
	// not manage. Default "X-Telegate-Assertion".
	Header string `yaml:"header"`
}

// Provider is one OpenID Provider the relying party trusts.
type Provider struct {
	// ID names the provider in routes and URLs ([a-z0-9-]+).
	ID string `yaml:"id"`
	// DisplayName on the chooser page. Default "Development sign-in — not
	// for patients" for the development provider.
	DisplayName string `yaml:"display_name"`
	// TrustUnverifiedEmail keeps the email claim when the provider does
	// not say it verified it (email_verified absent or false). By default
	// an unverified email is dropped: a policy rule, a role mapping or the
	// assertion never sees an address the person may not own (OIDC Core
	// §5.1). phone_number is kept only with phone_number_verified true,
	// whatever this says.
	TrustUnverifiedEmail bool `yaml:"trust_unverified_email"`
	// Development makes this the development provider: telegate starts its
	// built-in development OpenID Provider (the one `telegate demo` uses,
	// with the demo clinician, patient and admin, password "demo") on
	// loopback and fills in Issuer, ClientID and ClientSecret, which must
	// then be absent. Allowed only when every listener (server.listen,
	// server.http_listen, server.admin, the relay's listeners and relay
	// addresses) is on loopback and public_url names a loopback host. Its
	// scopes default to [openid, profile, email, groups] and its role
	// mapping to the demo's (clinicians, patients, admins). For trying
	// `telegate run` locally: development sign-in, not for patients.
	Development bool `yaml:"development"`
	// Issuer URL; discovery at Issuer/.well-known/openid-configuration must
	// return exactly this issuer. Required, except for the development
	// provider.
	Issuer string `yaml:"issuer"`
	// ClientID registered at the provider (RFC 6749 §2.2). Required, except
	// for the development provider.
	ClientID string `yaml:"client_id"`
	// ClientSecret from ${ENV} or ClientSecretFile; never inline. Required,
	// except for the development provider.
	ClientSecret     string `yaml:"client_secret"`
	ClientSecretFile string `yaml:"client_secret_file"`
	// RedirectURL defaults to PublicURL + "/.telegate/callback/" + ID.
	RedirectURL string `yaml:"redirect_url"`
	// Scopes requested; "openid" is always included.
	Scopes []string `yaml:"scopes"`
	// SigningAlgs accepted for ID tokens. Default [RS256, ES256].
	SigningAlgs []string `yaml:"signing_algs"`
	// UserInfo: fetch UserInfo and require its sub to equal the ID token's.
	UserInfo bool `yaml:"userinfo"`
	// Roles maps claims to telegate roles.
	Roles RoleMapping `yaml:"roles"`
	// CARootFile trusts a private CA for this provider's HTTPS. Optional.
	CARootFile string `yaml:"ca_root_file"`
	// Timeout for each call to the provider. Default 10s.
	Timeout time.Duration `yaml:"timeout"`
	// BackchannelLogout enables /.telegate/backchannel-logout/{id}.
	BackchannelLogout bool `yaml:"backchannel_logout"`
	// MaxTokenAge is how old an ID token or logout token may be: one whose
	// iat (RFC 7519 §4.1.6) lies further back is refused, so that a token
	// captured once cannot sign in or log out long after. At least 1m.
	// Default 10m.
	MaxTokenAge time.Duration `yaml:"max_token_age"`
	// MaxIDTokenBytes caps an ID token (its compact serialisation, bytes):
	// a larger one is refused with a sign-in error page, since the session
	// keeps it and sign-out sends it back to the provider. Between 1024 and
	// 1048576. Default 16384 (16 KiB).
	MaxIDTokenBytes int `yaml:"max_id_token_bytes"`
	// MFAAMR and MFAACR are what this provider's sign-ins must show to
	// count as multi-factor for require_mfa and break-glass: an amr value
	// (RFC 8176 §2) of MFAAMR, or an acr value (OIDC Core §2) of MFAACR.
	// Setting either replaces the default rule for this provider, which
	// is: amr names "mfa", or factors of two kinds (known: pwd, pin, kba;
	// held: otp, hwk, swk, sms, tel, sc; the person: fpt, face, iris,
	// retina, vbm). A knowledge factor alone (pwd, pin, kba) is refused
	// here. Default none (the default rule).
	MFAAMR []string `yaml:"mfa_amr"`
	MFAACR []string `yaml:"mfa_acr"`
}

// RoleMapping turns claims into roles.
type RoleMapping struct {
	// Claim holding group names. Default "groups".
	Claim string `yaml:"claim"`
	// Map from a group value to roles.
	Map map[string][]string `yaml:"map"`
	// Always: roles everyone from this provider gets (e.g. [patient]).
	Always []string `yaml:"always"`
}

// Bearer accepts JWT access tokens (RFC 9068) from an issuer on API routes.
type Bearer struct {
	// ID names the issuer in routes' bearer lists ([a-z0-9-]+).
	ID string `yaml:"id"`
	// Issuer is the exact "iss" of accepted tokens; https (http only for
	// loopback hosts).
	Issuer string `yaml:"issuer"`
	// Audience: a token's "aud" must contain one of these (RFC 9068 §4).
	// Required.
	Audience []string `yaml:"audience"`
	// JWKSURL defaults to the discovered jwks_uri.
	JWKSURL string `yaml:"jwks_url"`
	// SigningAlgs accepted for access tokens. Default [RS256, ES256].
	SigningAlgs []string `yaml:"signing_algs"`
	// Roles maps the token's claims to telegate roles.
	Roles RoleMapping `yaml:"roles"`
	// CARootFile trusts a private CA for the issuer's HTTPS. Optional.
	CARootFile string `yaml:"ca_root_file"`
	// RFC9068 requires the issuer's tokens to be typed as JWT access
	// tokens: JOSE header typ "at+jwt" (RFC 9068 §2.1, §4), so that an ID
	// token or another JWT of the issuer is never taken for an access
	// token. Without it a typ, when present, must be "JWT" or "at+jwt".
	// Default false.
	RFC9068 bool `yaml:"rfc9068"`
}

// ClientCA is a CA whose client certificates identify devices. A reload
// applies a changed list or a changed file (a CA added for a rotation,
// one removed): the next handshake verifies with the new CAs, a request on
// a connection a device already holds is checked against them (403 when
// none vouches for it any more), and a device's proxied WebSocket closes;
// a file that is not a PEM bundle of CA certificates refuses the reload,
// and the running CAs stay.
type ClientCA struct {
	// ID names the CA in routes' client_cert lists ([a-z0-9-]+).
	ID string `yaml:"id"`
	// CAFile is the PEM bundle of the CA certificates. Required.
	CAFile string `yaml:"ca_file"`
}

// Route is one host+path prefix with its upstream and policy.
type Route struct {
	// ID names the route in policy decisions, audit records and the
	// assertion's audience ([a-z0-9-]+, unique).
	ID string `yaml:"id"`
	// Hosts matched case-insensitively, trailing dot removed, each listed
	// once. Empty means every host named in tls.hosts (then none of them
	// may be a wildcard: list the route's hosts instead).
	Hosts []string `yaml:"hosts"`
	// Path prefix, e.g. "/clinic/". Longest prefix wins.
	Path string `yaml:"path"`
	// Upstream is the absolute http or https URL requests are forwarded
	// to: scheme, host and port only, without a path (the request path is
	// forwarded as it is).
	Upstream string `yaml:"upstream"`
	// UpstreamTLS configures TLS toward an https upstream.
	UpstreamTLS UpstreamTLS `yaml:"upstream_tls"`
	// Providers accepted for sign-in (chooser page when several). Default
	// all providers. The list binds the policy: a session from a provider
	// not listed never passes the route, whatever its rules say (403,
	// reason provider:route). Likewise a bearer token passes only from an
	// issuer in Bearer and a device only from a CA in ClientCert.
	Providers []string `yaml:"providers"`
	// API routes answer 401 JSON with WWW-Authenticate instead of a
	// redirect, and accept bearer tokens from Bearer.
	API    bool     `yaml:"api"`
	Bearer []string `yaml:"bearer"`
	// ClientCert requires a client certificate from one of these CA ids.
	ClientCert []string `yaml:"client_cert"`
	Policy     *Policy  `yaml:"policy"`
	// AllowSemicolon permits ';' in the path.
	AllowSemicolon bool `yaml:"allow_semicolon"`
	// UpstreamCaseInsensitive declares that the upstream treats paths
	// without regard to letter case (IIS, a Windows or macOS file
	// system): the route's path then matches in any case ("/Clinic/x"
	// falls under "/clinic/") and is forwarded as sent. Without it a
	// path that would fall under another route if case were ignored is
	// refused with 400 (reason path:case), so that no upstream that folds
	// case serves what another route's policy guards.
	UpstreamCaseInsensitive bool `yaml:"upstream_case_insensitive"`
	// NormalizeUnicodePaths accepts, on this route, a path whose decoded
	// text is not in Unicode Normalization Form KC (UAX #15): it is
	// normalised to NFKC ("ﬁle" → "file", "ａ" → "a"), and the
	// normalised path is matched, authorised and forwarded. Normalisation
	// that would add a '/', '\', '.', '%', ';', '?', '#', ':' or space is
	// refused, as are, on every route, text that is not valid UTF-8 and
	// invisible, format or space characters. Without it a path whose text
	// NFKC would change is refused with 400 (reason path:unicode-form);
	// non-ASCII text already in NFKC is accepted on every route.
	NormalizeUnicodePaths bool `yaml:"normalize_unicode_paths"`
	// WebSocket permits upgrades, from Origins (default the page's own
	// origin: https, the host and port the browser addressed, and the
	// route's hosts on that port). An upgraded connection is closed when
	// its session ends or a reload no longer admits it.
	WebSocket bool     `yaml:"websocket"`
	Origins   []string `yaml:"origins"`
	// MaxBodyBytes default 10 MiB.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// Timeout for the upstream response headers. Default 30s.
	Timeout time.Duration `yaml:"timeout"`
	// AssertionClaims are the claims copied into the assertion (allow-list).
	AssertionClaims []string `yaml:"assertion_claims"`
	// IdentityHeaders also sends X-Telegate-Subject and X-Telegate-Roles.
	IdentityHeaders bool `yaml:"identity_headers"`
	// ResponseHeaders set on proxied responses (e.g. CSP).
	ResponseHeaders map[string]string `yaml:"response_headers"`
	// StripRequestHeaders are request header fields removed from the
	// client's request before this route's upstream sees it, on top of
	// the reserved ones (see "Reserved request headers"): names, or
	// prefixes ending in "*" such as "X-Internal-*", matched in every
	// spelling that folds to the same name (case, "_", "."). Default
	// none.
	StripRequestHeaders []string `yaml:"strip_request_headers"`
	// Cacheable keeps the upstream's Cache-Control on a route that is not
	// public. By default such a route's responses get
	// "Cache-Control: no-store" (RFC 9111 §5.2.2.5), since they may show
	// patient data; set it only for content that is the same for every
	// signed-in user (a style sheet, an icon).
	Cacheable bool `yaml:"cacheable"`
	// RateLimit replaces both rate_limits.per_client and
	// rate_limits.per_subject for this route (its own buckets either way).
	// Default: those of rate_limits.
	RateLimit *RateLimit `yaml:"rate_limit"`
	// Inspect overrides inspection.enabled for this route.
	Inspect *bool `yaml:"inspect"`
	// InspectExclusions exempt named arguments of this route's requests
	// from groups of Core Rule Set rules, for free-text fields such as a
	// clinical note, where SQL words, quotes, "--", "<" or "|" are ordinary
	// text. The rest of the request, and these arguments for every other
	// rule group, are still inspected. The exclusions are compiled into
	// the route's own rule set when the configuration loads
	// (SecRuleUpdateTargetById), not applied per request. See "Note-field
	// exclusions". Default none.
	InspectExclusions []InspectExclusion `yaml:"inspect_exclusions"`
}

// InspectExclusion exempts arguments from rule groups (see
// routes[].inspect_exclusions).
type InspectExclusion struct {
	// Args are argument names as the rule set names them, matched without
	// regard to case: a query or form field ("note"), a multipart field,
	// or a JSON leaf by its path from the root, "json." and the keys and
	// array indexes joined by "." ("json.note.0.text"). A "*" stands for
	// one whole key or index ("json.note.*.text"). At least one.
	Args []string `yaml:"args"`
	// Groups are the rule groups the arguments are exempt from, at least
	// one of: sqli (CRS 942xxx), xss (941xxx), rce (932xxx), lfi (930xxx),
	// rfi (931xxx), php (933xxx), generic (934xxx), java (944xxx),
	// session-fixation (943xxx), protocol-attack (921xxx).
	Groups []string `yaml:"groups"`
}

// InspectRuleGroups are the rule groups of routes[].inspect_exclusions:
// each name's range of Core Rule Set rule ids (first, last).
var InspectRuleGroups = map[string][2]int{
	"protocol-attack":  {921000, 921999},
	"lfi":              {930000, 930999},
	"rfi":              {931000, 931999},
	"rce":              {932000, 932999},
	"php":              {933000, 933999},
	"generic":          {934000, 934999},
	"xss":              {941000, 941999},
	"sqli":             {942000, 942999},
	"session-fixation": {943000, 943999},
	"java":             {944000, 944999},
}

// UpstreamTLS configures TLS toward an https upstream.
type UpstreamTLS struct {
	// CAFile (PEM) is trusted for the upstream's certificate instead of the
	// system roots.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile (PEM) are the gateway's client certificate for
	// mutual TLS toward the upstream; both or neither.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName overrides the name verified in the upstream's certificate
	// (and sent as SNI).
	ServerName string `yaml:"server_name"`
}

// Policy says who may pass a route. Deny by default: a route without a
// policy, or with an empty allow list and no Public, admits nobody.
type Policy struct {
	// Public admits everyone, signed in or not; not with Allow.
	Public bool `yaml:"public"`
	// Allow: a request passes when it matches any one entry.
	Allow []Rule `yaml:"allow"`
	// RequireMFA also requires a multi-factor sign-in: by the provider's
	// mfa_amr/mfa_acr when it sets them, else amr (RFC 8176) naming "mfa",
	// or factors of two kinds (known: pwd, pin, kba; held: otp, hwk, swk,
	// sms, tel, sc; the person: fpt, face, iris, retina, vbm). "pwd" with
	// "kba" is one kind, not MFA.
	RequireMFA bool `yaml:"require_mfa"`
	// Methods, when set, are the only HTTP methods admitted (upper case).
	Methods []string `yaml:"methods"`
	// BreakGlass, when set, lets the identities it allows open this route
	// in an emergency although Allow denies them: signed in with MFA, with
	// a reason from a fixed list, for a limited time, and every grant and
	// request audited. It never opens a route to anonymous callers, never
	// waives RequireMFA or Methods. Default none.
	BreakGlass *BreakGlass `yaml:"break_glass"`
}

// BreakGlass is a route's emergency-access rule.
type BreakGlass struct {
	// Allow: who may grant themselves access, matched like Policy.Allow.
	// Required.
	Allow []Rule `yaml:"allow"`
	// Duration of one grant, at most 12h. Default 1h.
	Duration time.Duration `yaml:"duration"`
}

// Rule matches when every non-empty field matches.
type Rule struct {
	// Roles: the identity holds any one of these telegate roles.
	Roles []string `yaml:"roles"`
	// Groups: the identity is in any one of these groups.
	Groups []string `yaml:"groups"`
	// Claims: for every claim named, its value is one of those listed.
	Claims map[string][]string `yaml:"claims"`
	// Issuers: the identity's issuer is one of these.
	Issuers []string `yaml:"issuers"`
	// Subjects: the identity's subject is one of these.
	Subjects []string `yaml:"subjects"`
	// Devices: the client certificate's subject is one of these.
	Devices []string `yaml:"devices"`
	// Providers: the provider, bearer or client CA id that vouched is one
	// of these.
	Providers []string `yaml:"providers"`
	// Authenticated: any signed-in identity.
	Authenticated bool `yaml:"authenticated"`
}

// RateLimits are token buckets per route (package policies): a
// request past its bucket is answered 429 with Retry-After (RFC 6585 §4).
// There is no unlimited setting: every route is limited.
type RateLimits struct {
	// PerClient is the bucket per route and client network: one per IPv4
	// address (IPv4-mapped IPv6 counts as IPv4), one per IPv6 /64. Default
	// rate 50, burst 100.
	PerClient RateLimit `yaml:"per_client"`
	// PerSubject is the bucket per route and signed-in identity (issuer and
	// subject), after authorisation. Default rate 20, burst 40.
	PerSubject RateLimit `yaml:"per_subject"`
	// BackchannelLogout is the bucket per client network on the
	// back-channel logout endpoints (/.telegate/backchannel-logout/, OIDC
	// Back-Channel Logout 1.0), which take unauthenticated posts: a
	// provider's burst of logouts fits, a flood of junk tokens from one
	// source is answered 429. It replaces per_client there. Default rate
	// 5, burst 50.
	BackchannelLogout RateLimit `yaml:"backchannel_logout"`
	// MaxClients caps each bucket table, per client and per subject (LRU
	// eviction: an evicted client starts again with a full bucket). Default
	// 100000.
	MaxClients int `yaml:"max_clients"`
}

// RateLimit is a token bucket: Rate per second with Burst. Both are
// required when the limit is given; a limit left out takes its default.
type RateLimit struct {
	// Rate is the sustained rate in requests per second, a finite number
	// above 0 (e.g. 0.5 is one request every 2 s). 0 is refused, not read as
	// "no limit": to let a route take more, set a higher rate.
	Rate float64 `yaml:"rate"`
	// Burst is the bucket size, the requests admitted at once; at least 1.
	Burst int `yaml:"burst"`
}

// Inspection configures the WAF (Coraza with the OWASP CRS).
type Inspection struct {
	// Enabled turns inspection on for every route (routes[].inspect
	// overrides). Default false.
	Enabled bool `yaml:"enabled"`
	// ParanoiaLevel 1..4. Default 1.
	ParanoiaLevel int `yaml:"paranoia_level"`
	// AnomalyThreshold for inbound requests. Default 5.
	AnomalyThreshold int `yaml:"anomaly_threshold"`
	// DetectOnly logs instead of blocking.
	DetectOnly bool `yaml:"detect_only"`
}

// Audit configures the hash-chained audit trail.
type Audit struct {
	// File default DataDir/audit/audit.log.
	File string `yaml:"file"`
	// Key (base64) keys the chain's HMAC, and only that (client addresses
	// in logs have their own key, DataDir/keys/pseudonym.key); from
	// ${ENV} or KeyFile. Default: generated once in the data directory.
	Key     string `yaml:"key"`
	KeyFile string `yaml:"key_file"`
	// CheckpointDir receives the trail's signed checkpoints (Ed25519
	// signed notes of its Merkle tree's size and root, appended to
	// checkpoints.log) and their public verifier key, checkpoint.vkey.
	// Put it on another volume than the trail, or ship it off the node:
	// checkpoints are what shows records cut from the end of the trail.
	// Default DataDir/audit-checkpoints.
	CheckpointDir string `yaml:"checkpoint_dir"`
	// CheckpointEvery: a checkpoint at the latest after this many records.
	// Default 1000.
	CheckpointEvery int `yaml:"checkpoint_every"`
	// CheckpointInterval: a checkpoint at the latest this long after a
	// record (and one at every clean shutdown). Default 10s.
	CheckpointInterval time.Duration `yaml:"checkpoint_interval"`
	// FsyncInterval: records are written (write(2)) before the response
	// they record is sent, and fsynced in groups at most this far apart.
	// Default 100ms; at most 1s.
	FsyncInterval time.Duration `yaml:"fsync_interval"`
	// OnFailure is what a request to a route that needs an identity, or
	// to telegate's own endpoints, gets when its record cannot be written
	// (I/O error, queue full, or a record the request made on its way — a
	// sign-in, an inspection finding — was dropped): "refuse" answers 503, "degrade" serves it
	// unrecorded and counts it (telegate_edge_audit_unconfirmed_records_total).
	// Default "refuse".
	OnFailure string `yaml:"on_failure"`
	// OnFailurePublic is the same for public routes. Default "degrade".
	OnFailurePublic string `yaml:"on_failure_public"`
	// Ship sends every record to a SIEM: syslog over TLS and/or FHIR
	// Bundles over HTTPS (see audit.ship).
	Ship AuditShip `yaml:"ship"`
	// Witness, when its url is set, receives every checkpoint as it is
	// written: a signed webhook (event "audit.checkpoint", the JSON
	// object {"type", "node", "segment", "size", "root", "time", "note"},
	// note the signed note as checkpoint_dir holds it), through the
	// webhooks' outbox, so it survives restarts and a receiver down for a
	// while. A copy kept off this host shows records cut from the end even
	// when checkpoint_dir was rolled back with the trail: `telegate audit
	// verify --witnessed FILE` checks the trail against the note the
	// witness kept last. Timeout default 5s.
	Witness Webhook `yaml:"witness"`
	// RotateSize: the trail's open file is rotated into a segment file
	// (audit.log.000001, …) once a write takes it to this many bytes; the
	// chain and the Merkle tree go on across segment files. Default 64 MiB
	// (67108864); at least 65536.
	RotateSize int64 `yaml:"rotate_size"`
	// RotateAge: the open file is rotated at the first write this long
	// after its first record. Default 24h; at least 1m.
	RotateAge time.Duration `yaml:"rotate_age"`
	// EncryptionKeyFile, when set, names a file holding 32 bytes in
	// base64 (e.g. openssl rand -base64 32): segment files are then
	// sealed at rest with AES-256-GCM (a fresh key per writer session,
	// derived with HKDF; docs/architecture.md, "The audit trail"), and
	// `telegate audit verify` needs the file too. Keep a copy apart from
	// the node: without it the trail cannot be read. Default: plain files.
	EncryptionKeyFile string `yaml:"encryption_key_file"`
}

// Redis for several nodes. Every user of Redis (sessions, sign-in round
// trips, break-glass grants, rate limits, visits, the signaling bus and
// the relay registry) connects with these settings (package
// internal/redisconn builds the one set of client options).
type Redis struct {
	// Addr is the server, "host:port". Required with sessions.store "redis".
	Addr string `yaml:"addr"`
	// Username is the Redis ACL user (AUTH username password, Redis ≥ 6).
	// Default: none, which authenticates as Redis's "default" user.
	// docs/deployment.md lists the commands and keys the user needs.
	Username string `yaml:"username"`
	// Password (AUTH) from ${ENV} or PasswordFile; never inline.
	Password     string `yaml:"password"`
	PasswordFile string `yaml:"password_file"`
	// DB is the database number. Default 0.
	DB int `yaml:"db"`
	// TLS protects the connection (Redis's tls-port). Without it the
	// connection is plain TCP, which `telegate check` warns about for a
	// Redis that is not on loopback.
	TLS RedisTLS `yaml:"tls"`
}

// RedisTLS configures TLS toward Redis: TLS 1.2 or later, the server's
// certificate verified against CAFile (or the system roots) for
// ServerName (or the host of redis.addr). A certificate that does not
// verify stops the node at start: telegate never falls back to plain TCP.
type RedisTLS struct {
	// Enabled turns TLS on. Default false.
	Enabled bool `yaml:"enabled"`
	// CAFile (PEM) is trusted for Redis's certificate instead of the
	// system roots.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile (PEM) are telegate's client certificate, for a
	// Redis that requires one (tls-auth-clients yes); both or neither.
	// KeyFile follows the rule for secret files.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName is the name verified in Redis's certificate (and sent as
	// SNI). Default: the host of redis.addr.
	ServerName string `yaml:"server_name"`
}

// Log configures ordinary logging (log/slog).
type Log struct {
	// Format "json" (default) or "text".
	Format string `yaml:"format"`
	// Level "debug", "info" (default), "warn", "error".
	Level string `yaml:"level"`
}
