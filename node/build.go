package node

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/telegate/telegate/audit"
	"github.com/telegate/telegate/auth"
	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/gateway"
	"github.com/telegate/telegate/gateway/edgetls"
	"github.com/telegate/telegate/media/relay"
	"github.com/telegate/telegate/policies"
)

// Generation is one configuration generation: everything a request needs
// that comes from the configuration. It is built whole by Build, handed to
// the edge in one swap, and never changed; a request runs start to end on
// the generation it started with.
type Generation struct {
	// ID is 1 for the configuration a node starts with and one more for
	// each reload that took effect.
	ID uint64
	// Hash identifies the effective configuration (see Hash), the same on
	// every node that runs the same one.
	Hash   string
	Config *config.Config
	// Auth is auth's view: providers, bearer issuers, device CAs, routes,
	// session timeouts.
	Auth *auth.View
	// ClientTrust is the device CA pools (client_cas), read once: the TLS
	// listeners verify client certificates with them from the swap on
	// (edgetls.Manager.Prepare), and Auth maps a device's identity from
	// the CA in the same pools, so the two never come from different
	// generations.
	ClientTrust *edgetls.ClientTrust
	// Inspector is the WAF, nil when no route is inspected.
	Inspector *policies.Inspector
	// RelayLimits are the relay's quotas, rates, bandwidth cap and
	// credential lifetime, checked; nil when the relay is off. The
	// running relay takes them with the swap (relay.Server.SetLimits).
	RelayLimits *relay.Limits
}

// Env is what Build takes besides the configuration: the parts of a
// running node a generation binds to. The zero Env builds a generation
// only to check it (telegate check): nothing is opened or contacted.
type Env struct {
	// Auth is the running sign-in service; nil when only checking.
	Auth *auth.Service
	// Audit receives the inspection records; nil discards.
	Audit audit.Sink
	// Logger for the parts built; nil discards.
	Logger *slog.Logger
	// Previous is the running generation, whose parts Build reuses where
	// the configuration of a part is unchanged (the WAF's compiled rules):
	// a reload's; nil at start and for a check.
	Previous *Generation
}

