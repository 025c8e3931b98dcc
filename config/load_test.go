package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"
)

// testEnv is the environment the tests' configurations see.
var testEnv = map[string]string{
	"STAFF_SECRET":       "s3cret-value",
	"SHORT_RELAY_SECRET": "short",
	"WITH_DOLLAR":        "${STAFF_SECRET}",
}

func lookup(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	}
}

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// parseTest parses src as testdata/<name> with testEnv.
func parseTest(src, name string) (*Config, error) {
	return parse([]byte(src), filepath.Join("testdata", name), lookup(testEnv))
}

func errorLines(err error) []string {
	if err == nil {
		return nil
	}
	return strings.Split(err.Error(), "\n")
}

func TestValidFile(t *testing.T) {
	t.Parallel()
	cfg, err := parseTest(string(readTestdata(t, "valid.yaml")), "valid.yaml")
	if err != nil {
		t.Fatalf("valid.yaml: %v", err)
	}
	if len(cfg.Warnings) != 0 {
		t.Errorf("warnings: %v", cfg.Warnings)
	}
	if got := cfg.Providers[0].ClientSecret; got != "s3cret-value" {
		t.Errorf("client_secret = %q, want the value of STAFF_SECRET", got)
	}
	abs, _ := filepath.Abs("testdata")
	if want := filepath.Join(abs, "data"); cfg.DataDir != want && cfg.DataDir != filepath.Join("testdata", "data") {
		t.Errorf("data_dir = %q, want %q (relative to the file)", cfg.DataDir, want)
	}
	if want := filepath.Join("testdata", "ca.pem"); !strings.HasSuffix(cfg.ClientCAs[0].CAFile, want) {
		t.Errorf("ca_file = %q, want it resolved against the file's directory", cfg.ClientCAs[0].CAFile)
	}
	if cfg.Source != filepath.Join("testdata", "valid.yaml") {
		t.Errorf("Source = %q", cfg.Source)
	}
}

// marker is the comment that marks the line an error must point at.
const marker = "# <-"

