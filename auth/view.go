package auth

import (
	"context"
	"crypto/x509"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/telegate/telegate/config"
)

// View is auth's part of one configuration generation: the providers and
// bearer issuers with their client registrations and role mappings, the
// device CA pools, the routes, and the session timeouts. It is immutable;
// a reload builds a new View (NewView) and the node swaps it in with the
// rest of the generation (docs/architecture.md "Generations"). A View
// implements gateway.Authenticator; it embeds the Service for what lives as
// long as the node (session store, pre-auth records, discovery, audit).
type View struct {
	*Service
	cfg       *config.Config
	publicURL string

	cookieName string
	preCookie  string
	idle       time.Duration
	touchEvery time.Duration // touchIntervalFor(idle)
	absolute   time.Duration
	providers  map[string]*relyingParty
	provOrder  []string
	bearers    map[string]*bearerVerifier
	clientCAs  map[string]*x509.CertPool
	routes     map[string]*config.Route
	// visitsAPI stands for the visits API (/.telegate/visits) when
	// visits.bearer names bearer issuers: an API route taking their tokens.
	visitsAPI *config.Route
	handler   http.Handler
}

// NewView builds auth's view of cfg. It reads the providers' client secret
// files and the device CA files (clientCAs, when not nil, replaces the
// latter) and refuses what sign-in could not work with; it contacts no
// provider. With s nil it only checks (telegate check): the View cannot
// serve. With s set, each provider's and bearer issuer's discovery (OpenID
// Connect Discovery 1.0 §4) is shared with earlier views of the same
// issuer, so a reload that changes a client secret or a role mapping takes
// effect at the next sign-in without discovering again.
func NewView(cfg *config.Config, s *Service, clientCAs map[string]*x509.CertPool) (*View, error) {
	if err := cfg.CheckDefaulted(); err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	v := &View{
		Service:   s,
		cfg:       cfg,
		publicURL: strings.TrimSuffix(cfg.Server.PublicURL, "/"),
		providers: map[string]*relyingParty{},
		bearers:   map[string]*bearerVerifier{},
		routes:    map[string]*config.Route{},
	}
	var errs config.Errors
	problem := func(field string, err error) { errs = append(errs, cfg.Problem(field, "%s", err.Error())) }
	sc := cfg.Sessions
	// The settings come defaulted and validated by config; where auth keys
	// or builds something by a rule (the cookie name, the ids), it applies
	// config's rule, so that a configuration built in code meets it too.
	v.cookieName = sc.CookieName
	if err := config.CheckCookieName(v.cookieName); err != nil {
		problem("sessions.cookie_name", err)
	}
	v.preCookie = v.cookieName + "-login"
	v.idle = sc.IdleTimeout
	v.touchEvery = touchIntervalFor(v.idle)
	v.absolute = sc.AbsoluteTimeout
	for i := range cfg.Routes {
		v.routes[cfg.Routes[i].ID] = &cfg.Routes[i]
	}
	if len(cfg.Visits.Bearer) > 0 {
		v.visitsAPI = &config.Route{ID: "visits-api", Path: VisitsAPIPrefix, API: true, Bearer: cfg.Visits.Bearer}
	}
	v.clientCAs = clientCAs
	if v.clientCAs == nil {
		v.clientCAs = map[string]*x509.CertPool{}
		for i, ca := range cfg.ClientCAs {
			pool, err := loadClientCA(ca)
			if err != nil {
				problem(fmt.Sprintf("client_cas[%d].ca_file", i), err)
				continue
			}
			v.clientCAs[ca.ID] = pool
		}
	}
	var base *http.Client
	var now func() time.Time = time.Now
	if s != nil {
		base, now = s.httpClient, s.now
	}
	seen := map[string]bool{}
	for i, p := range cfg.Providers {
		if err := config.CheckID(p.ID, seen, "provider"); err != nil {
			problem(fmt.Sprintf("providers[%d].id", i), err)
			continue
		}
		rp, err := newRelyingParty(p, base, now)
		if err != nil {
			errs = append(errs, cfg.ProblemOf(fmt.Sprintf("providers[%d]", i), err))
			continue
		}
		if s != nil {
			rp.disc = s.discovery.get(discoveryKey(p.Issuer, "", p.CARootFile, p.Timeout), p.Issuer, "", rp.client)
		}
		v.providers[p.ID] = rp
		v.provOrder = append(v.provOrder, p.ID)
	}
	seen = map[string]bool{}
	for i, b := range cfg.Bearer {
		if err := config.CheckID(b.ID, seen, "bearer"); err != nil {
			problem(fmt.Sprintf("bearer[%d].id", i), err)
			continue
		}
		bv, err := newBearerVerifier(b, base, now)
		if err != nil {
			problem(fmt.Sprintf("bearer[%d]", i), err)
			continue
		}
		if s != nil {
			bv.disc = s.discovery.get(discoveryKey(b.Issuer, b.JWKSURL, b.CARootFile, 0), b.Issuer, b.JWKSURL, bv.client)
		}
		v.bearers[b.ID] = bv
	}
	if len(errs) > 0 {
		return nil, errs
	}
	if s != nil {
		v.handler = v.routesMux()
	}
	return v, nil
}

// Activate makes v the view background work uses (the sweeper, Active)
// and lets discovery of issuers no longer named by v stop.
func (s *Service) Activate(v *View) {
	s.cur.Store(v)
	keep := map[string]bool{}
	for _, rp := range v.providers {
		keep[rp.disc.key] = true
	}
	for _, bv := range v.bearers {
		keep[bv.disc.key] = true
	}
	s.discovery.prune(keep)
}

// WaitDiscovered returns once every provider and bearer issuer of v has
// had its first discovery attempt, successful or not, or ctx ends. A node
// waits so that it is ready to sign in when it says it is; a provider that
// is down does not hold it up beyond its timeout.
func (v *View) WaitDiscovered(ctx context.Context) {
	for _, rp := range v.providers {
		rp.disc.waitTried(ctx)
	}
	for _, bv := range v.bearers {
		bv.disc.waitTried(ctx)
	}
}

// View is the view made current by the last Activate.
func (s *Service) View() *View { return s.cur.Load() }

// ProviderReady reports whether provider id's discovery has succeeded: nil
// when its sign-in can start, else the last discovery error. Unknown ids
// are an error.
func (s *View) ProviderReady(id string) error {
	rp := s.providers[id]
	if rp == nil {
		return fmt.Errorf("no provider %q", id)
	}
	_, err := rp.ready()
	return err
}

// ProviderIDs lists the configured providers in configuration order.
func (s *View) ProviderIDs() []string { return append([]string(nil), s.provOrder...) }

// Ready reports the first provider or bearer issuer whose discovery has
// not succeeded, or nil.
func (s *View) Ready(ctx context.Context) error {
	for _, id := range s.provOrder {
		if err := s.ProviderReady(id); err != nil {
			return fmt.Errorf("provider %q: %w", id, err)
		}
	}
	return nil
}
