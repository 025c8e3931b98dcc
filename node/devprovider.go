package node

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"

	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/demo/devop"
)

// startDevelopmentProviders starts the development OpenID Provider
// (demo/devop, with the demo users) on an ephemeral loopback port for every
// provider that cfg declares with `development: true`, registers telegate
// there as config.DevelopmentClientID with a fresh random secret and the
// provider's redirect URI, and fills that provider's Issuer, ClientID and
// ClientSecret in cfg, so that the rest of start-up signs in through it as
// through any other provider. Role mapping and scopes come from the
// configuration's defaults (config.DevelopmentRoles). `telegate demo` and
// `telegate run` both start theirs here.
//
// It refuses a development provider whose issuer or client is already set,
// and one whose listeners or public URL are not all on loopback
// (config.Config.CheckDevelopmentLoopback), even when the configuration was
// built in code and never validated. stop closes every provider started.
func startDevelopmentProviders(ctx context.Context, cfg *config.Config, log *slog.Logger) (stop func() error, err error) {
	var ops []*devop.Server
	stop = func() error {
		var errs []error
		for _, op := range ops {
			errs = append(errs, op.Close())
		}
		return errors.Join(errs...)
	}
	for i := range cfg.Providers {
		p := &cfg.Providers[i]
		if !p.Development {
			continue
		}
		if p.Issuer != "" || p.ClientID != "" || p.ClientSecret != "" || p.ClientSecretFile != "" {
			_ = stop()
			return nil, fmt.Errorf("providers[%d] (%s): development: true, but issuer or client already set", i, p.ID)
		}
		if err := cfg.CheckDevelopmentLoopback(); err != nil {
			_ = stop()
			return nil, fmt.Errorf("providers[%d] (%s): %w", i, p.ID, err)
		}
		public := cfg.Server.PublicURL
		redirect := p.RedirectURL
		if redirect == "" {
			redirect = public + "/.telegate/callback/" + p.ID
		}
		secret := randomSecret()
		op, err := devop.Start(ctx, devop.Options{
			Addr:   "127.0.0.1:0",
			Logger: log.With("component", "devop", "provider", p.ID),
			Clients: []devop.Client{{
				ID:                     config.DevelopmentClientID,
				Secret:                 secret,
				RedirectURIs:           []string{redirect},
				PostLogoutRedirectURIs: []string{public + "/", public + "/.telegate/signed-out"},
			}},
		})
		if err != nil {
			_ = stop()
			return nil, fmt.Errorf("providers[%d] (%s): starting the development OpenID Provider: %w", i, p.ID, err)
		}
		ops = append(ops, op)
		p.Issuer, p.ClientID, p.ClientSecret = op.Issuer(), config.DevelopmentClientID, secret
		log.Warn("development sign-in — not for patients: the development OpenID Provider is running; anyone signs in as the demo clinician, patient or admin with the password \"demo\"",
			"provider", p.ID, "issuer", op.Issuer())
	}
	return stop, nil
}

// randomSecret is a fresh client secret: 32 random bytes, base64url.
func randomSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}

// keepDevelopmentProviders gives next's development providers the issuer
// and client of the ones running under cur (same id): a reload keeps the
// development OpenID Provider started at start-up. A development provider
// that cur does not have is refused with the field named, since starting
// one belongs to start-up.
func keepDevelopmentProviders(cur, next *config.Config) config.Errors {
	var errs config.Errors
	for i := range next.Providers {
		p := &next.Providers[i]
		if !p.Development {
			continue
		}
		var was *config.Provider
		for j := range cur.Providers {
			if q := &cur.Providers[j]; q.Development && q.ID == p.ID {
				was = q
			}
		}
		if was == nil {
			errs = append(errs, next.Problem(fmt.Sprintf("providers[%d].development", i), "a development provider can be added only at start: restart telegate to apply it"))
			continue
		}
		p.Issuer, p.ClientID, p.ClientSecret = was.Issuer, was.ClientID, was.ClientSecret
	}
	return errs
}
