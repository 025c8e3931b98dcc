package edgetls

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/telegate/telegate/config"
)

func rootPool(t testing.TB, path string) *x509.CertPool {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(b) {
		t.Fatalf("%s holds no certificate", path)
	}
	return p
}

func TestLocalModeIssuesCertificateVerifiedByRootAndSurvivesRestart(t *testing.T) {
	t.Parallel()
	cfg := baseConfig(t, config.TLSHost{Names: []string{"localhost", "127.0.0.1"}, Mode: ModeLocal})

	m := newManager(t, Options{Config: cfg})
	wantRoot := filepath.Join(cfg.DataDir, "ca", "root.pem")
	if got := m.LocalRootPath(); got != wantRoot {
		t.Fatalf("LocalRootPath = %q, want %q", got, wantRoot)
	}
	st, err := os.Stat(filepath.Join(cfg.DataDir, "ca", "root.key"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("root.key mode %v, want 0600", st.Mode().Perm())
	}
	rootPEM, _ := os.ReadFile(wantRoot)
	addr := serveHTTPS(t, m, nil)
	client := &tls.Config{RootCAs: rootPool(t, wantRoot), ServerName: "localhost", NextProtos: []string{"h2", "http/1.1"}}
	cs, err := handshake(addr, client)
	if err != nil {
		t.Fatalf("handshake for localhost: %v", err)
	}
	leaf := cs.PeerCertificates[0]
	if cs.NegotiatedProtocol != "h2" {
		t.Errorf("ALPN %q, want h2", cs.NegotiatedProtocol)
	}
	if life := leaf.NotAfter.Sub(leaf.NotBefore); life > leafLifetime+clockSkew || life < 24*time.Hour {
		t.Errorf("leaf lifetime %v, want about %v", life, leafLifetime)
	}
	if body, err := get(addr, "localhost", client); err != nil || body != "-" {
		t.Fatalf("GET https://localhost/ = %q, %v", body, err)
	}
	// No SNI: the client dialled 127.0.0.1, a configured name.
	ipClient := &tls.Config{RootCAs: rootPool(t, wantRoot), ServerName: "127.0.0.1"}
	if _, err := handshake(addr, ipClient); err != nil {
		t.Fatalf("handshake for 127.0.0.1 (no SNI): %v", err)
	}
	m.Close()

	// Restart on the same data directory: same root, the stored leaf.
	m2 := newManager(t, Options{Config: cfg})
	rootPEM2, _ := os.ReadFile(m2.LocalRootPath())
	if !bytes.Equal(rootPEM, rootPEM2) {
		t.Fatal("root.pem changed across a restart")
	}
	addr2 := serveHTTPS(t, m2, nil)
	cs2, err := handshake(addr2, client)
	if err != nil {
		t.Fatalf("handshake after restart: %v", err)
	}
	if cs2.PeerCertificates[0].SerialNumber.Cmp(leaf.SerialNumber) != 0 {
		t.Errorf("leaf re-issued after restart; want the stored one reused")
	}
}

func TestUnknownServerNameFailsHandshake(t *testing.T) {
	t.Parallel()
	cfg := baseConfig(t, config.TLSHost{Names: []string{"app.localhost"}, Mode: ModeLocal})
	m := newManager(t, Options{Config: cfg})
	addr := serveHTTPS(t, m, nil)
	for _, tc := range []struct {
		name, sni string
		ok        bool
	}{
		{"configured", "app.localhost", true},
		{"configured upper case", "APP.localhost", true},
		{"other name", "other.localhost", false},
		{"outside name", "www.example.com", false},
		{"no SNI on an address that is not configured", "127.0.0.1", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := handshake(addr, &tls.Config{ServerName: tc.sni, InsecureSkipVerify: true})
			if tc.ok && err != nil {
				t.Fatalf("handshake: %v", err)
			}
			if !tc.ok && err == nil {
				t.Fatal("handshake succeeded; want it refused (no default certificate)")
			}
		})
	}
}

// TestLocalRootIsNameConstrained: a trusted local root, even with its key
// leaked, vouches only for the configured local names and loopback — not
// for a public name nor for the hospital's internal hosts
// (TestRegression_DemoCANameConstraints in e2e).
func TestLocalRootIsNameConstrained(t *testing.T) {
	t.Parallel()
	cfg := baseConfig(t, config.TLSHost{Names: []string{"localhost"}, Mode: ModeLocal})
	m := newManager(t, Options{Config: cfg})
	ca, err := readLocalCA(m.LocalRootPath(), filepath.Join(cfg.DataDir, "ca", "root.key"), sealedOf(m.fileStore))
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for _, tc := range []struct {
		name string
		dns  string
		ok   bool
	}{
		{"localhost", "localhost", true},
		{"sub of localhost", "app.localhost", true},
		{"unconfigured .test name", "gw.clinic.test", false},
		{"hospital-internal name", "ehr.hospital.internal", false},
		{"public name", "portal.hospital.example.com", false},
	} {
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: tc.dns},
			NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
			DNSNames: []string{tc.dns}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.root, key.Public(), ca.key)
		if err != nil {
			t.Fatal(err)
		}
		leaf, _ := x509.ParseCertificate(der)
		_, err = leaf.Verify(x509.VerifyOptions{Roots: rootPool(t, m.LocalRootPath()), DNSName: tc.dns})
		if (err == nil) != tc.ok {
			t.Errorf("%s: verify err = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
	// The issuer itself refuses names that are not configured.
	csrDER, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: []string{"other.localhost"}}, key)
	csr, _ := x509.ParseCertificateRequest(csrDER)
	ca.allow([]string{"localhost"})
	if _, err := ca.Issue(t.Context(), csr); err == nil {
		t.Error("local CA issued for a name that is not configured")
	}
}

func TestLocalCAIncompleteIsNotOverwritten(t *testing.T) {
	t.Parallel()
	cfg := baseConfig(t, config.TLSHost{Names: []string{"localhost"}, Mode: ModeLocal})
	m := newManager(t, Options{Config: cfg})
	m.Close()
	keyPath := filepath.Join(cfg.DataDir, "ca", "root.key")
	if err := os.Remove(keyPath); err != nil {
		t.Fatal(err)
	}
	if _, err := New(t.Context(), Options{Config: cfg}); err == nil {
		t.Fatal("New with root.pem but no root.key succeeded; want an error")
	}
	if _, err := os.Stat(keyPath); err == nil {
		t.Fatal("a new root.key was written next to the old root.pem")
	}
}

// TestLocalRootRefusesNamesOutsideItsConstraints: a root made for
// localhost cannot later be used for another name; New says how to make a
// new root instead of failing at issuance.
func TestLocalRootRefusesNamesOutsideItsConstraints(t *testing.T) {
	t.Parallel()
	cfg := baseConfig(t, config.TLSHost{Names: []string{"localhost"}, Mode: ModeLocal})
	m := newManager(t, Options{Config: cfg})
	m.Close()
	cfg.TLS.Hosts[0].Names = []string{"localhost", "gw.clinic.test"}
	_, err := New(t.Context(), Options{Config: cfg})
	if err == nil || !strings.Contains(err.Error(), "gw.clinic.test") || !strings.Contains(err.Error(), "make a new root") {
		t.Fatalf("New with a name outside the root's constraints: %v", err)
	}
}