// Build turns cfg (loaded and validated by config.Load) into a
// Generation. It is where the rules of each part live: the part's own
// constructor refuses what it cannot run, and Build reports every refusal
// at once as config.Errors, located at the field's file:line. It listens
// on nothing and contacts no identity provider or CA, so `telegate check`
// accepts exactly the files `telegate run` starts with.
func Build(cfg *config.Config, env Env) (*Generation, error) {
	builds.Add(1)
	if cfg == nil {
		return nil, errors.New("telegate: no configuration")
	}
	if err := cfg.CheckDefaulted(); err != nil {
		return nil, fmt.Errorf("telegate: %w", err)
	}
	log := env.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	sink := env.Audit
	if sink == nil {
		sink = audit.Discard{}
	}
	var errs config.Errors
	add := func(field string, err error) {
		var fes config.Errors
		if errors.As(err, &fes) {
			errs = append(errs, fes...)
			return
		}
		errs = append(errs, cfg.Problem(field, "%s", err.Error()))
	}
	g := &Generation{ID: 1, Hash: Hash(cfg), Config: cfg}
	for i := range cfg.Routes {
		for _, err := range policies.Validate(cfg.Routes[i].Policy) {
			var ve *policies.ValidationError
			field := fmt.Sprintf("routes[%d].policy", i)
			if errors.As(err, &ve) && ve.Field != "" {
				field += "." + ve.Field
			}
			add(field, errors.New(ve.Message))
		}
	}
	trust, err := edgetls.LoadClientTrust(cfg)
	if err != nil {
		add("client_cas", err)
	}
	g.ClientTrust = trust
	pools := map[string]*x509.CertPool{} // not nil: auth reads no file of its own
	if g.ClientTrust != nil {
		pools = g.ClientTrust.Pools()
	}
	view, err := auth.NewView(asStarted(cfg), env.Auth, pools)
	if err != nil {
		add("providers", err)
	}
	g.Auth = view
	if prev := env.Previous; inspectsAny(cfg) && prev != nil && prev.Inspector != nil && reflect.DeepEqual(prev.Config.Inspection, cfg.Inspection) &&
		reflect.DeepEqual(inspectExclusions(prev.Config), inspectExclusions(cfg)) {
		g.Inspector = prev.Inspector
	} else if inspectsAny(cfg) {
		insp, err := newInspector(cfg.Inspection, cfg.Routes, sink, log.With("component", "inspect"))
		if err != nil {
			add("inspection", err)
		}
		g.Inspector = insp
	}
	if cfg.Relay.Enabled {
		lim, err := relay.NewLimits(cfg.Relay)
		for _, e := range unjoin(err) {
			field, msg, ok := strings.Cut(e.Error(), ": ")
			if !ok {
				field, msg = "relay", e.Error()
			}
			add(field, errors.New(msg))
		}
		g.RelayLimits = lim
	}
	if cfg.Visits.Enabled && !cfg.Relay.Enabled {
		add("visits.enabled", errors.New("visits need the relay: set relay.enabled: true"))
	}
	if err := gateway.Check(g.edge()); err != nil {
		add("routes", err)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return g, nil
}

// builds counts the calls of Build in this process
// (telegate_config_builds_total).
var builds atomic.Uint64

// The gateway asks the generation's View again about the devices' open
// WebSockets on every swap.
var _ gateway.DeviceChecker = (*auth.View)(nil)

// asStarted is cfg as Run sees it once the development providers are
// started (startDevelopmentProviders): a configuration that is only
// checked has none running, so each unfilled development provider gets a
// loopback issuer and the development client in a copy.
func asStarted(cfg *config.Config) *config.Config {
	out := cfg
	for i, p := range cfg.Providers {
		if !p.Development || p.Issuer != "" {
			continue
		}
		if out == cfg {
			c := *cfg
			c.Providers = slices.Clone(cfg.Providers)
			out = &c
		}
		out.Providers[i].Issuer = "http://127.0.0.1/development"
		out.Providers[i].ClientID = config.DevelopmentClientID
		out.Providers[i].ClientSecret = "development"
	}
	return out
}

// edge is what the gateway takes of g.
func (g *Generation) edge() gateway.Generation {
	e := gateway.Generation{ID: g.ID, Hash: g.Hash, Config: g.Config}
	if g.Auth != nil {
		e.Auth = g.Auth
		e.Dependencies = providerDependencies(g.Auth)
	}
	if g.Inspector != nil {
		e.Inspector = g.Inspector
	}
	return e
}

// Hash identifies cfg's effective configuration, without its secrets
// (config.Config.Hash).
func Hash(cfg *config.Config) string { return cfg.Hash() }

// unjoin splits an errors.Join error into its errors.
func unjoin(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// fixedSetting is one setting that belongs to the process.
type fixedSetting struct {
	field string
	get   func(*config.Config) any
}

// fixed are the settings that belong to the process rather than to a
// generation: a reload that changes one is refused with the field named
// (restart telegate to apply it).
//
// TLS: the host table (tls.hosts: names, modes, certificate files), the
// device CA pools (client_cas) and tls.min_version reload
// (edgetls.Manager.Prepare): each listener's handshakes take them from
// the selection in force through a config built for that listener's ALPN
// protocols, and auth maps device identities from the generation's own
// pools (Generation.ClientTrust). tls.acme stays, the ACME account, CA
// directory, challenge set and renewal ratio of the issuer certmagic
// runs for the process; so do tls.storage and tls.storage_key_file
// (edgetls refuses them).
//
// Relay: the limits (relay.LimitFields) reload; every other relay
// setting is fixed, one entry per field (relayFixed).
var fixed = append([]fixedSetting{
	{"data_dir", func(c *config.Config) any { return c.DataDir }},
	{"server.listen", func(c *config.Config) any { return c.Server.Listen }},
	{"server.http_listen", func(c *config.Config) any { return c.Server.HTTPListen }},
	{"server.admin", func(c *config.Config) any { return c.Server.Admin }},
	{"server.public_url", func(c *config.Config) any { return c.Server.PublicURL }},
	// The listeners' own limits are set on them when they open.
	{"server.read_header_timeout", func(c *config.Config) any { return c.Server.ReadHeaderTimeout }},
	{"server.read_timeout", func(c *config.Config) any { return c.Server.ReadTimeout }},
	{"server.write_timeout", func(c *config.Config) any { return c.Server.WriteTimeout }},
	{"server.idle_timeout", func(c *config.Config) any { return c.Server.IdleTimeout }},
	{"server.max_header_bytes", func(c *config.Config) any { return c.Server.MaxHeaderBytes }},
	{"server.h2_max_requests_per_second", func(c *config.Config) any { return c.Server.H2MaxRequestsPerSecond }},
	{"server.h2_max_concurrent_streams", func(c *config.Config) any { return c.Server.H2MaxConcurrentStreams }},
	// Every listener's admission controller is built from it at start.
	{"connections", func(c *config.Config) any { return c.Connections }},
	{"tls.acme", func(c *config.Config) any { return c.TLS.ACME }},
	{"sessions.store", func(c *config.Config) any { return c.Sessions.Store }},
	{"sessions.cookie_name", func(c *config.Config) any { return c.Sessions.CookieName }},
	{"sessions.encryption_key", func(c *config.Config) any { return c.Sessions.EncryptionKey }},
	{"sessions.encryption_key_file", func(c *config.Config) any { return c.Sessions.EncryptionKeyFile }},
	{"sessions.max_sessions", func(c *config.Config) any { return c.Sessions.MaxSessions }},
	{"redis", func(c *config.Config) any { return c.Redis }},
	{"audit", func(c *config.Config) any { return c.Audit }},
	{"assertion.signing_key_file", func(c *config.Config) any { return c.Assertion.SigningKeyFile }},
	{"rate_limits.max_clients", func(c *config.Config) any { return c.RateLimits.MaxClients }},
	{"visits", func(c *config.Config) any { return c.Visits }},
	// The grant store's caps, the reviewer roles and the webhook are
	// set up once with the session store.
	{"break_glass", func(c *config.Config) any { return c.BreakGlass }},
}, relayFixed()...)

// relayFixed is a fixed entry for every field of config.Relay that is not
// one of relay.LimitFields, named by its YAML key ("relay.listen"): a
// relay field added later is fixed until the relay can apply it.
func relayFixed() []fixedSetting {
	var out []fixedSetting
	t := reflect.TypeFor[config.Relay]()
	for i := range t.NumField() {
		f := t.Field(i)
		key, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if key == "" || key == "-" || slices.Contains(relay.LimitFields, key) {
			continue
		}
		out = append(out, fixedSetting{"relay." + key, func(c *config.Config) any {
			return reflect.ValueOf(c.Relay).Field(i).Interface()
		}})
	}
	return out
}

// checkFixed refuses next when it changes a setting of the process, one
// problem per field, located in next's file.
func checkFixed(cur, next *config.Config) config.Errors {
	var errs config.Errors
	for _, f := range fixed {
		if !reflect.DeepEqual(f.get(cur), f.get(next)) {
			errs = append(errs, next.Problem(f.field, "changed, but it cannot change while telegate runs: restart telegate to apply it (the running configuration stays)"))
		}
	}
	return errs
}

// inspectsAny reports whether inspection is on globally or for any route:
// the inspector is then built, so a route's `inspect: true` holds even
// with inspection off globally.
func inspectsAny(cfg *config.Config) bool {
	if cfg.Inspection.Enabled {
		return true
	}
	for _, r := range cfg.Routes {
		if r.Inspect != nil && *r.Inspect {
			return true
		}
	}
	return false
}

// Check is `telegate check`: it loads the file at path and builds its
// generation without listening or contacting anything but the Redis of
// redis.addr (checkRedisSetup: refused credentials are a problem, its
// settings give warnings in Config.Warnings), and returns every
// problem of one run — the file's (syntax, values, references) and those
// the parts find (Build) — each at its file:line, or the loaded
// configuration when there is none. A part's problem at a field the file
// already has a problem with is left out (it is a consequence).
func Check(path string) (*config.Config, error) {
	cfg, errs := config.LoadPartial(path)
	if cfg == nil {
		return nil, errs
	}
	_, err := buildForReport(cfg)
	var more config.Errors
	if !errors.As(err, &more) && err != nil {
		more = config.Errors{cfg.Problem("", "%s", err.Error())}
	}
	for _, e := range more {
		if !errs.Covers(e.Field) {
			errs = append(errs, e)
		}
	}
	if len(errs) == 0 {
		warns, err := checkRedisSetup(context.Background(), cfg)
		var refused config.Errors
		if errors.As(err, &refused) {
			errs = append(errs, refused...)
		}
		cfg.Warnings = append(cfg.Warnings, warns...)
	}
	if len(errs) > 0 {
		config.SortErrors(errs)
		return nil, errs
	}
	return cfg, nil
}

// buildForReport is Build(cfg, Env{}) on a configuration that may have
// failed to load: a part that trips over what could not be decoded
// reports nothing more rather than stopping the report.
func buildForReport(cfg *config.Config) (g *Generation, err error) {
	defer func() {
		if p := recover(); p != nil {
			g, err = nil, nil
		}
	}()
	return Build(cfg, Env{})
}

// inspectExclusions are the routes' inspect_exclusions by route id: the
// Inspector is reused across a reload only when they are unchanged.
func inspectExclusions(cfg *config.Config) map[string][]config.InspectExclusion {
	out := map[string][]config.InspectExclusion{}
	for _, rt := range cfg.Routes {
		if len(rt.InspectExclusions) > 0 {
			out[rt.ID] = rt.InspectExclusions
		}
	}
	return out
}

// newInspector is policies.NewInspector, a variable so that a test can
// count how often the Core Rule Set is compiled.
var newInspector = policies.NewInspector