// TestBadConfigs: each case edits valid.yaml so that exactly one field is
// wrong and expects an error "file:line: field: " at the marked line.
func TestBadConfigs(t *testing.T) {
	t.Parallel()
	base := string(readTestdata(t, "valid.yaml"))
	type edit struct{ old, new string }
	cases := []struct {
		name  string
		edits []edit
		field string // expected field path
		msg   string // expected fragment of the message
	}{
		{"unknown top-level key", []edit{{"data_dir: ./data\n", "data_dir: ./data\nbogus: 1 # <-\n"}}, "bogus", `unknown key "bogus"`},
		{"unknown key with suggestion", []edit{{"    upstream: http://127.0.0.1:8080", "    upstrem: http://127.0.0.1:8080 # <-"}}, "routes[0].upstrem", `did you mean "upstream"`},
		{"duration type", []edit{{"  idle_timeout: 15m", "  idle_timeout: soon # <-"}}, "sessions.idle_timeout", "expected a duration"},
		{"int type", []edit{{"  listen: \":8443\"", "  listen: \":8443\"\n  max_header_bytes: lots # <-"}}, "server.max_header_bytes", "expected an integer"},
		{"mapping expected", []edit{{"sessions:\n  idle_timeout: 15m\n  absolute_timeout: 12h", "sessions: [a, b] # <-"}}, "sessions", "expected a mapping"},
		{"list expected", []edit{{"routes:\n", "routes: 3 # <-\nroutes_old:\n"}}, "routes", "expected a list"},
		{"listen not host:port", []edit{{"  listen: \":8443\"", "  listen: \"8443\" # <-"}}, "server.listen", "host:port"},
		{"listen bad port", []edit{{"  listen: \":8443\"", "  listen: \":99999\" # <-"}}, "server.listen", "port"},
		{"send timeout below a second", []edit{{"  listen: \":8443\"", "  listen: \":8443\"\n  send_timeout: 200ms # <-"}}, "server.send_timeout", "at least 1s"},
		{"send timeout negative", []edit{{"  listen: \":8443\"", "  listen: \":8443\"\n  send_timeout: -1s # <-"}}, "server.send_timeout", "at least 1s"},
		{"admin on every interface", []edit{{"  admin: 127.0.0.1:9090", "  admin: 0.0.0.0:9090 # <-"}}, "server.admin", "loopback or private"},
		{"admin public address", []edit{{"  admin: 127.0.0.1:9090", "  admin: 8.8.8.8:9090 # <-"}}, "server.admin", "loopback or private"},
		{"admin without host", []edit{{"  admin: 127.0.0.1:9090", "  admin: \":9090\" # <-"}}, "server.admin", "loopback or private"},
		{"public_url http", []edit{{"  public_url: https://gw.example.test", "  public_url: http://gw.example.test # <-"}}, "server.public_url", "https"},
		{"public_url relative", []edit{{"  public_url: https://gw.example.test", "  public_url: gw.example.test # <-"}}, "server.public_url", "absolute https"},
		{"public_url with path", []edit{{"  public_url: https://gw.example.test", "  public_url: https://gw.example.test/app # <-"}}, "server.public_url", "without a path"},
		{"trusted proxies everything", []edit{{"  admin: 127.0.0.1:9090", "  admin: 127.0.0.1:9090\n  trusted_proxies: [0.0.0.0/0] # <-"}}, "server.trusted_proxies[0]", "trusts every address"},
		{"shutdown timeout negative", []edit{{"  admin: 127.0.0.1:9090", "  admin: 127.0.0.1:9090\n  shutdown_timeout: -1s # <-"}}, "server.shutdown_timeout", "must not be negative"},
		{"connections per-source pending past the pool", []edit{{"data_dir: ./data\n", "data_dir: ./data\nconnections:\n  max_pending: 16\n  max_pending_per_source: 32 # <-\n"}}, "connections.max_pending_per_source", "must not exceed max_pending"},
		{"connections per-source conns past the pool", []edit{{"data_dir: ./data\n", "data_dir: ./data\nconnections:\n  max_conns: 2048\n  max_conns_per_source: 4096 # <-\n"}}, "connections.max_conns_per_source", "must not exceed max_conns"},
		{"connections pending past conns", []edit{{"data_dir: ./data\n", "data_dir: ./data\nconnections:\n  max_pending: 4096 # <-\n  max_conns: 2048\n"}}, "connections.max_pending", "must not exceed max_conns"},
		{"connections negative cap", []edit{{"data_dir: ./data\n", "data_dir: ./data\nconnections:\n  max_conns_per_source: -1 # <-\n"}}, "connections.max_conns_per_source", "must be positive"},
		{"connections first byte past handshake", []edit{{"data_dir: ./data\n", "data_dir: ./data\nconnections:\n  first_byte_timeout: 20s # <-\n"}}, "connections.first_byte_timeout", "must not exceed handshake_timeout"},
		{"trusted proxies not a prefix", []edit{{"  admin: 127.0.0.1:9090", "  admin: 127.0.0.1:9090\n  trusted_proxies: [proxy] # <-"}}, "server.trusted_proxies", "CIDR"},
		{"issuer with a query", []edit{{"    issuer: https://idp.example.test\n    client_id", "    issuer: https://idp.example.test/realms/x?k=secret # <-\n    client_id"}}, "providers[0].issuer", "must not have a query"},
		{"issuer with an empty query", []edit{{"    issuer: https://idp.example.test\n    client_id", "    issuer: https://idp.example.test? # <-\n    client_id"}}, "providers[0].issuer", "must not have a query"},
		{"bearer issuer with a query", []edit{{"    issuer: https://idp.example.test\n    audience", "    issuer: https://idp.example.test?tenant=1 # <-\n    audience"}}, "bearer[0].issuer", "must not have a query"},
		{"tls mode unknown", []edit{{"      mode: local", "      mode: magic # <-"}}, "tls.hosts[0].mode", `"magic" is not one of`},
		{"tls files missing cert", []edit{{"      mode: local", "      mode: files\n      cert_file: missing.pem # <-\n      key_file: missing.key"}}, "tls.hosts[0].cert_file", "cannot read"},
		{"tls files without files", []edit{{"    - names: [gw.example.test]\n      mode: local", "    - names: [gw.example.test] # <-\n      mode: files"}}, "tls.hosts[0].cert_file", "is required"},
		{"tls bad name", []edit{{"    - names: [gw.example.test]", "    - names: [\"gw example\"] # <-"}}, "tls.hosts[0].names[0]", "not a host name"},
		{"tls min version", []edit{{"tls:\n", "tls:\n  min_version: \"1.0\" # <-\n"}}, "tls.min_version", `"1.2" or "1.3"`},
		{"provider id pattern", []edit{{"  - id: staff", "  - id: Staff_1 # <-"}}, "providers[0].id", "lower-case"},
		{"provider issuer http", []edit{{"    issuer: https://idp.example.test\n    client_id", "    issuer: http://idp.example.test # <-\n    client_id"}}, "providers[0].issuer", "http is allowed only for loopback"},
		{"provider client id missing", []edit{{"  - id: staff", "  - id: staff # <-"}, {"    client_id: telegate\n", ""}}, "providers[0].client_id", "is required"},
		{"provider secret env missing", []edit{{"    client_secret: ${STAFF_SECRET}", "    client_secret: ${NO_SUCH_VARIABLE} # <-"}}, "providers[0].client_secret", "environment variable NO_SUCH_VARIABLE is not set"},
		{"provider secret partial env", []edit{{"    client_secret: ${STAFF_SECRET}", "    client_secret: pre-${STAFF_SECRET} # <-"}}, "providers[0].client_secret", "whole value"},
		{"provider secret empty", []edit{{"    client_secret: ${STAFF_SECRET}", "    client_secret: \"\" # <-"}}, "providers[0].client_secret", "is required"},
		{"provider duplicate id", []edit{{"bearer:\n", "  - id: staff # <-\n    issuer: https://idp2.example.test\n    client_id: b\n    client_secret: ${STAFF_SECRET}\nbearer:\n"}}, "providers[1].id", "used twice"},
		{"provider signing alg none", []edit{{"    signing_algs: [RS256]", "    signing_algs: [none] # <-"}}, "providers[0].signing_algs[0]", `"none" is not one of`},
		{"provider signing alg HMAC", []edit{{"    signing_algs: [RS256]", "    signing_algs:\n      - RS256\n      - HS256 # <-"}}, "providers[0].signing_algs[1]", `"HS256" is not one of`},
		{"provider mfa_amr a password", []edit{{"    signing_algs: [RS256]", "    signing_algs: [RS256]\n    mfa_amr: [hwk, pwd] # <-"}}, "providers[0].mfa_amr[1]", "knowledge factor alone"},
		{"provider mfa_acr empty", []edit{{"    signing_algs: [RS256]", "    signing_algs: [RS256]\n    mfa_acr: [\"\"] # <-"}}, "providers[0].mfa_acr[0]", "must not be empty"},
		{"provider max_token_age too short", []edit{{"    signing_algs: [RS256]", "    signing_algs: [RS256]\n    max_token_age: 10s # <-"}}, "providers[0].max_token_age", "at least 1m"},
		{"provider max_id_token_bytes too small", []edit{{"    signing_algs: [RS256]", "    signing_algs: [RS256]\n    max_id_token_bytes: 100 # <-"}}, "providers[0].max_id_token_bytes", "between 1024"},
		{"backchannel logout rate 0", []edit{{"data_dir: ./data\n", "data_dir: ./data\nrate_limits:\n  backchannel_logout:\n    rate: 0 # <-\n    burst: 5\n"}}, "rate_limits.backchannel_logout.rate", "above 0"},
		{"bearer without audience", []edit{{"    audience: [telegate]\n", ""}, {"  - id: api\n    issuer", "  - id: api # <-\n    issuer"}}, "bearer[0].audience", "audience"},
		{"break-glass without allow", []edit{{"      allow:\n        - authenticated: true\n  - id: api", "      allow:\n        - authenticated: true\n      break_glass: # <-\n        duration: 1h\n  - id: api"}}, "routes[0].policy.break_glass.allow", "is required"},
		{"break-glass too long", []edit{{"      allow:\n        - authenticated: true\n  - id: api", "      allow:\n        - authenticated: true\n      break_glass:\n        allow:\n          - roles: [nurse]\n        duration: 24h # <-\n  - id: api"}}, "routes[0].policy.break_glass.duration", "12h"},
		{"inspect exclusion unknown group", []edit{{"    api: true\n", "    api: true\n    inspect_exclusions:\n      - args: [note]\n        groups: [sqli, sql] # <-\n"}}, "routes[1].inspect_exclusions[0].groups[1]", "not a rule group"},
		{"inspect exclusion without args", []edit{{"    api: true\n", "    api: true\n    inspect_exclusions:\n      - groups: [xss] # <-\n"}}, "routes[1].inspect_exclusions[0].args", "at least one argument"},
		{"inspect exclusion name with a pipe", []edit{{"    api: true\n", "    api: true\n    inspect_exclusions:\n      - args: [\"note|ARGS\"] # <-\n        groups: [xss]\n"}}, "routes[1].inspect_exclusions[0].args[0]", "argument name"},
		{"route strips every header", []edit{{"    api: true\n", "    api: true\n    strip_request_headers:\n      - X-Internal-*\n      - \"*\" # <-\n"}}, "routes[1].strip_request_headers[1]", "every header"},
		{"route strips a name with a space", []edit{{"    api: true\n", "    api: true\n    strip_request_headers: [\"X Debug\"] # <-\n"}}, "routes[1].strip_request_headers[0]", "neither a header name"},
		{"route strips a star inside", []edit{{"    api: true\n", "    api: true\n    strip_request_headers: [\"X-*-User\"] # <-\n"}}, "routes[1].strip_request_headers[0]", "neither a header name"},
		{"route duplicate id", []edit{{"  - id: api\n    path: /api/", "  - id: home # <-\n    path: /api/"}}, "routes[1].id", "used twice"},
		{"route path without trailing slash", []edit{{"    path: /api/", "    path: /api # <-"}}, "routes[1].path", "must start and end"},
		{"route path under own prefix", []edit{{"    path: /api/", "    path: /.telegate/api/ # <-"}}, "routes[1].path", "/.telegate/"},
		{"route path own prefix case", []edit{{"    path: /api/", "    path: /.TELEGATE/ # <-"}}, "routes[1].path", "/.telegate/"},
		{"route path dot segment", []edit{{"    path: /api/", "    path: /a/../api/ # <-"}}, "routes[1].path", "canonical"},
		{"route path encoded", []edit{{"    path: /api/", "    path: /a%2fb/ # <-"}}, "routes[1].path", "canonical"},
		{"route duplicate path", []edit{{"    path: /api/", "    path: / # <-"}}, "routes[1].path", "could not choose"},
		{"route path differs only in case", []edit{{"    path: /\n", "    path: /Api/\n"}, {"    path: /api/", "    path: /api/ # <-"}}, "routes[1].path", "differs only in letter case"},
		{"route path trailing dot", []edit{{"    path: /api/", "    path: /api./ # <-"}}, "routes[1].path", "end in"},
		{"route path not NFKC", []edit{{"    path: /api/", "    path: /ａpi/ # <-"}}, "routes[1].path", "NFKC"},
		{"route path invisible", []edit{{"    path: /api/", "    path: /a\u200bpi/ # <-"}}, "routes[1].path", "invisible"},
		{"upstream_case_insensitive not a bool", []edit{{"    path: /api/", "    path: /api/\n    upstream_case_insensitive: sometimes # <-"}}, "routes[1].upstream_case_insensitive", ""},
		{"normalize_unicode_paths not a bool", []edit{{"    path: /api/", "    path: /api/\n    normalize_unicode_paths: nfkc # <-"}}, "routes[1].normalize_unicode_paths", ""},
		{"upstream relative", []edit{{"    upstream: http://127.0.0.1:8081", "    upstream: /backend # <-"}}, "routes[1].upstream", "absolute http or https"},
		{"upstream other scheme", []edit{{"    upstream: http://127.0.0.1:8081", "    upstream: ftp://127.0.0.1/ # <-"}}, "routes[1].upstream", "absolute http or https"},
		{"upstream credentials", []edit{{"    upstream: http://127.0.0.1:8081", "    upstream: http://u:p@127.0.0.1:8081 # <-"}}, "routes[1].upstream", "user information"},
		{"route unknown provider", []edit{{"    providers: [staff]", "    providers: [ghost] # <-"}}, "routes[1].providers[0]", `no provider has id "ghost"`},
		{"route unknown bearer", []edit{{"    bearer: [api]", "    bearer: [ghost] # <-"}}, "routes[1].bearer[0]", `no bearer issuer has id "ghost"`},
		{"route unknown client CA", []edit{{"    client_cert: [devices]", "    client_cert: [ghost] # <-"}}, "routes[1].client_cert[0]", `no client CA has id "ghost"`},
		{"bearer on browser route", []edit{{"    api: true\n", ""}, {"    bearer: [api]", "    bearer: [api] # <-"}}, "routes[1].bearer", "api: true"},
		{"route host not in tls", []edit{{"    path: /api/", "    hosts: [other.example.test] # <-\n    path: /api/"}}, "routes[1].hosts[0]", "not named in tls.hosts"},
		{"cookie without __Host-", []edit{{"sessions:\n", "sessions:\n  cookie_name: sid # <-\n"}}, "sessions.cookie_name", "__Host-"},
		{"negative duration", []edit{{"  absolute_timeout: 12h", "  absolute_timeout: -1h # <-"}}, "sessions.absolute_timeout", "positive"},
		{"negative route timeout", []edit{{"    upstream: http://127.0.0.1:8080", "    upstream: http://127.0.0.1:8080\n    timeout: -5s # <-"}}, "routes[0].timeout", "positive"},
		{"idle above absolute", []edit{{"  idle_timeout: 15m", "  idle_timeout: 13h # <-"}}, "sessions.idle_timeout", "must not exceed absolute_timeout"},
		{"idle below a second", []edit{{"  idle_timeout: 15m", "  idle_timeout: 500ms # <-"}}, "sessions.idle_timeout", "must be at least 1s"},
		{"session store redis without a shared key", []edit{{"sessions:\n", "redis:\n  addr: 127.0.0.1:6379\nsessions:\n  store: redis # <-\n"}}, "sessions.store", "encryption_key"},
		{"tls storage unknown", []edit{{"tls:\n", "tls:\n  storage: s3 # <-\n"}}, "tls.storage", "not one of file, redis"},
		{"tls storage redis without addr", []edit{{"tls:\n", "tls:\n  storage: redis # <-\n"}}, "tls.storage", "redis.addr"},
		{"tls storage redis without a shared key", []edit{{"tls:\n", "redis:\n  addr: 127.0.0.1:6379\ntls:\n  storage: redis # <-\n"}}, "tls.storage", "storage_key_file"},
		{"tls storage key file missing", []edit{{"tls:\n", "tls:\n  storage_key_file: /nonexistent/tls.key # <-\n"}}, "tls.storage_key_file", "cannot read"},
		{"session store redis without addr", []edit{{"sessions:\n", "sessions:\n  store: redis # <-\n"}}, "sessions.store", "redis.addr"},
		{"redis TLS settings without enabled", []edit{{"sessions:\n", "redis:\n  addr: 127.0.0.1:6379\n  tls: # <-\n    server_name: redis.example.test\nsessions:\n"}}, "redis.tls", "only with enabled: true"},
		{"redis TLS client certificate without key", []edit{{"sessions:\n", "redis:\n  addr: 127.0.0.1:6379\n  tls:\n    enabled: true\n    cert_file: /nonexistent/client.pem # <-\nsessions:\n"}}, "redis.tls.cert_file", "go together"},
		{"redis TLS CA missing", []edit{{"sessions:\n", "redis:\n  addr: 127.0.0.1:6379\n  tls:\n    enabled: true\n    ca_file: /nonexistent/ca.pem # <-\nsessions:\n"}}, "redis.tls.ca_file", "no such file"},
		{"redis TLS server name", []edit{{"sessions:\n", "redis:\n  addr: 127.0.0.1:6379\n  tls:\n    enabled: true\n    server_name: \"bad name\" # <-\nsessions:\n"}}, "redis.tls.server_name", "DNS name"},
		{"redis user name with a space", []edit{{"sessions:\n", "redis:\n  addr: 127.0.0.1:6379\n  username: \"tele gate\" # <-\nsessions:\n"}}, "redis.username", "ACL user name"},
		{"encryption key short", []edit{{"sessions:\n", "sessions:\n  encryption_key: ${STAFF_SECRET} # <-\n"}}, "sessions.encryption_key", "32 bytes"},
		{"anchor refused", []edit{{"data_dir: ./data", "data_dir: &d ./data # <-"}}, "data_dir", "anchors"},
		{"env in key not expanded", []edit{{"data_dir: ./data\n", "data_dir: ./data\n${STAFF_SECRET}: x # <-\n"}}, "${STAFF_SECRET}", "unknown key"},
		{"expanded value not expanded again", []edit{{"  absolute_timeout: 12h", "  absolute_timeout: ${WITH_DOLLAR} # <-"}}, "sessions.absolute_timeout", "expected a duration"},
		{"log format", []edit{{"data_dir: ./data\n", "data_dir: ./data\nlog:\n  format: xml # <-\n"}}, "log.format", `"xml" is not one of`},
		{"audit rotate size small", []edit{{"data_dir: ./data\n", "data_dir: ./data\naudit:\n  rotate_size: 1000 # <-\n"}}, "audit.rotate_size", "at least 65536"},
		{"audit rotate age small", []edit{{"data_dir: ./data\n", "data_dir: ./data\naudit:\n  rotate_age: 5s # <-\n"}}, "audit.rotate_age", "at least 1m"},
		{"audit encryption key file missing", []edit{{"data_dir: ./data\n", "data_dir: ./data\naudit:\n  encryption_key_file: /nonexistent/audit.key # <-\n"}}, "audit.encryption_key_file", "cannot read"},
		{"paranoia level", []edit{{"data_dir: ./data\n", "data_dir: ./data\ninspection:\n  paranoia_level: 7 # <-\n"}}, "inspection.paranoia_level", "1 to 4"},
		{"rate without burst", []edit{{"data_dir: ./data\n", "data_dir: ./data\nrate_limits:\n  per_client: {rate: 5} # <-\n"}}, "rate_limits.per_client.burst", "at least 1"},
		{"rate 0 is no unlimited", []edit{{"data_dir: ./data\n", "data_dir: ./data\nrate_limits:\n  per_client: {rate: 0, burst: 5} # <-\n"}}, "rate_limits.per_client.rate", "above 0"},
		{"burst without rate", []edit{{"data_dir: ./data\n", "data_dir: ./data\nrate_limits:\n  per_subject: {burst: 5} # <-\n"}}, "rate_limits.per_subject.rate", "above 0"},
		{"empty limit given", []edit{{"data_dir: ./data\n", "data_dir: ./data\nrate_limits:\n  per_subject: {} # <-\n"}}, "rate_limits.per_subject.rate", "above 0"},
		{"negative rate", []edit{{"data_dir: ./data\n", "data_dir: ./data\nrate_limits:\n  per_client: {rate: -1, burst: 5} # <-\n"}}, "rate_limits.per_client.rate", "above 0"},
		{"infinite rate", []edit{{"data_dir: ./data\n", "data_dir: ./data\nrate_limits:\n  per_client: {rate: .inf, burst: 5} # <-\n"}}, "rate_limits.per_client.rate", "above 0"},
		{"route rate 0", []edit{{"    path: /api/", "    path: /api/\n    rate_limit: {rate: 0, burst: 1} # <-"}}, "routes[1].rate_limit.rate", "no unlimited rate"},
		{"relay rate 0", []edit{{"data_dir: ./data\n", "data_dir: ./data\nrelay:\n  enabled: true\n  relay_addresses: [192.0.2.10]\n  allocation_rate: {rate: 0, burst: 6} # <-\n"}}, "relay.allocation_rate.rate", "above 0"},
		{"assertion ttl long", []edit{{"data_dir: ./data\n", "data_dir: ./data\nassertion:\n  ttl: 1h # <-\n"}}, "assertion.ttl", "at most 5m"},
		{"visits bearer unknown", []edit{{"data_dir: ./data\n", "data_dir: ./data\nvisits:\n  enabled: true\n  bearer:\n    - nosuch # <-\n"}}, "visits.bearer[0]", "no bearer issuer"},
		{"visits guest provider unknown", []edit{{"data_dir: ./data\n", "data_dir: ./data\nvisits:\n  enabled: true\n  guest_provider: nosuch # <-\n"}}, "visits.guest_provider", "no provider has id"},
		{"visits guest link ttl long", []edit{{"data_dir: ./data\n", "data_dir: ./data\nvisits:\n  enabled: true\n  guest_link_ttl: 48h # <-\n"}}, "visits.guest_link_ttl", "between 1m and 24h"},
		{"section validator (visits)", []edit{{"data_dir: ./data\n", "data_dir: ./data\nvisits:\n  enabled: true\n  max_participants: 99 # <-\n"}}, "visits.max_participants", "between 2 and 16"},
		{"relay without relay addresses", []edit{{"data_dir: ./data\n", "data_dir: ./data\nrelay: # <-\n  enabled: true\n"}}, "relay.relay_addresses", "is required"},
		{"relay server name without certificate", []edit{{"data_dir: ./data\n", "data_dir: ./data\nrelay:\n  enabled: true\n  relay_addresses: [192.0.2.10]\n  server_names: [turn.elsewhere.test] # <-\n"}}, "relay.server_names[0]", "not a name in tls.hosts"},
		{"relay short secret", []edit{{"data_dir: ./data\n", "data_dir: ./data\nrelay:\n  enabled: true\n  relay_addresses: [192.0.2.10]\n  secrets:\n    - ${SHORT_RELAY_SECRET} # <-\n"}}, "relay.secrets[0]", "at least 16 bytes"},
		{"assertion header reserved", []edit{{"data_dir: ./data\n", "data_dir: ./data\nassertion:\n  header: Authorization # <-\n"}}, "assertion.header", "proxy manages"},
		{"audit ship syslog not host:port", []edit{{"data_dir: ./data\n", "data_dir: ./data\naudit:\n  ship:\n    syslog:\n      addr: siem.example.test # <-\n"}}, "audit.ship.syslog.addr", "host:port"},
		{"audit ship https over http", []edit{{"data_dir: ./data\n", "data_dir: ./data\naudit:\n  ship:\n    https:\n      url: http://siem.example.test/fhir # <-\n"}}, "audit.ship.https.url", "https://"},
		{"audit ship https without url", []edit{{"data_dir: ./data\n", "data_dir: ./data\naudit:\n  ship:\n    https: # <-\n      ca_file: ca.pem\n"}}, "audit.ship.https.url", "is required"},
		{"audit ship client cert alone", []edit{{"data_dir: ./data\n", "data_dir: ./data\naudit:\n  ship:\n    syslog:\n      addr: siem.example.test:6514\n      cert_file: testdata/ca.pem # <-\n"}}, "audit.ship.syslog.cert_file", "go together"},
		{"audit ship batch", []edit{{"data_dir: ./data\n", "data_dir: ./data\naudit:\n  ship:\n    batch: 0\n    interval: 2m # <-\n"}}, "audit.ship.interval", "10ms to 1m"},
		{"break-glass webhook over http", []edit{{"data_dir: ./data\n", "data_dir: ./data\nbreak_glass:\n  webhook:\n    url: http://hooks.example.test/bg # <-\n"}}, "break_glass.webhook.url", "must use https"},
		{"break-glass webhook with a query", []edit{{"data_dir: ./data\n", "data_dir: ./data\nbreak_glass:\n  webhook:\n    url: https://hooks.example.test/bg?token=x # <-\n"}}, "break_glass.webhook.url", "must not have a query"},
		{"break-glass webhook secret without url", []edit{{"data_dir: ./data\n", "data_dir: ./data\nbreak_glass:\n  webhook:\n    secret_file: /nonexistent/hook.secret # <-\n"}}, "break_glass.webhook.secret_file", "webhook.url is not"},
		{"break-glass webhook secret missing", []edit{{"data_dir: ./data\n", "data_dir: ./data\nbreak_glass:\n  webhook:\n    url: https://hooks.example.test/bg\n    secret_file: /nonexistent/hook.secret # <-\n"}}, "break_glass.webhook.secret_file", "cannot read"},
		{"break-glass webhook timeout long", []edit{{"data_dir: ./data\n", "data_dir: ./data\nbreak_glass:\n  webhook:\n    url: https://hooks.example.test/bg\n    timeout: 2m # <-\n"}}, "break_glass.webhook.timeout", "at most 1m"},
		{"alert webhook clinic bad", []edit{{"data_dir: ./data\n", "data_dir: ./data\nvisits:\n  alert_webhooks:\n    - clinic: a b # <-\n      webhook:\n        url: https://hooks.example.test/arrivals\n"}}, "visits.alert_webhooks[0].clinic", "letters, digits"},
		{"alert webhook over http", []edit{{"data_dir: ./data\n", "data_dir: ./data\nvisits:\n  alert_webhooks:\n    - clinic: cardiology\n      webhook:\n        url: http://hooks.example.test/arrivals # <-\n"}}, "visits.alert_webhooks[0].webhook.url", "must use https"},
		{"alert webhook without url", []edit{{"data_dir: ./data\n", "data_dir: ./data\nvisits:\n  alert_webhooks:\n    - clinic: cardiology # <-\n      groups: [cardiology]\n"}}, "visits.alert_webhooks[0].webhook.url", "is required"},
		{"alert webhook secret missing", []edit{{"data_dir: ./data\n", "data_dir: ./data\nvisits:\n  alert_webhooks:\n    - clinic: cardiology\n      webhook:\n        url: https://hooks.example.test/arrivals\n        secret_file: /nonexistent/hook.secret # <-\n"}}, "visits.alert_webhooks[0].webhook.secret_file", "cannot read"},
		{"alert webhook clinic twice", []edit{{"data_dir: ./data\n", "data_dir: ./data\nvisits:\n  alert_webhooks:\n    - clinic: cardiology\n      groups: [a]\n      webhook:\n        url: https://hooks.example.test/a\n    - clinic: cardiology # <-\n      webhook:\n        url: https://hooks.example.test/b\n"}}, "visits.alert_webhooks[1].clinic", "named twice"},
		{"break-glass grant cap negative", []edit{{"data_dir: ./data\n", "data_dir: ./data\nbreak_glass:\n  max_grants: -1 # <-\n"}}, "break_glass.max_grants", "at least 1"},
		{"break-glass per-subject cap negative", []edit{{"data_dir: ./data\n", "data_dir: ./data\nbreak_glass:\n  max_grants_per_subject: -3 # <-\n"}}, "break_glass.max_grants_per_subject", "at least 1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			src := base
			for _, e := range tc.edits {
				if !strings.Contains(src, e.old) {
					t.Fatalf("edit target %q not in valid.yaml", e.old)
				}
				src = strings.Replace(src, e.old, e.new, 1)
			}
			line := 0
			for i, l := range strings.Split(src, "\n") {
				if strings.Contains(l, marker) {
					line = i + 1
				}
			}
			if line == 0 {
				t.Fatal("case has no marker")
			}
			name := "case.yaml"
			_, err := parseTest(src, name)
			want := fmt.Sprintf("%s:%d: %s: ", filepath.Join("testdata", name), line, tc.field)
			var fes Errors
			if !errors.As(err, &fes) {
				t.Fatalf("err = %v, want Errors with %q", err, want)
			}
			for _, l := range errorLines(err) {
				if strings.HasPrefix(l, want) && strings.Contains(l, tc.msg) {
					return
				}
			}
			t.Errorf("no error %q…%q in:\n%v", want, tc.msg, err)
		})
	}
}

