package edgetls

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/telegate/telegate/config"
)

func TestConfigErrorsNameTheHostEntry(t *testing.T) {
	t.Parallel()
	pki := newTestCA(t, "PKI")
	dir := t.TempDir()
	leafC, _ := pki.issue(t, 1, false, pki.cert.NotAfter, "ok.hospital.test")
	leafFile := writeFile(t, dir, "leaf.pem", leafC)
	caFile := writeFile(t, dir, "ca.pem", pki.certPEM())
	missing := filepath.Join(dir, "missing.pem")

	for _, tc := range []struct {
		name   string
		mutate func(c *config.Config)
		want   []string
	}{
		{"no hosts", func(c *config.Config) { c.TLS.Hosts = nil }, []string{"tls.hosts is empty"}},
		{"unknown mode", func(c *config.Config) {
			c.TLS.Hosts = []config.TLSHost{{Names: []string{"a.test"}, Mode: "selfsigned"}}
		}, []string{`tls.hosts[0] (a.test): unknown mode "selfsigned"`}},
		{"empty mode", func(c *config.Config) {
			c.TLS.Hosts = []config.TLSHost{{Names: []string{"a.test"}}}
		}, []string{"tls.hosts[0] (a.test): mode is empty"}},
		{"empty names", func(c *config.Config) {
			c.TLS.Hosts = []config.TLSHost{{Mode: ModeLocal}}
		}, []string{"tls.hosts[0] (): names is empty"}},
		{"files without key", func(c *config.Config) {
			c.TLS.Hosts = []config.TLSHost{{Names: []string{"ok.hospital.test"}, Mode: ModeFiles, CertFile: leafFile}}
		}, []string{"tls.hosts[0] (ok.hospital.test): mode files needs cert_file and key_file"}},
		{"files missing on disk", func(c *config.Config) {
			c.TLS.Hosts = []config.TLSHost{{Names: []string{"ok.hospital.test"}, Mode: ModeFiles, CertFile: missing, KeyFile: missing}}
		}, []string{"tls.hosts[0] (ok.hospital.test): cert_file", "no such file"}},
		{"duplicate name across entries", func(c *config.Config) {
			c.TLS.Hosts = []config.TLSHost{
				{Names: []string{"localhost"}, Mode: ModeLocal},
				{Names: []string{"LOCALHOST."}, Mode: ModeLocal},
			}
		}, []string{"tls.hosts[1] (LOCALHOST.): localhost is also named by tls.hosts[0] (localhost)"}},
		{"invalid name", func(c *config.Config) {
			c.TLS.Hosts = []config.TLSHost{{Names: []string{"bad_name.test"}, Mode: ModeLocal}}
		}, []string{`tls.hosts[0] (bad_name.test): "bad_name.test" is not a valid host name`}},
		{"acme wildcard", func(c *config.Config) {
			c.TLS.Hosts = []config.TLSHost{{Names: []string{"*.hospital.example"}, Mode: ModeACME}}
		}, []string{"tls.hosts[0] (*.hospital.example): wildcard name", "DNS-01"}},
		{"local for a public name", func(c *config.Config) {
			c.TLS.Hosts = []config.TLSHost{{Names: []string{"portal.hospital.example"}, Mode: ModeLocal}}
		}, []string{"tls.hosts[0] (portal.hospital.example): the local CA only certifies local names"}},
		{"bad min version", func(c *config.Config) { c.TLS.MinVersion = "1.1" }, []string{`tls.min_version "1.1"`}},
		{"acme errors together", func(c *config.Config) {
			c.TLS.Hosts = []config.TLSHost{{Names: []string{"gw.hospital.example"}, Mode: ModeACME}}
			c.TLS.ACME = config.ACME{CA: "http://ca.example/dir", Email: "not an address", Challenges: []string{"dns-01"}, RenewalWindowRatio: 1.5}
		}, []string{"tls.acme.ca", "must be https", "tls.acme.email", `unknown challenge "dns-01"`, "renewal_window_ratio 1.5"}},
		{"acme http-01 without http listener", func(c *config.Config) {
			c.TLS.Hosts = []config.TLSHost{{Names: []string{"gw.hospital.example"}, Mode: ModeACME}}
			c.TLS.ACME.Challenges = []string{ChallengeHTTP01}
			c.Server.HTTPListen = ""
		}, []string{"server.http_listen is empty"}},
		{"client CA that is not a CA", func(c *config.Config) {
			c.ClientCAs = []config.ClientCA{{ID: "devices", CAFile: leafFile}}
		}, []string{"client_cas[0].ca_file", `client CA "devices"`, "is not a CA certificate"}},
		{"client CA duplicate id", func(c *config.Config) {
			c.ClientCAs = []config.ClientCA{{ID: "devices", CAFile: caFile}, {ID: "devices", CAFile: caFile}}
		}, []string{`client_cas[1]: id "devices" is also used by client_cas[0]`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := baseConfig(t, config.TLSHost{Names: []string{"localhost"}, Mode: ModeLocal})
			tc.mutate(cfg)
			m, err := New(t.Context(), Options{Config: cfg})
			if err == nil {
				m.Close()
				t.Fatal("New succeeded; want a configuration error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\nlacks %q", err, w)
				}
			}
		})
	}
}

func TestConfigAllErrorsAtOnce(t *testing.T) {
	t.Parallel()
	cfg := baseConfig(t,
		config.TLSHost{Names: []string{"a.test"}, Mode: "bogus"},
		config.TLSHost{Names: []string{"b.test"}, Mode: ModeFiles},
	)
	cfg.TLS.MinVersion = "1.0"
	_, err := New(t.Context(), Options{Config: cfg})
	if err == nil {
		t.Fatal("New succeeded")
	}
	for _, w := range []string{"tls.hosts[0] (a.test)", "tls.hosts[1] (b.test)", "tls.min_version"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %q", err, w)
		}
	}
}

func TestNormalizeName(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in       string
		wildcard bool
		want     string
		ok       bool
	}{
		{"LocalHost.", false, "localhost", true},
		{"::ffff:127.0.0.1", false, "127.0.0.1", true},
		{"0:0::1", false, "::1", true},
		{"fe80::1%eth0", false, "", false},
		{"*.hospital.test", true, "*.hospital.test", true},
		{"*.hospital.test", false, "", false},
		{"*.test", true, "", false},
		{"a.*.test", true, "", false},
		{"-a.test", false, "", false},
		{"a..test", false, "", false},
		{"ex\u00e4mple.test", false, "", false},
		{"", false, "", false},
		{strings.Repeat("a", 64) + ".test", false, "", false},
	} {
		got, ok := normalizeName(tc.in, tc.wildcard)
		if got != tc.want || ok != tc.ok {
			t.Errorf("normalizeName(%q, %v) = %q, %v; want %q, %v", tc.in, tc.wildcard, got, ok, tc.want, tc.ok)
		}
	}
}
