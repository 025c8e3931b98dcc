// Package media runs telegate's video visits: a clinician creates a visit
// and sends the patient a signed invite link; the patient signs in and waits
// in the waiting room; the clinician admits (or declines, removes, ends);
// admitted participants fetch short-lived TURN relay credentials and
// exchange SDP offers, answers and ICE candidates over one signaling
// WebSocket each. The media itself stays end-to-end encrypted (DTLS-SRTP,
// RFC 5764): telegate forwards SDP unchanged, never rewrites a fingerprint,
// and refuses a participant whose DTLS fingerprint (RFC 8122 §5) changes
// without an ICE restart (RFC 8445 §9).
//
// Identity comes from the gateway's authentication stage through
// scope.From(r.Context()).Identity; this package never reads cookies or
// tokens itself. Every decision is written to the audit trail without names,
// titles, SDP or invite tokens.
//
// Endpoints (all below /.telegate/):
//
//	POST /visits                     create a visit (clinician, or service with an owner)
//	GET  /visits                     the caller's open visits (JSON)
//	GET  /visits/lobby               clinician lobby page
//	GET  /visits/join?invite=…       patient waiting-room page (redirects to sign-in)
//	POST /visits/join                join the waiting room with an invite
//	GET  /visits/{id}                visit status (manager or participant view)
//	POST /visits/{id}/invite         issue a fresh invite link
//	POST /visits/{id}/guests         issue a single-use guest link {"label", "name"}
//	GET  /visits/guest?link=…        guest page (sign in, or join without an account)
//	POST /visits/guest/check         what a guest link is for, without using it
//	POST /visits/guest               join the waiting room with a guest link
//	POST /visits/{id}/admit|decline|remove   {"participant": id}
//	POST /visits/{id}/end            end the visit
//	GET  /visits/{id}/ice            ICE servers for an admitted participant
//	GET  /visits/{id}/signal         signaling WebSocket (admitted participants)
//	GET  /visits/{id}/call           call page
//	GET  /visit.js, /visit/…         embedded web client
package media

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/telegate/telegate/audit"
	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/internal/webhook"
	"github.com/telegate/telegate/media/relay"
	"github.com/telegate/telegate/policies"
)

// Credential is a TURN credential in the TURN REST form
// (draft-uberti-behave-turn-rest-00 §2.2): Username "expiry:visit:participant",
// Password base64(HMAC-SHA1(secret, Username)), valid until Expires.
type Credential = relay.Credential

// *relay.Server is the Relay of a telegate node.
var _ Relay = (*relay.Server)(nil)

// Relay is what visits need from the TURN relay (package media/relay).
// Every method must be safe for concurrent use.
type Relay interface {
	// Credential mints a relay credential bound to (visitID, participantID).
	Credential(visitID, participantID string) Credential
	// ICEURLs lists the relay's URLs for publicHost (a host name without
	// port): turn:…?transport=udp and turns:…:443?transport=tcp (RFC 7065).
	ICEURLs(publicHost string) []string
	// Admit lets the participant's credentials allocate and permits its
	// allocations toward the other admitted participants of the visit.
	Admit(visitID, participantID string)
	// Remove revokes the participant: its allocations close within 1 s.
	Remove(visitID, participantID string)
	// EndVisit revokes every participant of the visit.
	EndVisit(visitID string)
}

// Sessions is what visits need from the sign-in plane (package auth): a
// participant in a call is using their session although the call page
// sends no HTTP request, so the session's idle timeout must not end the
// call (docs/visits.md, "How long a call lasts").
type Sessions interface {
	// Active records that the session with id (scope.Identity.SessionID)
	// is in use now. It never revives a session that has ended.
	Active(ctx context.Context, sessionID string)
	// TouchInterval is how often Active must be called for a session in
	// use never to reach its idle timeout.
	TouchInterval() time.Duration
}

