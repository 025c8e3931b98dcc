package main

import (
	"context"

	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/gateway/stack"
)

// serveOptions are what the command line hands to serve.
type serveOptions = stack.Options

// readyInfo describes a running gateway.
type readyInfo = stack.Ready

// serve runs one telegate node for cfg until ctx ends (see stack.Run).
func serve(ctx context.Context, cfg *config.Config, o serveOptions) error {
	return stack.Run(ctx, cfg, o)
}
