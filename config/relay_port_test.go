package config

import "testing"

// TestRegression_TURNSPortIsTheServedPort: the port of turns: URLs
// (relay.tls_port once defaulted) is the one telegate serves TURN over
// TLS on — the HTTPS listener's wherever it listens, the dedicated
// listener's when there is one — or the configured external port, never
// 443 by assumption.
func TestRegression_TURNSPortIsTheServedPort(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name                    string
		listen, tlsListen, demo string
		tlsPort, want           int
	}{
		{name: "HTTPS listener on another port", listen: "127.0.0.1:8443", want: 8443},
		{name: "HTTPS listener on all addresses", listen: ":9443", want: 9443},
		{name: "HTTPS listener by default", want: 443},
		{name: "IPv6 HTTPS listener", listen: "[::1]:7443", want: 7443},
		{name: "dedicated TURN-over-TLS listener", listen: "127.0.0.1:8443", tlsListen: "127.0.0.1:5349", want: 5349},
		{name: "external port behind a load balancer", listen: "127.0.0.1:8443", tlsPort: 443, want: 443},
		{name: "demo", demo: "127.0.0.1:9555", want: 9555},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var cfg *Config
			if c.demo != "" {
				cfg = Demo(DemoOptions{Listen: c.demo, DataDir: t.TempDir()})
			} else {
				cfg = &Config{Server: Server{Listen: c.listen}, Relay: Relay{Enabled: true, TLSListen: c.tlsListen, TLSPort: c.tlsPort}}
				cfg.ApplyDefaults()
			}
			if got := cfg.Relay.TLSPort; got != c.want {
				t.Fatalf("relay.tls_port %d, want %d", got, c.want)
			}
			if got := cfg.Relay.AdvertisedTLSPort(cfg.Server.Listen); got != c.want {
				t.Fatalf("AdvertisedTLSPort %d, want %d", got, c.want)
			}
		})
	}
}