// TestSeveralErrors: one file with many problems reports every one, in
// file order, each with its line.
func TestSeveralErrors(t *testing.T) {
	t.Parallel()
	name := filepath.Join("testdata", "several-errors.yaml")
	_, err := parse(readTestdata(t, "several-errors.yaml"), name, lookup(testEnv))
	var fes Errors
	if !errors.As(err, &fes) {
		t.Fatalf("err = %v, want Errors", err)
	}
	want := []string{
		"3: server.listen: ",
		"4: server.admin: ",
		"5: server.public_url: ",
		"6: server.colour: unknown key",
		"10: tls.hosts[0].mode: ",
		"12: sessions.cookie_name: ",
		"13: sessions.idle_timeout: expected a duration",
		"15: providers[0].id: ",
		"16: providers[0].issuer: ",
		"18: providers[0].client_secret: environment variable MISSING_SECRET is not set",
		"21: routes[0].path: ",
		"22: routes[0].upstream: ",
		"27: routes[1].id: route id \"home\" is used twice",
		"28: routes[1].path: ",
	}
	got := errorLines(err)
	for _, w := range want {
		found := false
		for _, g := range got {
			if strings.HasPrefix(g, name+":"+w) {
				found = true
			}
		}
		if !found {
			t.Errorf("missing %q", name+":"+w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %d errors, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}
	// File order.
	lineRE := regexp.MustCompile(`:(\d+): `)
	prev := 0
	for _, g := range got {
		m := lineRE.FindStringSubmatch(g)
		if m == nil {
			t.Errorf("error without a line: %q", g)
			continue
		}
		var n int
		fmt.Sscan(m[1], &n)
		if n < prev {
			t.Errorf("errors out of file order at %q", g)
		}
		prev = n
	}
}

func TestSyntaxErrorsCarryLines(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, src string
		line      int
	}{
		{"duplicate key", "data_dir: a\nserver:\n  listen: \":1\"\ndata_dir: b\n", 4},
		{"bad indentation", "server:\n  listen: \":1\"\n admin: x\n", 3},
		{"two documents", "data_dir: a\n---\ndata_dir: b\n", 2},
		{"unterminated quote", "data_dir: \"abc\nserver: {}\n", 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := parse([]byte(tc.src), "s.yaml", lookup(nil))
			var fes Errors
			if !errors.As(err, &fes) || len(fes) == 0 {
				t.Fatalf("err = %v, want Errors", err)
			}
			if fes[0].Line == 0 || (tc.line > 0 && fes[0].Line != tc.line) {
				t.Errorf("first error %q at line %d, want line %d", fes[0].Error(), fes[0].Line, tc.line)
			}
			if !strings.HasPrefix(fes[0].Error(), fmt.Sprintf("s.yaml:%d: ", fes[0].Line)) {
				t.Errorf("error %q does not start with file:line", fes[0].Error())
			}
		})
	}
}

