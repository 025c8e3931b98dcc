// Package node assembles one telegate node from its configuration: the
// certificates (edgetls), the audit trail, sign-in (auth), inspection
// (policies), the TURN relay and visits (media), and the gateway that puts
// them on the listeners. cmd/telegate and the end-to-end tests both run it.
package node

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/telegate/telegate/audit"
	"github.com/telegate/telegate/auth"
	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/gateway"
	"github.com/telegate/telegate/gateway/edgetls"
	"github.com/telegate/telegate/grants"
	"github.com/telegate/telegate/internal/admission"
	"github.com/telegate/telegate/internal/webhook"
	"github.com/telegate/telegate/media"
	"github.com/telegate/telegate/media/relay"
	"github.com/telegate/telegate/policies"
	"github.com/telegate/telegate/scope"
)

// Options are what the caller hands to Run besides the configuration.
type Options struct {
	Logger *slog.Logger
	// Reloads asks for a reload (SIGHUP or file change): Load is called
	// and its configuration applied. nil in demo mode.
	Reloads <-chan struct{}
	// HTTPClient is used for calls to OpenID Providers and ACME CAs; nil
	// means a default client with timeouts.
	HTTPClient *http.Client
	// Ready is called once every listener is up, with facts to print.
	Ready func(r Ready)
	// Load reads the configuration file again, for Reloads and POST
	// /reload on the admin listener; nil (demo) makes reloads refuse.
	Load func() (*config.Config, error)
	// Applied, when set, is called with each configuration that took
	// effect on a reload.
	Applied func(*config.Config)
	// TuneAudit, when set, adjusts the audit trail's options before it is
	// opened: a test injects write or fsync errors (audit.Options.Writer,
	// audit.Options.Fsync) or a small queue with it.
	TuneAudit func(*audit.Options)
}

// Ready describes a running node.
type Ready struct {
	// URL of the public listener, e.g. "https://localhost:8443/".
	URL string
	// ListenAddr is the public listener's bound address ("host:port").
	ListenAddr string
	// AdminAddr is the admin listener's address.
	AdminAddr string
	// LocalRoot is the path of the local CA root certificate, or "".
	LocalRoot string
	// RelayAddr is the TURN relay's UDP address, or "" when it is off.
	RelayAddr string
}

