// Package devop is telegate's development OpenID Provider: a DEMO identity
// provider for `telegate demo`, for a provider declared with
// `development: true` under `telegate run` (node starts both the same way),
// and for end-to-end tests. It is built on
// github.com/zitadel/oidc/v3/pkg/op with an in-memory, bounded op.Storage and
// serves plain HTTP on a loopback address only.
//
// What it implements (OpenID Connect Core 1.0 unless noted):
//   - discovery at /.well-known/openid-configuration (OIDC Discovery 1.0 §4);
//   - the authorization code flow with PKCE, S256 only and mandatory
//     (RFC 7636 §4.3, §4.6): an authorization request without an S256
//     code_challenge is refused, and a token request whose code_verifier
//     does not match is refused with invalid_grant;
//   - nonce echoed in the ID token (§3.1.2.1, §2), sid (OIDC Front-/Back-
//     Channel Logout), amr (RFC 8176), groups, name, email,
//     preferred_username in the ID token and at UserInfo (§5.3);
//   - refresh tokens with rotation (RFC 6749 §6, RFC 6819 §5.2.2.3) when
//     offline_access is requested;
//   - RP-initiated logout (OIDC RP-Initiated Logout 1.0 §2-§3) honouring
//     id_token_hint, post_logout_redirect_uri registered per client and state;
//   - Back-Channel Logout (OIDC Back-Channel Logout 1.0 §2.4-§2.5), started by
//     [Server.BackchannelLogout].
//
// It signs with an ES256 (P-256) key generated at start; nothing is persisted.
// It is not an identity provider for production and says so on every page.
package devop

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
	"golang.org/x/text/language"
)

// User is one account of the demo provider. Username is also the subject
// (sub claim) of the user's tokens.
type User struct {
	Username string
	// Password is compared in constant time; demo accounts use "demo".
	Password string
	Name     string
	Email    string
	// Groups is released as the "groups" claim.
	Groups []string
	// AMR is released as the "amr" claim (RFC 8176 §2), e.g. [pwd otp mfa].
	AMR []string
}

// Client is one registered relying party (OAuth 2.0 client).
type Client struct {
	ID string
	// Secret authenticates the client at the token endpoint
	// (client_secret_basic or client_secret_post, RFC 6749 §2.3.1). Empty
	// makes a public client (token_endpoint_auth_method "none"), which
	// still must use PKCE.
	Secret string
	// RedirectURIs are matched exactly (RFC 6749 §3.1.2.3).
	RedirectURIs []string
	// PostLogoutRedirectURIs are matched exactly (RP-Initiated Logout 1.0 §3).
	PostLogoutRedirectURIs []string
	// BackchannelLogoutURI receives logout tokens (Back-Channel Logout 1.0
	// §2.2). It must name a loopback host. Empty: no back-channel logout.
	BackchannelLogoutURI string
}

// Options configures [Start].
type Options struct {
	// Addr is the listen address, "host:port", host a loopback IP literal or
	// "localhost". Default "127.0.0.1:0". Any other host is refused.
	Addr string
	// Users default to [DemoUsers].
	Users   []User
	Clients []Client
	// Logger for operational messages (no tokens, codes, passwords or query
	// strings are logged). Default slog.Default().
	Logger *slog.Logger
	// Now is an optional injected clock for token iat/exp, auth_time and the
	// OP's own expiry checks. Default time.Now.
	Now func() time.Time
	// HTTPClient sends back-channel logout POSTs. Default a client with a
	// 10 s timeout.
	HTTPClient *http.Client
}

// DemoUsers returns the built-in demo accounts, all with password "demo":
// clinician@demo.test (groups [clinicians], amr [pwd otp mfa]),
// patient@demo.test (groups [patients], amr [pwd]) and admin@demo.test
// (groups [admins], amr [pwd otp mfa]).
func DemoUsers() []User {
	return []User{
		{Username: "clinician@demo.test", Password: "demo", Name: "Dr. Demo Clinician", Email: "clinician@demo.test", Groups: []string{"clinicians"}, AMR: []string{"pwd", "otp", "mfa"}},
		{Username: "patient@demo.test", Password: "demo", Name: "Demo Patient", Email: "patient@demo.test", Groups: []string{"patients"}, AMR: []string{"pwd"}},
		{Username: "admin@demo.test", Password: "demo", Name: "Demo Admin", Email: "admin@demo.test", Groups: []string{"admins"}, AMR: []string{"pwd", "otp", "mfa"}},
	}
}