func TestTooLarge(t *testing.T) {
	t.Parallel()
	big := make([]byte, MaxFileBytes+1)
	for i := range big {
		big[i] = '#'
	}
	_, err := parse(big, "big.yaml", lookup(nil))
	if err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("err = %v, want a size error", err)
	}
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	cfg, err := parseTest(string(readTestdata(t, "valid.yaml")), "valid.yaml")
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"http_listen explicit empty stays off", cfg.Server.HTTPListen, ""},
		{"read_header_timeout", cfg.Server.ReadHeaderTimeout, 5 * time.Second},
		{"idle_timeout", cfg.Server.IdleTimeout, 120 * time.Second},
		{"max_header_bytes", cfg.Server.MaxHeaderBytes, 65536},
		{"max_query_params", cfg.Server.MaxQueryParams, 100},
		{"h2 rps", cfg.Server.H2MaxRequestsPerSecond, 200.0},
		{"hsts", cfg.Server.HSTSMaxAge, 365 * 24 * time.Hour},
		{"shutdown_timeout", cfg.Server.ShutdownTimeout, 20 * time.Second},
		{"tls min", cfg.TLS.MinVersion, "1.2"},
		{"max_pending", cfg.Connections.MaxPending, 1024},
		{"max_pending_per_source", cfg.Connections.MaxPendingPerSource, 32},
		{"max_conns", cfg.Connections.MaxConns, 16384},
		{"max_conns_per_source", cfg.Connections.MaxConnsPerSource, 512},
		{"first_byte_timeout", cfg.Connections.FirstByteTimeout, 2 * time.Second},
		{"handshake_timeout", cfg.Connections.HandshakeTimeout, 10 * time.Second},
		{"cookie", cfg.Sessions.CookieName, "__Host-telegate"},
		{"store", cfg.Sessions.Store, "file"},
		{"assertion issuer", cfg.Assertion.Issuer, "https://gw.example.test"},
		{"assertion ttl", cfg.Assertion.TTL, 60 * time.Second},
		{"assertion header", cfg.Assertion.Header, "X-Telegate-Assertion"},
		{"redirect url", cfg.Providers[0].RedirectURL, "https://gw.example.test/.telegate/callback/staff"},
		{"scopes include openid", cfg.Providers[0].Scopes, []string{"openid"}},
		{"provider timeout", cfg.Providers[0].Timeout, 10 * time.Second},
		{"role claim", cfg.Providers[0].Roles.Claim, "groups"},
		{"bearer algs", cfg.Bearer[0].SigningAlgs, []string{"RS256", "ES256"}},
		{"route body", cfg.Routes[0].MaxBodyBytes, int64(10 << 20)},
		{"route timeout", cfg.Routes[0].Timeout, 30 * time.Second},
		{"paranoia", cfg.Inspection.ParanoiaLevel, 1},
		{"anomaly", cfg.Inspection.AnomalyThreshold, 5},
		{"rate per client", cfg.RateLimits.PerClient, RateLimit{Rate: 50, Burst: 100}},
		{"rate per subject", cfg.RateLimits.PerSubject, RateLimit{Rate: 20, Burst: 40}},
		{"rate max clients", cfg.RateLimits.MaxClients, 100000},
		{"rate back-channel logout", cfg.RateLimits.BackchannelLogout, RateLimit{Rate: 5, Burst: 50}},
		{"max token age", cfg.Providers[0].MaxTokenAge, 10 * time.Minute},
		{"max id token bytes", cfg.Providers[0].MaxIDTokenBytes, 16 << 10},
		{"mfa values: the default rule", cfg.Providers[0].MFAAMR, []string(nil)},
		{"bearer rfc9068 off", cfg.Bearer[0].RFC9068, false},
		{"audit file", cfg.Audit.File, filepath.Join(cfg.DataDir, "audit", "audit.log")},
		{"log format", cfg.Log.Format, "json"},
		{"log level", cfg.Log.Level, "info"},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %#v, want %#v", c.name, c.got, c.want)
		}
	}

	// Absent http_listen takes the default; public_url is derived from the
	// first TLS host and the listen port.
	src := strings.Replace(string(readTestdata(t, "valid.yaml")), "  http_listen: \"\"\n", "", 1)
	src = strings.Replace(src, "  public_url: https://gw.example.test\n", "", 1)
	cfg, err = parseTest(src, "valid.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Server.HTTPListen != ":80" {
		t.Errorf("http_listen = %q, want :80", cfg.Server.HTTPListen)
	}
	if cfg.Server.PublicURL != "https://gw.example.test:8443" {
		t.Errorf("public_url = %q, want derived https://gw.example.test:8443", cfg.Server.PublicURL)
	}

	// ApplyDefaults is idempotent.
	again := *cfg
	again.ApplyDefaults()
	if !reflect.DeepEqual(&again, cfg) {
		t.Error("ApplyDefaults changed an already defaulted configuration")
	}
}

