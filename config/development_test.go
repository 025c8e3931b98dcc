package config

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// devYAML is a configuration for trying `telegate run` locally: the
// development provider, every listener on loopback, the relay enabled.
const devYAML = `data_dir: ./dev-data
server:
  listen: 127.0.0.1:8443
  http_listen: ""
  admin: 127.0.0.1:9090
  public_url: https://localhost:8443
tls:
  hosts:
    - names: [localhost]
      mode: local
providers:
  - id: dev
    development: true
routes:
  - id: home
    path: /
    upstream: http://127.0.0.1:8080
    policy:
      allow:
        - authenticated: true
relay:
  enabled: true
  listen: 127.0.0.1:3478
  relay_addresses: [127.0.0.1]
`

// lineOf is the 1-based line of the first line of src containing s.
func lineOf(t *testing.T, src, s string) int {
	t.Helper()
	for i, l := range strings.Split(src, "\n") {
		if strings.Contains(l, s) {
			return i + 1
		}
	}
	t.Fatalf("%q is not in the configuration", s)
	return 0
}

// TestDevelopmentProviderOnLoopback: a development provider with every
// listener on loopback is accepted, with a warning that labels it, its
// issuer and client left for telegate to fill in, and the demo's scopes
// and role mapping by default.
func TestDevelopmentProviderOnLoopback(t *testing.T) {
	t.Parallel()
	for name, src := range map[string]string{
		"127.0.0.1": devYAML,
		"localhost and ::1": strings.NewReplacer(
			"listen: 127.0.0.1:8443", "listen: localhost:8443",
			"admin: 127.0.0.1:9090", "admin: '[::1]:9090'",
			`http_listen: ""`, "http_listen: 127.0.0.1:8080",
			"public_url: https://localhost:8443", "public_url: https://127.0.0.1:8443",
		).Replace(devYAML),
		"relay off": strings.Replace(devYAML, "enabled: true\n  listen: 127.0.0.1:3478", "enabled: false\n  listen: 0.0.0.0:3478", 1),
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cfg, err := parseTest(src, "dev.yaml")
			if err != nil {
				t.Fatalf("refused:\n%v", err)
			}
			want := fmt.Sprintf("%s:%d: providers[0].development: development sign-in — not for patients", filepath.Join("testdata", "dev.yaml"), lineOf(t, src, "development: true"))
			if len(cfg.Warnings) != 1 || !strings.HasPrefix(cfg.Warnings[0].Error(), want) {
				t.Errorf("warnings %v, want one starting %q", cfg.Warnings, want)
			}
			p := cfg.Providers[0]
			if !p.Development || p.Issuer != "" || p.ClientID != "" || p.ClientSecret != "" {
				t.Errorf("provider %+v: issuer and client are for telegate to fill in", p)
			}
			if p.DisplayName != DevelopmentDisplayName || !reflect.DeepEqual(p.Scopes, DevelopmentScopes) || !reflect.DeepEqual(p.Roles, DevelopmentRoles()) {
				t.Errorf("provider defaults: name %q scopes %v roles %+v", p.DisplayName, p.Scopes, p.Roles)
			}
			if err := cfg.CheckDevelopmentLoopback(); err != nil {
				t.Errorf("CheckDevelopmentLoopback: %v", err)
			}
		})
	}
}

