package edgetls

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/internal/pebbletest"
)

// pebbleCA is an in-process ACME CA whose validation authority connects to
// the given loopback ports.
type pebbleCA struct {
	directory string
	client    *http.Client
	roots     *x509.CertPool // roots of the certificates it issues
	orders    *atomic.Int64  // new orders received (RFC 8555 §7.4)
}

func startPebble(t *testing.T, httpPort, tlsPort int) *pebbleCA {
	t.Helper()
	c := pebbletest.Start(t, pebbletest.Options{HTTPPort: httpPort, TLSPort: tlsPort})
	return &pebbleCA{directory: c.Directory, client: c.Client, roots: c.Roots, orders: c.Orders}
}

func listenLoopback(t *testing.T) (net.Listener, int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln, ln.Addr().(*net.TCPAddr).Port
}

func TestACMEObtainsCertificateFromPebble(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		challenge string
		name      string
		// late binds the gateway's listeners only after New, as
		// cmd/telegate does: certmagic must not grab the ports meanwhile.
		late bool
	}{
		{ChallengeHTTP01, "clinic.telegate.test", false},
		{ChallengeTLSALPN01, "video.telegate.test", true},
		{ChallengeHTTP01, "portal.telegate.test", true},
	} {
		t.Run(tc.challenge+"/"+tc.name, func(t *testing.T) {
			t.Parallel()
			httpsLn, httpsPort := listenLoopback(t)
			httpLn, httpPort := listenLoopback(t)
			pebble := startPebble(t, httpPort, httpsPort)

			cfg := baseConfig(t, config.TLSHost{Names: []string{tc.name}, Mode: ModeACME})
			cfg.Server.Listen = "127.0.0.1:" + strconv.Itoa(httpsPort)
			cfg.Server.HTTPListen = "127.0.0.1:" + strconv.Itoa(httpPort)
			cfg.TLS.ACME = config.ACME{CA: pebble.directory, Email: "pki@hospital.test",
				Challenges: []string{tc.challenge}, RenewalWindowRatio: 0.5}

			if tc.late {
				httpsLn.Close()
				httpLn.Close()
			}
			m := newManager(t, Options{Config: cfg, HTTPClient: pebble.client})
			if tc.late {
				time.Sleep(300 * time.Millisecond)
				var err error
				if httpsLn, err = net.Listen("tcp", cfg.Server.Listen); err != nil {
					t.Fatalf("gateway cannot bind its HTTPS port after New: %v", err)
				}
				if httpLn, err = net.Listen("tcp", cfg.Server.HTTPListen); err != nil {
					t.Fatalf("gateway cannot bind its HTTP port after New: %v", err)
				}
			}
			if m.acmeCfg.RenewalWindowRatio != 0.5 {
				t.Errorf("renewal window ratio %v, want 0.5 from the configuration", m.acmeCfg.RenewalWindowRatio)
			}
			httpSrv := &http.Server{Handler: m.HTTPHandler(), ReadHeaderTimeout: 5 * time.Second}
			go httpSrv.Serve(httpLn)
			t.Cleanup(func() { httpSrv.Close() })
			addr := serveHTTPS(t, m, httpsLn)

			client := &tls.Config{RootCAs: pebble.roots, ServerName: tc.name}
			deadline := time.Now().Add(60 * time.Second)
			var lastErr error
			for {
				cs, err := handshake(addr, client)
				if err == nil {
					leaf := cs.PeerCertificates[0]
					if err := leaf.VerifyHostname(tc.name); err != nil {
						t.Fatal(err)
					}
					t.Logf("served %s issued by %q, valid until %s", tc.name, leaf.Issuer.CommonName, leaf.NotAfter)
					break
				}
				lastErr = err
				if time.Now().After(deadline) {
					t.Fatalf("no certificate from pebble for %s within 60s: %v", tc.name, lastErr)
				}
				time.Sleep(100 * time.Millisecond)
			}
			if body, err := get(addr, tc.name, client); err != nil || body != "-" {
				t.Fatalf("GET https://%s/ = %q, %v", tc.name, body, err)
			}
			// Outside a pending challenge, "acme-tls/1" alone gets no session.
			alpn := &tls.Config{ServerName: tc.name, InsecureSkipVerify: true, NextProtos: []string{"acme-tls/1"}}
			if _, err := handshake(addr, alpn); err == nil {
				t.Error("handshake offering only acme-tls/1 succeeded with no challenge pending")
			}
		})
	}
}

// TestReloadAddsAndRemovesACMENames: a name added to an acme host entry
// on reload is obtained from the CA and served; a name removed is no
// longer served.
func TestReloadAddsAndRemovesACMENames(t *testing.T) {
	t.Parallel()
	httpsLn, httpsPort := listenLoopback(t)
	httpLn, httpPort := listenLoopback(t)
	pebble := startPebble(t, httpPort, httpsPort)
	cfg := baseConfig(t, config.TLSHost{Names: []string{"clinic.telegate.test"}, Mode: ModeACME})
	cfg.Server.Listen = "127.0.0.1:" + strconv.Itoa(httpsPort)
	cfg.Server.HTTPListen = "127.0.0.1:" + strconv.Itoa(httpPort)
	cfg.TLS.ACME = config.ACME{CA: pebble.directory, Challenges: []string{ChallengeHTTP01}}
	m := newManager(t, Options{Config: cfg, HTTPClient: pebble.client})
	httpSrv := &http.Server{Handler: m.HTTPHandler(), ReadHeaderTimeout: 5 * time.Second}
	go httpSrv.Serve(httpLn)
	t.Cleanup(func() { httpSrv.Close() })
	addr := serveHTTPS(t, m, httpsLn)
	waitServed := func(name string) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			_, err := handshake(addr, &tls.Config{RootCAs: pebble.roots, ServerName: name})
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s not served within 60s: %v", name, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitServed("clinic.telegate.test")

	next := *cfg
	next.TLS.Hosts = []config.TLSHost{{Names: []string{"clinic.telegate.test", "video.telegate.test"}, Mode: ModeACME}}
	if err := m.Reload(t.Context(), &next); err != nil {
		t.Fatalf("Reload adding video.telegate.test: %v", err)
	}
	waitServed("video.telegate.test")

	next.TLS.Hosts = []config.TLSHost{{Names: []string{"video.telegate.test"}, Mode: ModeACME}}
	if err := m.Reload(t.Context(), &next); err != nil {
		t.Fatalf("Reload removing clinic.telegate.test: %v", err)
	}
	if _, err := handshake(addr, &tls.Config{RootCAs: pebble.roots, ServerName: "clinic.telegate.test"}); err == nil {
		t.Error("clinic.telegate.test still served after it was removed")
	}
	if got := len(m.acmeCache.AllMatchingCertificates("clinic.telegate.test")); got != 0 {
		t.Errorf("%d certificates for clinic.telegate.test still managed", got)
	}
	waitServed("video.telegate.test")
}