func TestRouteWithoutPolicyWarns(t *testing.T) {
	t.Parallel()
	src := strings.Replace(string(readTestdata(t, "valid.yaml")), "    policy:\n      allow:\n        - authenticated: true\n", "", 1)
	cfg, err := parseTest(src, "w.yaml")
	if err != nil {
		t.Fatalf("a route without a policy is allowed: %v", err)
	}
	if len(cfg.Warnings) != 1 || cfg.Warnings[0].Field != "routes[0].policy" || !strings.Contains(cfg.Warnings[0].Message, "admits nobody") {
		t.Fatalf("warnings = %v, want one for routes[0].policy", cfg.Warnings)
	}
	if !strings.HasPrefix(cfg.Warnings[0].Error(), filepath.Join("testdata", "w.yaml")+":29: routes[0].policy: ") {
		t.Errorf("warning %q lacks file:line", cfg.Warnings[0].Error())
	}
}

func TestInlineSecretWarns(t *testing.T) {
	t.Parallel()
	src := strings.Replace(string(readTestdata(t, "valid.yaml")), "${STAFF_SECRET}", "written-inline", 1)
	cfg, err := parseTest(src, "w.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Warnings) != 1 || cfg.Warnings[0].Field != "providers[0].client_secret" {
		t.Fatalf("warnings = %v, want one for the inline secret", cfg.Warnings)
	}
	if strings.Contains(cfg.Warnings[0].Error(), "written-inline") {
		t.Error("the warning repeats the secret")
	}
}

