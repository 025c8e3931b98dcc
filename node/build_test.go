package node

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/media/relay"
)

// TestFixedNamesRelayFieldsAndLetsLimitsAndTLSHostsReload: every relay
// setting is either a limit the relay applies on reload or fixed under
// its own name; the TLS host table, the device CAs (client_cas) and
// tls.min_version reload while tls.acme stays fixed.
func TestFixedNamesRelayFieldsAndLetsLimitsAndTLSHostsReload(t *testing.T) {
	t.Parallel()
	names := map[string]bool{}
	for _, f := range fixed {
		names[f.field] = true
	}
	for _, want := range []string{"relay.listen", "relay.tls_listen", "relay.relay_addresses", "relay.external_addresses",
		"relay.port_min", "relay.port_max", "relay.secrets", "relay.secrets_file", "relay.enabled", "relay.server_names",
		"tls.acme", "server.listen", "data_dir"} {
		if !names[want] {
			t.Errorf("%s is not fixed", want)
		}
	}
	for _, f := range relay.LimitFields {
		if names["relay."+f] {
			t.Errorf("relay.%s is a limit the relay applies, yet fixed", f)
		}
	}
	if names["relay"] || names["tls"] || names["tls.hosts"] || names["client_cas"] || names["tls.min_version"] {
		t.Error("a whole section is still fixed")
	}

	cur := &config.Config{
		TLS: config.TLS{Hosts: []config.TLSHost{{Names: []string{"localhost"}, Mode: "local"}}},
		Relay: config.Relay{Enabled: true, Listen: "127.0.0.1:3478",
			RelayAddresses: []netip.Addr{netip.MustParseAddr("127.0.0.1")}}.Defaults(),
	}
	next := *cur
	next.TLS.Hosts = []config.TLSHost{{Names: []string{"localhost", "app.localhost"}, Mode: "local"}}
	next.Relay.MaxAllocationsPerParticipant = 1
	next.Relay.CredentialTTL = time.Minute
	next.Relay.AllocationRate = config.RateLimit{Rate: 2, Burst: 3}
	next.TLS.MinVersion = "1.3"
	next.ClientCAs = []config.ClientCA{{ID: "carts", CAFile: "/etc/telegate/carts-2027.pem"}}
	if probs := checkFixed(cur, &next); len(probs) > 0 {
		t.Fatalf("TLS hosts, client CAs, min version and relay limits refused: %v", probs)
	}
	next.Relay.Listen = "127.0.0.1:3479"
	next.Relay.PortMin = 40000
	next.TLS.ACME.Email = "pki@hospital.test"
	probs := checkFixed(cur, &next)
	var got []string
	for _, p := range probs {
		got = append(got, p.Error())
	}
	for _, want := range []string{"relay.listen", "relay.port_min", "tls.acme"} {
		if !slices.ContainsFunc(got, func(s string) bool { return strings.Contains(s, want) }) {
			t.Errorf("change of %s not refused by name: %v", want, got)
		}
	}
	if len(probs) != 3 {
		t.Errorf("%d problems, want 3: %v", len(probs), got)
	}
}

// TestInspectorRebuiltWhenExclusionsChange: a reload reuses the running
// generation's WAF while inspection and the routes' inspect_exclusions are
// unchanged, and builds a new one when an exclusion changes.
func TestInspectorRebuiltWhenExclusionsChange(t *testing.T) {
	t.Parallel()
	mk := func(exs []config.InspectExclusion) *config.Config {
		cfg := &config.Config{
			DataDir:    t.TempDir(),
			Server:     config.Server{PublicURL: "https://gw.example.test"},
			Inspection: config.Inspection{Enabled: true},
			Routes: []config.Route{{ID: "notes", Hosts: []string{"gw.example.test"}, Path: "/", Upstream: "http://127.0.0.1:8080",
				Policy: &config.Policy{Public: true}, InspectExclusions: exs}},
		}
		cfg.ApplyDefaults()
		return cfg
	}
	notes := []config.InspectExclusion{{Args: []string{"note"}, Groups: []string{"sqli"}}}
	g1, err := Build(mk(notes), Env{})
	if err != nil {
		t.Fatal(err)
	}
	g2, err := Build(mk(notes), Env{Previous: g1})
	if err != nil {
		t.Fatal(err)
	}
	if g2.Inspector != g1.Inspector {
		t.Error("unchanged exclusions: the WAF was rebuilt")
	}
	g3, err := Build(mk([]config.InspectExclusion{{Args: []string{"note"}, Groups: []string{"sqli", "xss"}}}), Env{Previous: g2})
	if err != nil {
		t.Fatal(err)
	}
	if g3.Inspector == nil || g3.Inspector == g2.Inspector {
		t.Error("changed exclusions: the running WAF was kept")
	}
}
