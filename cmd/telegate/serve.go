package main

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"github.com/telegate/telegate/config"
)

// serveOptions are what the command line hands to serve.
type serveOptions struct {
	Logger *slog.Logger
	// Reloads delivers configurations that have already been loaded and
	// validated (SIGHUP or file change). nil in demo mode.
	Reloads <-chan *config.Config
	// HTTPClient is used for calls to OpenID Providers and ACME CAs; nil
	// means a default client with timeouts.
	HTTPClient *http.Client
	// Ready is called once every listener is up, with facts to print.
	Ready func(r readyInfo)
}

// readyInfo describes a running gateway.
type readyInfo struct {
	// URL of the public listener, e.g. "https://localhost:8443/".
	URL string
	// AdminAddr is the admin listener's address.
	AdminAddr string
	// LocalRoot is the path of the local CA root certificate, or "".
	LocalRoot string
}

// serve wires the planes (gateway, auth, policies, media) for cfg and runs
// them until ctx ends.
func serve(ctx context.Context, cfg *config.Config, o serveOptions) error {
	_ = ctx
	_ = cfg
	_ = o
	return errors.New("telegate: serving is not wired yet")
}