// Server is a running development OpenID Provider.
type Server struct {
	issuer     string
	ln         net.Listener
	srv        *http.Server
	st         *storage
	provider   *op.Provider
	log        *slog.Logger
	httpClient *http.Client
	demoUsers  bool
	// injectedClock: Options.Now was given, ID tokens are re-stamped.
	injectedClock bool

	closeOnce sync.Once
	closeErr  error
	stopCtx   func() bool
}

// Errors returned by [Start] and [Server.BackchannelLogout].
var (
	// ErrNotLoopback: the address or URI does not name a loopback host.
	ErrNotLoopback = errors.New("devop: the demo identity provider only uses loopback addresses")
	// ErrUnknownUser: no such username.
	ErrUnknownUser = errors.New("devop: unknown user")
)

const (
	idTokenLifetime     = 10 * time.Minute
	accessTokenLifetime = 10 * time.Minute
	refreshLifetime     = 12 * time.Hour
	sessionLifetime     = 12 * time.Hour
	authRequestLifetime = 10 * time.Minute
	maxEntries          = 10000
	maxBodyBytes        = 64 << 10
	maxLoginFailures    = 5
	pathLogin           = "/login"
	pathLoggedOut       = "/logged-out"
)

// Start listens on o.Addr and serves the provider until [Server.Close] or
// until ctx is done. It fails when o.Addr is not a loopback address
// ([ErrNotLoopback]) or cannot be bound.
func Start(ctx context.Context, o Options) (*Server, error) {
	if o.Addr == "" {
		o.Addr = "127.0.0.1:0"
	}
	if err := checkLoopbackAddr(o.Addr); err != nil {
		return nil, err
	}
	if o.Users == nil {
		o.Users = DemoUsers()
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	injectedClock := o.Now != nil
	if !injectedClock {
		o.Now = time.Now
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	for _, c := range o.Clients {
		if err := checkClient(c); err != nil {
			return nil, err
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("devop: generate signing key: %w", err)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", o.Addr)
	if err != nil {
		return nil, fmt.Errorf("devop: listen on %s: %w", o.Addr, err)
	}
	// The bound address is loopback as checked; name it by IP so that the
	// issuer is exact.
	ap, err := netip.ParseAddrPort(ln.Addr().String())
	if err != nil || !ap.Addr().Unmap().IsLoopback() {
		_ = ln.Close()
		return nil, ErrNotLoopback
	}
	issuer := "http://" + netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()).String()

	st, err := newStorage(o.Users, key, randomID(), o.Now)
	if err != nil {
		_ = ln.Close()
		return nil, err
	}
	for _, c := range o.Clients {
		st.addClient(c)
	}
	var cryptoKey [32]byte
	if _, err := rand.Read(cryptoKey[:]); err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("devop: generate token key: %w", err)
	}
	cfg := &op.Config{
		CryptoKey:                         cryptoKey,
		CryptoKeyId:                       randomID(),
		DefaultLogoutRedirectURI:          pathLoggedOut,
		CodeMethodS256:                    true,
		AuthMethodPost:                    true,
		GrantTypeRefreshToken:             true,
		SupportedUILocales:                []language.Tag{language.English},
		SupportedClaims:                   append(append([]string{}, op.DefaultSupportedClaims...), "groups", "sid", "email_verified"),
		SupportedScopes:                   []string{oidc.ScopeOpenID, oidc.ScopeProfile, oidc.ScopeEmail, "groups", oidc.ScopeOfflineAccess},
		BackChannelLogoutSupported:        true,
		BackChannelLogoutSessionSupported: true,
	}
	provider, err := op.NewProvider(cfg, st, op.StaticIssuer(issuer), op.WithAllowInsecure())
	if err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("devop: create provider: %w", err)
	}
	s := &Server{
		issuer:     issuer,
		ln:         ln,
		st:         st,
		provider:   provider,
		log:        o.Logger,
		httpClient: o.HTTPClient,
		demoUsers:  isDemoUsers(o.Users),

		injectedClock: injectedClock,
	}
	s.srv = &http.Server{
		Handler:           s.handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      15 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(o.Logger.Handler(), slog.LevelWarn),
	}
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("demo identity provider stopped", "error", err)
		}
	}()
	s.stopCtx = context.AfterFunc(ctx, func() { _ = s.Close() })
	s.log.Warn("DEMO identity provider running: for development and tests only", "issuer", issuer)
	return s, nil
}

