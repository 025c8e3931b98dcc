package node

import (
	"crypto/tls"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/telegate/telegate/audit"
	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/gateway"
	"github.com/telegate/telegate/internal/redistest"
	"github.com/telegate/telegate/media/relay"
	"github.com/telegate/telegate/policies"
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

// TestRegression_StartCompilesRulesOnce: a node started with inspection
// compiles the Core Rule Set once — in the one build at start, before
// anything opens — and that one WAF still refuses
// attacks of several kinds and records each refusal in the node's trail.
// Not parallel: it counts every build in the package.
func TestRegression_StartCompilesRulesOnce(t *testing.T) {
	var builds atomic.Int32
	orig := newInspector
	newInspector = func(c config.Inspection, routes []config.Route, sink audit.Sink, log *slog.Logger) (*policies.Inspector, error) {
		builds.Add(1)
		return orig(c, routes, sink, log)
	}
	t.Cleanup(func() { newInspector = orig })
	cfg := nodeConfigWith(t, redistest.Start(t), "inspection:\n  enabled: true\n")
	r, _ := runNode(t, cfg)
	if n := builds.Load(); n != 1 {
		t.Errorf("start compiled the Core Rule Set %d times, want once", n)
	}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, ServerName: "localhost"}}} // loopback only, the node's local CA
	t.Cleanup(hc.CloseIdleConnections)
	attacks := []string{
		"/records?id=1'%20OR%20'1'='1",
		"/search?q=%3Cscript%3Ealert(document.cookie)%3C/script%3E",
		"/files?name=../../../../etc/passwd",
	}
	ids := map[string]bool{}
	for _, path := range attacks {
		req, _ := http.NewRequest(http.MethodGet, "https://"+r.ListenAddr+path, nil)
		req.Host = "localhost"
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("GET %s: %d, want 403 from the WAF", path, resp.StatusCode)
		}
		ids[resp.Header.Get(gateway.RequestIDHeader)] = true
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		recorded := 0
		for _, e := range trailEvents(t, cfg) {
			if e.Type == "inspect" && e.Decision == "deny" && ids[e.RequestID] {
				recorded++
			}
		}
		if recorded == len(attacks) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d refusals in the trail", recorded, len(attacks))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n := builds.Load(); n != 1 {
		t.Errorf("serving compiled the Core Rule Set again: %d builds", n)
	}
}
