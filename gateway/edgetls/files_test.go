package edgetls

import (
	"crypto/tls"
	"strings"
	"testing"
	"time"

	"github.com/telegate/telegate/config"
)

func TestFilesModeServesOperatorCertificateAndPicksUpReplacement(t *testing.T) {
	t.Parallel()
	pki := newTestCA(t, "Hospital PKI")
	dir := t.TempDir()
	day := time.Now().Add(24 * time.Hour)
	c1, k1 := pki.issue(t, 1001, false, day, "portal.hospital.test")
	certFile := writeFile(t, dir, "cert.pem", c1)
	keyFile := writeFile(t, dir, "key.pem", k1)
	cfg := baseConfig(t, config.TLSHost{Names: []string{"portal.hospital.test"}, Mode: ModeFiles, CertFile: certFile, KeyFile: keyFile})
	log, logs := testLogger(t)
	m := newManager(t, Options{Config: cfg, Logger: log, pollInterval: 20 * time.Millisecond})
	if m.LocalRootPath() != "" {
		t.Errorf("LocalRootPath = %q with no local host, want \"\"", m.LocalRootPath())
	}
	addr := serveHTTPS(t, m, nil)
	client := &tls.Config{RootCAs: pki.pool(), ServerName: "portal.hospital.test"}

	serial := func() int64 {
		t.Helper()
		cs, err := handshake(addr, client)
		if err != nil {
			t.Fatalf("handshake: %v", err)
		}
		return cs.PeerCertificates[0].SerialNumber.Int64()
	}
	waitSerial := func(want int64) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for serial() != want {
			if time.Now().After(deadline) {
				t.Fatalf("served serial never became %d", want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if got := serial(); got != 1001 {
		t.Fatalf("served serial %d, want the operator's 1001", got)
	}

	// Replaced by the deploy tool (key first, then certificate).
	c2, k2 := pki.issue(t, 1002, false, day, "portal.hospital.test")
	writeAtomic(t, keyFile, k2)
	writeAtomic(t, certFile, c2)
	waitSerial(1002)

	otherC, otherK := pki.issue(t, 1003, false, day, "other.hospital.test")
	expiredC, expiredK := pki.issue(t, 1004, false, time.Now().Add(-time.Minute), "portal.hospital.test")
	// Bad replacements keep the current certificate, and say why.
	for _, tc := range []struct {
		name     string
		cert     []byte
		key      []byte
		wantLogs string
	}{
		{"garbage certificate", []byte("not a pem file"), k2, "failed to find any PEM data"},
		{"key of another certificate", c2, k1, "private key does not match"},
		{"certificate for another name", otherC, otherK, "does not cover portal.hospital.test"},
		{"expired certificate", expiredC, expiredK, "certificate expired"},
	} {
		before := strings.Count(logs.String(), tc.wantLogs)
		writeAtomic(t, keyFile, tc.key)
		writeAtomic(t, certFile, tc.cert)
		deadline := time.Now().Add(5 * time.Second)
		for strings.Count(logs.String(), tc.wantLogs) == before {
			if time.Now().After(deadline) {
				t.Fatalf("%s: no rejection logged", tc.name)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if got := serial(); got != 1002 {
			t.Fatalf("%s: served serial %d, want 1002 kept", tc.name, got)
		}
		// Restore the good pair between cases.
		writeAtomic(t, certFile, c2)
		writeAtomic(t, keyFile, k2)
	}
	if strings.Contains(logs.String(), "PRIVATE KEY") {
		t.Error("key material reached the log")
	}
}

func TestFilesModeWildcard(t *testing.T) {
	t.Parallel()
	pki := newTestCA(t, "Hospital PKI")
	dir := t.TempDir()
	c, k := pki.issue(t, 2001, false, time.Now().Add(time.Hour), "*.hospital.test")
	cfg := baseConfig(t, config.TLSHost{Names: []string{"*.hospital.test"}, Mode: ModeFiles,
		CertFile: writeFile(t, dir, "c.pem", c), KeyFile: writeFile(t, dir, "k.pem", k)})
	m := newManager(t, Options{Config: cfg})
	addr := serveHTTPS(t, m, nil)
	for _, tc := range []struct {
		sni string
		ok  bool
	}{
		{"video.hospital.test", true},
		{"a.b.hospital.test", false}, // "*" matches one label (RFC 6125 §6.4.3)
		{"hospital.test", false},
	} {
		_, err := handshake(addr, &tls.Config{RootCAs: pki.pool(), ServerName: tc.sni})
		if (err == nil) != tc.ok {
			t.Errorf("%s: handshake err %v, want ok=%v", tc.sni, err, tc.ok)
		}
	}
}