// TestDevelopmentProviderKeepsRoleMapping: a role mapping of the file's
// own replaces the demo's.
func TestDevelopmentProviderKeepsRoleMapping(t *testing.T) {
	t.Parallel()
	src := strings.Replace(devYAML, "    development: true\n", "    development: true\n    scopes: [openid, email]\n    roles:\n      always: [patient]\n", 1)
	cfg, err := parseTest(src, "dev.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p := cfg.Providers[0]
	if p.Roles.Map != nil || !reflect.DeepEqual(p.Roles.Always, []string{"patient"}) || !reflect.DeepEqual(p.Scopes, []string{"openid", "email"}) {
		t.Errorf("roles %+v scopes %v", p.Roles, p.Scopes)
	}
}

// TestRegression_DevelopmentProviderOnlyOnLoopback: the development
// provider, where anyone signs in with the demo passwords, is refused
// whenever any listener — the public one, the HTTP redirect listener
// (also when it is left at its default :80), the admin one, the relay's
// UDP and TLS listeners and relay addresses — or the public URL is not on
// loopback, with file:line of `development: true` and the field named.
func TestRegression_DevelopmentProviderOnlyOnLoopback(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, old, new, want string
	}{
		{"public listener", "listen: 127.0.0.1:8443", "listen: 0.0.0.0:443", "server.listen is 0.0.0.0:443"},
		{"public listener on every interface", "listen: 127.0.0.1:8443", `listen: ":8443"`, "server.listen is :8443"},
		{"public listener by name", "listen: 127.0.0.1:8443", "listen: gw.hospital.example:443", "server.listen is gw.hospital.example:443"},
		{"redirect listener", `http_listen: ""`, "http_listen: 0.0.0.0:80", "server.http_listen is 0.0.0.0:80"},
		{"redirect listener by default", "  http_listen: \"\"\n", "", `server.http_listen is :80 (set http_listen: ""`},
		{"admin listener", "admin: 127.0.0.1:9090", "admin: 10.0.0.5:9090", "server.admin is 10.0.0.5:9090"},
		{"relay listener", "listen: 127.0.0.1:3478", "listen: 0.0.0.0:3478", "relay.listen is 0.0.0.0:3478"},
		{"relay TLS listener", "listen: 127.0.0.1:3478", "listen: 127.0.0.1:3478\n  tls_listen: ':5349'", "relay.tls_listen is :5349"},
		{"relay address", "relay_addresses: [127.0.0.1]", "relay_addresses: [192.168.1.20]", "relay.relay_addresses[0] is 192.168.1.20"},
		{"public URL", "public_url: https://localhost:8443", "public_url: https://gw.hospital.example", "the development provider runs only with a loopback public_url; server.public_url is https://gw.hospital.example"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			src := strings.Replace(devYAML, tc.old, tc.new, 1)
			if src == devYAML {
				t.Fatalf("%q is not in the configuration", tc.old)
			}
			_, err := parseTest(src, "dev.yaml")
			if err == nil {
				t.Fatal("accepted")
			}
			prefix := fmt.Sprintf("%s:%d: providers[0].development: ", filepath.Join("testdata", "dev.yaml"), lineOf(t, src, "development: true"))
			if !strings.HasPrefix(tc.want, "the development") {
				prefix += "the development provider runs only with loopback listeners; "
			}
			lines := errorLines(err)
			if len(lines) != 1 || !strings.HasPrefix(lines[0], prefix+tc.want) {
				t.Errorf("errors:\n%v\nwant exactly one starting %q", err, prefix+tc.want)
			}
		})
	}

	// Configurations built in code get the same answer from
	// CheckDevelopmentLoopback, which node.Run asks before it starts the
	// provider.
	cfg := Demo(DemoOptions{Upstream: "http://127.0.0.1:8080"})
	if err := cfg.CheckDevelopmentLoopback(); err != nil {
		t.Errorf("demo: %v", err)
	}
	cfg.Server.Listen = "0.0.0.0:8443"
	if err := cfg.CheckDevelopmentLoopback(); err == nil || !strings.Contains(err.Error(), "server.listen is 0.0.0.0:8443") {
		t.Errorf("demo on 0.0.0.0: %v", err)
	}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "providers[0].development: the development provider runs only with loopback listeners; server.listen is 0.0.0.0:8443") {
		t.Errorf("Validate of the demo on 0.0.0.0: %v", err)
	}
}

// TestDevelopmentProviderRefusesIssuerAndClient: the issuer, client id
// and secret of the development provider are telegate's to fill in; a
// file that sets any of them is refused at that field.
func TestDevelopmentProviderRefusesIssuerAndClient(t *testing.T) {
	t.Parallel()
	secretFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretFile, []byte("s3cret-from-a-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ line, field string }{
		{"issuer: https://idp.hospital.example", "issuer"},
		{"issuer: http://127.0.0.1:5556", "issuer"},
		{"client_id: telegate", "client_id"},
		{`client_secret: "${STAFF_SECRET}"`, "client_secret"},
		{"client_secret_file: " + secretFile, "client_secret_file"},
	} {
		t.Run(tc.line, func(t *testing.T) {
			t.Parallel()
			src := strings.Replace(devYAML, "    development: true\n", "    development: true\n    "+tc.line+"\n", 1)
			_, err := parseTest(src, "dev.yaml")
			if err == nil {
				t.Fatal("accepted")
			}
			key := strings.SplitN(tc.line, ":", 2)[0]
			want := fmt.Sprintf("%s:%d: providers[0].%s: ", filepath.Join("testdata", "dev.yaml"), lineOf(t, src, key+":"), tc.field)
			if lines := errorLines(err); len(lines) != 1 || !strings.HasPrefix(lines[0], want) || !strings.Contains(lines[0], "must be absent with development: true") {
				t.Errorf("errors:\n%v\nwant exactly one starting %q", err, want)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("the error shows the secret: %v", err)
			}
		})
	}
}