// Options configure a Service.
type Options struct {
	// Config is the visits section; zero fields take their defaults.
	Config config.Visits
	// DataDir holds visits.db (visit state, encrypted at rest) and, when
	// InviteKey is nil, keys/invite.key. Required.
	DataDir string
	// Relay mints credentials and enforces admission on the TURN relay.
	// Required.
	Relay Relay
	// Sessions is told, every Sessions.TouchInterval, of each session
	// with an open signaling socket, so a participant in a call is never
	// signed out for being idle. nil: calls do not count as activity.
	Sessions Sessions
	// Audit receives visit.* events. nil discards them.
	Audit audit.Sink
	// Logger for operational messages (never PHI). nil uses slog.Default.
	Logger *slog.Logger
	// Now is the clock. nil uses time.Now.
	Now func() time.Time
	// InviteKey is the HMAC-SHA256 key for invite links (at least 32
	// bytes); the visit records are sealed under a key derived from it.
	// nil loads or generates <DataDir>/keys/invite.key. Required with
	// Redis: every node must have the same.
	InviteKey []byte
	// Redis, when set, keeps visits in that Redis, shared by every node,
	// instead of <DataDir>/visits.db.
	Redis *RedisOptions
	// RelayName is the TLS server name of this node's relay
	// (relay.server_names[0]): with visits on Redis, the turns: URL this
	// node registers for pages that reach it from another node names it,
	// so their browsers can verify the certificate. "": visits.ice_host.
	RelayName string
	// AlertWebhook is the schedule (attempts, backoff, in flight), the
	// outbox's bounds (pending, age), transport (tests) and metrics
	// registry of the clinics' arrival webhooks (Config.AlertWebhooks);
	// the zero value keeps the webhook defaults.
	AlertWebhook webhook.Options
	// WebhookStore keeps the arrival webhooks' pending deliveries, one
	// queue per clinic (AlertQueue): the node's outbox on disk or in
	// Redis. nil keeps them in memory.
	WebhookStore webhook.Store
	// Limiter keeps the waiting-room chat allowances (a bucket per person
	// and visit): the node's rate limiter, so with Redis one allowance
	// holds across every node (policies.RedisLimiter, per node while
	// Redis is down). nil: an in-memory policies.Limiter of its own.
	Limiter Limiter
}

// Limiter is the part of a rate limiter (policies.Limiter,
// policies.RedisLimiter) the visits use: AllowSubject takes one token
// from the bucket of (routeID, subjectKey) under lim and reports whether
// there was one.
type Limiter interface {
	AllowSubject(routeID, subjectKey string, lim config.RateLimit) bool
}

// Service is the visits plane: API, pages, signaling hub and expiry.
type Service struct {
	cfg      config.Visits
	relay    Relay
	sessions Sessions
	audit    audit.Sink
	log      *slog.Logger
	now      func() time.Time
	invite   []byte
	store    visitStore
	bus      *bus // signaling between nodes; nil on one node
	// relayName: Options.RelayName.
	relayName string
	drain     drainState
	alerts    *alerts
	limiter   Limiter // Options.Limiter

	mu     sync.Mutex
	visits map[string]*visit
	rooms  map[string]map[string]*peer // visit id → participant id → socket
	npeers int
	chats  map[string]map[*chatPeer]struct{} // visit id → waiting-room chat sockets
	nchats int
	checks map[string]*checkRun // visit id + participant id → its last pre-call check
	closed bool
	// refreshed is when the sweep last read every visit from a shared
	// store.
	refreshed time.Time

	handler  http.Handler
	stop     chan struct{}
	sweepers sync.WaitGroup
	peersWG  sync.WaitGroup
}

// applyDefaults fills zero fields with the documented defaults.
func applyDefaults(c config.Visits) config.Visits { return c.Defaults() }

