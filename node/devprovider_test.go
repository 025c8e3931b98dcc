package node

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/telegate/telegate/config"
)

// devConfig is the demo configuration (one development provider) with a
// second, ordinary provider.
func devConfig() *config.Config {
	cfg := config.Demo(config.DemoOptions{Upstream: "http://127.0.0.1:9", DataDir: "unused"})
	cfg.Providers = append(cfg.Providers, config.Provider{ID: "staff", Issuer: "https://idp.hospital.example", ClientID: "gw", ClientSecret: "x"})
	return cfg
}

// TestStartDevelopmentProviders: each development provider gets a running
// development OpenID Provider on loopback whose discovery names the issuer
// filled into the configuration, with telegate's client id and a fresh
// secret per start; other providers are left as they are; stop ends it.
func TestStartDevelopmentProviders(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	cfg := devConfig()
	stop, err := startDevelopmentProviders(ctx, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	p := cfg.Providers[0]
	if !strings.HasPrefix(p.Issuer, "http://127.0.0.1:") || p.ClientID != config.DevelopmentClientID || len(p.ClientSecret) < 32 {
		t.Fatalf("development provider filled in as %+v", p)
	}
	if s := cfg.Providers[1]; s.Issuer != "https://idp.hospital.example" || s.ClientID != "gw" || s.ClientSecret != "x" {
		t.Errorf("the ordinary provider was changed: %+v", s)
	}
	hc := &http.Client{Timeout: 5 * time.Second}
	resp, err := hc.Get(p.Issuer + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Issuer string `json:"issuer"`
	}
	err = json.NewDecoder(resp.Body).Decode(&doc)
	resp.Body.Close()
	if err != nil || doc.Issuer != p.Issuer {
		t.Fatalf("discovery: issuer %q (%v), want %q", doc.Issuer, err, p.Issuer)
	}

	again := devConfig()
	stop2, err := startDevelopmentProviders(ctx, again, log)
	if err != nil {
		t.Fatal(err)
	}
	if again.Providers[0].ClientSecret == p.ClientSecret || again.Providers[0].Issuer == p.Issuer {
		t.Error("a second start reuses the first one's secret or port")
	}
	if err := stop2(); err != nil {
		t.Error(err)
	}

	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if resp, err := hc.Get(p.Issuer + "/.well-known/openid-configuration"); err == nil {
		resp.Body.Close()
		t.Error("the development provider still answers after stop")
	}
}

// TestStartDevelopmentProvidersRefuses: a configuration built in code
// (never validated) still cannot start the development provider beside a
// listener that is not on loopback, nor over an issuer or client of its
// own.
func TestStartDevelopmentProvidersRefuses(t *testing.T) {
	t.Parallel()
	for name, change := range map[string]func(*config.Config){
		"public listener": func(c *config.Config) { c.Server.Listen = "0.0.0.0:8443" },
		"admin listener":  func(c *config.Config) { c.Server.Admin = "10.0.0.5:9090" },
		"public URL":      func(c *config.Config) { c.Server.PublicURL = "https://gw.hospital.example" },
		"issuer":          func(c *config.Config) { c.Providers[0].Issuer = "http://127.0.0.1:5556" },
		"client secret":   func(c *config.Config) { c.Providers[0].ClientSecret = "chosen" },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cfg := devConfig()
			change(cfg)
			stop, err := startDevelopmentProviders(context.Background(), cfg, slog.New(slog.DiscardHandler))
			if err == nil {
				_ = stop()
				t.Fatal("started")
			}
			if !strings.Contains(err.Error(), "providers[0] (demo)") {
				t.Errorf("error %q does not name the provider", err)
			}
			if cfg.Providers[0].ClientID != "" {
				t.Errorf("client filled in although refused: %+v", cfg.Providers[0])
			}
		})
	}
}