func TestLoopbackIssuerMayUseHTTP(t *testing.T) {
	t.Parallel()
	for _, iss := range []string{"http://127.0.0.1:5556", "http://localhost:5556/dex", "http://[::1]:8080"} {
		src := strings.Replace(string(readTestdata(t, "valid.yaml")), "    issuer: https://idp.example.test\n    client_id", "    issuer: "+iss+"\n    client_id", 1)
		if _, err := parseTest(src, "l.yaml"); err != nil {
			t.Errorf("issuer %s: %v", iss, err)
		}
	}
}

// writeSecret writes a secret file with mode perm.
func writeSecret(t *testing.T, dir, name, content string, perm os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, perm); err != nil { // umask-proof
		t.Fatal(err)
	}
	return p
}

func TestSecretFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "ca.pem"), readTestdata(t, "ca.pem"), 0o644); err != nil {
		t.Fatal(err)
	}
	writeSecret(t, dir, "secret", "from-a-file\n", 0o600)
	writeSecret(t, dir, "crlf", "windows\r\n", 0o640)
	writeSecret(t, dir, "open", "everyone-reads-this\n", 0o644)
	base := string(readTestdata(t, "valid.yaml"))
	cases := []struct {
		name, line string
		want       string // client secret, or "" when an error is expected
		errFrag    string
	}{
		{"trailing newline trimmed", "    client_secret_file: secret", "from-a-file", ""},
		{"crlf trimmed", "    client_secret_file: crlf", "windows", ""},
		{"absolute path", "    client_secret_file: " + filepath.Join(dir, "secret"), "from-a-file", ""},
		{"missing file", "    client_secret_file: nope", "", "cannot read"},
		{"world-readable refused", "    client_secret_file: open", "", "readable by every user"},
		{"both set", "    client_secret: ${STAFF_SECRET}\n    client_secret_file: secret", "", "not both"},
		{"directory", "    client_secret_file: .", "", "not a regular file"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			src := strings.Replace(base, "    client_secret: ${STAFF_SECRET}", tc.line, 1)
			name := filepath.Join(dir, "c.yaml")
			cfg, err := parse([]byte(src), name, lookup(testEnv))
			if tc.errFrag != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errFrag) {
					t.Fatalf("err = %v, want %q", err, tc.errFrag)
				}
				if !regexp.MustCompile(regexp.QuoteMeta(name) + `:(19|20): providers\[0\]\.client_secret`).MatchString(err.Error()) {
					t.Errorf("error lacks file:line and field: %v", err)
				}
				if strings.Contains(err.Error(), "everyone-reads-this") {
					t.Error("the error repeats the secret")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.Providers[0].ClientSecret; got != tc.want {
				t.Errorf("client_secret = %q, want %q", got, tc.want)
			}
			if cfg.Providers[0].ClientSecretFile != "" {
				t.Error("client_secret_file not emptied after reading")
			}
			if len(cfg.Warnings) != 0 {
				t.Errorf("warnings for a secret from a file: %v", cfg.Warnings)
			}
		})
	}
}

