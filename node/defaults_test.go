package node

import (
	"errors"
	"strings"
	"testing"

	"github.com/telegate/telegate/config"
)

// TestRegression_HandBuiltConfigDefaultedOrRefused: the parts read every
// setting from the configuration and keep no defaults of their own, so a
// Config built in code without its defaults is refused with a message
// that says what to do, never run with zero timeouts and limits; one call
// to ApplyDefaults makes the same Config build.
func TestRegression_HandBuiltConfigDefaultedOrRefused(t *testing.T) {
	t.Parallel()
	cfg := &config.Config{
		DataDir: t.TempDir(),
		Server:  config.Server{PublicURL: "https://gw.example.test"},
		Routes: []config.Route{{ID: "home", Hosts: []string{"gw.example.test"}, Path: "/", Upstream: "http://127.0.0.1:8080",
			Policy: &config.Policy{Allow: []config.Rule{{Authenticated: true}}}}},
	}
	_, err := Build(cfg, Env{})
	if !errors.Is(err, config.ErrNoDefaults) || !strings.Contains(err.Error(), "ApplyDefaults") {
		t.Fatalf("Build without defaults: err = %v, want config.ErrNoDefaults naming ApplyDefaults", err)
	}

	cfg.ApplyDefaults()
	g, err := Build(cfg, Env{})
	if err != nil {
		t.Fatalf("Build after ApplyDefaults: %v", err)
	}
	if s := g.Config.Server; s.ReadHeaderTimeout == 0 || s.MaxHeaderBytes == 0 || s.H2MaxConcurrentStreams == 0 || g.Config.Sessions.IdleTimeout == 0 {
		t.Errorf("the generation runs with zero values: %+v", s)
	}
}