// New opens the visit store (o.DataDir, or o.Redis), loads the visits that
// survive a restart and starts the expiry loop. It fails when DataDir or
// Relay is missing, o.Redis is set without o.InviteKey, or the store or
// invite key cannot be opened.
func New(o Options) (*Service, error) {
	if o.DataDir == "" {
		return nil, errors.New("media: a data directory is required for visit state")
	}
	if o.Relay == nil {
		return nil, errors.New("media: a relay is required for visit media")
	}
	if o.Limiter == nil {
		o.Limiter = policies.NewLimiter(0, nil)
	}
	s := &Service{
		cfg:      applyDefaults(o.Config),
		relay:    o.Relay,
		sessions: o.Sessions,
		audit:    o.Audit,
		log:      o.Logger,
		now:      o.Now,
		limiter:  o.Limiter,
		visits:   make(map[string]*visit),
		rooms:    make(map[string]map[string]*peer),
		checks:   make(map[string]*checkRun),
		chats:    make(map[string]map[*chatPeer]struct{}),
		stop:     make(chan struct{}),

		relayName: o.RelayName,
		drain:     drainState{over: make(chan struct{}), done: make(chan struct{})},
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
	key := o.InviteKey
	if key == nil && o.Redis != nil {
		return nil, errors.New("media: visits on Redis need the invite key every node shares")
	}
	if key == nil {
		k, err := loadOrCreateKey(o.DataDir)
		if err != nil {
			return nil, err
		}
		key = k
	}
	if len(key) < 32 {
		return nil, errors.New("media: the invite key must be at least 32 bytes")
	}
	s.invite = key
	al, err := newAlerts(s.cfg.AlertWebhooks, o.AlertWebhook, o.WebhookStore, s.alertEnded)
	if err != nil {
		return nil, err
	}
	s.alerts = al
	var st visitStore
	if o.Redis != nil {
		st, err = openRedisStore(*o.Redis, key, s.log)
	} else {
		st, err = openBoltStore(o.DataDir, key, s.log)
	}
	if err != nil {
		return nil, err
	}
	s.store = st
	if rs, ok := st.(*redisStore); ok {
		if s.bus, err = startBus(s, rs); err != nil {
			st.close()
			return nil, err
		}
	}
	ctx, cancel := storeCtx()
	vs, err := st.all(ctx)
	cancel()
	if err != nil {
		st.close()
		return nil, err
	}
	for _, v := range vs {
		s.visits[v.ID] = v
		// Re-establish relay admission for visits still running.
		if v.Ended.IsZero() {
			for _, p := range v.Participants {
				if p.State == stateAdmitted {
					s.relay.Admit(v.ID, p.ID)
				}
			}
		}
	}
	s.handler = s.guestSessions(s.routes())
	s.sweepers.Add(1)
	s.alerts.start()
	go s.sweepLoop(time.Second)
	return s, nil
}

// Handler serves the visits API, pages and signaling under /.telegate/visits
// and the web client under /.telegate/visit.js and /.telegate/visit/. Mount
// it on those paths with the full path left intact.
func (s *Service) Handler() http.Handler { return s.handler }

// Close ends the expiry loop, closes every signaling socket (status 1001,
// going away, with a reason saying the node is restarting: visits stay
// open, and the page reconnects and resumes the call) and closes the
// store. Call it before closing the relay, so participants hear why their
// relay allocations end. The sockets are usually closed already: they
// close themselves when the gateway begins to drain
// (scope.Scope.Draining).
func (s *Service) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	var all []*peer
	for _, room := range s.rooms {
		for _, p := range room {
			all = append(all, p)
		}
	}
	for _, room := range s.chats {
		for p := range room {
			all = append(all, p.peer)
		}
	}
	s.mu.Unlock()
	close(s.stop)
	s.sweepers.Wait()
	for _, p := range all {
		p.shutdown(statusGoingAway, restartReason, nil)
	}
	done := make(chan struct{})
	go func() { s.peersWG.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
	}
	s.bus.close()
	s.alerts.close()
	if err := s.store.close(); err != nil {
		return fmt.Errorf("media: closing the visit store: %w", err)
	}
	return nil
}

// record writes one audit event, filling request facts from ctx.
func (s *Service) record(ctx context.Context, e audit.Event) {
	if e.Time.IsZero() {
		e.Time = s.now()
	}
	s.audit.Record(ctx, e)
}