// TestRegressionWorldReadableSecretRefused: a secret file anyone on the host
// can read must not be accepted, directly or through ReadSecretFile.
func TestRegressionWorldReadableSecretRefused(t *testing.T) {
	t.Parallel()
	if runtime.GOOS == "windows" {
		t.Skip("no Unix permission bits")
	}
	p := writeSecret(t, t.TempDir(), "key", "c2VjcmV0\n", 0o604)
	if _, err := ReadSecretFile(p); err == nil || !strings.Contains(err.Error(), "chmod 600 "+p) {
		t.Fatalf("ReadSecretFile of a mode 0604 file: err = %v, want a refusal", err)
	}
	p = writeSecret(t, t.TempDir(), "key", "c2VjcmV0\n", 0o600)
	if s, err := ReadSecretFile(p); err != nil || s != "c2VjcmV0" {
		t.Fatalf("ReadSecretFile of a mode 0600 file = %q, %v", s, err)
	}
}

func TestMissingFile(t *testing.T) {
	t.Parallel()
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	var fes Errors
	if !errors.As(err, &fes) || !strings.Contains(err.Error(), "nope.yaml: cannot read configuration") {
		t.Fatalf("err = %v", err)
	}
}

func TestEmptyFileReportsWhatIsMissing(t *testing.T) {
	t.Parallel()
	_, err := parse([]byte("# nothing\n"), "e.yaml", lookup(nil))
	for _, want := range []string{"e.yaml: tls.hosts: at least one host", "e.yaml: routes: at least one route", "e.yaml: server.public_url: is required"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want %q", err, want)
		}
	}
}

