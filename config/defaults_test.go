package config

import (
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestRegression_DefaultsLiveInConfig: the defaults of every part
// (listeners and HTTP/2 limits of the gateway, sessions and signing
// algorithms of auth, the assertion, the WAF, break-glass, the audit trail)
// are set on the Config by Load, so that the parts read the configuration
// only and no part keeps a default of its own.
func TestRegression_DefaultsLiveInConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src := `
tls:
  hosts:
    - names: [gw.example.test]
      mode: local
routes:
  - id: home
    path: /
    upstream: http://127.0.0.1:8080
    policy:
      allow:
        - authenticated: true
      break_glass:
        allow:
          - roles: [clinician]
`
	cfg, err := parse([]byte(src), filepath.Join(dir, "minimal.yaml"), lookup(nil))
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Defaulted() || cfg.CheckDefaulted() != nil {
		t.Fatal("a loaded configuration is not marked defaulted")
	}
	dataDir := filepath.Join(dir, "telegate-data")
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"data_dir", cfg.DataDir, dataDir},
		{"server.listen", cfg.Server.Listen, ":443"},
		{"server.admin", cfg.Server.Admin, "127.0.0.1:9090"},
		{"server.read_header_timeout", cfg.Server.ReadHeaderTimeout, 5 * time.Second},
		{"server.read_timeout", cfg.Server.ReadTimeout, 30 * time.Second},
		{"server.idle_timeout", cfg.Server.IdleTimeout, 120 * time.Second},
		{"server.max_header_bytes", cfg.Server.MaxHeaderBytes, 64 << 10},
		{"server.shutdown_timeout", cfg.Server.ShutdownTimeout, 20 * time.Second},
		{"server.hsts_max_age", cfg.Server.HSTSMaxAge, 365 * 24 * time.Hour},
		{"server.h2_max_concurrent_streams", cfg.Server.H2MaxConcurrentStreams, uint32(100)},
		{"server.h2_max_requests_per_second", cfg.Server.H2MaxRequestsPerSecond, 200.0},
		{"sessions.cookie_name", cfg.Sessions.CookieName, "__Host-telegate"},
		{"sessions.idle_timeout", cfg.Sessions.IdleTimeout, 15 * time.Minute},
		{"sessions.absolute_timeout", cfg.Sessions.AbsoluteTimeout, 12 * time.Hour},
		{"sessions.max_sessions", cfg.Sessions.MaxSessions, 100000},
		{"assertion.header", cfg.Assertion.Header, "X-Telegate-Assertion"},
		{"assertion.ttl", cfg.Assertion.TTL, 60 * time.Second},
		{"assertion.issuer", cfg.Assertion.Issuer, "https://gw.example.test"},
		{"inspection.paranoia_level", cfg.Inspection.ParanoiaLevel, 1},
		{"inspection.anomaly_threshold", cfg.Inspection.AnomalyThreshold, 5},
		{"routes[0].max_body_bytes", cfg.Routes[0].MaxBodyBytes, int64(10 << 20)},
		{"routes[0].timeout", cfg.Routes[0].Timeout, 30 * time.Second},
		{"routes[0].policy.break_glass.duration", cfg.Routes[0].Policy.BreakGlass.Duration, time.Hour},
		{"audit.file", cfg.Audit.File, filepath.Join(dataDir, "audit", "audit.log")},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v (%T), want %v", c.name, c.got, c.got, c.want)
		}
	}

	// A provider's defaults: signing algorithms, role claim, timeout and
	// redirect URL, on a configuration built in code.
	c := &Config{Server: Server{PublicURL: "https://gw.example.test"}, Providers: []Provider{{ID: "staff"}}, Bearer: []Bearer{{ID: "api"}}}
	if c.Defaulted() || c.CheckDefaulted() != ErrNoDefaults {
		t.Fatal("a configuration built in code is marked defaulted before ApplyDefaults")
	}
	c.ApplyDefaults()
	p := c.Providers[0]
	if !slices.Equal(p.SigningAlgs, []string{"RS256", "ES256"}) || !slices.Equal(c.Bearer[0].SigningAlgs, []string{"RS256", "ES256"}) ||
		p.Roles.Claim != "groups" || p.Timeout != 10*time.Second || p.RedirectURL != "https://gw.example.test/.telegate/callback/staff" {
		t.Errorf("provider defaults %+v, bearer %+v", p, c.Bearer[0])
	}
	if !c.Defaulted() {
		t.Error("ApplyDefaults did not mark the configuration defaulted")
	}
}
