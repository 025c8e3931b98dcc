// Package auth is telegate's "who is this" stage: the OpenID Connect relying
// party (authorization code flow with PKCE, several providers, RP-initiated
// and back-channel logout), server-side sessions encrypted at rest, bearer
// JWT access tokens on API routes (RFC 6750, RFC 9068) and devices
// identified by client certificates.
//
// Service implements gateway.Authenticator.
package auth

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"

	"github.com/telegate/telegate/audit"
	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/page"
	"github.com/telegate/telegate/scope"
)

const (
	// maxTouchInterval: the idle clock of a session is written at most
	// this often, so reads do not turn into writes (see touchIntervalFor).
	maxTouchInterval = time.Minute
	// sweepInterval: expired sessions are removed (and their end hooks
	// run) this often.
	sweepInterval = time.Minute
	// maxJTIs caps the back-channel logout replay cache.
	maxJTIs = 10000
)

// Options configure a Service.
type Options struct {
	// Config is the whole configuration; the service reads Sessions,
	// Providers, Bearer, ClientCAs, Routes, Server.PublicURL and DataDir.
	Config *config.Config
	// Audit receives "signin", "signout" and "session.end" events.
	// Default audit.Discard.
	Audit audit.Sink
	// Logger for operational messages (never tokens, cookies or claims).
	// Default slog.Default().
	Logger *slog.Logger
	// Now is the clock for sessions and token checks. Default time.Now.
	Now func() time.Time
	// HTTPClient is the base client for calls to OpenID Providers (its
	// Transport is used; each provider's Timeout still applies).
	HTTPClient *http.Client
	// ClientCAs are the device CA pools by config.ClientCA id; nil loads
	// them from Config.ClientCAs.
	ClientCAs map[string]*x509.CertPool
	// Registry receives telegate_control_signins_total{provider,result,reason},
	// telegate_control_session_ends_total{reason} and
	// telegate_control_bearer_refusals_total{reason}. Nil: not registered.
	Registry prometheus.Registerer
	// Store replaces the default store (OpenStore). A store passed here
	// belongs to the caller, who closes it: this lets a configuration
	// reload build a new Service on the same open store. Without it the
	// service opens the default store and closes it on Close.
	Store SessionStore
}

// Service is the authentication stage. Create it with New; it is safe for
// concurrent use.
type Service struct {
	audit      audit.Sink
	log        *slog.Logger
	now        func() time.Time
	httpClient *http.Client

	store     SessionStore
	ownStore  bool
	preauth   preAuthStore
	discovery discoveries
	// cur is the view of the running generation, for work no request
	// carries (the sweeper, Active from signaling).
	cur       atomic.Pointer[View]
	refreshes singleflight.Group
	touching  sync.Map // session id → struct{}: a use being recorded
	jtiMu     sync.Mutex
	jtis      *lru.Cache[string, time.Time]
	// sharedJTIs, with sessions in Redis, holds the back-channel logout
	// tokens seen by every node (jtis is then unused).
	sharedJTIs  *RedisStore
	hooksMu     sync.RWMutex
	hooks       []func(string, *scope.Identity)
	stop        chan struct{}
	stopped     chan struct{}
	closeOnce   sync.Once
	csrfChecker *http.CrossOriginProtection
	metrics     *metrics
}