// Run builds the first generation of cfg (Build, once, before anything is
// opened: a configuration that does not build opens nothing), opens what lives as long
// as the process — certificates (edgetls), the audit trail, the session
// store (auth), the rate-limit buckets, the TURN relay and visits (media),
// the listeners (gateway) — and serves until ctx ends. Every component is
// closed on the way out, in reverse order.
//
// When ctx ends the gateway drains (gateway.Serve: /readyz 503, no new
// connections, requests in flight finished within
// server.shutdown_timeout, signaling sockets told the node is
// restarting); then visits close, the relay closes its allocations, and
// the audit trail records "node.stop" and is flushed and closed. Run
// returns nil after such a shutdown, or the errors of the components that
// failed to close (an audit trail that could not be flushed, say).
//
// Each configuration from Options.Reloads, and each POST /reload on the
// admin listener, becomes a new generation: built whole, then swapped in
// at once (see reload), with the TLS host table and the relay's limits.
// A configuration that does not build, or that changes a setting of the
// process (listeners, data directory, the TLS protocol version and ACME
// account, device CAs, stores, the relay's listeners, addresses and
// secrets, visits), is refused with every problem named, and the running
// generation stays.
func Run(ctx context.Context, cfg *config.Config, o Options) (err error) {
	if cfg == nil {
		return errors.New("telegate: no configuration")
	}
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var closers []func() error
	defer func() {
		for i := len(closers) - 1; i >= 0; i-- {
			if cerr := closers[i](); cerr != nil {
				log.Error("closing", "error", cerr)
				err = errors.Join(err, cerr)
			}
		}
	}()
	stopDev, err := startDevelopmentProviders(context.WithoutCancel(ctx), cfg, log) // fills cfg's development providers
	if err != nil {
		return fmt.Errorf("development provider: %w", err)
	}
	closers = append(closers, stopDev)

	// Build the first generation — the whole check of the configuration —
	// before anything is opened: a configuration that does not build opens
	// nothing. It is the only build at start: its device CA pools serve
	// the TLS listener and the sign-in service, its WAF (whose Core Rule
	// Set takes most of a build) records to the trail once the trail is
	// open, and the sign-in service, once open, serves its view.
	inspectSink := &laterSink{}
	first, err := Build(cfg, Env{Audit: inspectSink, Logger: log})
	if err != nil {
		return err
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	ao, err := AuditOptions(cfg)
	if err != nil {
		return err
	}
	ao.Logger = log.With("component", "audit")
	if o.TuneAudit != nil {
		o.TuneAudit(&ao)
	}
	trail, err := audit.OpenTrail(ao)
	if err != nil {
		return fmt.Errorf("audit trail: %w", err)
	}
	closers = append(closers, func() error {
		// The trail's last record, after those of the components closed
		// before it (visits, relay allocations).
		reason := "shutdown"
		if err != nil && ctx.Err() == nil {
			reason = "error"
		}
		trail.Record(context.Background(), audit.Event{Type: "node.stop", Reason: reason})
		return trail.Close()
	})
	reg.MustRegister(trail)
	inspectSink.open(requestSink(trail))
	if cfg.Audit.Ship.Enabled() {
		sh, err := audit.StartShipper(audit.ShipOptions{File: ao.File, EncryptionKey: ao.EncryptionKey, Dir: config.AuditShipDirIn(cfg.DataDir),
			Node: audit.SignerNodeID(ao.CheckpointKey), Ship: cfg.Audit.Ship, Logger: ao.Logger})
		if err != nil {
			return fmt.Errorf("audit shipping: %w", err)
		}
		closers = append(closers, func() error { sh.Close(); return nil })
		reg.MustRegister(sh)
	}
	// Client addresses in logs: one pseudonym key for every plane, never
	// the audit key.
	pseudonymKey, err := audit.PseudonymKey(cfg.DataDir)
	if err != nil {
		return err
	}

	// Refused Redis credentials stop the node before any part uses them
	// (the certificate storage is the first).
	if err := checkRedisAtStart(ctx, cfg); err != nil {
		return err
	}

	eo := edgetls.Options{Config: cfg, ClientTrust: first.ClientTrust, Logger: log, HTTPClient: o.HTTPClient, PseudonymKey: pseudonymKey} // it names itself "edgetls"
	if err := certsOnRedis(cfg, &eo); err != nil {
		return fmt.Errorf("certificates: %w", err)
	}
	certs, err := edgetls.New(ctx, eo)
	if err != nil {
		return fmt.Errorf("certificates: %w", err)
	}
	closers = append(closers, certs.Close)

	authn, err := auth.New(ctx, auth.Options{
		Config:     cfg,
		Audit:      trail,
		Logger:     log.With("component", "auth"),
		HTTPClient: o.HTTPClient,
		ClientCAs:  first.ClientTrust.Pools(),
		Registry:   reg,
	})
	if err != nil {
		return fmt.Errorf("sign-in: %w", err)
	}
	closers = append(closers, authn.Close)
	env := Env{Auth: authn, Audit: requestSink(trail), Logger: log}
	// The view auth.New made current is the first generation's: the same
	// configuration and device CA pools, bound to the open service.
	first.Auth = authn.View()
	trail.SetGeneration(first.ID)

	gw := gateway.Options{
		Config:   cfg,
		First:    first.edge(),
		Certs:    certs,
		Audit:    trail,
		Logger:   log.With("component", "gateway"),
		Registry: reg,
	}
	// The webhooks' outbox, closed after its senders (break-glass and
	// the visits, below).
	hooks, err := openWebhookStore(cfg)
	if err != nil {
		return err
	}
	if hooks != nil {
		closers = append(closers, hooks.Close)
	}
	if err := witnessCheckpoints(cfg, trail, reg, hooks, audit.SignerNodeID(ao.CheckpointKey), &closers); err != nil {
		return err
	}
	bg, err := openBreakGlass(cfg, authn, trail, reg, hooks, log.With("component", "break-glass"))
	if err != nil {
		return err
	}
	closers = append(closers, bg.Close)
	gw.BreakGlass = bg
	gw.PseudonymKey = pseudonymKey
	// Rate limits: in memory on one node; in Redis (global across nodes,
	// falling back to per-node limits while Redis is down) when redis.addr
	// is set.
	var limiter routeLimiter = policies.NewLimiter(cfg.RateLimits.MaxClients, nil)
	if cfg.Redis.Addr != "" {
		ro, err := policies.RedisLimiterOptionsFrom(cfg.Redis)
		if err != nil {
			return fmt.Errorf("rate limits: %w", err)
		}
		ro.MaxClients = cfg.RateLimits.MaxClients
		rl, err := policies.NewRedisLimiter(ro)
		if err != nil {
			return fmt.Errorf("rate limits: %w", err)
		}
		closers = append(closers, rl.Close)
		limiter = rl
	}
	reg.MustRegister(limiter)
	gw.Limiter = limiter

	// One admission mechanism for every listener (internal/admission):
	// the gateway's listeners build their controllers from cfg.Connections
	// as they open; the relay's dedicated TLS listener gets its own here.
	connMetrics := admission.NewMetrics()
	reg.MustRegister(connMetrics)
	gw.ConnMetrics = connMetrics
	var turn *relay.Server
	if cfg.Relay.Enabled {
		turnAdmission, err := admission.New(admission.Options{
			Limits:  admission.LimitsOf(cfg.Connections),
			OnEvent: connMetrics.Events("turn-tls"),
		})
		if err != nil {
			return fmt.Errorf("connections: %w", err)
		}
		turn, err = relay.New(relay.Options{
			Admission: turnAdmission,
			Config:    cfg.Relay,
			Audit:     trail,
			Logger:    log, // it names itself "relay"
			Registry:  reg,
			TLSConfig: certs.TLSConfig(),
			DataDir:   cfg.DataDir,

			PseudonymKey: pseudonymKey,
		})
		if err != nil {
			return fmt.Errorf("relay: %w", err)
		}
		// The relay outlives the drain (its calls run on, then move):
		// it is closed by its closer, not when ctx ends.
		if err := turn.Start(context.WithoutCancel(ctx)); err != nil {
			return fmt.Errorf("relay: %w", err)
		}
		closers = append(closers, turn.Close)
		relayStarted(turn)
		gw.STUNConn = turn.ServeTLSConn
		for _, name := range cfg.Relay.ServerNames {
			if gw.ConnHandlers == nil {
				gw.ConnHandlers = map[string]func(net.Conn){}
			}
			gw.ConnHandlers[strings.ToLower(name)] = turn.ServeTLSConn
		}
	}
	if cfg.Visits.Enabled {
		vo := media.Options{
			Config:   cfg.Visits,
			DataDir:  cfg.DataDir,
			Relay:    turn,
			Sessions: authn,
			Audit:    trail,
			Logger:   log.With("component", "visits"),
			// The clinics' arrival webhooks count their deliveries
			// beside break-glass's (telegate_webhook_deliveries_total)
			// and wait in the same outbox, a queue per clinic.
			AlertWebhook: webhookOptions(cfg, reg, nil, ""),
			WebhookStore: hooks,
			// The waiting-room chat allowances are buckets of the
			// node's rate limiter: with Redis, one for every node.
			Limiter: limiter,
		}
		if len(cfg.Relay.ServerNames) > 0 {
			vo.RelayName = cfg.Relay.ServerNames[0]
		}
		if err := visitsOnRedis(cfg, &vo); err != nil {
			return fmt.Errorf("visits: %w", err)
		}
		visits, err := media.New(vo)
		if err != nil {
			return fmt.Errorf("visits: %w", err)
		}
		closers = append(closers, visits.Close)
		authn.OnSessionEnd(visits.SessionEnded)
		// SIGTERM or POST /drain: the node's relay takes no new visit;
		// its calls run on for visits.drain_timeout, then move to another
		// node's relay (media.Service.BeginDrain). The node exits once
		// they have, within server.shutdown_timeout.
		gw.OnDrain = func() { visits.BeginDrain(time.Now().Add(cfg.Server.ShutdownTimeout)) }
		gw.Drained = visits.Drained
		h := visits.Handler()
		gw.Endpoints = append(gw.Endpoints,
			gateway.Endpoint{Prefix: "/.telegate/visits", Handler: h},
			gateway.Endpoint{Prefix: "/.telegate/visit.js", Handler: h},
			gateway.Endpoint{Prefix: "/.telegate/visit/", Handler: h},
		)
	}

	gw.Dependencies = dependencies(readyParts{Config: cfg, Auth: authn, Limiter: limiter, Relay: turn, Audit: trail})
	n := &running{log: log, env: env, trail: trail, cur: first, load: o.Load, applied: o.Applied, certs: certs, turn: turn}
	gw.Reload = n.reload
	g, err := gateway.New(gw)
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	n.gw = g
	authn.OnSessionEnd(func(id string, _ *scope.Identity) { g.EndSession(id) })
	if err := n.registerMetrics(reg); err != nil {
		return err
	}
	n.record(first, "start")

	errc := make(chan error, 1)
	go func() { errc <- g.Serve(ctx) }()
	if err := waitListening(ctx, g, errc); err != nil {
		return err
	}
	if o.Ready != nil {
		info := Ready{
			URL:        publicURL(cfg, g.PublicAddr()),
			ListenAddr: g.PublicAddr().String(),
			AdminAddr:  g.AdminAddr().String(),
			LocalRoot:  certs.LocalRootPath(),
		}
		if turn != nil && turn.LocalAddr() != nil {
			info.RelayAddr = turn.LocalAddr().String()
		}
		o.Ready(info)
	}
	for {
		select {
		case err := <-errc:
			return err
		case _, ok := <-o.Reloads:
			if !ok {
				o.Reloads = nil
				continue
			}
			_, _, _ = n.reload()
		}
	}
}

// openBreakGlass builds break-glass on the grant store kept in the session
// store (auth.Service.Grants: the bbolt file, or the Redis every node
// shares), capped by break_glass.max_grants(_per_subject), with the
// webhook of break_glass.webhook (its deliveries waiting in hooks) and the
// node's host name in each grant.
func openBreakGlass(cfg *config.Config, authn *auth.Service, trail audit.Sink, reg prometheus.Registerer, hooks webhook.Store, log *slog.Logger) (*policies.BreakGlass, error) {
	bc := cfg.BreakGlass
	store, err := authn.Grants(grants.Limits{Max: bc.MaxGrants, PerSubject: bc.MaxGrantsPerSubject})
	if err != nil {
		return nil, fmt.Errorf("break-glass: %w", err)
	}
	hook, err := policies.NewWebhookTuned(bc.Webhook, webhookOptions(cfg, reg, hooks, policies.WebhookQueue))
	if err != nil {
		return nil, fmt.Errorf("break-glass: %w", err)
	}
	host, _ := os.Hostname()
	return policies.NewBreakGlass(policies.BreakGlassOptions{
		Store: store, Audit: trail, Webhook: hook, ReviewerRoles: bc.ReviewerRoles, Node: host, Logger: log,
	})
}

// WitnessQueue is the webhooks' outbox queue of the audit checkpoints
// sent to audit.witness.
const WitnessQueue = "audit-witness"

// witnessCheckpoints hands every checkpoint of trail to audit.witness,
// when set: a webhook "audit.checkpoint" through the outbox hooks, its
// delivery id the node, segment and size (the same on every attempt), so
// a witness keeps the latest per node. The sender closes before the
// trail; the checkpoint written at shutdown reaches the witness at the
// next start (audit.Log.SetCheckpointWitness hands on the latest).
func witnessCheckpoints(cfg *config.Config, trail *audit.Log, reg prometheus.Registerer, hooks webhook.Store, node string, closers *[]func() error) error {
	send, err := webhook.FromConfig(cfg.Audit.Witness, webhookOptions(cfg, reg, hooks, WitnessQueue))
	if err != nil {
		return fmt.Errorf("audit.witness.%w", err)
	}
	if send == nil {
		return nil
	}
	*closers = append(*closers, func() error {
		trail.SetCheckpointWitness(nil)
		send.Close()
		return nil
	})
	trail.SetCheckpointWitness(func(c audit.Checkpoint, note []byte) {
		body, err := json.Marshal(witnessBody{Type: "audit.checkpoint", Node: node, Segment: c.Segment, Size: c.Size,
			Root: base64.StdEncoding.EncodeToString(c.Root[:]), Time: c.Time.UTC(), Note: string(note)})
		if err != nil {
			return
		}
		send.Send("audit.checkpoint", fmt.Sprintf("%s.%d.%d", node, c.Segment, c.Size), body)
	})
	return nil
}

// witnessBody is the JSON body of an "audit.checkpoint" webhook: the
// checkpoint's fields and Note, its signed note (golang.org/x/mod/sumdb/note
// format), which `telegate audit verify --witnessed FILE` takes as it is.
type witnessBody struct {
	Type    string    `json:"type"`
	Node    string    `json:"node"`
	Segment uint64    `json:"segment"`
	Size    int64     `json:"size"`
	Root    string    `json:"root"`
	Time    time.Time `json:"time"`
	Note    string    `json:"note"`
}

// AuditOptions are the audit trail's options from cfg: its file, HMAC key
// (audit.Key), checkpoint directory and signing key
// (audit.CheckpointSigningKey, generated in the data directory at first
// use), intervals, rotation and encryption key (audit.encryption_key_file). `telegate audit new-segment` opens the trail with
// the same options.
func AuditOptions(cfg *config.Config) (audit.Options, error) {
	key, err := audit.Key(cfg.Audit, cfg.DataDir)
	if err != nil {
		return audit.Options{}, fmt.Errorf("audit key: %w", err)
	}
	skey, err := audit.CheckpointSigningKey(cfg.DataDir)
	if err != nil {
		return audit.Options{}, fmt.Errorf("audit checkpoint key: %w", err)
	}
	a := cfg.Audit
	var ekey []byte
	if a.EncryptionKeyFile != "" {
		if ekey, err = config.ReadAuditEncryptionKeyFile(a.EncryptionKeyFile); err != nil {
			return audit.Options{}, fmt.Errorf("audit encryption key: %w", err)
		}
	}
	return audit.Options{
		File: a.File, Key: key, CheckpointDir: a.CheckpointDir, CheckpointKey: skey,
		CheckpointEvery: int64(a.CheckpointEvery), CheckpointInterval: a.CheckpointInterval,
		FsyncInterval: a.FsyncInterval, RotateSize: a.RotateSize, RotateAge: a.RotateAge,
		EncryptionKey: ekey,
	}, nil
}

// waitListening returns once the gateway's listeners are bound, or the
// error that stopped it.
func waitListening(ctx context.Context, g *gateway.Gateway, errc <-chan error) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for g.PublicAddr() == nil || g.AdminAddr() == nil {
		select {
		case err := <-errc:
			if err == nil {
				err = errors.New("gateway stopped before it listened")
			}
			return err
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// publicURL is the configured public URL, or one made from the bound
// address.
func publicURL(cfg *config.Config, addr net.Addr) string {
	if cfg.Server.PublicURL != "" {
		return cfg.Server.PublicURL + "/"
	}
	return "https://" + addr.String() + "/"
}

// routeLimiter is a rate limiter the gateway calls (each configuration
// generation passes its routes' limits), that exports metrics.
type routeLimiter interface {
	gateway.Limiter
	prometheus.Collector
}

// relayStarted is called with the relay once it serves; test binaries
// (build tag telegate_testhooks, testhooks.go) hook in here.
var relayStarted = func(*relay.Server) {}

// laterSink is an audit.Sink whose destination opens after it is handed
// out: the configuration is checked, and its Inspector built, before the
// audit trail opens (a configuration that does not build opens nothing).
// Until open it drops records; none are made then, as nothing is served.
type laterSink struct {
	to atomic.Pointer[audit.Sink]
}

// open sends every later record to s.
func (l *laterSink) open(s audit.Sink) { l.to.Store(&s) }

// Record implements audit.Sink.
func (l *laterSink) Record(ctx context.Context, e audit.Event) {
	if s := l.to.Load(); s != nil {
		(*s).Record(ctx, e)
	}
}