// Issuer is the provider's issuer URL, "http://127.0.0.1:PORT" (or
// "http://[::1]:PORT"), with no trailing slash (OIDC Discovery 1.0 §4.3).
func (s *Server) Issuer() string { return s.issuer }

// AddClient registers c, replacing a client with the same ID. It is for
// relying parties whose redirect URI is known only once they listen. A
// client whose BackchannelLogoutURI is not loopback is not registered and
// an error is logged.
func (s *Server) AddClient(c Client) {
	if err := checkClient(c); err != nil {
		s.log.Error("demo identity provider: client not registered", "client_id", c.ID, "error", err)
		return
	}
	s.st.addClient(c)
}

// Close stops the listener and ends in-flight requests after at most 5 s.
// It is safe to call more than once.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		if s.stopCtx != nil {
			s.stopCtx()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.srv.Shutdown(ctx); err != nil {
			s.closeErr = errors.Join(err, s.srv.Close())
		}
	})
	return s.closeErr
}

func (s *Server) handler() http.Handler {
	mux := http.NewServeMux()
	login := op.NewIssuerInterceptor(s.provider.IssuerFromRequest)
	mux.HandleFunc("GET "+pathLogin, s.loginPage)
	mux.Handle("POST "+pathLogin, login.HandlerFunc(s.loginSubmit))
	mux.HandleFunc("GET "+pathLoggedOut, s.loggedOutPage)
	mux.HandleFunc("GET /{$}", s.homePage)
	mux.Handle("/", s.clock(s.provider))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		mux.ServeHTTP(w, r)
	})
}

// checkLoopbackAddr accepts "host:port" whose host is a loopback IP literal
// or "localhost".
func checkLoopbackAddr(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("devop: address %q: %w", addr, err)
	}
	if !isLoopbackHost(host) {
		return fmt.Errorf("%w: %q", ErrNotLoopback, addr)
	}
	return nil
}

// isLoopbackHost reports whether host is a loopback IP literal (127.0.0.0/8,
// ::1, or IPv4-mapped 127/8), "localhost" or a name under ".localhost"
// (RFC 6761 §6.3).
func isLoopbackHost(host string) bool {
	h := strings.TrimSuffix(strings.ToLower(host), ".")
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true
	}
	a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(h, "["), "]"))
	if err != nil || a.Zone() != "" {
		return false
	}
	return a.Unmap().IsLoopback()
}

func checkClient(c Client) error {
	if c.ID == "" {
		return errors.New("devop: client without ID")
	}
	if c.BackchannelLogoutURI != "" {
		u, err := url.Parse(c.BackchannelLogoutURI)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || !isLoopbackHost(u.Hostname()) {
			return fmt.Errorf("%w: backchannel_logout_uri of client %q", ErrNotLoopback, c.ID)
		}
	}
	return nil
}

func isDemoUsers(users []User) bool {
	d := DemoUsers()
	if len(users) != len(d) {
		return false
	}
	for i := range d {
		if users[i].Username != d[i].Username || users[i].Password != d[i].Password {
			return false
		}
	}
	return true
}

// signingKey implements op.SigningKey and op.Key for the ES256 key.
type signingKey struct {
	id  string
	key *ecdsa.PrivateKey
}

func (k *signingKey) SignatureAlgorithm() jose.SignatureAlgorithm { return jose.ES256 }
func (k *signingKey) Key() any                                    { return k.key }
func (k *signingKey) ID() string                                  { return k.id }

type publicKey struct{ k *signingKey }

func (p publicKey) ID() string                         { return p.k.id }
func (p publicKey) Algorithm() jose.SignatureAlgorithm { return jose.ES256 }
func (p publicKey) Use() string                        { return "sig" }
func (p publicKey) Key() any                           { return &p.k.key.PublicKey }