// New builds the service: it opens the session store (Options.Store or
// OpenStore) and makes the first View of Options.Config current. Provider
// and bearer discovery runs in the background and is retried with backoff
// (see View); New contacts no provider. ctx is not retained.
func New(ctx context.Context, o Options) (*Service, error) {
	if o.Config == nil {
		return nil, errors.New("auth: no configuration")
	}
	cfg := o.Config
	s := &Service{
		audit:      o.Audit,
		log:        o.Logger,
		now:        o.Now,
		httpClient: o.HTTPClient,
		stop:       make(chan struct{}),
		stopped:    make(chan struct{}),
	}
	if s.audit == nil {
		s.audit = audit.Discard{}
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.discovery.init(s.log)
	s.jtis, _ = lru.New[string, time.Time](maxJTIs)
	m, err := newMetrics(o.Registry)
	if err != nil {
		return nil, fmt.Errorf("auth: metrics: %w", err)
	}
	s.metrics = m
	s.csrfChecker = http.NewCrossOriginProtection()
	s.csrfChecker.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		page.Error(w, r, http.StatusForbidden, "This sign-out request did not come from this site.", "Use the sign-out button on the page instead.")
	}))
	v, err := NewView(cfg, s, o.ClientCAs)
	if err != nil {
		s.discovery.stop()
		return nil, err
	}

	// Session store.
	s.store = o.Store
	if s.store == nil {
		st, err := OpenStore(cfg)
		if err != nil {
			s.discovery.stop()
			return nil, err
		}
		s.store, s.ownStore = st, true
	}
	// Pre-auth records live where sessions do: with a shared Redis, a
	// sign-in may complete on another node than the one it started on.
	// So do the logout tokens seen: a replay to another node is a replay.
	if rs, ok := s.store.(*RedisStore); ok {
		s.preauth = newRedisPreAuth(rs, s.now)
		s.sharedJTIs = rs
	} else {
		s.preauth = memoryPreAuth{newPreAuthTable(maxPreAuth)}
	}
	s.Activate(v)
	v.WaitDiscovered(ctx)
	go s.sweepLoop()
	return s, nil
}

// OpenStore opens the default session store for cfg: the encrypted bbolt
// store <DataDir>/sessions.db, keyed by Sessions.EncryptionKey,
// EncryptionKeyFile or <DataDir>/keys/session.key (generated once, mode
// 0600), capped at Sessions.MaxSessions. cfg's defaults must be applied
// (config.Load, or ApplyDefaults on a configuration built in code). Sessions.Store "redis" opens a RedisStore on cfg.Redis instead
// (see openRedisFromConfig).
func OpenStore(cfg *config.Config) (SessionStore, error) {
	if err := cfg.CheckDefaulted(); err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	sc := cfg.Sessions
	if sc.Store == "redis" {
		return openRedisFromConfig(cfg)
	}
	if sc.Store != "" && sc.Store != "file" {
		return nil, fmt.Errorf("auth: sessions.store %q is not supported (use \"file\" or \"redis\")", sc.Store)
	}
	key, err := sessionKey(sc, cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	return OpenBoltStore(filepath.Join(cfg.DataDir, "sessions.db"), key, sc.MaxSessions)
}

// loadClientCA reads a device CA's bundle into a pool of its own, by the
// rule the TLS listener applies (config.ReadCACertificates).
func loadClientCA(ca config.ClientCA) (*x509.CertPool, error) {
	certs, err := config.ReadCACertificates(ca.CAFile)
	if err != nil {
		return nil, fmt.Errorf("client CA %q: %w", ca.ID, err)
	}
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p, nil
}

// OnSessionEnd registers f to be called when a session ends: sign-out,
// back-channel logout, idle or absolute expiry, failed refresh, eviction or
// replacement at a new sign-in. f runs synchronously and must not block.
func (s *Service) OnSessionEnd(f func(sessionID string, id *scope.Identity)) {
	if f == nil {
		return
	}
	s.hooksMu.Lock()
	s.hooks = append(s.hooks, f)
	s.hooksMu.Unlock()
}

// ended runs the end hooks and records a "session.end" audit event.
func (s *Service) ended(ctx context.Context, sess *Session, reason string) {
	if sess == nil {
		return
	}
	id := sess.Identity()
	s.metrics.ends.WithLabelValues(reason).Inc()
	s.hooksMu.RLock()
	hooks := s.hooks
	s.hooksMu.RUnlock()
	for _, f := range hooks {
		f(sess.ID, id)
	}
	ev := audit.Event{
		Time:     s.now(),
		Type:     "session.end",
		Issuer:   sess.Issuer,
		Subject:  sess.Subject,
		Decision: "deny",
		Reason:   reason,
		Attrs:    map[string]string{"provider": sess.Provider},
	}
	if sc := scope.From(ctx); sc != nil {
		ev.RequestID = sc.RequestID
		if sc.ClientAddr.IsValid() {
			ev.Client = sc.ClientAddr.String()
		}
	}
	s.audit.Record(ctx, ev)
}

// endSession deletes the session with id and runs the end hooks.
func (s *Service) endSession(ctx context.Context, id, reason string) {
	sess, err := s.store.Delete(ctx, id)
	if err != nil {
		s.log.Warn("auth: delete session", "reason", reason, "error", err)
		return
	}
	s.ended(ctx, sess, reason)
}

func (s *Service) sweepLoop() {
	defer close(s.stopped)
	t := time.NewTicker(sweepInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.sweep(context.Background())
		}
	}
}

