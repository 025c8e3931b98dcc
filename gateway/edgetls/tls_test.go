package edgetls

import (
	"crypto/tls"
	"testing"
	"time"

	"github.com/telegate/telegate/config"
)

func TestProtocolVersions(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		min       string
		clientMax uint16
		ok        bool
	}{
		{"default refuses TLS 1.0", "", tls.VersionTLS10, false},
		{"default refuses TLS 1.1", "", tls.VersionTLS11, false},
		{"default accepts TLS 1.2", "", tls.VersionTLS12, true},
		{"default accepts TLS 1.3", "", tls.VersionTLS13, true},
		{"1.3 refuses TLS 1.2", "1.3", tls.VersionTLS12, false},
		{"1.3 accepts TLS 1.3", "1.3", tls.VersionTLS13, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := baseConfig(t, config.TLSHost{Names: []string{"localhost"}, Mode: ModeLocal})
			cfg.TLS.MinVersion = tc.min
			m := newManager(t, Options{Config: cfg})
			addr := serveHTTPS(t, m, nil)
			cs, err := handshake(addr, &tls.Config{
				RootCAs: rootPool(t, m.LocalRootPath()), ServerName: "localhost",
				MinVersion: tls.VersionTLS10, MaxVersion: tc.clientMax,
			})
			if (err == nil) != tc.ok {
				t.Fatalf("handshake err %v, want ok=%v", err, tc.ok)
			}
			if tc.ok && cs.Version != tc.clientMax {
				t.Errorf("negotiated %x, want %x", cs.Version, tc.clientMax)
			}
		})
	}
}

func TestTLS12OffersOnlyAEADWithECDHE(t *testing.T) {
	t.Parallel()
	cfg := baseConfig(t, config.TLSHost{Names: []string{"localhost"}, Mode: ModeLocal})
	m := newManager(t, Options{Config: cfg})
	addr := serveHTTPS(t, m, nil)
	weak := []uint16{
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,
		tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256,
		tls.TLS_RSA_WITH_AES_128_GCM_SHA256,
	}
	_, err := handshake(addr, &tls.Config{RootCAs: rootPool(t, m.LocalRootPath()), ServerName: "localhost",
		MaxVersion: tls.VersionTLS12, CipherSuites: weak})
	if err == nil {
		t.Fatal("TLS 1.2 handshake with only CBC / static-RSA suites succeeded")
	}
}

func TestClientCertificates(t *testing.T) {
	t.Parallel()
	devices := newTestCA(t, "Device CA")
	other := newTestCA(t, "Other CA")
	dir := t.TempDir()
	cfg := baseConfig(t, config.TLSHost{Names: []string{"localhost"}, Mode: ModeLocal})
	cfg.ClientCAs = []config.ClientCA{{ID: "devices", CAFile: writeFile(t, dir, "devices.pem", devices.certPEM())}}
	m := newManager(t, Options{Config: cfg})
	addr := serveHTTPS(t, m, nil)
	roots := rootPool(t, m.LocalRootPath())
	year := time.Now().Add(time.Hour)

	pair := func(ca *testCA, cn string) []tls.Certificate {
		c, k := ca.issue(t, time.Now().UnixNano(), true, year, cn)
		kp, err := tls.X509KeyPair(c, k)
		if err != nil {
			t.Fatal(err)
		}
		return []tls.Certificate{kp}
	}
	for _, tc := range []struct {
		name   string
		certs  []tls.Certificate
		ok     bool
		wantCN string
	}{
		{"from the configured CA", pair(devices, "cart-17.devices.test"), true, "cart-17.devices.test"},
		{"from another CA", pair(other, "rogue.devices.test"), false, ""},
		{"none", nil, true, "-"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for _, maxV := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
				client := &tls.Config{RootCAs: roots, ServerName: "localhost", MaxVersion: maxV,
					// Always present the certificate, as a hostile client would,
					// whatever CA names the server asks for.
					GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
						if len(tc.certs) == 0 {
							return &tls.Certificate{}, nil
						}
						return &tc.certs[0], nil
					}}
				body, err := get(addr, "localhost", client)
				if (err == nil) != tc.ok {
					t.Fatalf("TLS %x: GET err %v, want ok=%v", maxV, err, tc.ok)
				}
				if tc.ok && body != tc.wantCN {
					t.Errorf("TLS %x: server saw client CN %q, want %q", maxV, body, tc.wantCN)
				}
			}
		})
	}
	pools := m.ClientTrust().Pools()
	if len(pools) != 1 || pools["devices"] == nil {
		t.Fatalf("ClientTrust().Pools() = %v, want one pool \"devices\"", pools)
	}
}

func TestACMETLSALPNRefusedForNonACMEHosts(t *testing.T) {
	t.Parallel()
	cfg := baseConfig(t, config.TLSHost{Names: []string{"localhost"}, Mode: ModeLocal})
	m := newManager(t, Options{Config: cfg})
	addr := serveHTTPS(t, m, nil)
	for _, tc := range []struct {
		name   string
		protos []string
		ok     bool
		want   string
	}{
		{"h2", []string{"h2", "http/1.1"}, true, "h2"},
		{"http/1.1", []string{"http/1.1"}, true, "http/1.1"},
		{"acme-tls/1 only", []string{"acme-tls/1"}, false, ""},
	} {
		cs, err := handshake(addr, &tls.Config{RootCAs: rootPool(t, m.LocalRootPath()), ServerName: "localhost", NextProtos: tc.protos})
		if (err == nil) != tc.ok {
			t.Errorf("%s: handshake err %v, want ok=%v", tc.name, err, tc.ok)
			continue
		}
		if tc.ok && cs.NegotiatedProtocol != tc.want {
			t.Errorf("%s: negotiated %q, want %q", tc.name, cs.NegotiatedProtocol, tc.want)
		}
	}
	for _, p := range m.TLSConfig().NextProtos {
		if p == "acme-tls/1" {
			t.Error("acme-tls/1 offered in ALPN with no acme host")
		}
	}
}