func TestDemo(t *testing.T) {
	t.Parallel()
	c := Demo(DemoOptions{Upstream: "http://127.0.0.1:5557", DataDir: "demo-data"})
	if err := c.Validate(); err != nil {
		t.Fatalf("demo configuration invalid: %v", err)
	}
	// The one warning is the development provider's label.
	if len(c.Warnings) != 1 || c.Warnings[0].Field != "providers[0].development" || !strings.Contains(c.Warnings[0].Message, "not for patients") {
		t.Errorf("warnings: %v", c.Warnings)
	}
	if c.Source != DemoSource || c.Server.Listen != "localhost:8443" || c.Server.Admin != "127.0.0.1:9090" || c.Server.HTTPListen != "" {
		t.Errorf("listeners/source: %+v %q", c.Server, c.Source)
	}
	if c.Server.PublicURL != "https://localhost:8443" || c.TLS.Hosts[0].Mode != "local" || !filepath.IsAbs(c.DataDir) {
		t.Errorf("public url %q, tls %+v, data dir %q", c.Server.PublicURL, c.TLS.Hosts, c.DataDir)
	}
	p := c.Providers[0]
	// The development provider: node.Run starts it and fills in the
	// issuer, client id and a fresh secret.
	if p.ID != "demo" || !p.Development || p.Issuer != "" || p.ClientID != "" || p.ClientSecret != "" || p.DisplayName != DevelopmentDisplayName {
		t.Errorf("provider: %+v", p)
	}
	want := map[string]string{"clinicians": "clinician", "admins": "admin", "patients": "patient"}
	for g, r := range want {
		if got := p.Roles.Map[g]; len(got) != 1 || got[0] != r {
			t.Errorf("group %s → %v, want %s", g, got, r)
		}
	}
	routes := map[string]Route{}
	for _, r := range c.Routes {
		routes[r.Path] = r
		if r.Upstream != "http://127.0.0.1:5557" || !reflect.DeepEqual(r.AssertionClaims, []string{"name", "email"}) {
			t.Errorf("route %s: upstream %q claims %v", r.Path, r.Upstream, r.AssertionClaims)
		}
	}
	if r := routes["/"]; r.Policy == nil || len(r.Policy.Allow) != 1 || !r.Policy.Allow[0].Authenticated {
		t.Errorf("/ policy %+v", r.Policy)
	}
	if r := routes["/clinic/"]; r.Policy == nil || !reflect.DeepEqual(r.Policy.Allow[0].Roles, []string{"clinician"}) {
		t.Errorf("/clinic/ policy %+v", r.Policy)
	}
	if r := routes["/admin/"]; r.Policy == nil || !r.Policy.RequireMFA || !reflect.DeepEqual(r.Policy.Allow[0].Roles, []string{"admin"}) {
		t.Errorf("/admin/ policy %+v", r.Policy)
	}
	if r := routes["/public/"]; r.Policy == nil || !r.Policy.Public {
		t.Errorf("/public/ policy %+v", r.Policy)
	}
	if c.Log.Format != "text" {
		t.Errorf("demo log format %q, want text", c.Log.Format)
	}
}

func TestReportPaths(t *testing.T) {
	t.Parallel()
	r := newReport()
	relay := r.Sub("relay")
	relay.Errorf("listen", "bad %d", 1)
	relay.Sub("ports").Errorf("[2]", "x")
	relay.Warnf("", "w")
	got := []string{(*r.errs)[0].Field, (*r.errs)[1].Field, (*r.warns)[0].Field}
	want := []string{"relay.listen", "relay.ports[2]", "relay"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("paths %v, want %v", got, want)
	}
	if (*r.errs)[0].Message != "bad 1" {
		t.Errorf("message %q", (*r.errs)[0].Message)
	}
}

func TestFieldErrorFormat(t *testing.T) {
	t.Parallel()
	cases := []struct {
		e    FieldError
		want string
	}{
		{FieldError{File: "a.yaml", Line: 3, Field: "server.listen", Message: "bad"}, "a.yaml:3: server.listen: bad"},
		{FieldError{File: "a.yaml", Field: "routes", Message: "missing"}, "a.yaml: routes: missing"},
		{FieldError{File: "a.yaml", Line: 1, Message: "syntax"}, "a.yaml:1: syntax"},
		{FieldError{Field: "x", Message: "m"}, "x: m"},
	}
	for _, c := range cases {
		if got := c.e.Error(); got != c.want {
			t.Errorf("%+v → %q, want %q", c.e, got, c.want)
		}
	}
	es := Errors{cases[0].e, cases[1].e}
	if es.Error() != "a.yaml:3: server.listen: bad\na.yaml: routes: missing" {
		t.Errorf("Errors.Error() = %q", es.Error())
	}
}