// sweep removes every session past its idle or absolute deadline.
func (s *Service) sweep(ctx context.Context) {
	gone, err := s.store.DeleteExpired(ctx, s.now())
	if err != nil {
		s.log.Warn("auth: sweep sessions", "error", err)
	}
	for _, sess := range gone {
		reason := "idle"
		if !s.now().Before(sess.Created.Add(s.View().absolute)) {
			reason = "absolute"
		}
		s.ended(ctx, sess, reason)
	}
}

// Close stops the sweeper and closes the session store it opened.
func (s *Service) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.stop)
		<-s.stopped
		s.discovery.stop()
		if s.ownStore {
			err = s.store.Close()
		}
	})
	return err
}

// Handler serves telegate's auth endpoints:
//
//	GET  /.telegate/login?rd=/path&provider=id&route=id
//	GET  /.telegate/callback/{provider}
//	GET  /.telegate/logout (confirm form), POST /.telegate/logout
//	GET  /.telegate/signed-out
//	POST /.telegate/backchannel-logout/{provider}
func (s *View) Handler() http.Handler { return s.handler }

func (s *View) routesMux() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.telegate/login", s.serveLogin)
	mux.HandleFunc("GET /.telegate/callback/{provider}", s.serveCallback)
	mux.HandleFunc("GET /.telegate/logout", s.serveLogoutConfirm)
	mux.Handle("POST /.telegate/logout", s.csrfChecker.Handler(http.HandlerFunc(s.serveLogout)))
	mux.HandleFunc("GET /.telegate/signed-out", s.serveSignedOut)
	mux.HandleFunc("POST "+config.BackchannelLogoutPrefix+"{provider}", s.serveBackchannel)
	return mux
}

// touchIntervalFor is how often the use of a session is written to the
// store for an idle timeout of idle: a quarter of it, at most
// maxTouchInterval. A session in use is so recorded at least three times
// within every idle period, however short the timeout, and ends at most a
// quarter of it (or a minute) early.
func touchIntervalFor(idle time.Duration) time.Duration {
	return min(maxTouchInterval, idle/4)
}

// TouchInterval is how often a session in use has its use recorded (a
// quarter of sessions.idle_timeout, at most a minute). Active called at
// least this often keeps a session from reaching its idle timeout.
func (s *Service) TouchInterval() time.Duration { return s.View().touchEvery }

// Active records that the session with id (scope.Identity.SessionID) is in
// use although its browser sends no request: a participant in a video
// visit, whose call page talks only over signaling and the relay. It moves
// the idle clock as a request does, writes at most once per TouchInterval,
// and never brings back a session that has ended: one past its idle or
// absolute deadline, or whose provider is gone, ends now (and its end
// hooks close its signaling). Unknown ids are ignored.
func (s *Service) Active(ctx context.Context, id string) {
	s.View().active(ctx, id)
}

func (s *View) active(ctx context.Context, id string) {
	sess, err := s.store.Get(ctx, id)
	if err != nil {
		return
	}
	now := s.now()
	if why := s.ends(sess, now); why != "" {
		s.endSession(ctx, id, why)
		return
	}
	s.recordUse(ctx, sess, now)
}

// recordUse moves sess's idle clock to now when its last recorded use is
// at least a touch interval old.
func (s *View) recordUse(ctx context.Context, sess *Session, now time.Time) {
	if now.Sub(sess.LastSeen) < s.touchEvery {
		return
	}
	sess.LastSeen = now
	s.sessionTimes(sess)
	s.touch(ctx, sess)
}

// sessionTimes sets the session's Expires from its clocks.
func (s *View) sessionTimes(sess *Session) {
	idle := sess.LastSeen.Add(s.idle)
	abs := sess.Created.Add(s.absolute)
	if idle.Before(abs) {
		sess.Expires = idle
	} else {
		sess.Expires = abs
	}
}
